"""Compiled presentation update of the pair STDP rule (:class:`~algorithms.learning.rules.PairSTDP`), one thread.

For the spike trains of one presentation, per replica (nearest-spike traces, "set to 1", updated with the
step's spikes first; BindsNET ``PostPre``, Hazan et al., Front. Neuroinform. 12:89, 2018)::

    Δw_ij = −ν_pre·Σ_t s_pre,i(t)·x_post,j(t) + ν_post·Σ_t x_pre,i(t)·s_post,j(t)
    x(t) = e^(−(t − t_last)·dt/τ)  (t_last: the last spike ≤ t),  x0·e^(−(t + 1)·dt/τ) before the first spike

walking the steps once: a pre spike depresses its row by the post traces, a post spike potentiates its column
by the pre traces — work proportional to the spikes, not to ``T × n_in × n_out``. The traces are evaluated
as the torch code does (``exp`` of the elapsed steps times ``log d``, float32); the sums run in float32 in
time order (the torch code sums the same terms in another order: equal to float rounding).
"""

from __future__ import annotations

import math

import numpy as np

try:  # optional: pip install xbarsim[fast]
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["AVAILABLE", "pair_presentation"]

AVAILABLE = njit is not None


def _trace(last, x0, t, log_d):
    """Nearest-spike trace at step ``t`` (after its spikes): ``e^((t − last)·log d)`` after a spike at ``last``,
    ``x0·e^((t + 1)·log d)`` without one (``last`` < 0)."""
    if last >= 0:
        return np.exp(np.float32(t - last) * log_d)
    return x0 * np.exp(np.float32(t + 1) * log_d)


def _kernel(pre, post, x_pre0, x_post0, log_pre, log_post, nu_pre, nu_post, dw, x_pre_end, x_post_end):
    n_rep, t_steps, n_in = pre.shape
    n_out = post.shape[2]
    for r in range(n_rep):
        last_pre = np.full(n_in, -1, np.int64)
        last_post = np.full(n_out, -1, np.int64)
        xp = np.zeros(n_out, np.float32)
        for t in range(t_steps):
            any_post = False
            for j in range(n_out):
                if post[r, t, j] > 0:
                    last_post[j] = t
                    any_post = True
            # post traces at t (after this step's post spikes)
            live = False
            for j in range(n_out):
                xp[j] = _trace(last_post[j], x_post0[r, j], t, log_post)
                if xp[j] != 0:
                    live = True
            for i in range(n_in):
                if pre[r, t, i] > 0:
                    last_pre[i] = t
                    if live and nu_pre != 0:
                        for j in range(n_out):
                            if xp[j] != 0:
                                dw[r, i, j] -= nu_pre * xp[j]
            if any_post and nu_post != 0:
                for i in range(n_in):
                    xi = _trace(last_pre[i], x_pre0[r, i], t, log_pre)
                    if xi != 0:
                        for j in range(n_out):
                            if post[r, t, j] > 0:
                                dw[r, i, j] += nu_post * xi
        for i in range(n_in):
            x_pre_end[r, i] = _trace(last_pre[i], x_pre0[r, i], t_steps - 1, log_pre)
        for j in range(n_out):
            x_post_end[r, j] = _trace(last_post[j], x_post0[r, j], t_steps - 1, log_post)


if AVAILABLE:  # the helper first: the kernels call the compiled one
    _trace = njit(cache=True, nogil=True)(_trace)
_compiled = njit(cache=True, nogil=True)(_kernel) if AVAILABLE else None


def pair_presentation(pre: np.ndarray, post: np.ndarray, x_pre0: np.ndarray, x_post0: np.ndarray, d_pre: float,
                      d_post: float, nu_pre: float, nu_post: float):
    """Δw ``[R, A, N]`` and the final traces for ``pre`` ``[R, T, A]``, ``post`` ``[R, T, N]`` (replica-major, 0/1) and
    the traces before the presentation ``x_pre0`` ``[R, A]``, ``x_post0`` ``[R, N]`` (module docstring)."""
    f = np.float32
    r, a, n = pre.shape[0], pre.shape[2], post.shape[2]
    dw = np.zeros((r, a, n), dtype=f)
    x_pre_end = np.empty((r, a), dtype=f)
    x_post_end = np.empty((r, n), dtype=f)
    lp = f(math.log(d_pre)) if d_pre > 0 else f(-np.inf)
    lq = f(math.log(d_post)) if d_post > 0 else f(-np.inf)
    _compiled(np.ascontiguousarray(pre, dtype=f), np.ascontiguousarray(post, dtype=f), np.ascontiguousarray(x_pre0, dtype=f),
              np.ascontiguousarray(x_post0, dtype=f), lp, lq, f(nu_pre), f(nu_post), dw, x_pre_end, x_post_end)
    return dw, x_pre_end, x_post_end


