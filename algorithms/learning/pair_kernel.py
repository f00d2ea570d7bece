"""Compiled presentation update of the pair STDP rule (:class:`~algorithms.learning.rules.PairSTDP`), one thread.

For the spike trains of one presentation, per replica (nearest-spike traces, "set to 1", updated with the
step's spikes first; BindsNET ``PostPre``, Hazan et al., Front. Neuroinform. 12:89, 2018)::

    Δw_ij = −ν_pre·Σ_t s_pre,i(t)·x_post,j(t) + ν_post·Σ_t x_pre,i(t)·s_post,j(t)
    x(t) = e^(−(t − t_last)·dt/τ)  (t_last: the last spike ≤ t),  x0·e^(−(t + 1)·dt/τ) before the first spike

walking the steps once: a pre spike depresses its row by the post traces, a post spike potentiates its column
by the pre traces — work proportional to the spikes, not to ``T × n_in × n_out``. The traces are evaluated
as the torch code does (``exp`` of the elapsed steps times ``log d``, float32); the sums run in float32 in
time order (the torch code sums the same terms in another order: equal to float rounding); every trace value
comes from one table of ``e^(k·log d)``, ``k = 0 … T`` (:func:`_decay_table`), built per call.

The stochastic rule's (:mod:`algorithms.learning.stochastic`) compiled pieces live here too, as each shares the
trace walk: the traces or switching probabilities at the post events (:func:`traces_at_events`), the post
events and final traces of a presentation (:func:`spike_events`, :func:`trace_final_events`), the Bernoulli
switching pass with counter-based draws (:func:`bernoulli_switch`) and the weight / column-sum refresh of the
written columns (:func:`refresh_columns`).
"""

from __future__ import annotations

import math

import numpy as np

try:  # optional: pip install xbarsim[fast]
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

__all__ = ["AVAILABLE", "pair_presentation", "traces_at_events", "spike_events", "trace_final_events",
           "bernoulli_switch", "refresh_columns"]

AVAILABLE = njit is not None


def _decay_table(log_d, t_steps):
    """``e^(k·log d)`` for ``k = 0 … t_steps`` (float32): every value :func:`_trace` takes, computed once."""
    table = np.empty(t_steps + 1, np.float32)
    for k in range(t_steps + 1):
        table[k] = np.exp(np.float32(k) * log_d)
    return table


def _trace(last, x0, t, table):
    """Nearest-spike trace at step ``t`` (after its spikes): ``e^((t − last)·log d)`` after a spike at ``last``,
    ``x0·e^((t + 1)·log d)`` without one (``last`` < 0); ``table``: :func:`_decay_table`."""
    if last >= 0:
        return table[t - last]
    return x0 * table[t + 1]


def _kernel(pre, post, x_pre0, x_post0, log_pre, log_post, nu_pre, nu_post, dw, x_pre_end, x_post_end, touched):
    n_rep, t_steps, n_in = pre.shape
    n_out = post.shape[2]
    tab_pre = _decay_table(log_pre, t_steps)
    tab_post = _decay_table(log_post, t_steps)
    live = np.empty(n_out, np.int64)  # the post neurons whose trace can be nonzero (spiked, or x0 ≠ 0)
    spk = np.empty(n_out, np.int64)  # this step's post spikes
    for r in range(n_rep):
        last_pre = np.full(n_in, -1, np.int64)
        last_post = np.full(n_out, -1, np.int64)
        xp = np.zeros(n_out, np.float32)
        n_live = 0
        for j in range(n_out):
            if x_post0[r, j] != 0:
                live[n_live] = j
                n_live += 1
        for t in range(t_steps):
            n_spk = 0
            for j in range(n_out):
                if post[r, t, j] > 0:
                    if last_post[j] < 0 and x_post0[r, j] == 0:
                        live[n_live] = j
                        n_live += 1
                    last_post[j] = t
                    spk[n_spk] = j
                    n_spk += 1
            # post traces at t (after this step's post spikes); the others are 0
            any_live = False
            for q in range(n_live):
                j = live[q]
                xp[j] = _trace(last_post[j], x_post0[r, j], t, tab_post)
                if xp[j] != 0:
                    any_live = True
            for i in range(n_in):
                if pre[r, t, i] > 0:
                    last_pre[i] = t
                    if any_live and nu_pre != 0:
                        for q in range(n_live):
                            j = live[q]
                            if xp[j] != 0:
                                dw[r, i, j] -= nu_pre * xp[j]
            if n_spk > 0 and nu_post != 0:
                for i in range(n_in):
                    xi = _trace(last_pre[i], x_pre0[r, i], t, tab_pre)
                    if xi != 0:
                        for q in range(n_spk):
                            dw[r, i, spk[q]] += nu_post * xi
        for i in range(n_in):
            x_pre_end[r, i] = _trace(last_pre[i], x_pre0[r, i], t_steps - 1, tab_pre)
        for j in range(n_out):
            x_post_end[r, j] = _trace(last_post[j], x_post0[r, j], t_steps - 1, tab_post)
        for q in range(n_live):
            touched[r, live[q]] = True


