"""Generate the README's result tables from the shipped examples, or check that they are current.

Each table lives in README.md between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; this
script runs the example behind it and replaces (or, with ``--check``, compares) what is between
the markers. Nothing else in the README is touched, so other sections may change freely.

    python scripts/readme_tables.py                  # regenerate every table (MNIST needs XBARSIM_DATA)
    python scripts/readme_tables.py --check          # exit 1 and show a diff when a table drifted
    python scripts/readme_tables.py --only quickstart pcm_drift
    python scripts/readme_tables.py --cheap          # only the tables that take seconds

Tables: ``quickstart`` (what ``xbarsim run`` prints) and ``pcm_drift`` are cheap (seconds); ``ir_drop``
and ``cnn_mnist`` take a minute or two each on 2 cores (``cnn_mnist`` reads MNIST from ``$XBARSIM_DATA``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"


def _run(name: str):
    import xbarsim

    return xbarsim.run(EXAMPLES / f"{name}.yaml", progress=False)


def table_quickstart() -> str:
    """The quickstart's terminal output (``xbarsim run``), exactly as the CLI formats it."""
    import xbarsim
    from xbarsim.cli import format_table

    return "```\n" + format_table(xbarsim.run(progress=False)) + "\n```"


def _md(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


_TIMES = {1.0: "1 s", 3600.0: "1 h", 86400.0: "1 day", 3.15e7: "1 year (3.15e7 s)"}


def table_pcm_drift() -> str:
    df = _run("pcm_drift")
    seeds = sorted(df["seed"].unique())
    stats = df.groupby(["t_s", "drift_compensation"])["accuracy_hw"].agg(["mean", "std"])
    rows = []
    for t in sorted(df["t_s"].unique()):
        cells = [f"{stats.loc[(t, dc), 'mean']:.4f} ± {stats.loc[(t, dc), 'std']:.4f}" for dc in (False, True)]
        rows.append([_TIMES.get(float(t), f"{t:g} s"), *cells])
    head = (
        f"Software accuracy {df['accuracy_sw'].iloc[0]:.4f}; hardware accuracy, mean ± std over device seeds "
        f"{seeds[0]}–{seeds[-1]}, {int(df['n_test'].iloc[0])} test images:\n\n"
    )
    return head + _md(["time after programming", "no compensation", "global drift compensation"], rows)


def table_ir_drop() -> str:
    df = _run("ir_drop_sweep")
    rs = sorted(df["crossbar.r_wire_row"].unique())
    rows = []
    for n, part in df.groupby("crossbar.rows"):
        acc = part.set_index("crossbar.r_wire_row")["accuracy_hw"]
        rows.append([f"{n}×{n}", *(f"{acc.loc[r]:.4f}" for r in rs)])
    head = f"Software accuracy {df['accuracy_sw'].iloc[0]:.4f}; hardware accuracy for each wire resistance per cell (row and column):\n\n"
    return head + _md(["array", *(f"{r:g} Ω" for r in rs)], rows)


def table_cnn_mnist() -> str:
    if not os.environ.get("XBARSIM_DATA"):
        raise SystemExit("cnn_mnist: set XBARSIM_DATA to the directory that holds mnist/ (IDX files)")
    df = _run("cnn_mnist")
    rows = [[str(r.device), f"{r.accuracy_sw:.4f}", f"{r.accuracy_hw:.4f}", f"{r.accuracy_drop:+.4f}"] for r in df.itertuples()]
    head = f"{int(df['n_test'].iloc[0])} MNIST test images:\n\n"
    return head + _md(["device", "software", "on crossbars", "drop"], rows)


#: name -> (generator, cheap)
TABLES: dict[str, tuple[Callable[[], str], bool]] = {
    "quickstart": (table_quickstart, True),
    "pcm_drift": (table_pcm_drift, True),
    "ir_drop": (table_ir_drop, False),
    "cnn_mnist": (table_cnn_mnist, False),
}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(^<!-- /table:{re.escape(name)} -->)", re.S | re.M)


def block(text: str, name: str) -> str:
    """The current content of table ``name`` in ``text`` (ValueError if its markers are missing)."""
    m = _pattern(name).search(text)
    if m is None:
        raise ValueError(f"README.md has no <!-- table:{name} --> … <!-- /table:{name} --> block")
    return m.group(2).rstrip("\n")


def generate(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"table: got {name!r}; allowed: {', '.join(TABLES)}")
    return TABLES[name][0]().strip("\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when a table drifted")
    ap.add_argument("--only", nargs="+", metavar="NAME", help=f"tables to do (default: all): {', '.join(TABLES)}")
    ap.add_argument("--cheap", action="store_true", help="only the tables that take seconds")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    names = args.only or [n for n, (_, cheap) in TABLES.items() if cheap or not args.cheap]
    text = args.readme.read_text()
    for name in names:
        block(text, name)  # every marker present before running anything
    drifted: dict[str, str] = {}
    for name in names:
        new = generate(name)
        old = block(args.readme.read_text(), name)
        if old == new:
            print(f"{name}: up to date", file=sys.stderr)
            continue
        drifted[name] = new
        if args.check:
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"README {name}", f"code {name}", lineterm="")
            print("\n".join(diff))
    if args.check:
        if drifted:
            print(f"drifted: {', '.join(drifted)}; run `python scripts/readme_tables.py --only {' '.join(drifted)}`", file=sys.stderr)
        return 1 if drifted else 0
    if drifted:  # re-read just before writing: other sections may have changed meanwhile
        text = args.readme.read_text()
        for name, new in drifted.items():
            text = _pattern(name).sub(lambda m, new=new: m.group(1) + new + "\n" + m.group(3), text, count=1)
            print(f"{name}: updated", file=sys.stderr)
        args.readme.write_text(text)
    return 0

if __name__ == "__main__":
    sys.exit(main())
