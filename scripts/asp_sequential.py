"""Sequential-digits study of ASP against plain STDP (issue 11), one thread, the protocol of
``examples/asp_sequential.yaml`` driven through the API so that ASP keys can be swept.

    python scripts/asp_sequential.py --seeds 0 1 2 --out /tmp/asp_runs/base.json [--no-stdp] [--set key=value ...]

Protocol (as the example): MNIST, first ``--n-train`` training images (the last ``n_assign_per_class`` of every
class held out for labels), digits 0, 1, …, 9 in order, ``images_per_phase`` (300) each, 100 neurons, fast network,
ideal software synapses; scored after every phase on the first ``--n-test`` test images of the digits seen.
MNIST from ``$ASP_MNIST``, else ``$XBARSIM_DATA`` (as the CLI), else ``/work/shared/data/mnist``.
Writes one JSON list of rows (every algorithm × phase × seed, plus ``seed`` and the overrides) and prints the
last phase per seed and the mean ± spread (min–max) over the seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from algorithms.base import Hardware
from algorithms.registry import get_algorithm
from circuits import EnergyLedger
from device_models import IdealDevice
from xbarsim.datasets import Dataset, load_mnist

DEFAULTS = dict(n_neurons=100, mode="fast", phases=list(range(10)), images_per_phase=300, n_assign_per_class=100,
                synapses="software")


def _value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text in ("null", "None"):
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def study_mnist():
    """MNIST from ``$ASP_MNIST``, else ``$XBARSIM_DATA`` (as the CLI), else ``/work/shared/data/mnist``."""
    return load_mnist(os.environ.get("ASP_MNIST") or (None if os.environ.get("XBARSIM_DATA") else "/work/shared/data/mnist"))


def run(seed: int, overrides: dict, compare_stdp: bool, n_train: int, n_test: int, figures_dir=None,
        snap_path=None) -> list[dict]:
    torch.set_num_threads(1)
    full = study_mnist()
    data = Dataset(full.name, full.x_train[:n_train], full.y_train[:n_train], full.x_test, full.y_test,
                   full.image_shape)
    cls = get_algorithm("asp")
    params = cls.make_params(**{**DEFAULTS, **overrides, "compare_stdp": compare_stdp, "figures_dir": figures_dir})
    alg = cls(params, Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(seed)))
    t0 = time.perf_counter()
    alg.fit(data, EnergyLedger())
    import algorithms.asp as asp_mod

    assigned = []
    orig = asp_mod.labels_from_rates

    def _record(*a, **k):
        out = orig(*a, **k)
        assigned.append(out[0].cpu().clone())
        return out

    asp_mod.labels_from_rates = _record
    try:
        rows = alg.evaluate(data.x_test[:n_test], data.y_test[:n_test], 0.0)
    finally:
        asp_mod.labels_from_rates = orig
    wall = time.perf_counter() - t0
    if snap_path is not None:
        torch.save([{"algorithm": s["algorithm"], "phase": s["phase"], "classes": s["classes"], "weights": s["weights"][0].cpu(),
                     "theta": s["theta"].reshape(-1).cpu(), "assign": a}
                    for s, a in zip(alg.snapshots(), assigned)], snap_path)
    keep = ("algorithm", "phase", "classes_seen", "accuracy_seen", "accuracy_newest", "accuracy_seen_proportion",
            "accuracy_newest_proportion", "neurons_assigned")
    out = []
    for r in rows:
        d = {k: r[k] for k in keep}
        d.update({k: r[k] for k in r if k.startswith("accuracy_class_")})
        d.update(seed=seed, wall_s=wall, **{f"set_{k}": v for k, v in overrides.items()})
        if assigned:
            i = len(out)
            d["neurons_per_class"] = [int((assigned[i] == c).sum()) for c in range(10)]
        out.append(d)
    return out


def summary(rows: list[dict]) -> str:
    lines = []
    last = max(r["phase"] for r in rows)
    for alg in dict.fromkeys(r["algorithm"] for r in rows):
        sel = [r for r in rows if r["algorithm"] == alg and r["phase"] == last]
        for key in ("accuracy_seen", "accuracy_newest", "accuracy_seen_proportion", "accuracy_newest_proportion"):
            v = [r[key] for r in sel]
            m = sum(v) / len(v)
            lines.append(f"{alg:5s} {key:26s} mean {m:.3f}  [{min(v):.3f}, {max(v):.3f}]  "
                         + " / ".join(f"{x:.3f}" for x in v))
        per = [sum(r[f"accuracy_class_{k}"] for r in sel) / len(sel) for k in range(10)]
        lines.append(f"{alg:5s} per digit " + " ".join("nan " if math.isnan(p) else f"{p:.2f}" for p in per))
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The README tables: per phase mean (seed values) of accuracy_seen / accuracy_newest for STDP and ASP, then
    the per-digit accuracy after the last phase (mean of the seeds)."""
    seeds = sorted(dict.fromkeys(r["seed"] for r in rows))
    phases = sorted(dict.fromkeys(r["phase"] for r in rows))

    def cell(alg, ph, key):
        v = [next(r[key] for r in rows if r["algorithm"] == alg and r["phase"] == ph and r["seed"] == s) for s in seeds]
        return f"{sum(v) / len(v):.3f} ({' / '.join(f'{x:.2f}' for x in v)})"

    out = ["| after digit (digits seen) | STDP accuracy_seen | ASP accuracy_seen | STDP newest | ASP newest |",
           "|---|---:|---:|---:|---:|"]
    for ph in phases:
        out.append(f"| {ph} (0–{ph}) | {cell('stdp', ph, 'accuracy_seen')} | {cell('asp', ph, 'accuracy_seen')} | "
                   f"{cell('stdp', ph, 'accuracy_newest')} | {cell('asp', ph, 'accuracy_newest')} |")
    last = phases[-1]
    out += ["", "| digit | " + " | ".join(str(k) for k in range(10)) + " |", "|---|" + "---:|" * 10]
    for alg in ("stdp", "asp"):
        sel = [r for r in rows if r["algorithm"] == alg and r["phase"] == last]
        out.append(f"| {alg.upper()} | " + " | ".join(f"{sum(r[f'accuracy_class_{k}'] for r in sel) / len(sel):.2f}"
                                                     for k in range(10)) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-stdp", action="store_true", help="ASP only (the STDP run of a seed does not depend on ASP keys)")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--figures-dir", default=None)
    ap.add_argument("--set", nargs="*", default=[], help="algorithm keys, key=value")
    ap.add_argument("--table", action="store_true", help="print the README tables of --out (no run)")
    a = ap.parse_args()
    if a.table:
        print(markdown(json.loads(Path(a.out).read_text())))
        return
    over = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        over[k] = _value(v)
    rows: list[dict] = []
    for s in a.seeds:
        r = run(s, over, not a.no_stdp, a.n_train, a.n_test, a.figures_dir if s == a.seeds[0] else None,
                str(Path(a.out).with_suffix(f".s{s}.pt")))
        rows += r
        for x in r:
            print(f"seed {s} {x['algorithm']:5s} phase {x['phase']} seen {x['accuracy_seen']:.3f} "
                  f"newest {x['accuracy_newest']:.3f} pw {x['accuracy_seen_proportion']:.3f}/{x['accuracy_newest_proportion']:.3f} per class {x.get('neurons_per_class')}  ({x['wall_s']:.0f} s)", flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(rows, indent=1))
    print(summary(rows), flush=True)


if __name__ == "__main__":
    main()
