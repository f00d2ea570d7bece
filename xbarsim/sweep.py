"""Sweeps over dotted config keys, written point by point, resumable and traceable (docs/results.md).

Points run in-process (default), in a local process pool (``workers=N``) or on a
dask.distributed cluster (``scheduler="tcp://host:8786"``); every executor goes
through the same ``concurrent.futures`` path, and the parent process appends each
finished point to the output file as soon as it arrives.

Every row carries its provenance: ``point_id`` (hash of the resolved point config), ``config``
(that config as JSON), ``inputs`` / ``inputs_sha`` (SHA-256 of every file the config reads — model
weights, dataset directory, device look-up CSV — and of an in-memory ``model=``) and
``xbarsim_version``. A resume skips a point only when both hashes match; it refuses to add rows
that no visible column would tell apart from rows already in the file (the same swept values
under another fixed config or other inputs) unless ``force=True``, which adds the keys that differ
as columns. See :func:`sweep`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import pickle
import signal
import threading
from concurrent.futures import Executor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .config import Config, load_config, set_dotted, validate_config
from .experiment import run_point
from .results import TableLock, append_rows, check_format, read_table

__all__ = ["ResultsConflictError", "SweepInterrupted", "expand_sweep", "input_digests", "point_id", "run", "sweep"]

#: provenance columns every row gets from the sweep (after the algorithm's own columns)
PROVENANCE = ("point_id", "inputs_sha", "inputs", "xbarsim_version", "config")


class ResultsConflictError(ValueError):
    """A resume would mix rows of different experiments that no visible column tells apart."""


class SweepInterrupted(KeyboardInterrupt):
    """SIGINT during a sweep: finished points are in the file, nothing partial; the message says how to resume."""


def expand_sweep(cfg: Config) -> list[tuple[dict[str, Any], Config]]:
    """All points ``[(swept values, validated config)]`` in a stable order (grid or zip)."""
    if not cfg.sweep:
        return [({}, cfg)]
    keys = list(cfg.sweep)
    base = cfg.model_dump()
    base["sweep"] = {}
    combos = zip(*(cfg.sweep[k] for k in keys)) if cfg.sweep_mode == "zip" else itertools.product(*(cfg.sweep[k] for k in keys))
    points = []
    for values in combos:
        data = copy.deepcopy(base)
        for k, v in zip(keys, values):
            set_dotted(data, k, v)
        points.append((dict(zip(keys, values)), validate_config(data, check_sweep=False)))
    return points


def _resolved(cfg: Config) -> dict:
    data = cfg.model_dump()
    data.pop("sweep", None)
    data.pop("sweep_mode", None)
    return data


def _config_json(data: dict) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def point_id(cfg: Config) -> str:
    """A stable hash (16 hex digits) of the resolved point config: everything that defines a point."""
    return hashlib.sha1(_config_json(_resolved(cfg)).encode()).hexdigest()[:16]


# -- inputs: files the config reads, and an in-memory model ------------------------------------

_DIGESTS: dict[tuple, str] = {}


def _file_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _path_sha(path: Path) -> str:
    if path.is_file():
        return _file_sha(path)
    h = hashlib.sha256()  # a directory: names and contents of its (non-hidden) files
    for f in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.name}\0{_file_sha(f)}\n".encode())
    return h.hexdigest()


def _module_sha(model) -> str:
    """SHA-256 of an nn.Module's structure (repr) and every state-dict tensor (name, dtype, shape, bytes)."""
    import torch

    h = hashlib.sha256(repr(model).encode())
    for name, t in model.state_dict().items():
        if isinstance(t, torch.Tensor):
            t = t.detach().to("cpu").contiguous()
            h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: value}`` of every leaf of a nested dict (lists are leaves)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for k, v in data.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def input_digests(cfg: Config, model=None) -> dict[str, str]:
    """``{what: sha256}`` of the inputs a point reads besides its config: every existing file or
    directory a config value names (``model.weights``, ``dataset.path``, ``device.csv``, …), the
    MNIST directory found through ``$XBARSIM_DATA`` when ``dataset.path`` is unset, and an
    in-memory ``model`` (key ``model=``)."""
    out: dict[str, str] = {}
    data = _resolved(cfg)
    for key, value in _leaves(data).items():
        if isinstance(value, str) and os.sep in value:
            p = Path(value).expanduser()
            if p.exists():
                out[key] = _path_sha(p)
    ds = data.get("dataset") or {}
    if ds.get("name") not in (None, "digits") and not ds.get("path") and os.environ.get("XBARSIM_DATA"):
        root = Path(os.environ["XBARSIM_DATA"]).expanduser()
        for p in (root / str(ds["name"]), root):
            if p.is_dir():
                out["dataset.path ($XBARSIM_DATA)"] = _path_sha(p)
                break
    if model is not None:
        out["model="] = _module_sha(model)
    return out