if AVAILABLE:  # the helpers first: the kernels call the compiled ones
    _decay_table = njit(cache=True, nogil=True)(_decay_table)
    _trace = njit(cache=True, nogil=True)(_trace)
_compiled = njit(cache=True, nogil=True)(_kernel) if AVAILABLE else None


def pair_presentation(pre: np.ndarray, post: np.ndarray, x_pre0: np.ndarray, x_post0: np.ndarray, d_pre: float,
                      d_post: float, nu_pre: float, nu_post: float):
    """Δw ``[R, A, N]``, the final traces and the columns Δw can touch ``[R, N]`` (bool: the post neurons with a
    nonzero trace at some step — every other column of ``Δw`` is 0) for ``pre`` ``[R, T, A]``, ``post`` ``[R, T, N]``
    (replica-major, 0/1) and the traces before the presentation ``x_pre0`` ``[R, A]``, ``x_post0`` ``[R, N]``
    (module docstring)."""
    f = np.float32
    r, a, n = pre.shape[0], pre.shape[2], post.shape[2]
    dw = np.zeros((r, a, n), dtype=f)
    x_pre_end = np.empty((r, a), dtype=f)
    x_post_end = np.empty((r, n), dtype=f)
    touched = np.zeros((r, n), dtype=np.bool_)
    lp = f(math.log(d_pre)) if d_pre > 0 else f(-np.inf)
    lq = f(math.log(d_post)) if d_post > 0 else f(-np.inf)
    _compiled(np.ascontiguousarray(pre, dtype=f), np.ascontiguousarray(post, dtype=f), np.ascontiguousarray(x_pre0, dtype=f),
              np.ascontiguousarray(x_post0, dtype=f), lp, lq, f(nu_pre), f(nu_post), dw, x_pre_end, x_post_end, touched)
    return dw, x_pre_end, x_post_end, touched


def _probability(x, rule, g_pot, g_dep, x_win, p_min):
    """What the event walk stores for a trace ``x``: the trace itself (``rule`` 0), or the signed switching
    probability of stochastic STDP (:meth:`~algorithms.learning.stochastic.StochasticSTDP.post_probabilities`,
    float32): 1 ``anti_hebbian`` (``γ_pot·x`` for ``x ≥ x_window``, else ``−γ_dep·(1 − x)``), 2 potentiation
    only; ``|p| < p_min`` → 0."""
    if rule == 0:
        return x
    if rule == 1 and x < x_win:
        p = g_dep * (np.float32(1.0) - x)
    else:
        p = g_pot * x
    if abs(p) < p_min:
        return np.float32(0.0)
    return p


def _events_kernel(pre, x0, pos, log_d, ev_t, ev_r, rule, g_pot, g_dep, x_win, p_min, out, x_end):
    n_rep, t_steps, n_a = pre.shape
    n_in = pos.shape[0]
    n_ev = ev_t.shape[0]
    table = _decay_table(log_d, t_steps)
    for r in range(n_rep):
        last = np.full(n_a, -1, np.int64)
        k = 0
        for t in range(t_steps):
            for a in range(n_a):
                if pre[r, t, a]:
                    last[a] = t
            while k < n_ev and ev_t[k] <= t:
                if ev_t[k] == t and ev_r[k] == r:
                    for i in range(n_in):
                        a = pos[i]
                        x = _trace(last[a] if a >= 0 else -1, x0[r, i], t, table)
                        out[k, i] = _probability(x, rule, g_pot, g_dep, x_win, p_min)
                k += 1
        for i in range(n_in):
            a = pos[i]
            x_end[r, i] = _trace(last[a] if a >= 0 else -1, x0[r, i], t_steps - 1, table)


