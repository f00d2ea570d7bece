"""Up-front memory and time estimates: refuse sizes that cannot fit before allocating anything.

Estimates (rough upper bounds, documented so a refusal can be checked by hand):

* **Cells.** A mapped layer ``[out, in]`` occupies ``⌈in/rows⌉ × ⌈out/m⌉`` physical ``rows × cols``
  arrays, ``m = ⌊(cols − n_ref)/(K·p)⌋`` outputs per array (:mod:`circuits.mapping`). Each cell holds
  the programmed and read conductances, targets and per-cell device variation: we count
  :data:`CELL_TENSORS` tensors of the run's dtype per cell.
* **Exact solve** (``crossbar.solver: exact``): the nested-dissection transfer matrix of an
  ``n × n`` array costs 13.1 s at n = 1024 on 2 cores (``benchmarks/solver_results.md``) and
  grows as ``n³``: ``t ≈ 13.1 s · (rows·cols/1024²)^1.5`` per array; its Dirichlet-to-Neumann maps
  need about :data:`SOLVE_BYTES_PER_CELL` bytes per cell (float64 maps on the ~4n ports of every
  block, summed over a level, times a factor 2 for the merge workspace).
* **Software model** (built-in ``mlp``/``cnn``): 4 bytes per parameter × 4 while training with Adam
  (weights, gradients, two moments).

The limit is ``runtime.memory_limit_GB`` (default: 80 % of the memory available now); estimates
above a quarter of it, or exact solves estimated above a minute, warn.
"""

from __future__ import annotations

import math
import os
import warnings

__all__ = [
    "CELL_TENSORS",
    "SOLVE_BYTES_PER_CELL",
    "ResourceError",
    "ResourceWarning_",
    "available_memory_bytes",
    "arrays_for_layer",
    "check_budget",
    "fmt_bytes",
    "fmt_seconds",
]

#: float tensors per cell counted by the estimate (g, read snapshot, target, up to 4 per-cell variations, spare)
CELL_TENSORS = 8
#: bytes per cell of the exact solver's workspace (see module docstring)
SOLVE_BYTES_PER_CELL = 256
#: measured transfer-matrix time of a 1024×1024 array [s] (benchmarks/solver_results.md, 2 cores)
SOLVE_T_1024_S = 13.1


class ResourceError(ValueError):
    """An experiment that cannot fit in memory; the message gives the numbers and the key to change."""


class ResourceWarning_(UserWarning):  # noqa: N801 - ResourceWarning is a builtin with another meaning
    """An experiment that is expensive (memory or time) but possible."""


def available_memory_bytes() -> int:
    """Memory available now (``MemAvailable`` of /proc/meminfo, else the physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * 2**30


def fmt_bytes(n: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    if s >= 86400:
        return f"{s / 86400:.3g} days"
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    if s >= 60:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def arrays_for_layer(out_features: int, in_features: int, spec) -> int:
    """Physical arrays that a ``[out, in]`` weight matrix occupies under ``spec`` (a CrossbarSpec)."""
    c = spec.coding
    per_array = max((spec.cols - c.n_ref) // c.cols_per_output, 1)
    return math.ceil(in_features / spec.rows) * math.ceil(out_features / per_array)


def solve_seconds(rows: int, cols: int) -> float:
    """Estimated exact-solve (transfer matrix) time of one ``rows × cols`` array [s]."""
    return SOLVE_T_1024_S * (rows * cols / 1024**2) ** 1.5


def check_budget(
    items: list[tuple[str, float, str]],
    limit_bytes: float | None = None,
    solve_s: float = 0.0,
    solve_key: str = "crossbar.rows / crossbar.cols",
) -> None:
    """Refuse (``ResourceError``) when the estimated bytes exceed the limit; warn when large.

    ``items`` are ``(what, bytes, key to change)``; the message names the largest one's key.
    """
    total = sum(b for _, b, _ in items)
    limit = float(limit_bytes) if limit_bytes is not None else 0.8 * available_memory_bytes()
    if items and total > limit:
        what, b, key = max(items, key=lambda it: it[1])
        detail = "; ".join(f"{w}: {fmt_bytes(x)}" for w, x, _ in items if x > 0.01 * total)
        raise ResourceError(
            f"{key}: this experiment needs about {fmt_bytes(total)} of memory ({detail}), more than the "
            f"{fmt_bytes(limit)} limit; reduce {key} (largest: {what}) or raise runtime.memory_limit_GB"
        )
    if items and total > 0.25 * limit:
        warnings.warn(f"this experiment needs about {fmt_bytes(total)} of memory ({fmt_bytes(limit)} limit)", ResourceWarning_,
                      stacklevel=3)
    if solve_s > 60:
        warnings.warn(
            f"the exact crossbar solves are estimated at {fmt_seconds(solve_s)} (13.1 s per 1024×1024 array, growing as n³); "
            f"reduce {solve_key} or use crossbar.solver: ideal for a quick look",
            ResourceWarning_,
            stacklevel=3,
        )
