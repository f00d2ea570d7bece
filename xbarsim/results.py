"""Results tables on disk: CSV or parquet, appended point by point in O(1), locked while written.

Formats (chosen by the file name):

* ``FILE.csv``: one CSV file. Appending writes only the new lines (one ``write`` per point). The
  header is the union of the columns seen so far: rows with fewer columns get empty cells; when a
  point brings a column the header lacks, the file is rewritten once (temporary file, then an
  atomic rename) with the wider header.
* ``FILE.parquet``: a *directory* of part files ``part-NNNNN.parquet``, one per appended point,
  each written to a hidden temporary name and renamed into place. :func:`read_table` concatenates
  the parts with a union of their columns (``pandas.read_parquet(FILE.parquet)`` reads the
  directory too when every part has the same columns). A single parquet *file* written by an older
  version is converted to a directory on the first append.

Writers take an exclusive lock (:class:`TableLock`: ``fcntl.flock`` on a hidden ``.FILE.lock`` next
to the table) so two runs can never interleave rows in one file; the second one is refused with
:class:`ResultsLockedError`. A line cut short by a killed writer (no final newline) is dropped
when the table is next opened for writing, and stale temporary part files are removed.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import pandas as pd

__all__ = ["ResultsLockedError", "TableLock", "append_rows", "check_format", "read_table", "write_table"]

_FORMATS = (".csv", ".parquet")
#: hash and JSON columns, always read as strings (a hash of 16 decimal digits is not a number)
_STR_COLUMNS = ("point_id", "inputs_sha", "model_sha", "data_sha", "config", "inputs", "xbarsim_version")


class ResultsLockedError(ValueError):
    """Another process holds the lock on a results file."""


def _fmt(path: Path, what: str = "--out") -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(f"{what}: got {str(path)!r}; the file name must end in .csv or .parquet")
    return suffix


def check_format(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` as a Path when its extension is a table format (``.csv``/``.parquet``), else ValueError."""
    path = Path(path)
    _fmt(path, what)
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ValueError(f"{what}: {str(path)!r} needs pyarrow for parquet: pip install 'xbarsim[parquet]', or use .csv") from exc
    return path


# -- reading ---------------------------------------------------------------------------------


def _parts(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("part-*.parquet") if p.is_file())


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """The whole table at ``path`` (CSV file, parquet directory of parts, or legacy parquet file).

    Columns named by a dotted config key (``device.g_max``) that are empty in some rows are filled
    from those rows' ``config`` (the resolved point config each row carries), so rows appended
    with ``force`` under another config show their values of every key that distinguishes them.
    """
    path = Path(path)
    if _fmt(path) == ".csv":
        if path.exists() and path.stat().st_size == 0:
            return pd.DataFrame()
        df = pd.read_csv(path, dtype={c: str for c in _STR_COLUMNS}, keep_default_na=True)
    elif path.is_dir():
        parts = _parts(path)
        if not parts:
            return pd.DataFrame()
        frames = [pd.read_parquet(p) for p in parts]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    else:
        df = pd.read_parquet(path)
    return _fill_from_config(df)


def _dotted(data: dict, key: str):
    cur = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return json.dumps(cur, sort_keys=True) if isinstance(cur, (dict, list)) else cur


def _fill_from_config(df: pd.DataFrame) -> pd.DataFrame:
    if "config" not in df.columns or df.empty:
        return df
    keys = [c for c in df.columns if "." in c and df[c].isna().any()]
    if not keys:
        return df
    df = df.copy()
    for key in keys:
        missing = df[key].isna() & df["config"].notna()
        if missing.any():
            values = [_dotted(json.loads(cfg), key) for cfg in df.loc[missing, "config"]]
            col = df[key].astype(object)
            col[missing] = values
            numeric = col.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) or v is None).all()
            df[key] = pd.to_numeric(col) if numeric else col
    return df