def _inputs_sha(digests: dict[str, str]) -> str:
    return hashlib.sha1(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("xbarsim")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


# -- resuming ------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _ident_value(data: dict, key: str) -> Any:
    """The value a row shows in column ``key`` for the config ``data`` (``device``: its label)."""
    if key == "device":
        dev = data.get("device") or {}
        return str(dev.get("label") or dev.get("preset") or dev.get("model", "ideal"))
    cur: Any = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return _cell(cur)


def _fmt_value(v: Any) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= 60 else s[:57] + "..."


def _differences(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    a, b = _leaves(old), _leaves(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if _cell(a.get(k)) != _cell(b.get(k))}


class _Existing:
    """What a results file already holds: finished (point_id, inputs_sha) keys and their configs."""

    def __init__(self, table: pd.DataFrame):
        self.table = table
        self.columns = list(table.columns)
        self.legacy = not table.empty and not {"point_id", "inputs_sha", "config"} <= set(table.columns)
        self.points: dict[tuple[str, str], tuple[dict, dict]] = {}
        if table.empty or self.legacy:
            return
        first = table.drop_duplicates(["point_id", "inputs_sha"])
        for pid, isha, cfg, inputs in zip(first["point_id"], first["inputs_sha"], first["config"], first.get("inputs", [None] * len(first))):
            self.points[(str(pid), str(isha))] = (json.loads(cfg), json.loads(inputs) if isinstance(inputs, str) else {})


def _read_existing(path: Path) -> _Existing:
    return _Existing(read_table(path) if path.exists() else pd.DataFrame())


def _check_resume(existing: _Existing, out: Path, planned: list[dict], force: bool, swept_keys: list[str]) -> dict[str, list[str]]:
    """Refuse (ResultsConflictError) new points that collide with rows of another config or other
    inputs; with ``force``, return ``{point key: [differing dotted keys]}`` to add as columns."""
    if existing.legacy:
        if force:
            return {}
        raise ResultsConflictError(
            f"--out: {str(out)!r} has no provenance columns (point_id, inputs_sha, config): it was written by an older "
            "xbarsim, so a resume cannot check that its rows come from this config and model. Write to a new --out, "
            "or pass --force to append to it anyway"
        )
    if not existing.points:
        return {}
    ident_cols = list(dict.fromkeys([c for c in existing.columns if "." in c or c in ("name", "seed", "device")] + swept_keys))
    by_ident: dict[tuple, list[tuple[tuple[str, str], dict, dict]]] = {}
    for key, (cfg, inputs) in existing.points.items():
        by_ident.setdefault(tuple(_ident_value(cfg, c) for c in ident_cols), []).append((key, cfg, inputs))
    extra: dict[str, list[str]] = {}
    for p in planned:
        if (p["pid"], p["isha"]) in existing.points:
            continue
        for _key, cfg, inputs in by_ident.get(tuple(_ident_value(p["config"], c) for c in ident_cols), []):
            diff = _differences(cfg, p["config"])
            changed_inputs = _differences(inputs, p["inputs"])
            if force:
                extra[p["pid"]] = sorted(set(extra.get(p["pid"], [])) | set(diff))
                continue
            what = [f"{k}: {_fmt_value(a)} in the file, {_fmt_value(b)} now" for k, (a, b) in diff.items()]
            what += [f"{k} contents changed (sha256 {str(a)[:12]} in the file, {str(b)[:12]} now)" for k, (a, b) in changed_inputs.items()]
            shown = "; ".join(what[:4]) + (f"; and {len(what) - 4} more" if len(what) > 4 else "")
            swept = ", ".join(f"{k}={_fmt_value(v)}" for k, v in p["swept"].items()) or "the only point"
            raise ResultsConflictError(
                f"--out: {str(out)!r} already holds the point {swept} computed from a different experiment ({shown}); "
                "no column of the table would tell the new rows apart from the old ones. Write to a new --out, or pass "
                "--force to append them anyway (the differing config keys become columns)"
            )
    return extra


# -- executors and interrupts --------------------------------------------------------------------


def _watch_parent(parent: int) -> None:  # pragma: no cover - runs in worker processes
    import time

    while True:
        if os.getppid() != parent:
            os._exit(1)  # the parent died (even by SIGKILL): do not outlive it
        time.sleep(0.5)


def _worker_init(parent: int | None = None) -> None:  # pragma: no cover - runs in worker processes
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="xbarsim-parent-watch").start()


def _run_point_data(data: dict, breakdown: bool = False, model=None) -> list[dict]:  # pragma: no cover - in workers
    cfg = validate_config(data, check_sweep=False)
    kwargs = {"breakdown": True} if breakdown else {}
    if model is not None:
        kwargs["model"] = model
    return run_point(cfg, **kwargs)


def _executor(workers: int, scheduler: str | None):
    """``(executor, closer)``; ``(None, None)`` for in-process runs."""
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise ValueError("--scheduler: needs dask.distributed: pip install 'xbarsim[dist]'") from exc
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(f"--scheduler: cannot reach the dask scheduler {scheduler!r} ({exc}); start one there "
                             "(`dask scheduler`) or run without --scheduler") from None
        return client.get_executor(), client.close
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),))
        return pool, None
    return None, None


