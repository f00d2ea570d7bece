"""ASP — Adaptive Synaptic Plasticity, "learning to forget" (Panda, Allred, Ramanathan & Roy, IEEE JETCAS
8(1):51–64, 2018; arXiv 1703.07655).

ASP is Diehl & Cook-style STDP with two changes: a *recovery* (learning) phase whose rate falls as the
post-neuron becomes active, and a *decay* (leak) phase whose time constant grows with the post-neuron's
activity and adaptive threshold, so that neurons that learnt significant (often shown) patterns forget
less while the weights of rarely used neurons leak away and become free for new inputs.

Sources. The equations are the forms written in the source talk (Panda, "Re-engineering computing with
spike-based learning", after the JETCAS paper; symbols as there) and the paper's abstract ("the leak
rate of the synaptic weights is modulated based on the temporal correlation between the spiking
patterns of the pre- and post-synaptic neurons … gradual forgetting of insignificant data while
retaining significant, yet old, information"). The body of the paper (its constants, the exact
functional forms of ``τ_leak(Post, θ)`` and ``η(Post)``, network size, images per class) was not
available to this project; every such choice is marked *choice* below. A second search (stored public
pages, code and issue corpora, issue 11's ASP follow-up) again found only the abstract (arXiv, the first
section of its ar5iv rendering, paper indexes) and a link to IEEE's accepted manuscript, no text of §III
or of the experiments and no public implementation; so the equations below are still the talk's and the
sequential-digits protocol of :mod:`algorithms.asp` is this project's, not the paper's.

* **Post activity** ``Post_j(t)``: the post-neuron's spike count, ``P_j ← P_j·e^(−dt/τ_post_acc) + s_j``.
  Default ``tau_post_acc_s = None``: no decay, the *cumulative* count — the talk's "input significance
  proportional to the number of training patterns shown". A decaying count makes a well-learnt class
  insignificant as soon as it stops being shown, so its neurons' leak speeds up and it is erased; that
  is the opposite of "retaining significant, yet old, information" (with ``τ_post_acc = 50 s`` = 200
  images, sequential MNIST lost the digit two phases back).
* **Pre accumulation** ``Pre_acc,i``: the number of spikes of input ``i`` in the current presentation
  (reset at the start of each image; *choice*: the talk names the accumulated pre activity, not its window).
* **Recovery phase** (on a post spike of neuron ``j``), with the pre trace ``Pre_rec = x_pre,i``
  (nearest-spike, ``τ_pre``)::

      Δw_ij = w_max · η_j · [(x_pre,i − offset) − k_const / 2^(Pre_acc,i)]
      η_j   = η_0 / (1 + P_j/P_0)                       ("η(t) ∝ 1/Post(t)")

  then ``w`` is clipped to ``[w_min, w_max]``. The talk writes ``η ∝ 1/Post``; the ``1 +`` keeps a
  silent neuron's rate finite (*choice*; ``P_0`` sets where the rate halves). Inputs that spiked
  recently (``x_pre > offset``) are potentiated, the others depressed, inputs silent in the whole
  presentation by a further ``k_const``. No column normalisation: the offset and the leak bound the weights.
* **Decay phase** (between learning events, all synapses)::

      τ_leak,j · dw/dt = −α_exp · (w − w_rest)         (decay = "exp")
      τ_leak,j · dw/dt = −α_lin      while w > w_rest    (decay = "linear")
      τ_leak,j = τ_0 · (1 + P_j/P_leak) · (1 + θ_j/θ_0)  ("τ_leak ∈ Post(t), (v_thresh + θ)")

  Optional per-synapse factor (``leak_corr_ref`` ``C_ref``; null: off, the default)::

      τ_leak,ij = τ_leak,j · (1 + C_ij/C_ref),   C_ij ← C_ij + x_pre,i  on every post spike of j

  ``C_ij`` is the cumulative pre–post correlation of the synapse (the pre trace at each post spike,
  ``Σ exp(−Δt/τ_pre)``): the abstract's "leak rate of the synaptic weights is modulated based on the
  temporal correlation between the spiking patterns of the pre- and post-synaptic neurons". The talk's
  form is per neuron; this is the abstract's per synapse (*choice*: cumulative, like ``P``, and
  multiplying the neuron's factor, so ``C_ref`` → ∞ is the talk's form).
  Over an interval ``T`` with ``P``, ``θ`` and ``C`` held at their values at its start the solution is
  exact: ``w(T) = w_rest + (w − w_rest)·exp(−α_exp·T/τ_leak)`` and
  ``w(T) = max(w − α_lin·T/τ_leak, w_rest)`` (cells already below ``w_rest`` do not move).
  *Choices*: the linear dependences (monotone, as the talk states); ``P_leak`` (``leak_post_ref``)
  separate from the learning-rate ``P_0`` (null: the same), because one constant cannot both let a new
  neuron learn for tens of images (``P_0`` ≈ 10–20 spikes) and keep a neuron that fired ~10³ times for a
  class nearly unchanged over the following phases (``τ_leak ≫`` the rest of the run: ``P_leak`` ≈ 2.5–5);
  the threshold enters through ``θ/θ_0`` (``theta_ref``; the literal ``(v_thresh + θ)/v_thresh`` with
  voltages from rest is ``θ_0 = v_thresh − v_rest``, 13 mV in the fast network; null drops it: θ grows
  with the same spikes as ``P``). The talk decays to 0; ``w_rest > 0`` (*choice*) keeps a neuron whose
  weights have leaked away excitable — at ``w_rest = 0`` it never fires again and is lost for new classes
  (on sequential MNIST, fast network, ``w_rest ≤ 0.03`` left 7–13 of 20 neurons that ever fired).

Hardware: the leak is *digital* — every ``leak_interval`` presentations the decayed weights are
written back to the array as a weight change (pulses, write energy charged to the training
ledger). A volatile device that relaxes on its own (the talk's habituating perovskite, Zuo et al.,
Nat. Commun. 8:240, 2017) would make the leak free, but no retention-vs-state data for such a device
are available to this project, so that variant is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .rules import LearningRule, _set_final, potentiate, pre_trace_at_events

__all__ = ["ASPRule", "ASPLearning", "DECAY_MODES"]

DECAY_MODES = ("exp", "linear")


def _check(name: str, value, lo=None, lo_open=False, nullable=False) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: got {value!r}; expected a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"{name}: got {value!r}; must be {'>' if lo_open else '≥'} {lo}")


@dataclass
class ASPRule:
    """The ASP recovery and decay phases (module docstring for the equations). Defaults: the talk's form
    (decay to ``w_rest = 0``, one reference count); the ``asp`` algorithm's defaults are the values chosen on
    sequential MNIST (:mod:`algorithms.asp`).

    All state lives in the caller's tensors: ``post_count [R, out]`` (``P``), ``pre_count [R, in]``
    (``Pre_acc``), ``x_pre [R, in]``; weights ``w [R, out, in]`` in weight units.
    """

    eta0: float = 0.01
    offset: float = 0.4
    k_const: float = 0.02
    post_ref: float = 20.0
    tau_leak0_s: float = 2.0
    leak_post_ref: float | None = None
    alpha: float = 1.0
    decay: str = "exp"
    w_rest: float = 0.0
    theta_ref: float | None = None
    leak_corr_ref: float | None = None
    tau_pre_s: float = 20e-3
    tau_post_acc_s: float | None = None
    w_min: float = 0.0
    w_max: float = 1.0
    dt_s: float = 1e-3

    def __post_init__(self):
        _check("eta0", self.eta0, 0.0)
        _check("offset", self.offset, 0.0)
        _check("k_const", self.k_const, 0.0)
        _check("post_ref", self.post_ref, 0.0, lo_open=True)
        _check("tau_leak0_s", self.tau_leak0_s, 0.0, lo_open=True)
        _check("leak_post_ref", self.leak_post_ref, 0.0, lo_open=True, nullable=True)
        _check("alpha", self.alpha, 0.0)
        _check("w_rest", self.w_rest)
        _check("theta_ref", self.theta_ref, 0.0, lo_open=True, nullable=True)
        _check("leak_corr_ref", self.leak_corr_ref, 0.0, lo_open=True, nullable=True)
        _check("tau_pre_s", self.tau_pre_s, 0.0, lo_open=True)
        _check("tau_post_acc_s", self.tau_post_acc_s, 0.0, lo_open=True, nullable=True)
        _check("dt_s", self.dt_s, 0.0, lo_open=True)
        if self.decay not in DECAY_MODES:
            raise ValueError(f"decay: got {self.decay!r}; allowed: {', '.join(DECAY_MODES)}")
        if not self.w_min < self.w_max:
            raise ValueError(f"w_max: got {self.w_max!r}; must exceed w_min = {self.w_min!r}")
        self.decay_pre = math.exp(-self.dt_s / self.tau_pre_s)
        self.decay_post_acc = 1.0 if self.tau_post_acc_s is None else math.exp(-self.dt_s / self.tau_post_acc_s)

    # -- activity bookkeeping ----------------------------------------------------------------
    def update_activity(self, x_pre: Tensor, pre_count: Tensor, post_count: Tensor, pre: Tensor, post: Tensor) -> None:
        """In place, one step: pre trace (decay, set to 1 on a spike), ``Pre_acc`` += pre, ``P`` decays and += post."""
        x_pre.mul_(self.decay_pre).masked_fill_(pre > 0, 1.0)
        pre_count.add_(pre)
        if self.decay_post_acc != 1.0:
            post_count.mul_(self.decay_post_acc)
        post_count.add_(post)

    # -- recovery phase ----------------------------------------------------------------------
    def learning_rate(self, post_count: Tensor) -> Tensor:
        """``η_j = η_0/(1 + P_j/P_0)`` ``[R, out]``."""
        return self.eta0 / (1.0 + post_count / self.post_ref)

    def recovery_dw(self, x_pre: Tensor, pre_count: Tensor, post: Tensor, post_count: Tensor) -> Tensor | None:
        """``Δw [R, out, in]`` of the post spikes ``post [R, out]`` of this step (``None`` when none).

        ``post_count`` is ``P`` *before* this step's spikes are counted (the rate the neuron had when it fired).
        """
        if not bool(post.any()):
            return None
        drive = (x_pre - self.offset) - self.k_const * torch.pow(2.0, -pre_count)  # [R, in]
        eta = self.learning_rate(post_count) * post  # [R, out], zero for silent neurons
        return self.w_max * eta.unsqueeze(2) * drive.unsqueeze(1)

    def clip(self, w: Tensor) -> Tensor:
        return w.clamp(self.w_min, self.w_max)

    # -- decay phase -------------------------------------------------------------------------
    def tau_leak(self, post_count: Tensor, theta: Tensor | None = None) -> Tensor:
        """``τ_leak,j = τ_0·(1 + P_j/P_0)·(1 + θ_j/θ_0)`` [s], ``[R, out]``."""
        ref = self.post_ref if self.leak_post_ref is None else self.leak_post_ref
        tau = self.tau_leak0_s * (1.0 + post_count / ref)
        if self.theta_ref is not None and theta is not None:
            tau = tau * (1.0 + theta.clamp(min=0.0) / self.theta_ref)
        return tau

    def synapse_tau(self, tau_leak: Tensor, corr: Tensor) -> Tensor:
        """``τ_leak,ij = τ_leak,j·(1 + C_ij/C_ref)`` ``[R, out, in]`` from ``τ_leak [R, out]`` and ``corr [R, out, in]``."""
        return tau_leak.unsqueeze(2) * (1.0 + corr / self.leak_corr_ref)

    def decayed(self, w: Tensor, interval_s: float, tau_leak: Tensor) -> Tensor:
        """Weights ``[R, out, in]`` after ``interval_s`` of leak with ``τ_leak`` held constant (exact solution):
        per neuron ``[R, out]`` or per synapse ``[R, out, in]``."""
        if not interval_s >= 0:
            raise ValueError(f"interval_s: got {interval_s!r}; must be ≥ 0 s")
        rate = self.alpha * interval_s / (tau_leak if tau_leak.dim() == w.dim() else tau_leak.unsqueeze(2))
        if self.decay == "exp":
            return self.w_rest + (w - self.w_rest) * torch.exp(-rate)
        above = w > self.w_rest
        return torch.where(above, torch.clamp(w - rate, min=self.w_rest), w)


class ASPLearning(LearningRule):
    """ASP bound to a synapse array (:mod:`algorithms.learning.synapses`): recovery Δw on post spikes plus the
    digital leak, written to the synapses as weight changes (``synapses.add``).

    ``presentation`` (``write_every: image``): the recovery updates of every post spike of the image
    (each with the trace, ``Pre_acc`` and ``P`` at its time step), plus, every ``leak_interval``
    presentations, the leak over the time elapsed since the last leak (``steps·dt`` per presentation,
    ``τ_leak`` from ``P`` and θ at the leak), in one write. ``step`` (``write_every: step``): the recovery
    update of the step and the leak over one step. ``theta`` — a callable returning the adaptive thresholds
    ``[R, 1, out]`` [V] (the network's), or ``None``.
    """

    reset_traces: bool = True

    def __init__(self, rule: ASPRule, leak_interval: int = 1, theta=None, extra_steps: int = 0):
        if int(leak_interval) != leak_interval or leak_interval < 1:
            raise ValueError(f"leak_interval: got {leak_interval!r}; must be an integer ≥ 1 (presentations)")
        self.rule = rule
        self.leak_interval = int(leak_interval)
        self.theta = theta
        self.extra_steps = int(extra_steps)  # rest steps after each presentation (leak time, no input)
        self._since_leak_s = 0.0
        self._count = 0
        self.leak_writes = 0

    def init_state(self) -> None:
        s = self.synapses
        self.x_pre = torch.zeros(s.replicas, s.n_pre, device=s.device, dtype=s.dtype)
        self.pre_count = torch.zeros(s.replicas, s.n_pre, device=s.device, dtype=s.dtype)
        self.post_count = torch.zeros(s.replicas, s.n_post, device=s.device, dtype=s.dtype)
        self.corr = None if self.rule.leak_corr_ref is None else s.new_delta()  # C [R, in, out] (crossbar layout)

    def reset(self) -> None:
        if self.reset_traces:
            self.x_pre.zero_()
        self.pre_count.zero_()

    def _theta(self):
        th = self.theta() if callable(self.theta) else self.theta
        return None if th is None else th.reshape(self.post_count.shape)

    def _leak(self, interval_s: float) -> Tensor:
        w = self.synapses.weights()
        self.leak_writes += 1
        return self._decay_crossbar(w, interval_s, self._tau())

    def _tau(self) -> Tensor:
        """``τ_leak`` per neuron ``[R, out]``, or per synapse ``[R, out, in]`` with the correlation factor."""
        tau = self.rule.tau_leak(self.post_count, self._theta())
        return tau if self.corr is None else self.rule.synapse_tau(tau, self.corr.transpose(1, 2))

    def _decay_crossbar(self, w: Tensor, interval_s: float, tau: Tensor) -> Tensor:
        """Leak Δw ``[R, in, out]`` (crossbar layout) over ``interval_s``."""
        wt = w.transpose(1, 2)  # [R, out, in]: decayed() works post-major
        return (self.rule.decayed(wt, interval_s, tau) - wt).transpose(1, 2)

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        pre = self.synapses.dense(pre, rows)
        r = self.rule
        before = self.post_count.clone()
        z = post if post is not None else self.post_count.new_zeros(self.post_count.shape)
        r.update_activity(self.x_pre, self.pre_count, self.post_count, pre, z)
        dw = None
        if post is not None:
            d = r.recovery_dw(self.x_pre, self.pre_count, post, before)
            if d is not None:
                dw = d.transpose(1, 2)
            if self.corr is not None:
                self.corr.add_(self.x_pre.unsqueeze(2) * post.unsqueeze(1))
        leak = self._decay_crossbar(self.synapses.weights(), r.dt_s, self._tau())
        self.synapses.add(leak if dw is None else leak + dw)

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        r = self.rule
        t_steps = pre.shape[0]
        dw = self.synapses.new_delta()
        ev = torch.nonzero(post > 0)  # (t, r, j) in time order
        if ev.shape[0]:
            t_last = int(ev[:, 0].max()) + 1
            x_pre = pre_trace_at_events(pre, r.decay_pre, self.x_pre, ev, rows)  # [K, in]
            acc_sub = torch.cumsum(pre[:t_last], 0)[ev[:, 0], ev[:, 1]]  # Pre_acc of this presentation
            acc = acc_sub if rows is None else x_pre.new_zeros(x_pre.shape).index_copy_(1, rows, acc_sub)
            cum = torch.cumsum(post[:t_last], 0) - post[:t_last]  # earlier spikes of this image
            p_before = self.post_count[ev[:, 1], ev[:, 2]] + cum[ev[:, 0], ev[:, 1], ev[:, 2]]  # [K]
            drive = (x_pre - r.offset) - r.k_const * torch.pow(2.0, -acc)
            values = r.w_max * r.learning_rate(p_before).unsqueeze(1) * drive
            potentiate(dw, ev, values, 1.0)
            if self.corr is not None:
                potentiate(self.corr, ev, x_pre, 1.0)
        _set_final(self.x_pre, pre, r.decay_pre, rows)
        if r.decay_post_acc != 1.0:
            self.post_count.mul_(r.decay_post_acc ** t_steps)
        self.post_count.add_(post.sum(0))
        self._since_leak_s += (t_steps + self.extra_steps) * r.dt_s
        self._count += 1
        if self._count % self.leak_interval == 0:
            dw.add_(self._leak(self._since_leak_s))
            self._since_leak_s = 0.0
        self.synapses.add(dw)