if AVAILABLE:
    _probability = njit(cache=True, nogil=True)(_probability)
_events_compiled = njit(cache=True, nogil=True)(_events_kernel) if AVAILABLE else None

#: ``rule`` codes of :func:`traces_at_events`
EVENT_RULES = {"trace": 0, "anti_hebbian": 1, "none": 2}


def traces_at_events(pre: np.ndarray, x0: np.ndarray, decay: float, ev_t: np.ndarray, ev_r: np.ndarray,
                     rows: np.ndarray | None = None, rule: str = "trace", gamma_pot: float = 0.0,
                     gamma_dep: float = 0.0, x_window: float = 0.0, p_min: float = 0.0):
    """Nearest-spike traces (after the step's spikes) at the events ``(ev_t, ev_r)`` (sorted by time) ``[K, N]``
    and the traces after the presentation ``[R, N]``, for the spikes ``pre`` ``[R, T, A]`` (replica-major, 0/1)
    of the inputs ``rows`` (``[A]`` of the ``N`` inputs; None: all, ``A = N``; the others never spike) and the
    traces before the presentation ``x0`` ``[R, N]`` — :func:`~algorithms.learning.rules.pre_trace_at_events` and
    :func:`~algorithms.learning.rules.trace_final` in one walk. With ``rule`` ``"anti_hebbian"`` or ``"none"`` the
    events hold stochastic STDP's signed switching probabilities of those traces instead (:func:`_probability`)."""
    f = np.float32
    n_in = x0.shape[1]
    pos = np.arange(n_in, dtype=np.int64)
    if rows is not None:
        pos = np.full(n_in, -1, np.int64)
        pos[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows), dtype=np.int64)
    out = np.empty((ev_t.shape[0], n_in), dtype=f)
    x_end = np.empty((pre.shape[0], n_in), dtype=f)
    ld = f(math.log(decay)) if decay > 0 else f(-np.inf)
    _events_compiled(np.ascontiguousarray(pre), np.ascontiguousarray(x0, dtype=f), pos, ld,
                     np.ascontiguousarray(ev_t, dtype=np.int64), np.ascontiguousarray(ev_r, dtype=np.int64),
                     EVENT_RULES[rule], f(gamma_pot), f(-gamma_dep), f(x_window), f(max(p_min, 1e-300)), out, x_end)
    return out, x_end


