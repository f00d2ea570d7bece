"""The exact solver against ngspice on the same circuit (DESIGN §5 "Validation").

Decks come from :func:`circuits.crossbar_netlist` and run with ``.options reltol=1e-9 abstol=1e-18
vntol=1e-12`` (ngspice's default reltol 1e-3 would make a 1e-6 comparison meaningless) and results
printed with 17 digits. For linear decks ngspice does one sparse LU solve, so agreement is limited
by rounding (measured ~1e-13). For the sinh decks ngspice's Newton stops when successive iterates
differ by less than reltol·|x| + vntol = 1e-9 relative, and its currents agree to ~1e-11 (measured);
1e-6 is the DESIGN's acceptance bound and leaves a wide margin.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import SinhCell

from circuits.netlist import crossbar_netlist, run_ngspice
from circuits.solver import solve_crossbar, transfer_matrix

pytestmark = [
    pytest.mark.spice,
    pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice is not installed (apt-get install ngspice)"),
]




def _case(rows, cols, seed, g_lo=1e-6, g_hi=1e-4, vmax=0.3):
    gen = torch.Generator().manual_seed(seed)
    g = g_lo + (g_hi - g_lo) * torch.rand(rows, cols, generator=gen, dtype=torch.float64)
    v = vmax * torch.rand(rows, generator=gen, dtype=torch.float64)
    return g, v


def _rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


LINEAR = [  # rows, cols, r_wire_row, r_wire_col, r_source, r_sense, r_access
    (64, 64, 1.0, 1.0, 5.0, 10.0, 0.0),  # largest square case
    (17, 40, 0.1, 10.0, 20.0, 3.0, 0.0),  # non-square, very different row/col wires
    (40, 17, 10.0, 0.1, 1.0, 50.0, 0.0),
    (24, 24, 2.5, 7.5, 3.0, 3.0, 5e3),  # 1T1R: access transistor in series with every cell
    (16, 20, 0.0, 4.0, 0.0, 2.0, 1e3),  # ideal rows and ideal sources (merged nodes)
    (20, 16, 3.0, 0.0, 2.0, 0.0, 0.0),  # ideal columns and ideal sense
]


@pytest.mark.parametrize("case", LINEAR, ids=lambda c: "x".join(map(str, c[:2])) + f"-r{c[2]}-{c[3]}-a{c[6]:g}")
def test_linear_matches_ngspice(case):
    rows, cols, *r = case
    g, v = _case(rows, cols, seed=rows * cols)
    ref = run_ngspice(crossbar_netlist(g, v, *r))
    assert _rel(v @ transfer_matrix(g, *r)[0], ref) <= 1e-6
    assert _rel(solve_crossbar(g, v[None], *r)[0], ref) <= 1e-6


NONLINEAR = [
    (32, 32, 2.0, 2.0, 5.0, 5.0, 0.0, 0.5),
    (17, 40, 1.0, 3.0, 2.0, 10.0, 2e3, 0.6),  # with access resistance
    (12, 12, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),  # ideal wires: per-cell sinh only
]


@pytest.mark.parametrize("case", NONLINEAR, ids=lambda c: "x".join(map(str, c[:2])) + f"-v{c[-1]}")
def test_sinh_matches_ngspice(case):
    rows, cols, *r, vmax = case
    g, v = _case(rows, cols, seed=7 + rows, vmax=vmax)
    dev = SinhCell()
    ref = run_ngspice(crossbar_netlist(g, v, *r, iv=dev))
    i = solve_crossbar(g, v[None], *r, iv=dev)[0]
    assert _rel(i, ref) <= 1e-6
    lin = solve_crossbar(g, v[None], *r)[0]
    assert _rel(lin, ref) > 1e-3  # the nonlinearity matters at these voltages, so the check has teeth


def test_run_ngspice_reports_failure():
    with pytest.raises(RuntimeError, match="ngspice"):
        run_ngspice("broken deck\nR1 a\n.end\n")


def test_cli_spice_deck_of_configured_array_matches_solver(tmp_path):
    import re

    from xbarsim.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "name: spice_check\nseed: 0\nmodel: {arch: mlp, hidden: [16], epochs: 2, seed: 0}\n"
        "device: {model: rram}\n"
        "crossbar: {rows: 24, cols: 32, solver: exact, r_wire_row: 2.0, r_wire_col: 3.0, r_source: 5.0, r_sense: 10.0}\n"
    )
    deck_path = tmp_path / "deck.cir"
    assert main(["spice", str(cfg), "-o", str(deck_path), "--input", "calibration"]) == 0
    deck = deck_path.read_text()
    g = np.zeros((24, 32))
    for m in re.finditer(r"^Rg(\d+)_(\d+) \S+ \S+ (\S+)$", deck, re.M):
        g[int(m[1]), int(m[2])] = 1 / float(m[3])
    v = np.zeros(24)
    for m in re.finditer(r"^Vin_(\d+) \S+ 0 DC (\S+)$", deck, re.M):
        v[int(m[1])] = float(m[2])
    assert (g > 0).sum() == 24 * 32 and v.max() > 0
    ref = run_ngspice(deck)
    i = solve_crossbar(torch.tensor(g), torch.tensor(v)[None], 2.0, 3.0, 5.0, 10.0)[0]
    assert _rel(i, ref) <= 1e-6


def test_rram_sinh_device_matches_ngspice():
    from device_models import make_device

    dev = make_device("rram", iv="sinh")  # the device helper's I = (G/b)·sinh(b·V)
    assert dev.nonlinear_iv
    g, v = _case(16, 24, seed=3, g_lo=dev.g_min, g_hi=dev.g_max, vmax=0.8)
    r = (2.0, 3.0, 5.0, 10.0, 0.0)
    ref = run_ngspice(crossbar_netlist(g, v, *r, iv=dev))
    assert _rel(solve_crossbar(g, v[None], *r, iv=dev)[0], ref) <= 1e-6
