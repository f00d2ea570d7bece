"""Command line: ``xbarsim run|sweep [CONFIG] [--out FILE]`` (docs/architecture.md)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["main", "format_table"]

#: columns shown on the terminal (the file gets every column)
_SHOW = (
    "device",
    "method",
    "timesteps",
    "replica",
    "phase",
    "classes_seen",
    "t_s",
    "drift_compensation",
    "accuracy_sw",
    "accuracy_ann",
    "accuracy_snn_sw",
    "accuracy_snn_hw",
    "accuracy_hw",
    "accuracy_drop",
    "accuracy_seen",
    "accuracy_newest",
    "images_per_s",
    "energy_train_per_image_J",
    "energy_per_inference_J",
    "latency_s",
)


def format_table(df, columns: list[str] | None = None) -> str:
    """Terminal rendering: swept keys first, then the headline metrics, floats to 4 significant digits."""
    if columns is None:
        swept = [c for c in df.columns if "." in c or c in ("seed",)]
        energy = [  # components that are zero in every row (e.g. no learning pulses) stay in the file only
            c for c in df.columns if c.startswith("energy_") and c != "energy_per_inference_J" and (df[c] != 0).any()
        ]
        columns = [c for c in (*swept, *_SHOW, *energy) if c in df.columns]
        columns = [c for c in dict.fromkeys(columns) if not df[c].isna().all()]  # e.g. SNN-only metrics of an ANN run
    return df[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _cmd_run(args) -> int:
    from .results import check_format
    from .sweep import run

    # file names first: a bad --out/--breakdown is refused before any model is trained
    if args.out is not None:
        check_format(args.out, "--out")
    breakdown = getattr(args, "breakdown", None)
    if breakdown is not None:
        check_format(breakdown, "--breakdown")
        if breakdown.exists() and not (args.out and args.out.exists()):
            shutil.rmtree(breakdown) if breakdown.is_dir() else breakdown.unlink()  # a fresh run (nothing to resume): the breakdown starts afresh too
    kwargs = {"force": True} if getattr(args, "force", False) else {}
    df = run(args.config, out=args.out, progress=not args.quiet, workers=args.workers, scheduler=args.scheduler,
             breakdown=breakdown, **kwargs)
    print(format_table(df))
    if args.out:
        print(f"\nwrote {len(df)} rows to {args.out}", file=sys.stderr)
    if breakdown is not None:
        print(f"wrote the energy/latency breakdown to {breakdown}", file=sys.stderr)
    return 0


def _cmd_plot(args) -> int:
    from .plot import plot_table
    from .results import read_table

    out = args.out or args.table.with_suffix(".png")
    plot_table(read_table(args.table), x=args.x, metrics=tuple(args.metric), out=out)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_devices(args) -> int:
    """Every shipped device preset with its parameters, units and sources (docs/devices.md)."""
    from device_models import list_presets, preset_info, preset_table

    names = args.names or list_presets()
    for k, name in enumerate(names):
        info = preset_info(name)  # raises DeviceParameterError (a ValueError) naming the allowed presets
        rows = preset_table(name)
        print(("\n" if k else "") + f"{name}  (model: {info['model']})  {info.get('title', '')}".rstrip())
        cells = [(r["parameter"], str(r["value"]), str(r["unit"]), r["source"]) for r in rows]
        widths = [max(len(c[i]) for c in cells + [("parameter", "value", "unit", "source")]) for i in range(3)]
        for c in [("parameter", "value", "unit", "source")] + cells:
            print(f"  {c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]}")
    return 0


def _cmd_spice(args) -> int:
    """ngspice deck of the first mapped array of the configured experiment (sweep point ``--point``)."""
    import torch

    from circuits import crossbar_netlist

    from .config import check_torch_device, load_config
    from .experiment import build_network, prepare
    from .sweep import expand_sweep

    points = expand_sweep(load_config(args.config))
    if not 0 <= args.point < len(points):
        raise ValueError(f"--point: got {args.point}; the config has {len(points)} sweep point(s)")
    cfg = points[args.point][1]
    data, model = prepare(cfg)
    gen = torch.Generator(device=check_torch_device(cfg.runtime.torch_device)).manual_seed(cfg.seed)
    net = build_network(cfg, model, gen)  # programs every array (device noise, faults)
    mm = net.mapped[0]
    g = mm.crossbar.g[(0,) * len(mm.crossbar.stack)]
    if args.input == "ones":
        v = torch.full((mm.spec.rows,), mm.v_read, dtype=torch.float64)
    else:  # the first calibration sample, as the first mapped layer's DAC drives it
        net.calibrate(data.x_train[: cfg.eval.n_calibration])
        x = data.x_train[:1].to(gen.device, net.dtype)
        for layer in net.layers:
            if layer.kind == "mapped":
                break
            x = layer.forward(x)
        drive = mm.drive(layer._rows(x)[:1])  # the matrix's public DAC stage (layer._rows: im2col for convs)
        v = drive.v[(0,) * (drive.v.dim() - 1)]  # first input tile, first read: [rows]
    iv = mm.device if mm.device.nonlinear_iv else None
    xb = mm.crossbar
    deck = crossbar_netlist(
        g, v, xb.r_wire_row, xb.r_wire_col, xb.r_source, xb.r_sense, xb.r_access, iv=iv,
        title=f"xbarsim {cfg.name} point {args.point}: {mm.name} array (0, 0), input {args.input}",
    )
    if args.out is None:
        sys.stdout.write(deck)
    else:
        args.out.write_text(deck)
        print(f"wrote {args.out}: {xb.rows}x{xb.cols} array of {mm.name}; run `ngspice -b {args.out}`", file=sys.stderr)
    return 0


def _cmd_keys(args) -> int:
    """Every YAML key of the generated schema: default, what is allowed, unit, description."""
    from algorithms.registry import ALGORITHMS
    from circuits import ADC, DAC, CrossbarSpec

    from .config import DatasetParams, EvalParams, ModelParams, RuntimeParams
    from .schema import describe_fields

    sections = {
        "crossbar": [(CrossbarSpec, None), (DAC, "crossbar"), (ADC, "crossbar")],
        "crossbar.dac": [(DAC, None)],
        "crossbar.adc": [(ADC, None)],
        "mapping": [(CrossbarSpec, "mapping")],
        "model": [(ModelParams, None)],
        "dataset": [(DatasetParams, None)],
        "eval": [(EvalParams, None)],
        "runtime": [(RuntimeParams, None)],
        **{f"algorithm (name: {n})": [(cls.Params, None)] for n, cls in sorted(ALGORITHMS.items())},
    }
    wanted = args.sections or list(sections)
    unknown = [w for w in wanted if not any(k == w or k.startswith(w + " ") or k.startswith(w + ".") for k in sections)]
    if unknown:
        raise ValueError(f"keys: got section {unknown[0]!r}; allowed: {', '.join(sections)}")
    first = True
    for name, parts in sections.items():
        if not any(name == w or name.startswith(w + " ") or name.startswith(w + ".") for w in wanted):
            continue
        print(("" if first else "\n") + f"{name}:")
        first = False
        for cls, sec in parts:
            for r in describe_fields(cls, sec):
                default = "null" if r["default"] is None else repr(r["default"])
                print(f"  {r['key']}: {default}    # {r['expected']}. {r['description']}".rstrip())
    return 0


def _executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--workers", type=int, default=1, help="local worker processes for sweep points (default 1)")
    p.add_argument("--scheduler", default=None, help="dask.distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true",
                   help="append points whose config or inputs differ from rows already in --out (see README: resuming)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xbarsim", description="Co-simulate analog in-memory-computing crossbars.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a config (its sweep, if any) and print the results table")
    r.add_argument("config", nargs="?", type=Path, default=None, help="YAML config (default: the built-in quickstart)")
    r.add_argument("-o", "--out", type=Path, default=None, help="write the table to FILE.csv or FILE.parquet")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--breakdown", type=Path, default=None, metavar="FILE",
        help="write the energy/latency breakdown (layer × component, per inference) to FILE.csv or FILE.parquet",
    )
    _executor_args(r)
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("sweep", help="run a config's sweep, writing each point to --out as it finishes (resumable)")
    s.add_argument("config", type=Path)
    s.add_argument("-o", "--out", type=Path, required=True, help="FILE.csv or FILE.parquet")
    s.add_argument("-q", "--quiet", action="store_true")
    _executor_args(s)
    s.set_defaults(func=_cmd_run)

    pl = sub.add_parser("plot", help="plot a results table (accuracy and energy against a swept key)")
    pl.add_argument("table", type=Path, help="FILE.csv or FILE.parquet written by run/sweep")
    pl.add_argument("-x", default=None, help="column for the x axis (default: the first swept column)")
    pl.add_argument("-m", "--metric", action="append", default=None, help="metric column (repeatable)")
    pl.add_argument("-o", "--out", type=Path, default=None, help="image file (default: TABLE.png)")
    pl.set_defaults(func=_cmd_plot)

    sp = sub.add_parser("spice", help="write an ngspice deck of the first mapped array of a config (exact-solver check)")
    sp.add_argument("config", nargs="?", type=Path, default=None, help="YAML config (default: the built-in quickstart)")
    sp.add_argument("-o", "--out", type=Path, default=None, help="deck file (default: stdout)")
    sp.add_argument("--point", type=int, default=0, help="sweep point index (default 0)")
    sp.add_argument(
        "--input", choices=("ones", "calibration"), default="ones",
        help="row voltages: v_read on every row (default) or the first calibration sample through the DAC",
    )
    sp.set_defaults(func=_cmd_spice)

    k = sub.add_parser("keys", help="list the YAML keys (crossbar, mapping, algorithm, ...) with defaults, bounds and units")
    k.add_argument("sections", nargs="*", help="sections to list, e.g. crossbar.adc or algorithm (default: all)")
    k.set_defaults(func=_cmd_keys)

    d = sub.add_parser("devices", help="list the device presets with parameters, units and sources")
    d.add_argument("names", nargs="*", help="preset names (default: all)")
    d.set_defaults(func=_cmd_devices)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    """Failures a user can cause (bad config, files, devices, missing extras): one line, exit 2."""
    return (ValueError, OSError, ImportError, TimeoutError, EOFError)


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"xbarsim: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """The ``xbarsim`` command. A user error ends in one line ``xbarsim: error: …`` and exit code 2 (``--debug``:
    the traceback); Ctrl-C ends with exit code 130 and says how to resume."""
    import warnings

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if getattr(args, "metric", "absent") is None:
        args.metric = ["accuracy_hw", "energy_per_inference_J"]
    if not args.debug:
        warnings.showwarning = _warn_line
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        msg = str(exc).strip() or "interrupted"
        print(f"xbarsim: {msg}", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        if args.debug:
            raise
        msg = "; ".join(line for line in str(exc).splitlines() if line.strip()) if str(exc) else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in msg:
            msg = f"{exc.filename}: {msg}"
        print(f"xbarsim: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