def _splitmix_uniform(seed, n):
    """:func:`algorithms.learning.counter_rng.uniform` for one index (uint64 arithmetic)."""
    z = seed + (n + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * 1.1102230246251565e-16


def _switch_kernel(cols, p, seed, offset, scale, p_max, bits, read_before_write):
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
                # the draw only where it can matter (it is a pure function of its index)
                if bits[c, i] != target and _splitmix_uniform(seed, np.uint64(offset + k * n_in + i)) < pm:
                    bits[c, i] = target
                    n_sw += 1
    return n_att, n_sw


if AVAILABLE:
    _splitmix_uniform = njit(cache=True, nogil=True)(_splitmix_uniform)
_switch_compiled = njit(cache=True, nogil=True)(_switch_kernel) if AVAILABLE else None


def bernoulli_switch(cols: np.ndarray, p: np.ndarray, seed: int, offset: int, scale: float, p_max: float,
                     bits: np.ndarray, read_before_write: bool) -> tuple[int, int]:
    """Bernoulli write attempts in order: event ``k`` on column ``cols[k]`` (a row of ``bits`` ``[R·out, in]``, bool,
    updated in place) with signed probabilities ``p[k]``, element scale ``scale``, capped at ``p_max``; the cell
    takes the sign's state where ``u < |p[k, i]|·scale``, ``u`` the counter-based draw
    (:mod:`algorithms.learning.counter_rng`) of index ``offset + k·in + i`` of the stream ``seed``. Returns
    (attempts, switches) — the attempts a read-before-write driver skips (cell already in the target state) not
    counted."""
    n_att, n_sw = _switch_compiled(np.ascontiguousarray(cols, dtype=np.int64), np.ascontiguousarray(p),
                                   np.uint64(seed), int(offset), float(scale), float(p_max), bits,
                                   bool(read_before_write))
    return int(n_att), int(n_sw)


def _refresh_kernel(cols, bits, w, colsum, w_min, w_span, k, w_in):
    n_out = w_in.shape[2]
    for c in cols:
        total = np.float32(0.0)
        for i in range(w.shape[1]):
            on = 0
            for m in range(len(bits)):
                on += bits[m][c, i]
            w[c, i] = w_min + w_span * (np.float32(on) / np.float32(k))
            total += w[c, i]
        colsum[c] = total
        if w_in.shape[0] > 0:
            for i in range(w.shape[1]):
                w_in[c // n_out, i, c % n_out] = w[c, i]


_refresh_compiled = njit(cache=True, nogil=True)(_refresh_kernel) if AVAILABLE else None


def refresh_columns(cols: np.ndarray, bits: tuple, w: np.ndarray, colsum: np.ndarray, w_min: float, w_max: float,
                    w_in: np.ndarray | None = None) -> None:
    """Weights of binary synapses with ``k = len(bits)`` elements, ``w = w_min + (w_max − w_min)·(1/k)·Σ_m b_m``, and
    their column sums, recomputed in place for the columns ``cols`` (rows of ``w`` ``[R·out, in]`` float32 and of each
    ``bits[m]``; ``colsum`` ``[R·out]``; ``w_in``, the same weights as ``[R, in, out]``, too when given): what a
    whole-array recomputation gives on those columns (the sum in another order: equal where the weights are
    dyadic, as for ``w ∈ {0, 1}``)."""
    if w_in is None:
        w_in = np.empty((0, 0, 1), dtype=w.dtype)
    _refresh_compiled(np.ascontiguousarray(cols, dtype=np.int64), bits, w, colsum, np.float32(w_min),
                      np.float32(w_max - w_min), len(bits), w_in)


def _events_of_kernel(post, ev):
    n_rep, t_steps, n = post.shape
    k = 0
    for t in range(t_steps):
        for r in range(n_rep):
            for j in range(n):
                if post[r, t, j]:
                    ev[k, 0] = t
                    ev[k, 1] = r
                    ev[k, 2] = j
                    k += 1


_events_of_compiled = njit(cache=True, nogil=True)(_events_of_kernel) if AVAILABLE else None


def spike_events(post: np.ndarray) -> np.ndarray:
    """The spikes of ``post`` ``[R, T, N]`` (replica-major, nonzero = spike) as ``(t, r, j)`` rows ``[K, 3]`` in
    ``(t, r, j)`` order — ``torch.nonzero`` of the ``[T, R, N]`` layout, by one pass."""
    post = np.ascontiguousarray(post)
    ev = np.empty((np.count_nonzero(post), 3), np.int64)
    _events_of_compiled(post, ev)
    return ev


def _final_kernel(ev_t, ev_r, ev_j, x0, log_d, t_steps, d_total, out):
    n_rep, n = x0.shape
    last = np.full((n_rep, n), -1, np.int64)
    for k in range(ev_t.shape[0]):
        if ev_t[k] > last[ev_r[k], ev_j[k]]:
            last[ev_r[k], ev_j[k]] = ev_t[k]
    for r in range(n_rep):
        for j in range(n):
            if last[r, j] >= 0:
                out[r, j] = np.float32(np.exp(np.float64(t_steps - 1 - last[r, j]) * log_d))
            else:
                out[r, j] = x0[r, j] * d_total


_final_compiled = njit(cache=True, nogil=True)(_final_kernel) if AVAILABLE else None


def trace_final_events(ev: np.ndarray, x0: np.ndarray, decay: float, t_steps: int) -> np.ndarray:
    """:func:`~algorithms.learning.rules.trace_final_events` compiled: the nearest-spike traces ``[R, n]`` after a
    presentation of ``t_steps`` steps with the spikes ``ev`` ``(t, r, j)`` ``[K, 3]`` (``x0``: before it)."""
    out = np.empty_like(x0)
    _final_compiled(ev[:, 0], ev[:, 1], ev[:, 2], x0, math.log(decay) if decay > 0 else -np.inf, int(t_steps),
                    x0.dtype.type(decay**t_steps), out)
    return out

