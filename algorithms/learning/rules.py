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

(``t⁻``: decayed to step t, before this step's post spikes). Weights are kept in [w_min, w_max] by the
synapses (clipping in software, saturation on a device).

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

import torch
from torch import Tensor

__all__ = ["LearningRule", "PairSTDP", "TripletSTDP", "RULES", "trace_at", "trace_final", "make_rule"]


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


def potentiate(dw: Tensor, ev: Tensor, values: Tensor, scale: float) -> None:
    """``dw[r_k, :, j_k] += scale·values[k]`` for post events ``ev = (t, r, j)`` ``[K, 3]`` (repeats accumulate)."""
    rows = torch.arange(dw.shape[1], device=dw.device).unsqueeze(0)
    dw.index_put_((ev[:, 1:2], rows, ev[:, 2:3]), values * scale, accumulate=True)


class LearningRule:
    """Base class: a rule bound to ``synapses`` (module docstring for the interface)."""

    #: whether the traces are cleared between samples (BindsNET resets; the paper lets a rest decay them)
    reset_traces: bool = True

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

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """All ``T`` steps at once (the sums of :meth:`step` over the presentation); ``rows`` as in
        :meth:`PairSTDP.presentation`."""
        if _silent(pre, post):  # no spike at all (the rest period): the traces only decay
            for x, d in ((self.x_pre, self.d_pre), (self.x_post1, self.d_post1), (self.x_post2, self.d_post2)):
                x.mul_(d ** pre.shape[0])
            return
        dw = self.synapses.new_delta()
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


RULES = {"pair": PairSTDP, "triplet": TripletSTDP}


def make_rule(name: str, **kwargs) -> LearningRule:
    if name not in RULES:
        raise ValueError(f"rule: got {name!r}; allowed: {', '.join(RULES)}")
    return RULES[name](**kwargs)