def _events_kernel(pre, x0, log_d, ev_t, ev_r, out, x_end):
    n_rep, t_steps, n_in = pre.shape
    n_ev = ev_t.shape[0]
    for r in range(n_rep):
        last = np.full(n_in, -1, np.int64)
        k = 0
        for t in range(t_steps):
            for i in range(n_in):
                if pre[r, t, i] > 0:
                    last[i] = t
            while k < n_ev and ev_t[k] <= t:
                if ev_t[k] == t and ev_r[k] == r:
                    for i in range(n_in):
                        out[k, i] = _trace(last[i], x0[r, i], t, log_d)
                k += 1
        for i in range(n_in):
            x_end[r, i] = _trace(last[i], x0[r, i], t_steps - 1, log_d)


_events_compiled = njit(cache=True, nogil=True)(_events_kernel) if AVAILABLE else None


def traces_at_events(pre: np.ndarray, x0: np.ndarray, decay: float, ev_t: np.ndarray, ev_r: np.ndarray):
    """Nearest-spike traces (after the step's spikes) of the inputs ``pre`` ``[R, T, A]`` (replica-major, 0/1) at
    the events ``(ev_t, ev_r)`` (sorted by time) ``[K, A]``, and the traces after the presentation ``[R, A]``
    (``x0``: before it) — :func:`~algorithms.learning.rules.pre_trace_at_events` and
    :func:`~algorithms.learning.rules.trace_final` in one walk."""
    f = np.float32
    out = np.empty((ev_t.shape[0], pre.shape[2]), dtype=f)
    x_end = np.empty((pre.shape[0], pre.shape[2]), dtype=f)
    ld = f(math.log(decay)) if decay > 0 else f(-np.inf)
    _events_compiled(np.ascontiguousarray(pre, dtype=f), np.ascontiguousarray(x0, dtype=f), ld,
                     np.ascontiguousarray(ev_t, dtype=np.int64), np.ascontiguousarray(ev_r, dtype=np.int64), out, x_end)
    return out, x_end


def _switch_kernel(cols, p, u, scale, p_max, bits, read_before_write):
    n_ev, n_in = p.shape
    n_att = 0
    n_sw = 0
    for k in range(n_ev):
        c = cols[k]
        for i in range(n_in):
            pm = abs(np.float64(p[k, i])) * scale
            if pm > p_max:
                pm = p_max
            if pm > 0:
                target = p[k, i] > 0
                if read_before_write and bits[c, i] == target:
                    continue
                n_att += 1
                if u[k, i] < pm and bits[c, i] != target:
                    bits[c, i] = target
                    n_sw += 1
    return n_att, n_sw


_switch_compiled = njit(cache=True, nogil=True)(_switch_kernel) if AVAILABLE else None


def bernoulli_switch(cols: np.ndarray, p: np.ndarray, u: np.ndarray, scale: float, p_max: float, bits: np.ndarray,
                     read_before_write: bool) -> tuple[int, int]:
    """Bernoulli write attempts in order: event ``k`` on column ``cols[k]`` (a row of ``bits`` ``[R·out, in]``, bool,
    updated in place) with signed probabilities ``p[k]``, element scale ``scale``, capped at ``p_max``; the cell
    takes the sign's state where ``u[k] < |p[k]|·scale``. Returns (attempts, switches) — the attempts a
    read-before-write driver skips (cell already in the target state) not counted."""
    n_att, n_sw = _switch_compiled(np.ascontiguousarray(cols, dtype=np.int64), np.ascontiguousarray(p),
                                   np.ascontiguousarray(u, dtype=np.float64), float(scale), float(p_max), bits,
                                   bool(read_before_write))
    return int(n_att), int(n_sw)
