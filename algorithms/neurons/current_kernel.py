"""Compiled presentation loop of the current-based Diehl & Cook network (``mode: fast``), one thread.

:func:`run_current` simulates a whole presentation of the excitatory layer
(:class:`~algorithms.neurons.diehl_cook.DiehlCookCurrentLIF`) and its one-to-one inhibitory layer
(:class:`~algorithms.neurons.diehl_cook.DiehlCookInhibitoryLIF`, current-based) for ``R`` replicas and ``B``
samples, every (replica, sample) on its own clock, in a numba-compiled loop (``pip install xbarsim[fast]``).
It runs the operations of the torch step loop (:meth:`DiehlCookCurrentLIF.step`,
:meth:`DiehlCookInhibitoryLIF.step_after`) in float32 with the same constants, one neuron at a time:

    u = x_t (+ inhibition arriving)           (x_t: input voltage jumps + the leak's rest term)
    u = v_rest·(1 − e^(−dt/τ)) where refractory;  v ← e^(−dt/τ)·v + u;  refrac ← refrac − 1
    s = v ≥ v_thresh + θ;  refrac[s] ← t_ref;  v[s] ← v_reset;  θ[s] ← θ[s] + θ+ (learning)
    one_spike: of the m neurons with s, the ⌊u·m⌋-th (u ~ U[0, 1) pre-drawn per step) emits the spike

and the inhibitory layer, brought up to date only when excitatory spikes reach it (``n`` quiet steps and
the step with input in one update, ``v ← e^(−(n+1)dt/τ_i)·v + x + v_rest,i·(1 − e^(−(n+1)dt/τ_i))``).
``synchronous``: BindsNET's order — the excitatory spikes of step t reach the inhibitory layer at t + 1
and its spikes the excitatory layer at t + 2; otherwise the inhibitory layer steps in the same step and
inhibits at t + 1. Results equal the torch loop's up to float rounding (torch may fuse a multiply-add);
replicas are independent, so a replica gives bit for bit what a one-replica network gives.
"""

from __future__ import annotations

import numpy as np

try:  # optional: pip install xbarsim[fast]
    from numba import njit
except ImportError:  # pragma: no cover - exercised where numba is absent
    njit = None

__all__ = ["AVAILABLE", "run_current"]

AVAILABLE = njit is not None


def _inhibitory_step(vi, ri, spikes, flags, gap, dn, cr, w_ei, v_thresh_i, v_reset_i, refrac_i):
    """One inhibitory-layer update of one (replica, sample) after ``gap − 1`` quiet steps, with the excitatory
    ``spikes`` as input (``DiehlCookInhibitoryLIF.step_after``); its spikes go to ``flags`` (may be ``spikes``:
    each entry is read before it is written). Returns the number of inhibitory spikes."""
    n_si = 0
    for j in range(vi.shape[0]):
        xj = spikes[j] * w_ei if ri[j] <= gap - 1 else np.float32(0.0)
        vv = xj + dn * vi[j]
        vv = vv + cr
        ri[j] -= gap
        if vv >= v_thresh_i:
            ri[j] = refrac_i
            vv = v_reset_i
            flags[j] = 1.0
            n_si += 1
        else:
            flags[j] = 0.0
        vi[j] = vv
    return n_si


def _inhibition(flags, n_si, w_ie, inhib):
    """All-but-self inhibition of the excitatory layer from the inhibitory spikes ``flags`` (``n_si`` of them)."""
    for j in range(flags.shape[0]):
        inhib[j] = (n_si - flags[j]) * w_ie


