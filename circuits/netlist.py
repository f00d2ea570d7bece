"""The canonical crossbar as a list of branches: SPICE deck, ngspice runner, reference nodal solve.

One branch list (:func:`crossbar_branches`) describes the canonical circuit (docs/circuits.md) — sources ``v[i]``
through ``r_source`` into row node (i, 0), row-wire segments ``r_wire_row``, cells (in series with
``r_access`` when > 0), column-wire segments ``r_wire_col``, and ``r_sense`` from column node
(rows−1, j) into a virtual ground. A zero resistance merges its two nodes (it is never stamped).
From it:

* :func:`crossbar_netlist` writes an ngspice deck (``.op``): ideal sources ``Vin_i``, a 0 V source
  ``Vsense_j`` from each column's sense node to ground whose current is the output, linear cells as
  resistors and nonlinear cells as behavioural sources ``B… n1 n2 I=a*sinh(b*V(n1,n2))``;
  :func:`run_ngspice` runs it in batch mode and returns the sense currents.
* :func:`nodal_solve` is the reference: the same network by modified nodal analysis (known source
  and virtual-ground voltages moved to the right-hand side) solved by sparse LU (scipy SuperLU),
  returning node voltages and every branch's current — used by the tests and benchmarks to check
  :mod:`circuits.solver` and to account energy branch by branch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from .solver import check_resistances

__all__ = ["crossbar_branches", "crossbar_netlist", "run_ngspice", "nodal_solve", "Branches", "NodalSolution"]


@dataclass
class Branches:
    """Nodes and two-terminal branches of one crossbar (numpy arrays, one entry per branch).

    Node ids: ``0..rows−1`` are the sources (known voltage ``v[i]``), ``rows..rows+cols−1`` the
    columns' virtual-ground sense nodes (0 V), the rest unknown. ``kind`` is one of ``"row"``,
    ``"col"``, ``"source"``, ``"sense"``, ``"access"``, ``"cell"``; ``a → b`` is the positive
    current direction; ``r`` the resistance [Ω] (cells: ``nan``, their conductance is ``g[cell]``);
    ``cell`` the flat cell index ``i·cols + j`` (−1 for other branches).
    """

    rows: int
    cols: int
    n_nodes: int
    node_names: list
    kind: np.ndarray
    a: np.ndarray
    b: np.ndarray
    r: np.ndarray
    cell: np.ndarray


def crossbar_branches(rows, cols, r_wire_row, r_wire_col, r_source, r_sense, r_access=0.0) -> Branches:
    """Branch list of the canonical topology with zero resistances merged (see module docstring)."""
    r = check_resistances(
        r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_source=r_source, r_sense=r_sense, r_access=r_access
    )
    M, N = int(rows), int(cols)
    names = [f"in{i}" for i in range(M)] + [f"s{j}" for j in range(N)]
    nxt = M + N

    def fresh(shape, fmt):
        nonlocal nxt
        ids = nxt + np.arange(int(np.prod(shape))).reshape(shape)
        names.extend(fmt(*np.unravel_index(k, shape)) for k in range(ids.size))
        nxt += ids.size
        return ids

    ii, jj = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    # row nodes
    if r["r_wire_row"] == 0:
        u = np.repeat(fresh((M,), lambda i: f"r{i}")[:, None], N, 1) if r["r_source"] else np.repeat(
            np.arange(M)[:, None], N, 1
        )
    else:
        u = fresh((M, N), lambda i, j: f"r{i}_{j}")
        if r["r_source"] == 0:
            u[:, 0] = np.arange(M)
    # column nodes
    if r["r_wire_col"] == 0:
        w = np.repeat(fresh((N,), lambda j: f"c{j}")[None, :], M, 0) if r["r_sense"] else np.repeat(
            (M + np.arange(N))[None, :], M, 0
        )
    else:
        w = fresh((M, N), lambda i, j: f"c{i}_{j}")
        if r["r_sense"] == 0:
            w[-1, :] = M + np.arange(N)
    kinds, As, Bs, Rs, cells = [], [], [], [], []

    def add(kind, a, b, res, cell=None):
        a, b = np.ravel(a), np.ravel(b)
        kinds.append(np.full(a.size, kind, dtype=object))
        As.append(a), Bs.append(b), Rs.append(np.full(a.size, res, dtype=float))
        cells.append(np.full(a.size, -1) if cell is None else np.ravel(cell))

    if r["r_source"]:
        add("source", np.arange(M), u[:, 0], r["r_source"])
    if r["r_wire_row"]:
        add("row", u[:, :-1], u[:, 1:], r["r_wire_row"])
    flat = ii * N + jj
    if r["r_access"]:
        acc = fresh((M, N), lambda i, j: f"a{i}_{j}")
        add("access", u, acc, r["r_access"])
        add("cell", acc, w, np.nan, flat)
    else:
        add("cell", u, w, np.nan, flat)
    if r["r_wire_col"]:
        add("col", w[:-1, :], w[1:, :], r["r_wire_col"])
    if r["r_sense"]:
        add("sense", w[-1, :], M + np.arange(N), r["r_sense"])
    a, b = np.concatenate(As), np.concatenate(Bs)
    # nodes replaced by a merge (e.g. row node (i, 0) when r_source = 0) are unused: renumber compactly
    used = np.zeros(nxt, dtype=bool)
    used[: M + N] = True
    used[a], used[b] = True, True
    new_id = np.cumsum(used) - 1
    names = [nm for nm, u_ in zip(names, used) if u_]
    return Branches(
        M, N, len(names), names, np.concatenate(kinds), new_id[a], new_id[b], np.concatenate(Rs),
        np.concatenate(cells),
    )


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _iv_expression(iv, g: float, vexpr: str) -> str:
    """SPICE current expression of a nonlinear cell of small-signal conductance ``g``."""
    if hasattr(iv, "spice_current"):
        return iv.spice_current(g, vexpr)
    b = getattr(iv, "iv_sinh_b", None)
    if b is not None and getattr(iv, "iv", "sinh") == "sinh":
        return f"{g / b:.17g}*sinh({b:.17g}*{vexpr})"
    raise ValueError(
        f"iv: {type(iv).__name__} has no SPICE form; give it spice_current(g, vexpr) -> str "
        "or iv='sinh' with iv_sinh_b (I = (g/b)·sinh(b·V))"
    )


def crossbar_netlist(g, v, r_wire_row, r_wire_col, r_source, r_sense, r_access=0.0, iv=None, title="xbarsim crossbar"):
    """ngspice deck of one crossbar ``g`` [rows, cols] (S) driven by ``v`` [rows] (V).

    Nodes ``in{i}`` (sources), ``r{i}_{j}`` (row wire), ``a{i}_{j}`` (between access resistance and
    cell), ``c{i}_{j}`` (column wire), ``s{j}`` (sense node, held at 0 V by ``Vsense_j``; merged
    names when a resistance is 0). Cells of conductance 0 are open and omitted. The deck runs
    ``op`` with tight tolerances (reltol 1e-9, abstol 1e-18 A, vntol 1e-12 V) and prints
    ``i(vsense_j)`` with 17 digits: the current from column ``j`` into the virtual ground [A].
    ``iv``: a nonlinear device (``nonlinear_iv``) becomes ``B`` sources (see :func:`_iv_expression`).
    """
    g = _as_numpy(g)
    v = _as_numpy(v).reshape(-1)
    if g.ndim != 2:
        raise ValueError(f"g: got shape {g.shape}; expected [rows, cols] (one array)")
    if v.shape[0] != g.shape[0]:
        raise ValueError(f"v: got shape {v.shape}; expected [{g.shape[0]}] (one input vector)")
    if not (np.isfinite(g).all() and (g >= 0).all()):
        raise ValueError("g: conductances must be finite and ≥ 0 S")
    nonlinear = iv is not None and getattr(iv, "nonlinear_iv", False)
    br = crossbar_branches(*g.shape, r_wire_row, r_wire_col, r_source, r_sense, r_access)
    gflat = g.ravel()
    nm = br.node_names
    M, N = g.shape
    lines = [f"* {title}: {M}x{N}, r_wire_row={r_wire_row} r_wire_col={r_wire_col} r_source={r_source} "
             f"r_sense={r_sense} r_access={r_access} ohm; i(vsense_j) = column current [A]",
             ".options reltol=1e-9 abstol=1e-18 vntol=1e-12 gmin=1e-30 itl1=500"]
    lines += [f"Vin_{i} {nm[i]} 0 DC {v[i]:.17g}" for i in range(M)]
    lines += [f"Vsense_{j} {nm[M + j]} 0 DC 0" for j in range(N)]
    count = {}
    for kind, a, b, r, cell in zip(br.kind, br.a, br.b, br.r, br.cell):
        k = count.get(kind, 0)
        count[kind] = k + 1
        if kind == "cell":
            gc = gflat[cell]
            if gc == 0:
                continue
            i, j = divmod(int(cell), N)
            if nonlinear:
                lines.append(f"B{i}_{j} {nm[a]} {nm[b]} I={_iv_expression(iv, float(gc), f'V({nm[a]},{nm[b]})')}")
            else:
                lines.append(f"Rg{i}_{j} {nm[a]} {nm[b]} {1.0 / gc:.17g}")
        elif kind == "access" and gflat[k] == 0:
            continue  # access resistor of an open cell: dangling, omitted with its cell
        else:
            lines.append(f"R{kind}{k} {nm[a]} {nm[b]} {r:.17g}")
    lines += [".control", "set numdgt=17", "op"]
    for s in range(0, N, 16):
        lines.append("print " + " ".join(f"i(vsense_{j})" for j in range(s, min(s + 16, N))))
    lines += ["quit 0", ".endc", ".end", ""]
    return "\n".join(lines)


def run_ngspice(deck: str, timeout: float = 600.0) -> np.ndarray:
    """Run ``ngspice -b`` on ``deck`` in a temporary directory; return the ``i(vsense_j)`` [A] by ``j``."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise FileNotFoundError("ngspice not found on PATH (install it, e.g. `apt-get install ngspice`)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crossbar.cir")
        with open(path, "w") as fh:
            fh.write(deck)
        proc = subprocess.run([exe, "-b", path], capture_output=True, text=True, cwd=tmp, timeout=timeout)
    found = dict(
        (int(m.group(1)), float(m.group(2)))
        for m in re.finditer(r"^i\(vsense_(\d+)\)\s*=\s*(\S+)", proc.stdout, flags=re.MULTILINE | re.IGNORECASE)
    )
    if proc.returncode != 0 or not found:
        tail = (proc.stdout[-2000:] + proc.stderr[-2000:]).strip()
        raise RuntimeError(f"ngspice failed (exit {proc.returncode}); output tail:\n{tail}")
    n = max(found) + 1
    if sorted(found) != list(range(n)):
        raise RuntimeError(f"ngspice printed currents for columns {sorted(found)}; expected 0..{n - 1}")
    return np.array([found[j] for j in range(n)])


