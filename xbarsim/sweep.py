"""Sweeps over dotted config keys, written point by point and resumable (DESIGN §7).

Points run in-process (default), in a local process pool (``workers=N``) or on a
dask.distributed cluster (``scheduler="tcp://host:8786"``); every executor goes
through the same ``concurrent.futures`` path, and the parent process appends each
finished point to the output file as soon as it arrives.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from concurrent.futures import Executor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .config import Config, load_config, set_dotted, validate_config
from .experiment import run_point
from .results import append_rows, read_table

__all__ = ["expand_sweep", "point_id", "run", "sweep"]


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


def point_id(cfg: Config) -> str:
    """A stable hash of everything that defines a point (used to resume)."""
    data = cfg.model_dump()
    data.pop("sweep", None)
    data.pop("sweep_mode", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _worker_init() -> None:  # pragma: no cover - runs in worker processes
    import torch

    torch.set_num_threads(1)


def _run_point_data(data: dict, breakdown: bool = False) -> list[dict]:  # pragma: no cover - runs in worker processes
    return run_point(validate_config(data, check_sweep=False), breakdown=breakdown)


def _executor(workers: int, scheduler: str | None) -> Executor | None:
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise ImportError("scheduler= needs dask.distributed: pip install 'xbarsim[dist]'") from exc
        return Client(scheduler).get_executor()
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)
    return None


def sweep(
    config: str | Path | dict | Config | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
    breakdown: str | Path | None = None,
) -> pd.DataFrame:
    """Run every point of the config's sweep; one row per point × evaluation time × compensation.

    With ``out`` (``.csv`` or ``.parquet``), each finished point is appended at once; points
    already in ``out`` (matched by :func:`point_id`) are skipped, so an interrupted sweep
    resumes. Rows come back in point order whatever the executor. With ``breakdown``
    (``.csv``/``.parquet``), each point's energy/latency breakdown (layer × component, per
    inference) is appended there too, one block per point and evaluation keyed by
    ``point_id``, ``t_s`` and ``drift_compensation``.
    """
    if workers < 1:
        raise ValueError(f"workers: got {workers!r}; must be ≥ 1")
    cfg = load_config(config) if not isinstance(config, Config) else config
    points = expand_sweep(cfg)
    done: set[str] = set()
    if out is not None and Path(out).exists():
        old = read_table(out)
        if "point_id" in old.columns:
            done = set(old["point_id"].astype(str))
    todo = [(k, swept, pcfg, point_id(pcfg)) for k, (swept, pcfg) in enumerate(points)]
    todo = [t for t in todo if t[3] not in done]
    results: dict[int, list[dict]] = {}

    def finish(k: int, swept: dict, pid: str, rows: list[dict]) -> None:
        tidy, blocks = [], []
        for row in rows:
            for rec in row.pop("_breakdown", None) or []:
                keys = {"point_id": pid, "seed": row.get("seed"), "t_s": row.get("t_s"), "drift_compensation": row.get("drift_compensation")}
                blocks.append({**{key: _cell(v) for key, v in swept.items()}, **keys, **rec})
            for key, v in reversed(list(swept.items())):
                row = {key: _cell(v), **row}
            row["point_id"] = pid
            tidy.append(row)
        results[k] = tidy
        if out is not None:
            append_rows(out, tidy)
        if breakdown is not None and blocks:
            append_rows(breakdown, blocks)

    bar = tqdm(total=len(todo), desc=cfg.name, disable=not progress or len(todo) < 2, leave=False)
    pool = _executor(workers, scheduler) if len(todo) > 1 else None
    try:
        if pool is None:
            for k, swept, pcfg, pid in todo:
                finish(k, swept, pid, run_point(pcfg, breakdown=True) if breakdown is not None else run_point(pcfg))
                bar.update()
        else:
            futures = {pool.submit(_run_point_data, pcfg.model_dump(), breakdown is not None): (k, swept, pid) for k, swept, pcfg, pid in todo}
            for fut in as_completed(futures):
                k, swept, pid = futures[fut]
                finish(k, swept, pid, fut.result())
                bar.update()
    finally:
        bar.close()
        if pool is not None:
            try:
                pool.shutdown(cancel_futures=True)
            except TypeError:  # dask's executor has no cancel_futures
                pool.shutdown()
    if out is not None:
        table = read_table(out)
        order = {point_id(p): k for k, (_, p) in enumerate(points)}
        key = table["point_id"].astype(str).map(order).fillna(len(points))
        return table.iloc[key.argsort(kind="stable")].reset_index(drop=True)
    return pd.DataFrame([row for k in sorted(results) for row in results[k]])


def run(config: str | Path | dict | Config | None = None, **kwargs) -> pd.DataFrame:
    """Run a config (its sweep if it has one) and return the results table; keywords as :func:`sweep`."""
    return sweep(config, **kwargs)