def _kernel(drive, pick, v, refrac, theta, thr, vi, ri, post, decay, rest, v_reset, refrac_steps, theta_plus,
            learning, one_spike, w_ei, w_ie, v_thresh_i, v_reset_i, refrac_i, dpow, crest, v_rest_i, sync):
    n_rep, t_steps, n_b, n = drive.shape
    for r in range(n_rep):
        for b in range(n_b):
            inhib = np.zeros(n, np.float32)  # inhibition arriving at the next step
            cross = np.zeros(n, np.int64)  # the neurons that crossed threshold in this step
            has_inhib = False
            prev = np.zeros(n, np.float32)  # synchronous: the excitatory spikes of the previous step
            has_prev = False
            t_inh = -1
            for t in range(t_steps):
                # -- inhibitory layer (synchronous: with the excitatory spikes of t − 1) ---------------
                n_si = 0
                if sync and has_prev:
                    gap = t - t_inh
                    n_si = _inhibitory_step(vi[r, b], ri[r, b], prev, prev, gap, dpow[gap], crest[gap], w_ei,
                                            v_thresh_i, v_reset_i, refrac_i)  # prev: now the inhibitory spikes
                    t_inh = t
                    has_prev = False
                # -- excitatory layer --------------------------------------------------------------------
                n_s = 0
                for j in range(n):
                    u = drive[r, t, b, j]
                    if has_inhib:
                        u = u + inhib[j]
                    if refrac[r, b, j] > 0:
                        u = rest
                    vv = u + decay * v[r, b, j]
                    refrac[r, b, j] -= 1.0
                    if vv >= thr[r, 0, j]:
                        refrac[r, b, j] = refrac_steps
                        vv = v_reset
                        if learning:
                            theta[r, 0, j] += theta_plus
                            thr[r, 0, j] += theta_plus
                        cross[n_s] = j
                        n_s += 1
                        post[r, t, b, j] = 1.0
                    v[r, b, j] = vv
                if n_s > 1 and one_spike:  # the ⌊u·m⌋-th of the m crossings (u·m in float64)
                    k = int(np.floor(np.float64(pick[r, t, b]) * n_s))
                    if k > n_s - 1:
                        k = n_s - 1
                    for i in range(n_s):
                        post[r, t, b, cross[i]] = 0.0
                    post[r, t, b, cross[k]] = 1.0
                if n_s and not sync:  # the inhibitory layer steps now with these spikes, inhibition at t + 1
                    gap = t - t_inh
                    n_si = _inhibitory_step(vi[r, b], ri[r, b], post[r, t, b], prev, gap, dpow[gap], crest[gap],
                                            w_ei, v_thresh_i, v_reset_i, refrac_i)
                    t_inh = t
                has_inhib = n_si > 0  # the inhibitory spikes of step t (in prev) inhibit the others at t + 1
                if has_inhib:
                    _inhibition(prev, n_si, w_ie, inhib)
                if n_s and sync:
                    for j in range(n):
                        prev[j] = post[r, t, b, j]
                    has_prev = True
            # the inhibitory layer catches up to the end of the presentation
            nq = t_steps - 1 - t_inh
            if nq > 0:
                dn = dpow[nq]
                for j in range(n):
                    vi[r, b, j] = (vi[r, b, j] - v_rest_i) * dn + v_rest_i
                    ri[r, b, j] -= nq


if AVAILABLE:  # the helpers first: the kernel calls the compiled ones
    _inhibitory_step = njit(cache=True, nogil=True)(_inhibitory_step)
    _inhibition = njit(cache=True, nogil=True)(_inhibition)
_compiled = njit(cache=True, nogil=True)(_kernel) if AVAILABLE else None


def run_current(exc, inh, drive, pick, st, ist, w_ei: float, w_ie: float, learning: bool, synchronous: bool):
    """One presentation (module docstring), **replica-major**: ``drive`` ``[R, T, B, N]`` (voltage input of each
    step including the leak's rest term, float32 CPU, contiguous), ``pick`` ``[R, T, B]`` (``U[0, 1)`` for the
    one-spike choice), states ``st``/``ist`` advanced in place (float32 CPU). Returns the excitatory spikes
    ``[R, T, B, N]`` (numpy). ``w_ei``/``w_ie``: the exc→inh jump and the inhibition per inhibitory spike [V]
    (``w_ie`` < 0)."""
    t_steps = drive.shape[1]
    f = np.float32
    dpow = np.array([inh.decay**k for k in range(t_steps + 2)], dtype=np.float64)
    crest = (inh.v_rest * (1.0 - dpow)).astype(f)
    post = np.zeros(drive.shape, dtype=f)
    st.thr = st.thr.contiguous()
    _compiled(drive, pick, st.v.numpy(), st.refrac.numpy(), st.theta.numpy(), st.thr.numpy(), ist.v.numpy(),
              ist.refrac.numpy(), post, f(exc.decay), f(exc.rest_term), f(exc.v_reset), f(exc.refrac_steps),
              f(exc.theta_plus), bool(learning), bool(exc.one_spike), f(w_ei), f(w_ie), f(inh.v_thresh),
              f(inh.v_reset), f(inh.refrac_steps), dpow.astype(f), crest, f(inh.v_rest), bool(synchronous))
    st.busy = exc.refrac_steps + 1  # refractory counts are exact; the torch steps then mask as usual
    return post
