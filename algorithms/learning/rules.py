"""STDP rules as objects bound to a plastic synapse array (BindsNET's connection/rule split).

Layout: every weight tensor here is in the **crossbar layout** ``[R, in, out]`` — inputs (pre neurons)
on rows, outputs (post neurons) on columns, ``R`` replicas (independent networks) in front. Spike
tensors are ``[R, in]``/``[R, out]`` for one step or ``[T, R, in]``/``[T, R, out]`` for a presentation.

Traces (nearest-spike, "set to 1"): every step ``x ← x·e^(−dt/τ)``, then ``x = 1`` where the neuron
spiked. Within a presentation, ``x(t) = e^(−(t − t_last)·dt/τ)`` with ``t_last`` the last spike ≤ t.

:class:`PairSTDP` — BindsNET 0.3.4 ``PostPre`` (Hazan et al., Front. Neuroinform. 12:89, 2018), traces
updated with this step's spikes first::

    Δw = −ν_pre·s_pre(t) ⊗ x_post(t) + ν_post·x_pre(t) ⊗ s_post(t)          ν = (1e-4, 1e-2), τ 20 ms

:class:`TripletSTDP` — the rule the Diehl & Cook (Front. Comput. Neurosci. 9:99, 2015) Brian code runs
(``Diehl&Cook_spiking_MNIST.py``: ``pre = 1; w -= nu_ee_pre·post1`` on a pre spike;
``w += nu_ee_post·pre·post2before; post1 = post2 = 1`` on a post spike), pre events first::

    Δw = −ν_pre·s_pre(t) ⊗ x_post1(t⁻) + ν_post·x_pre(t) ⊗ (s_post(t)·x_post2(t⁻))
    τ_pre = τ_post1 = 20 ms, τ_post2 = 40 ms, ν_pre = 1e-4, ν_post = 1e-2

(``t⁻``: decayed to step t, before this step's post spikes).

:class:`PowerLawSTDP` — the rule the Diehl & Cook paper itself states (§2.3, Eq. 3, "power-law weight
dependence"), on post spikes only, with an additive pre trace (a pre spike adds 1)::

    Δw = η·(x_pre(t) − x_tar)·(w_max − w)^μ  on a post spike;  x_pre ← x_pre·e^(−dt/τ_pre) + s_pre
    η = 1e-2, x_tar = 0.4, μ = 0.2, τ_pre = 20 ms

Weights are kept in [w_min, w_max] by the synapses (clipping in software, saturation on a device).

The rule interface (for new rules: stochastic binary STDP, ASP, …)
------------------------------------------------------------------
A rule is a class, not a flag; it is **bound to a synapse object** (:mod:`algorithms.learning.synapses`)
and emits its effect into it::

    class MyRule(LearningRule):
        def init_state(self):              # allocate traces / activity counters  [R, ·]
        def reset(self):                   # between samples (called when the network resets its state)
        def step(self, pre, post, rows=None):          # one step: update state, then self.synapses.add(dw)
                                                       #   or self.synapses.switch(p) (binary devices)
        def presentation(self, pre, post, rows=None):  # optional: a whole presentation at once (weights
                                                       #   frozen in it, ``write_every: image``); default:
                                                       #   loops over step()

``post`` is ``None`` on a step without post spikes. ``rows`` (event-driven input): ``pre`` covers only
these input indices (``[·, R, len(rows)]``); the other inputs did not spike — ``synapses.dense(pre, rows)``
restores the full width.
        def end_presentation(self, steps): # optional: per-sample work (e.g. ASP's weight leak over the
                                           #   presentation time)

``synapses.add(dw)`` accumulates weight changes (weight units, ``[R, in, out]``); the network flushes
them to the device (``MappedMatrix.update`` → pulses, stochastic rounding) after every step
(``write_every: step``) or after the presentation (``write_every: image``). A rule whose effect cannot be
deferred (a switching attempt) calls ``synapses.switch(p)`` and it is applied at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from . import pair_kernel

__all__ = ["LearningRule", "PairSTDP", "TripletSTDP", "PowerLawSTDP", "OnlineTripletDrive", "RULES", "trace_at", "trace_final",
           "additive_trace", "make_rule"]


def _check_pos(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: got {value!r}; must be a finite number > 0")


def _check_nonneg(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: got {value!r}; must be a finite number ≥ 0")


def trace_at(spikes: Tensor, decay: float, x0: Tensor, before: bool = False) -> Tensor:
    """Nearest-spike trace over a presentation: ``[T, R, n]`` from spikes ``[T, R, n]`` and the trace ``x0``
    ``[R, n]`` before the first step. ``before=True`` gives ``x(t⁻)`` (decayed, without step t's spikes)."""
    t_steps = spikes.shape[0]
    dtype = x0.dtype
    idx = torch.arange(1, t_steps + 1, device=spikes.device, dtype=dtype).view(-1, *([1] * (spikes.dim() - 1)))
    last = torch.where(spikes > 0, idx, 0.0).cummax(0).values  # 1-based step of the last spike ≤ t (0: none)
    if before:  # the last spike strictly before t
        last = torch.cat([torch.zeros_like(last[:1]), last[:-1]])
    log_d = math.log(decay) if decay > 0 else -math.inf
    has = last > 0
    x = torch.exp((idx - last) * log_d)
    return torch.where(has, x, x * x0.unsqueeze(0))


def trace_final(spikes: Tensor, decay: float, x0: Tensor) -> Tensor:
    """The trace after the last step of a presentation ``[T, R, n]`` (``x0`` before it), ``[R, n]``."""
    t_steps = spikes.shape[0]
    idx = torch.arange(1, t_steps + 1, device=spikes.device, dtype=x0.dtype).view(-1, *([1] * (spikes.dim() - 1)))
    last = (spikes.to(x0.dtype) * idx).amax(0)
    since = (t_steps - last).to(torch.float64)
    x = torch.exp(since * math.log(decay)).to(x0.dtype) if decay > 0 else (since == 0).to(x0.dtype)
    return torch.where(last > 0, x, x0 * decay**t_steps)


def trace_final_events(ev: Tensor, t_steps: int, decay: float, x0: Tensor) -> Tensor:
    """:func:`trace_final` from the spike events ``ev = (t, r, j)`` ``[K, 3]`` of a presentation of ``t_steps`` steps
    (``x0`` ``[R, n]`` before it): the same values, with work proportional to the spikes."""
    r, n = x0.shape
    last = torch.zeros(r * n, dtype=torch.long, device=x0.device)  # 1-based step of the last spike (0: none)
    if ev.shape[0]:
        last.scatter_reduce_(0, ev[:, 1] * n + ev[:, 2], ev[:, 0] + 1, "amax")
    last = last.view(r, n)
    since = (t_steps - last).to(torch.float64)
    x = torch.exp(since * math.log(decay)).to(x0.dtype) if decay > 0 else (since == 0).to(x0.dtype)
    return torch.where(last > 0, x, x0 * decay**t_steps)


def potentiate(dw: Tensor, ev: Tensor, values: Tensor, scale: float) -> None:
    """``dw[r_k, :, j_k] += scale·values[k]`` for post events ``ev = (t, r, j)`` ``[K, 3]`` (repeats accumulate)."""
    rows = torch.arange(dw.shape[1], device=dw.device).unsqueeze(0)
    dw.index_put_((ev[:, 1:2], rows, ev[:, 2:3]), values * scale, accumulate=True)


class LearningRule:
    """Base class: a rule bound to ``synapses`` (module docstring for the interface)."""

    #: whether the traces are cleared between samples (BindsNET resets; the paper lets a rest decay them)
    reset_traces: bool = True
    #: the learning-rate attributes a schedule scales (:meth:`scale_rates`)
    rate_fields: ClassVar[tuple[str, ...]] = ()

    def scale_rates(self, factor: float) -> None:
        """Set the learning rates (:attr:`rate_fields`) to ``factor`` × their values at the first call: a
        learning-rate schedule (:func:`algorithms.learning.diehl_cook.rate_scale`)."""
        base = self.__dict__.setdefault("_base_rates", {k: getattr(self, k) for k in self.rate_fields})
        for k, v in base.items():
            setattr(self, k, v * factor)

    def bind(self, synapses) -> LearningRule:
        self.synapses = synapses
        self.init_state()
        return self

    def init_state(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        raise NotImplementedError

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """Default: one :meth:`step` per time step (weights are not written in between). ``rows``: the input
        indices ``pre`` covers (``pre [T, R, len(rows)]``; the other inputs did not spike)."""
        pre = self.synapses.dense(pre, rows)
        for t in range(pre.shape[0]):
            p = post[t]
            self.step(pre[t], p if bool(p.any()) else None)  # dense already

    def end_presentation(self, steps: int) -> None:
        pass


@dataclass
class PairSTDP(LearningRule):
    """BindsNET ``PostPre``: depression on pre spikes by ``x_post``, potentiation on post spikes by ``x_pre``."""

    rate_fields: ClassVar[tuple[str, ...]] = ("nu_pre", "nu_post")
    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    tau_pre_s: float = 20e-3
    tau_post_s: float = 20e-3
    dt_s: float = 1e-3
    reset_traces: bool = True

    def __post_init__(self):
        _check_nonneg("nu_pre", self.nu_pre)
        _check_nonneg("nu_post", self.nu_post)
        for name in ("tau_pre_s", "tau_post_s", "dt_s"):
            _check_pos(name, getattr(self, name))
        self.d_pre = math.exp(-self.dt_s / self.tau_pre_s)
        self.d_post = math.exp(-self.dt_s / self.tau_post_s)

    def init_state(self) -> None:
        s = self.synapses
        self.x_pre = torch.zeros(s.replicas, s.n_pre, device=s.device, dtype=s.dtype)
        self.x_post = torch.zeros(s.replicas, s.n_post, device=s.device, dtype=s.dtype)

    def reset(self) -> None:
        if self.reset_traces:
            self.x_pre.zero_()
            self.x_post.zero_()

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        pre = self.synapses.dense(pre, rows)
        self.x_pre.mul_(self.d_pre).masked_fill_(pre > 0, 1.0)
        self.x_post.mul_(self.d_post)
        if post is not None:
            self.x_post.masked_fill_(post > 0, 1.0)
        dw = None
        if self.nu_pre and bool(self.x_post.any()):
            dw = -self.nu_pre * pre.unsqueeze(2) * self.x_post.unsqueeze(1)
        if self.nu_post and post is not None:
            pot = self.nu_post * self.x_pre.unsqueeze(2) * post.unsqueeze(1)
            dw = pot if dw is None else dw + pot
        if dw is not None:
            self.synapses.add(dw)

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """All ``T`` steps at once: ``Δw = −ν_pre·Σ_t s_pre ⊗ x_post + ν_post·Σ_t x_pre ⊗ s_post``.

        ``rows``: the inputs ``pre`` covers (the others did not spike); only those rows are depressed."""
        if _silent(pre, post):  # no spike at all (the rest period): the traces only decay
            self.x_pre.mul_(self.d_pre ** pre.shape[0])
            self.x_post.mul_(self.d_post ** pre.shape[0])
            return
        if pair_kernel.AVAILABLE and pre.device.type == "cpu" and self.x_pre.dtype == torch.float32:
            self._presentation_compiled(pre, post, rows)
            return
        dw = self.synapses.new_delta()
        ev = torch.nonzero(post > 0)  # [K, 3]: (t, r, j)
        if ev.shape[0] or bool(self.x_post.any()):
            x_post = trace_at(post, self.d_post, self.x_post)  # [T, R, out]
            touched = x_post.amax(0) > 0  # [R, out]
            for k in range(x_post.shape[1]) if self.nu_pre else ():
                # only the columns this replica touched, one product per replica (a replica's Δw is then
                # bit for bit that of a one-replica network: the product's shape is its own)
                cols = torch.nonzero(touched[k]).flatten()
                if cols.numel():
                    xp = x_post[:, k:k + 1].index_select(2, cols).permute(1, 0, 2)  # [1, T, c]
                    dep = torch.bmm(pre[:, k:k + 1].permute(1, 2, 0).to(xp.dtype), xp)  # [1, A, c]
                    _put_block(dw[k:k + 1], rows, cols, dep * -self.nu_pre)
            self.x_post.copy_(x_post[-1])
        if ev.shape[0] and self.nu_post:
            potentiate(dw, ev, pre_trace_at_events(pre, self.d_pre, self.x_pre, ev, rows), self.nu_post)
        _set_final(self.x_pre, pre, self.d_pre, rows)
        self.synapses.add(dw)


    def _presentation_compiled(self, pre: Tensor, post: Tensor, rows: Tensor | None) -> None:
        """:meth:`presentation` by the compiled walk over the spikes (:mod:`algorithms.learning.pair_kernel`)."""
        x_pre0 = self.x_pre if rows is None else self.x_pre.index_select(1, rows)
        block, x_pre_end, x_post_end, touched = pair_kernel.pair_presentation(
            pre.permute(1, 0, 2).to(torch.float32).contiguous().numpy(),  # replica-major (no copy when laid out so)
            post.permute(1, 0, 2).to(torch.float32).contiguous().numpy(), x_pre0.numpy(),
            self.x_post.numpy(), self.d_pre, self.d_post, self.nu_pre, self.nu_post)
        block = torch.from_numpy(block)
        if rows is None:
            self.x_pre.copy_(torch.from_numpy(x_pre_end))
        else:
            self.x_pre.mul_(self.d_pre ** pre.shape[0])
            self.x_pre[:, rows] = torch.from_numpy(x_pre_end)
        self.x_post.copy_(torch.from_numpy(x_post_end))
        # the columns that may hold a Δw in some replica (an all-zero column among them is no write: not dirty)
        cols = torch.from_numpy(np.flatnonzero(touched.any(0)))
        if cols.numel():
            self.synapses.add_block(block.index_select(2, cols), rows, cols)


def _silent(pre: Tensor, post: Tensor) -> bool:
    """No pre and no post spike in the presentation: Δw = 0 and every trace decays by ``d^T`` (as
    :func:`trace_final` gives it)."""
    return not bool(post.any()) and not bool(pre.any())


def _put_block(dw: Tensor, rows: Tensor | None, cols: Tensor, block: Tensor) -> None:
    """``dw[:, rows, cols] += block`` (``rows`` None: all rows)."""
    if rows is None:
        dw.index_add_(2, cols, block)
    else:
        dw[:, rows.unsqueeze(1), cols.unsqueeze(0)] += block


def pre_trace_at_events(pre: Tensor, decay: float, x0: Tensor, ev: Tensor, rows: Tensor | None) -> Tensor:
    """Pre-synaptic traces (after the step's spikes) at post events ``ev = (t, r, j)``: ``[K, n_in]``."""
    t_last = int(ev[:, 0].max()) + 1
    if rows is None:
        return trace_at(pre[:t_last], decay, x0)[ev[:, 0], ev[:, 1]]
    out = x0[ev[:, 1]] * torch.exp((ev[:, :1] + 1).to(x0.dtype) * math.log(decay))  # inputs that never spiked
    sub = trace_at(pre[:t_last], decay, x0.index_select(1, rows))[ev[:, 0], ev[:, 1]]  # [K, A]
    out[:, rows] = sub
    return out


def _set_final(x: Tensor, spikes: Tensor, decay: float, rows: Tensor | None) -> None:
    """Trace state after a presentation, in place (``rows``: the inputs ``spikes`` covers)."""
    if rows is None:
        x.copy_(trace_final(spikes, decay, x))
        return
    sub = trace_final(spikes, decay, x.index_select(1, rows))
    x.mul_(decay ** spikes.shape[0])
    x[:, rows] = sub


@dataclass
class TripletSTDP(LearningRule):
    """The triplet rule of the Diehl & Cook (2015) code (module docstring)."""

    rate_fields: ClassVar[tuple[str, ...]] = ("nu_pre", "nu_post")
    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    tau_pre_s: float = 20e-3
    tau_post1_s: float = 20e-3
    tau_post2_s: float = 40e-3
    dt_s: float = 0.5e-3
    reset_traces: bool = False

    def __post_init__(self):
        _check_nonneg("nu_pre", self.nu_pre)
        _check_nonneg("nu_post", self.nu_post)
        for name in ("tau_pre_s", "tau_post1_s", "tau_post2_s", "dt_s"):
            _check_pos(name, getattr(self, name))
        self.d_pre = math.exp(-self.dt_s / self.tau_pre_s)
        self.d_post1 = math.exp(-self.dt_s / self.tau_post1_s)
        self.d_post2 = math.exp(-self.dt_s / self.tau_post2_s)

    def init_state(self) -> None:
        s = self.synapses
        self.x_pre = torch.zeros(s.replicas, s.n_pre, device=s.device, dtype=s.dtype)
        self.x_post1 = torch.zeros(s.replicas, s.n_post, device=s.device, dtype=s.dtype)
        self.x_post2 = torch.zeros(s.replicas, s.n_post, device=s.device, dtype=s.dtype)

    def reset(self) -> None:
        if self.reset_traces:
            self.x_pre.zero_()
            self.x_post1.zero_()
            self.x_post2.zero_()

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        pre = self.synapses.dense(pre, rows)
        self.x_pre.mul_(self.d_pre).masked_fill_(pre > 0, 1.0)
        self.x_post1.mul_(self.d_post1)
        self.x_post2.mul_(self.d_post2)
        dw = None
        if self.nu_pre and bool(self.x_post1.any()):
            dw = -self.nu_pre * pre.unsqueeze(2) * self.x_post1.unsqueeze(1)
        if post is not None:
            if self.nu_post:
                pot = self.nu_post * self.x_pre.unsqueeze(2) * (post * self.x_post2).unsqueeze(1)
                dw = pot if dw is None else dw + pot
            self.x_post1.masked_fill_(post > 0, 1.0)
            self.x_post2.masked_fill_(post > 0, 1.0)
        if dw is not None:
            self.synapses.add(dw)

    #: per-synapse input delays in steps ``[R, n_pre, n_post]`` (long) or None: the rule then sees each
    #: synapse's pre spikes at their **arrival** (:meth:`_delayed`), as Brian 1's STDP on a DelayConnection
    delays: Tensor | None = None

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """All ``T`` steps at once (the sums of :meth:`step` over the presentation); ``rows`` as in
        :meth:`PairSTDP.presentation`. With :attr:`delays`: :meth:`_delayed`."""
        if _silent(pre, post):  # no spike at all (the rest period): the traces only decay
            for x, d in ((self.x_pre, self.d_pre), (self.x_post1, self.d_post1), (self.x_post2, self.d_post2)):
                x.mul_(d ** pre.shape[0])
            return
        dw = self.synapses.new_delta()
        if self.delays is not None:
            return self._delayed(pre, post, rows, dw)
        if self.nu_pre and (bool(self.x_post1.any()) or bool(post.any())):
            x1 = trace_at(post, self.d_post1, self.x_post1, before=True)  # [T, R, out]
            dep = torch.bmm(pre.permute(1, 2, 0).to(x1.dtype), x1.permute(1, 0, 2))  # [R, A, out]
            if rows is None:
                dw.add_(dep, alpha=-self.nu_pre)
            else:
                dw[:, rows, :] = dep * -self.nu_pre
        ev = torch.nonzero(post > 0)
        if ev.shape[0] and self.nu_post:
            t_last = int(ev[:, 0].max()) + 1
            x2 = trace_at(post[:t_last], self.d_post2, self.x_post2, before=True)
            xs = pre_trace_at_events(pre, self.d_pre, self.x_pre, ev, rows)
            potentiate(dw, ev, xs * x2[ev[:, 0], ev[:, 1], ev[:, 2]].unsqueeze(1), self.nu_post)
        _set_final(self.x_pre, pre, self.d_pre, rows)
        self.x_post1.copy_(trace_final(post, self.d_post1, self.x_post1))
        self.x_post2.copy_(trace_final(post, self.d_post2, self.x_post2))
        self.synapses.add(dw)

    def _delayed(self, pre: Tensor, post: Tensor, rows: Tensor | None, dw: Tensor) -> None:
        """The presentation's Δw with per-synapse input delays ``D`` (:attr:`delays`, steps): Brian 1's STDP on a
        ``DelayConnection`` (``brian/experimental/c_stdp.py``, the C STDP the Diehl & Cook code selects with
        ``usecstdp``): ``pre = 1`` at the source spike; ``w_ij −= ν_pre·post1_j`` evaluated at the arrival
        ``t + D_ij``; on a post spike ``w_ij += ν_post·pre_i(t − D_ij)·post2before_j`` (the source's trace D_ij
        earlier, i.e. the trace of the arrivals). So the triplet rule of :meth:`step` with each synapse's pre
        spikes at their arrival times. Arrivals after the presentation (in the rest) are depressed by the
        post trace decaying from its final value (no post spike in the rest's first ``max D`` steps)."""
        _triplet_delayed(self, pre, post, rows, dw)


def _triplet_delayed(rule, pre: Tensor, post: Tensor, rows: Tensor | None, dw: Tensor) -> None:
    """:meth:`TripletSTDP._delayed` (module function: the rule is a dataclass)."""
    delays = rule.delays if rows is None else rule.delays.index_select(1, rows)  # [R, A, n]
    t_steps, r_n, a_n = pre.shape
    n = post.shape[-1]
    kd = int(delays.max()) + 1
    dt = rule.x_pre.dtype
    x0 = rule.x_pre if rows is None else rule.x_pre.index_select(1, rows)
    ev = torch.nonzero(pre > 0)  # [K, 3]: (t, r, a)
    cols = torch.arange(n, device=pre.device)
    if rule.nu_pre and ev.shape[0]:
        # depression at each arrival t + D_ij by x_post1 before that step's post spike; after the presentation
        # (arrivals in the first steps of the rest) the trace decays from its final value
        x1 = trace_at(post, rule.d_post1, rule.x_post1, before=True)  # [T, R, n]
        fin = trace_final(post, rule.d_post1, rule.x_post1)
        k = torch.arange(1, kd + 1, device=pre.device, dtype=dt).view(-1, 1, 1)
        x1 = torch.cat([x1, fin.unsqueeze(0) * torch.exp(k * math.log(rule.d_post1))])
        arr = ev[:, :1] + delays[ev[:, 1], ev[:, 2]]  # [K, n] arrival steps
        g = x1[arr, ev[:, 1:2], cols.view(1, -1)]  # [K, n]
        dep = torch.zeros(r_n, a_n, n, dtype=dt, device=pre.device).index_put_((ev[:, 1], ev[:, 2]), g, accumulate=True)
        if rows is None:
            dw.add_(dep, alpha=-rule.nu_pre)
        else:
            dw[:, rows, :] -= rule.nu_pre * dep
    evp = torch.nonzero(post > 0)  # (t, r, j)
    if evp.shape[0] and rule.nu_post:
        t_last = int(evp[:, 0].max()) + 1
        x2 = trace_at(post[:t_last], rule.d_post2, rule.x_post2, before=True)[evp[:, 0], evp[:, 1], evp[:, 2]]  # [K]
        xp = trace_at(pre[:t_last], rule.d_pre, x0)  # [T', R, A] after each step's spikes
        src = evp[:, :1] - delays[evp[:, 1], :, evp[:, 2]]  # [K, A]: the source step whose trace arrives now
        before = x0[evp[:, 1]] * torch.exp((src + 1).clamp(max=0).to(dt) * math.log(rule.d_pre))  # carried in
        xs = torch.where(src >= 0, xp[src.clamp(min=0), evp[:, 1:2], torch.arange(a_n, device=pre.device).view(1, -1)],
                         before)
        pot = xs * (rule.nu_post * x2).unsqueeze(1)  # [K, A]
        full = torch.zeros(evp.shape[0], rule.synapses.n_pre, dtype=dt, device=pre.device)
        if rows is None:
            full = pot
        else:
            full[:, rows] = pot
        potentiate(dw, evp, full, 1.0)
    _set_final(rule.x_pre, pre, rule.d_pre, rows)
    rule.x_post1.copy_(trace_final(post, rule.d_post1, rule.x_post1))
    rule.x_post2.copy_(trace_final(post, rule.d_post2, rule.x_post2))
    rule.synapses.add(dw)


class OnlineTripletDrive:
    """The weight changes of :class:`TripletSTDP` acting on the input drive **within** a presentation, as in
    Brian 1 (the Diehl & Cook code writes ``w`` at every pre and post event; the next input spikes see it).

    With the weights of the presentation's start ``W0`` and the rule's Δw written at every step, the drive
    (conductance increment) of column ``j`` at step ``t'`` is ``Σ_i s_i(t')·W_ij(t'⁻)``,
    ``W(t'⁻) = W0 + Σ_(t<t') ΔW(t)``, so it exceeds the drive of the fixed weights by::

        Δx_j(t') = Σ_(t<t') [ ν_post·post_j(t)·x2_j(t⁻)·(s(t')·x_pre(t))  −  ν_pre·x1_j(t⁻)·(s(t')·s(t)) ]

    (``x1``, ``x2``: the post traces before step t's post spike; ``x_pre``: the pre trace after step t's
    spikes). The depression term is summed in closed form: between two post spikes of ``j`` the trace is
    ``x1_j(t) = a·d1^t``, so its part is ``−ν_pre·a·s(t')·(G(t'−1) − G(t_a − 1))`` with
    ``G(t) = Σ_(u≤t) d1^u·s(u)`` (one cumulative sum per presentation) and ``H(t') = s(t')·G(t'−1)``. Each post
    spike of ``j`` at step ``t_s`` then changes the rest of column ``j``'s drive by one matrix-vector product::

        Δx_j(t' > t_s) += s(t')·(ν_post·x2_j(t_s⁻)·x_pre(t_s) + ν_pre·δa·G(t_s)) − ν_pre·δa·H(t'),  δa = d1^(−t_s) − a

    (:meth:`spike`; the segment before the first spike, ``a = x1_j(−1)·d1``, is applied by :meth:`start`).
    With per-synapse delays ``D`` each column sees its own arrival trains ``s_a(t − D_aj)``: ``G``, ``H`` and the
    products are then sums over the column's arrival events (sparse, O(input spikes) per spiking column).
    Potentiation is clipped at ``w_max`` against the column's running weight; the clipping of depression at
    ``w_min`` is not tracked (a weight at 0 receiving depression: the drive differs from the step-by-step
    writes by ≤ ν_pre·x1 per such event). The Δw the rule writes after the presentation is unchanged
    (:meth:`TripletSTDP.presentation`: the triplet rule's Δw does not depend on ``w``). float64.

    ``pre`` ``[T, R, A]``: the input spikes on ``rows`` (``A`` inputs; the others did not spike); ``w``
    ``[R, A, n]`` the weights of those rows; ``gain`` ``[R, 1, n]`` (normalisation ``gain``) or None.
    """

    #: with input delays: the carried-in post trace's depression term is skipped below this ``a`` (the trace
    #: after a ≥ 150 ms rest is ≤ e^(−7.5): a drive change ≲ 1e-7 of leak units per step)
    a_skip: float = 1e-3

    def __init__(self, rule: TripletSTDP, pre: Tensor, rows: Tensor | None, w: Tensor, gain: Tensor | None = None,
                 delays: Tensor | None = None):
        self.rule = rule
        x0 = rule.x_pre if rows is None else rule.x_pre.index_select(1, rows)
        pre64 = pre.to(torch.float64)
        self.s = pre64.numpy()  # [T, R, A]
        self.xpre = trace_at(pre64, rule.d_pre, x0.to(torch.float64)).numpy()
        t_steps = pre.shape[0]
        u = rule.d_post1 ** np.arange(t_steps, dtype=np.float64)
        self.G = np.cumsum(self.s * u[:, None, None], 0)  # [T, R, A]
        self.H = np.zeros(self.s.shape[:2])  # [T, R]: s(t)·G(t − 1)
        self.H[1:] = np.einsum("tra,tra->tr", self.s[1:], self.G[:-1])
        self.w0 = w.to(torch.float64).numpy().copy()  # [R, A, n]
        self.pot = np.zeros_like(self.w0)
        self.closed = np.zeros_like(self.w0)  # Σ over closed segments of a·(G(t_b) − G(t_a − 1))
        self.a = rule.x_post1.to(torch.float64).numpy() * rule.d_post1  # [R, n]
        self.t_a = np.zeros(self.a.shape, dtype=np.int64)
        self.last = np.full(self.a.shape, -1, dtype=np.int64)
        self.x2 = rule.x_post2.to(torch.float64).numpy().copy()
        self.gain = gain.to(torch.float64).numpy()[:, 0] if gain is not None else None  # [R, n]
        self.t_steps = t_steps
        # per-synapse delays [R, A, n] (steps): column j sees the arrivals s_a(t − D_aj) (:meth:`_column`)
        self.delays = delays.cpu().numpy() if delays is not None else None
        self.x0 = x0.to(torch.float64).numpy()
        self._cols = {}
        self._events = {}

    def _column(self, r: int, j: int):
        """``(S, G, H, D)`` of column ``j`` of replica ``r``: its arrival trains ``S[t, a] = s_a(t − D_aj)``
        ``[T, A]``, their ``G`` and ``H`` (without delays: the shared ones)."""
        if self.delays is None:
            return self.s[:, r], self.G[:, r], self.H[:, r], None
        key = (r, j)
        if key not in self._cols:
            # the column's arrivals as events (t_e = t + D_aj < T, a_e), sorted by time: sparse, O(K) per column
            if r not in self._events:
                self._events[r] = np.nonzero(self.s[:, r])
            t_src, a_src = self._events[r]
            d = self.delays[r, :, j]
            t_e = t_src + d[a_src]
            keep = t_e < self.t_steps
            t_e, a_e = t_e[keep], a_src[keep]
            order = np.argsort(t_e, kind="stable")
            t_e, a_e = t_e[order], a_e[order]
            u = self.rule.d_post1 ** t_e.astype(np.float64)
            # H(t) = Σ_(events at t) G_a(t − 1): each event's earlier arrivals of the same input (one per step)
            h = np.zeros(self.t_steps)
            if t_e.size:
                by_a = np.lexsort((t_e, a_e))  # by input, then time
                cs = np.cumsum(u[by_a])
                first = np.r_[True, a_e[by_a][1:] != a_e[by_a][:-1]]
                start = np.maximum.accumulate(np.where(first, np.arange(by_a.size), 0))  # group start
                before = np.where(start > 0, cs[np.maximum(start - 1, 0)], 0.0)
                h = np.bincount(t_e[by_a], weights=cs - u[by_a] - before, minlength=self.t_steps)
            self._cols[key] = ((t_e, a_e, u), None, h, d)
        return self._cols[key]

    def _g_at(self, col, t: int, a_n: int):
        """``G(t)`` ``[A]`` of a column: Σ over its arrivals up to step t of d1^(t_e)."""
        if col[1] is not None or col[3] is None:
            return col[1][t]
        t_e, a_e, u = col[0]
        k = int(np.searchsorted(t_e, t, side="right"))
        return np.bincount(a_e[:k], weights=u[:k], minlength=a_n)

    def _xpre(self, t: int, r: int, d):
        """The pre trace of column's synapses at step t (after the step's arrivals), ``[A]``."""
        if d is None:
            return self.xpre[t, r]
        src = t - d
        a_idx = np.arange(d.shape[0])
        return np.where(src >= 0, self.xpre[np.maximum(src, 0), r, a_idx],
                        self.x0[r] * self.rule.d_pre ** np.minimum(src + 1, 0))

    def start(self):
        """``Δx`` ``[T, R, n]`` of the segment before the first post spike (the post trace carried in), or None."""
        if not self.rule.nu_pre or not self.a.any():
            return None
        if self.delays is None:
            dx = -self.rule.nu_pre * self.H[:, :, None] * self.a[None]
        else:
            dx = np.zeros((self.t_steps, *self.a.shape))
            for r, j in zip(*np.nonzero(self.a >= self.a_skip)):
                dx[:, r, j] = -self.rule.nu_pre * self.a[r, j] * self._column(int(r), int(j))[2]
            self.a[self.a < self.a_skip] = 0.0
        return dx * self.gain[None] if self.gain is not None else dx

    def spike(self, t: int, r: int, j: int):
        """Post spike of column ``j`` of replica ``r`` at step ``t``: the change of its drive at steps ``t+1 …``."""
        rule = self.rule
        p2b = self.x2[r, j] * rule.d_post2 ** (t + 1) if self.last[r, j] < 0 else rule.d_post2 ** (t - self.last[r, j])
        col = self._column(r, j)
        s_c, _, h_c, d = col
        a_n = self.w0.shape[1]
        ta = self.t_a[r, j]
        g_t = self._g_at(col, t, a_n)
        g_prev = self._g_at(col, ta - 1, a_n) if ta > 0 else 0.0
        seg = self.a[r, j] * (g_t - g_prev)  # [A]: the open segment's Σ a·d1^u·s(u), u ≤ t
        w_cur = self.w0[r, :, j] + self.pot[r, :, j] - rule.nu_pre * (self.closed[r, :, j] + seg)
        pot = rule.nu_post * p2b * self._xpre(t, r, d)
        w_max = rule.synapses.w_max
        pot = self._clip_pot(pot, w_cur, w_max)
        self.pot[r, :, j] += pot
        self.closed[r, :, j] += seg
        a_new = rule.d_post1 ** (-t)
        da = a_new - self.a[r, j]
        self.a[r, j], self.t_a[r, j], self.last[r, j] = a_new, t + 1, t
        if t + 1 >= self.t_steps:
            return None
        vec = pot + rule.nu_pre * da * g_t
        if d is None:
            dx = s_c[t + 1:] @ vec
        else:  # Σ over the column's arrivals after t
            t_e, a_e, _ = s_c
            k = int(np.searchsorted(t_e, t, side="right"))
            dx = np.bincount(t_e[k:] - (t + 1), weights=vec[a_e[k:]], minlength=self.t_steps - t - 1)
        dx = dx - rule.nu_pre * da * h_c[t + 1:]
        return dx * self.gain[r, j] if self.gain is not None else dx

    @staticmethod
    def _clip_pot(pot, w_cur, w_max):
        return np.minimum(pot, np.maximum(w_max - w_cur, 0.0))


def additive_trace(spikes: Tensor, decay: float, x0: Tensor) -> Tensor:
    """Additive trace over a presentation, ``x_t = decay·x_{t−1} + s_t`` from ``x_{−1} = x0`` ``[R, n]``: ``[T, R, n]``
    (float64). Closed form per block of steps, ``x_t = d^t·Σ_{k≤t} s_k·d^(−k) + d^(t+1)·x0``, with blocks short
    enough that ``d^(−k)`` stays below e^30."""
    t_steps = spikes.shape[0]
    block = max(1, int(30.0 / -math.log(decay))) if 0 < decay < 1 else t_steps
    out = torch.empty(t_steps, *x0.shape, dtype=torch.float64, device=x0.device)
    x = x0.to(torch.float64)
    for a in range(0, t_steps, block):
        s = spikes[a:a + block].to(torch.float64)
        k = torch.arange(s.shape[0], dtype=torch.float64, device=x0.device).view(-1, *([1] * (s.dim() - 1)))
        out[a:a + s.shape[0]] = torch.pow(decay, k) * torch.cumsum(s * torch.pow(decay, -k), 0) + torch.pow(decay, k + 1) * x
        x = out[a + s.shape[0] - 1]
    return out


@dataclass
class PowerLawSTDP(LearningRule):
    """Diehl & Cook (2015) Eq. 3, the paper's own rule (module docstring): potentiation and depression on post
    spikes only, ``Δw = η·(x_pre − x_tar)·(w_max − w)^μ``; the pre trace adds 1 per spike ("increased by 1",
    §2.3). ``x_tar`` 0.4 and ``μ`` 0.2 are the released code's ``STDP_offset`` and ``exp_ee_post`` (defined
    there, unused by its triplet rule); ``η`` is its ``nu_ee_post`` 0.01 (*choice*: the paper's value was not
    available). ``(w_max − w)^μ`` uses the weights held when the Δw is computed: at the start of the
    presentation with ``write_every: image``, after the previous step with ``write_every: step``."""

    rate_fields: ClassVar[tuple[str, ...]] = ("eta",)
    eta: float = 1e-2
    x_tar: float = 0.4
    mu: float = 0.2
    tau_pre_s: float = 20e-3
    dt_s: float = 0.5e-3
    w_max: float = 1.0
    reset_traces: bool = False

    def __post_init__(self):
        for name in ("eta", "x_tar", "mu"):
            _check_nonneg(name, getattr(self, name))
        for name in ("tau_pre_s", "dt_s", "w_max"):
            _check_pos(name, getattr(self, name))
        self.d_pre = math.exp(-self.dt_s / self.tau_pre_s)

    def init_state(self) -> None:
        s = self.synapses
        self.x_pre = torch.zeros(s.replicas, s.n_pre, device=s.device, dtype=s.dtype)

    def reset(self) -> None:
        if self.reset_traces:
            self.x_pre.zero_()

    def _apply(self, ev: Tensor, xs: Tensor) -> None:
        """``Δw[r, :, j] += η·(x_pre − x_tar)·(w_max − w[r, :, j])^μ`` for post events ``ev = (t, r, j)``."""
        w = self.synapses.weights()
        fac = (self.w_max - w[ev[:, 1], :, ev[:, 2]].to(torch.float64)).clamp(min=0.0) ** self.mu  # [K, in]
        dw = self.synapses.new_delta()
        potentiate(dw, ev, ((xs - self.x_tar) * fac).to(dw.dtype), self.eta)
        self.synapses.add(dw)

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        pre = self.synapses.dense(pre, rows)
        self.x_pre.mul_(self.d_pre).add_(pre.to(self.x_pre.dtype))
        if post is not None and self.eta and bool(post.any()):
            ev = torch.nonzero(post.unsqueeze(0) > 0)  # [K, 3]: (0, r, j)
            self._apply(ev, self.x_pre[ev[:, 1]].to(torch.float64))

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """All ``T`` steps at once (the sums of :meth:`step`, weights frozen); ``rows`` as in
        :meth:`PairSTDP.presentation`."""
        t_steps = pre.shape[0]
        x0 = self.x_pre if rows is None else self.x_pre.index_select(1, rows)
        x = additive_trace(pre, self.d_pre, x0) if bool(pre.any()) else None
        ev = torch.nonzero(post > 0)  # [K, 3]: (t, r, j)
        if ev.shape[0] and self.eta:
            steps = (ev[:, :1] + 1).to(torch.float64)
            xs = self.x_pre[ev[:, 1]].to(torch.float64) * torch.pow(self.d_pre, steps)  # inputs with no spike
            if x is not None:
                sub = x[ev[:, 0], ev[:, 1]]  # [K, A]
                if rows is None:
                    xs = sub
                else:
                    xs[:, rows] = sub
            self._apply(ev, xs)
        if x is None:
            self.x_pre.mul_(self.d_pre ** t_steps)
        elif rows is None:
            self.x_pre.copy_(x[-1])
        else:
            self.x_pre.mul_(self.d_pre ** t_steps)
            self.x_pre[:, rows] = x[-1].to(self.x_pre.dtype)


RULES = {"pair": PairSTDP, "triplet": TripletSTDP, "power": PowerLawSTDP}


def make_rule(name: str, **kwargs) -> LearningRule:
    if name not in RULES:
        raise ValueError(f"rule: got {name!r}; allowed: {', '.join(RULES)}")
    return RULES[name](**kwargs)