# -- writing ---------------------------------------------------------------------------------


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``df`` as the whole table at ``path``, atomically (temporary file, then rename).

    ``.parquet`` gives a directory with one part file, the layout :func:`append_rows` extends.
    """
    path = Path(path)
    fmt = _fmt(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".csv":
        _atomic_csv(df, path)
        return
    if path.is_file():
        path.unlink()
    path.mkdir(exist_ok=True)
    for old in _parts(path):
        old.unlink()
    _write_part(df, path, 0)


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_part(df: pd.DataFrame, directory: Path, index: int) -> Path:
    final = directory / f"part-{index:05d}.parquet"
    tmp = directory / f".part-{index:05d}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            df.to_parquet(tmp, index=False)
        except ImportError as exc:
            raise ImportError("parquet output needs pyarrow: pip install 'xbarsim[parquet]'") from exc
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def _csv_header(path: Path) -> list[str] | None:
    """Column names of an existing CSV file (None if the file is missing or empty)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as fh:
        first = fh.readline()
    return list(pd.read_csv(io.StringIO(first)).columns) if first.strip() else None


def append_rows(path: str | os.PathLike, rows: list[dict]) -> None:
    """Add ``rows`` to the table at ``path`` (created if missing); columns are unioned.

    CSV: the new lines are appended (O(rows)); a wider header rewrites the file once. Parquet: one
    new part file. Callers that may run concurrently hold a :class:`TableLock` on ``path``.
    """
    path = Path(path)
    if not rows:
        return
    fmt = _fmt(path)
    new = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == ".parquet":
        if path.is_file():  # legacy single-file table: becomes part 0 of a directory
            _to_directory(path)
        path.mkdir(exist_ok=True)
        parts = _parts(path)
        index = int(parts[-1].stem.split("-")[1]) + 1 if parts else 0
        _write_part(new, path, index)
        return
    header = _csv_header(path)
    if header is None:
        _atomic_csv(new, path)
        return
    extra = [c for c in new.columns if c not in header]
    if extra:  # a wider header: rewrite once with the union of the columns
        _atomic_csv(pd.concat([pd.read_csv(path), new], ignore_index=True), path)
        return
    text = new.reindex(columns=header).to_csv(index=False, header=False)
    with open(path, "a", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _to_directory(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.legacy")
    os.replace(path, tmp)
    path.mkdir()
    os.replace(tmp, path / "part-00000.parquet")


def _repair(path: Path) -> None:
    """Drop what a killed writer can leave: a last CSV line without its newline, temporary files."""
    if path.suffix.lower() == ".csv" and path.is_file() and path.stat().st_size:
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.seek(0)
                data = fh.read()
                cut = data.rfind(b"\n") + 1
                fh.truncate(cut)
    if path.suffix.lower() == ".parquet" and path.is_dir():
        for tmp in path.glob(".part-*.tmp"):
            tmp.unlink()
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink()


class TableLock:
    """Exclusive, non-blocking lock on a results table for the duration of a run.

    ``fcntl.flock`` on ``.NAME.lock`` in the table's directory (removed on release; a stale one
    left by a killed process is not locked and is simply reused). Acquiring a lock another process
    holds raises :class:`ResultsLockedError` naming the file. On acquiring, damage a killed writer
    left (a cut CSV line, temporary files) is repaired. Where ``fcntl`` is missing (Windows) the
    lock is a no-op.
    """

    def __init__(self, path: str | os.PathLike, what: str = "--out"):
        self.path = Path(path)
        self.what = what
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fh = None

    def acquire(self) -> TableLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fh = open(self.lock_path, "a+")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                owner = fh.read().strip()
                fh.close()
                raise ResultsLockedError(
                    f"{self.what}: {str(self.path)!r} is being written by another xbarsim run"
                    f"{f' (pid {owner})' if owner else ''}; wait for it to finish, or write to another file"
                ) from None
            try:  # the lock file may have been removed (and recreated) by the previous holder meanwhile
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                fh.seek(0)
                fh.truncate()
                fh.write(str(os.getpid()))
                fh.flush()
                self._fh = fh
                _repair(self.path)
                return self
            fh.close()
        raise ResultsLockedError(f"{self.what}: could not lock {str(self.path)!r}")  # pragma: no cover

    def release(self) -> None:
        if self._fh is None:
            return
        try:
            self.lock_path.unlink()
        except FileNotFoundError:  # pragma: no cover
            pass
        self._fh.close()  # closing releases the flock
        self._fh = None

    def __enter__(self) -> TableLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
