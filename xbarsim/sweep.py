"""Grid sweeps over dotted config keys, written point by point and resumable (DESIGN §7)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from .config import Config, load_config, set_dotted, validate_config
from .experiment import run_point
from .results import append_rows, read_table

__all__ = ["expand_sweep", "point_id", "run", "sweep"]


def expand_sweep(cfg: Config) -> list[tuple[dict[str, Any], Config]]:
    """All grid points: ``[(swept values, validated config)]`` in a stable order."""
    if not cfg.sweep:
        return [({}, cfg)]
    keys = list(cfg.sweep)
    base = cfg.model_dump()
    base["sweep"] = {}
    points = []
    for values in itertools.product(*(cfg.sweep[k] for k in keys)):
        data = copy.deepcopy(base)
        for k, v in zip(keys, values):
            set_dotted(data, k, v)
        points.append((dict(zip(keys, values)), validate_config(data, check_sweep=False)))
    return points


def point_id(cfg: Config) -> str:
    """A stable hash of everything that defines a point (used to resume)."""
    data = cfg.model_dump()
    data.pop("sweep", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def sweep(config: str | Path | dict | Config | None = None, out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Run every point of the config's sweep; one row per point × evaluation time × compensation.

    With ``out`` (``.csv`` or ``.parquet``), each finished point is appended at once; points
    already in ``out`` (matched by :func:`point_id`) are skipped, so an interrupted sweep resumes.
    """
    cfg = load_config(config) if not isinstance(config, Config) else config
    points = expand_sweep(cfg)
    done: set[str] = set()
    if out is not None and Path(out).exists():
        old = read_table(out)
        if "point_id" in old.columns:
            done = set(old["point_id"].astype(str))
    frames = []
    for swept, pcfg in tqdm(points, desc=cfg.name, disable=not progress or len(points) < 2, leave=False):
        pid = point_id(pcfg)
        if pid in done:
            continue
        rows = run_point(pcfg)
        for row in rows:
            for k, v in reversed(list(swept.items())):
                row = {k: _cell(v), **row}
            row["point_id"] = pid
            frames.append(row)
            if out is not None:
                append_rows(out, [row])
    if out is not None:
        return read_table(out)
    return pd.DataFrame(frames)


def run(config: str | Path | dict | Config | None = None, out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Run a config (its sweep if it has one) and return the results table."""
    return sweep(config, out=out, progress=progress)