def _stop(pool: Executor, closer, interrupted: bool) -> None:
    procs = list((getattr(pool, "_processes", None) or {}).values()) if interrupted else []
    try:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    except TypeError:  # dask's executor has no cancel_futures
        pool.shutdown(wait=not interrupted)
    for p in procs:  # points in flight are lost, never half-written
        p.terminate()
    for p in procs:
        p.join(5)
    if closer is not None:
        closer()


@contextmanager
def _atomic_wrt_sigint():
    """Defer SIGINT while a point is written (main thread only), so a file never holds half a point."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    except ValueError:  # pragma: no cover - signals unavailable
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got and callable(old):
            old(signal.SIGINT, None)


# -- the sweep -----------------------------------------------------------------------------------


def sweep(
    config: str | Path | dict | Config | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    breakdown: str | Path | None = None,
    model=None,
    force: bool = False,
) -> pd.DataFrame:
    """Run every point of the config's sweep; one row per point × evaluation time × compensation.

    ``out`` (``.csv`` or ``.parquet``): each finished point is appended at once (O(1) per point:
    CSV lines, or one parquet part file in the ``FILE.parquet`` directory), under an exclusive lock
    (a second run on the same file is refused). Points already in ``out`` with the same
    ``point_id`` and ``inputs_sha`` are skipped, so an interrupted sweep resumes. A new point whose
    visible columns (name, seed, device label, dotted-key columns, the swept keys) equal those of
    rows already in the file but whose config or inputs differ is refused with
    :class:`ResultsConflictError` naming what changed; ``force=True`` appends it anyway and adds the
    differing config keys as columns (:func:`xbarsim.results.read_table` fills them in for the old
    rows from their ``config``).

    ``breakdown`` (``.csv``/``.parquet``): each point's energy/latency breakdown (layer ×
    component, per inference), keyed by ``point_id``, ``inputs_sha``, ``seed``, ``t_s`` and
    ``drift_compensation``. On a resume, points already in ``out`` but missing from the breakdown
    are run again (runs are deterministic under their seed) so that it covers every point.

    ``model``: an in-memory ``torch.nn.Module`` used instead of the config's model section (passed
    to :func:`xbarsim.experiment.run_point`); with ``workers > 1`` or a scheduler it must be
    picklable. Its weights are hashed into ``inputs_sha``.

    SIGINT (Ctrl-C) stops the sweep between writes: the file holds only whole points, worker
    processes are stopped, the lock is released, and :class:`SweepInterrupted` (a
    ``KeyboardInterrupt``) says how to resume. Worker processes also exit when the parent dies.
    Rows come back in point order whatever the executor.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers (-j): got {workers!r}; must be an integer ≥ 1")
    out = check_format(out, "--out") if out is not None else None
    breakdown = check_format(breakdown, "--breakdown") if breakdown is not None else None
    if out is not None and breakdown is not None and out.resolve() == breakdown.resolve():
        raise ValueError(f"--breakdown: {str(breakdown)!r} is the --out file; give it another name")
    cfg = load_config(config) if not isinstance(config, Config) else config
    points = expand_sweep(cfg)
    if model is not None and (workers > 1 or scheduler) and len(points) > 1:
        try:
            pickle.dumps(model)
        except Exception as exc:
            raise ValueError(
                f"model=: the in-memory module cannot be pickled for worker processes ({type(exc).__name__}: {exc}); "
                "run with workers=1, or save its state dict and name it in the config's model section"
            ) from None

    locks = []
    created: list[Path] = []
    try:
        for path, what in ((out, "--out"), (breakdown, "--breakdown")):
            if path is not None:
                if not path.exists():
                    created.append(path)
                locks.append(TableLock(path, what).acquire())
        return _sweep_locked(cfg, points, out, progress, workers, scheduler, breakdown, model, force)
    finally:
        for lock in locks:
            lock.release()
        for path in created:  # nothing written (an error or Ctrl-C before the first point): leave no file
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file() and path.stat().st_size == 0:
                path.unlink()