@dataclass
class NodalSolution:
    """Reference solution: ``i`` [batch, cols] sense currents; ``node_v`` [batch, n_nodes] node voltages;
    ``branch_i`` [batch, n_branches] branch currents a → b; ``source_i`` [batch, rows] currents
    delivered by the sources; ``branches`` the branch list."""

    i: np.ndarray
    node_v: np.ndarray
    branch_i: np.ndarray
    source_i: np.ndarray
    branches: Branches


def nodal_solve(g, v, r_wire_row, r_wire_col, r_source=0.0, r_sense=0.0, r_access=0.0) -> NodalSolution:
    """Reference linear solve of one crossbar ``g`` [rows, cols] for inputs ``v`` [batch, rows] (or [rows]).

    Modified nodal analysis of :func:`crossbar_branches`: ``G_uu x_u = −G_uk x_k`` with the known
    source and virtual-ground voltages ``x_k``, one sparse LU (scipy ``splu``) for all inputs.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    g = _as_numpy(g)
    v = np.atleast_2d(_as_numpy(v))
    M, N = g.shape
    if v.shape[-1] != M:
        raise ValueError(f"v: got shape {v.shape}; expected [batch, {M}]")
    br = crossbar_branches(M, N, r_wire_row, r_wire_col, r_source, r_sense, r_access)
    cond = np.where(br.kind == "cell", g.ravel()[np.maximum(br.cell, 0)], 1.0 / np.where(np.isnan(br.r), 1.0, br.r))
    n, nk = br.n_nodes, M + N
    rows = np.concatenate([br.a, br.b, br.a, br.b])
    cols = np.concatenate([br.a, br.b, br.b, br.a])
    vals = np.concatenate([cond, cond, -cond, -cond])
    G = sp.csc_matrix((vals, (rows, cols)), shape=(n, n))
    Guu, Guk = G[nk:, nk:].tocsc(), G[nk:, :nk]
    xk = np.concatenate([v, np.zeros((v.shape[0], N))], axis=1)  # [batch, nk]
    xu = spla.splu(Guu).solve(np.ascontiguousarray(-(Guk @ xk.T))).T if n > nk else np.zeros((v.shape[0], 0))
    x = np.concatenate([xk, np.atleast_2d(xu)], axis=1)
    bi = (x[:, br.a] - x[:, br.b]) * cond
    inflow = np.zeros((v.shape[0], n))
    np.add.at(inflow.T, br.b, bi.T)
    np.add.at(inflow.T, br.a, -bi.T)
    return NodalSolution(inflow[:, M : M + N], x, bi, -inflow[:, :M], br)
