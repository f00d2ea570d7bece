"""Results tables on disk: CSV or parquet, appended point by point, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["append_rows", "read_table", "write_table"]

_FORMATS = (".csv", ".parquet")


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"--out: got {str(path)!r}; the file name must end in .csv or .parquet")
    return suffix


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if _fmt(path) == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` atomically (temporary file, then rename)."""
    path = Path(path)
    fmt = _fmt(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if fmt == ".csv":
        df.to_csv(tmp, index=False)
    else:
        try:
            df.to_parquet(tmp, index=False)
        except ImportError as exc:
            raise ImportError("parquet output needs pyarrow: pip install 'xbarsim[parquet]'") from exc
    os.replace(tmp, path)


def append_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Add ``rows`` to the table at ``path`` (created if missing); columns are unioned."""
    path = Path(path)
    new = pd.DataFrame(rows)
    if path.exists():
        new = pd.concat([read_table(path), new], ignore_index=True)
    write_table(new, path)