def _sweep_locked(cfg, points, out, progress, workers, scheduler, breakdown, model, force) -> pd.DataFrame:
    version = _version()
    planned = []
    for k, (swept, pcfg) in enumerate(points):
        inputs = input_digests(pcfg, model)
        resolved = _resolved(pcfg)
        planned.append(dict(k=k, swept=swept, cfg=pcfg, pid=point_id(pcfg), inputs=inputs, isha=_inputs_sha(inputs),
                            config=json.loads(_config_json(resolved)), config_json=_config_json(resolved)))
    existing = _read_existing(out) if out is not None else _Existing(pd.DataFrame())
    extra = _check_resume(existing, out, planned, force, list(cfg.sweep)) if out is not None else {}
    done = set(existing.points)
    have_bd: set[tuple[str, str]] = set()
    if breakdown is not None and breakdown.exists():
        bd = read_table(breakdown)
        if not bd.empty and {"point_id", "inputs_sha"} <= set(bd.columns):
            have_bd = set(zip(bd["point_id"].astype(str), bd["inputs_sha"].astype(str)))
    todo = []
    for p in planned:
        key = (p["pid"], p["isha"])
        p["rows_needed"] = key not in done
        p["bd_needed"] = breakdown is not None and key not in have_bd
        if p["rows_needed"] or p["bd_needed"]:
            todo.append(p)
    results: dict[int, list[dict]] = {}
    written = {"points": len([p for p in planned if (p["pid"], p["isha"]) in done])}

    def finish(p: dict, rows: list[dict]) -> None:
        tidy, blocks = [], []
        swept = p["swept"]
        for row in rows:
            recs = row.pop("_breakdown", None) or []
            keys = {"point_id": p["pid"], "inputs_sha": p["isha"], "seed": row.get("seed"), "t_s": row.get("t_s"),
                    "drift_compensation": row.get("drift_compensation")}
            for rec in recs:
                blocks.append({**{key: _cell(v) for key, v in swept.items()}, **keys, **rec})
            head = {key: _cell(v) for key, v in swept.items()}
            head.update({key: _ident_value(p["config"], key) for key in extra.get(p["pid"], []) if key not in swept})
            row = {**head, **row}  # swept keys first; the row's own values win (``device``: the label)
            row.update(point_id=p["pid"], inputs_sha=p["isha"], inputs=json.dumps(p["inputs"], sort_keys=True),
                       xbarsim_version=version, config=p["config_json"])
            tidy.append(row)
        results[p["k"]] = tidy
        with _atomic_wrt_sigint():  # rows first, then the breakdown: a kill in between is covered on resume
            if out is not None and p["rows_needed"]:
                append_rows(out, tidy)
                written["points"] += 1
            if p["bd_needed"] and blocks:
                append_rows(breakdown, blocks)

    bar = tqdm(total=len(todo), desc=cfg.name, disable=not progress or len(todo) < 2, leave=False)
    pool, closer = _executor(workers, scheduler) if len(todo) > 1 else (None, None)
    interrupted = False
    try:
        if pool is None:
            for p in todo:
                kwargs = {"breakdown": True} if p["bd_needed"] else {}
                if model is not None:
                    kwargs["model"] = model
                finish(p, run_point(p["cfg"], **kwargs))
                bar.update()
        else:
            futures = {pool.submit(_run_point_data, p["cfg"].model_dump(), p["bd_needed"], model): p for p in todo}
            for fut in as_completed(futures):
                finish(futures[fut], fut.result())
                bar.update()
    except KeyboardInterrupt:
        interrupted = True
        where = (f"{written['points']} of {len(planned)} points are in {str(out)!r}; run the same command again to resume"
                 if out is not None else "no --out file: nothing was kept")
        raise SweepInterrupted(f"interrupted: {where}") from None
    finally:
        bar.close()
        if pool is not None:
            _stop(pool, closer, interrupted)
    if out is not None:
        table = read_table(out)
        order = {pid: k for k, pid in reversed(list(enumerate(p["pid"] for p in planned)))}
        key = table["point_id"].astype(str).map(order).fillna(len(points)) if "point_id" in table else pd.Series(0, index=table.index)
        return table.iloc[key.argsort(kind="stable")].reset_index(drop=True)
    return pd.DataFrame([row for k in sorted(results) for row in results[k]])


def run(config: str | Path | dict | Config | None = None, **kwargs) -> pd.DataFrame:
    """Run a config (its sweep if it has one) and return the results table; keywords as :func:`sweep`
    (``out``, ``progress``, ``workers``, ``scheduler``, ``breakdown``, ``model``, ``force``)."""
    return sweep(config, **kwargs)
