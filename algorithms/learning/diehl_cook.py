"""The Diehl & Cook (2015) network: Poisson input → adaptive excitatory layer ↔ inhibitory layer, label
assignment and vote (Diehl & Cook, "Unsupervised learning of digit recognition using spike-timing-dependent
plasticity", Front. Comput. Neurosci. 9:99, 2015; released Brian code ``peter-u-diehl/stdp-mnist``).

Network
-------
``n_in`` Poisson inputs (rate = pixel·``max_rate_hz``) → ``n_e`` excitatory neurons through the plastic
synapses (:mod:`algorithms.learning.synapses`); excitatory neuron ``j`` excites inhibitory neuron ``j``
(weight ``w_ei``), inhibitory neuron ``j`` inhibits every excitatory neuron but ``j`` (``w_ie``). Spike order
(``synchronous``, the ``fast`` default): as BindsNET's ``Network.run``, every connection delivers the spikes
of step t−1 at step t — the input spikes X(t) drive the excitatory layer at t+1, an excitatory spike at t
reaches its inhibitory neuron at t+1 and that neuron's spike the other excitatory neurons at t+2;
``synchronous: false``: X(t) at t, the inhibitory layer in the same step, inhibition at t+1. ``paper`` mode
follows Brian 1's order (:mod:`algorithms.neurons.diehl_cook`). Neurons: :mod:`algorithms.neurons.diehl_cook`.
Learning: :mod:`algorithms.learning.rules`.

Engines (equal results: spikes and θ exactly, weights to float32 rounding of the rule's sums): on CPU
with numba (``pip install xbarsim[fast]``) a ``fast`` presentation runs in one compiled loop over steps and
neurons (every replica and sample on its own clock) and the pair rule is one walk over the spikes
(:mod:`algorithms.learning.pair_kernel`); otherwise the torch engines jump over quiet steps in closed form
(:meth:`DiehlCookNetwork._run_replicas`). The one-spike choices are drawn up front (one ``U[0, 1)`` per step
and sample), so every engine picks the same neuron.

Two modes (:meth:`DiehlCookConfig.preset`)
-----------------------------------------
* ``paper`` — the released code: dt 0.5 ms, 350 ms presentation + 150 ms rest (input off, state not
  reset), 63.75 Hz max, conductance-based neurons, triplet rule, θ+ 0.05 mV, τ_θ 1e7 ms, θ₀ 20 mV,
  column sum 78 (78/784 of the inputs) before every presentation, initial weights ``0.3·(U + 0.01)``, w_ei 10.4, w_ie 17.0, and
  "fewer than 5 excitatory spikes → input intensity +1 (of 2, i.e. +31.875 Hz max) and present again".
  Two further details of the released code are options, off by default (the default equals the step loop
  and the crossbar, see the README): ``online_dw`` — Brian 1 writes ``w`` at every spike event, so a
  presentation's Δw acts on its own later input (``OnlineTripletDrive``); ``input_delay_s: 0.01`` — the
  per-synapse input delays U[0, 10 ms) (``delay['ee_input']``) on the drive and on the rule (arrival
  times, as Brian's C STDP on a ``DelayConnection``), software synapses only.
* ``fast`` — BindsNET 0.3.4 ``DiehlAndCook2015`` as run by its ``eth_mnist`` example: dt 1 ms, 250 ms,
  128 Hz max, current-based neurons with ``one_spike`` WTA, pair rule ν = (1e-4, 1e-2), w_ei 22.5,
  w_ie 120, column sum 78.4 (0.1 of the inputs), initial weights ``0.3·U``, state and traces reset between
  samples, synchronous spike order.

Writes: ``write_every: step`` writes Δw after every time step (the reference semantics of both codes);
``write_every: image`` keeps the weights of a presentation fixed, accumulates its Δw and writes them in
one burst after it (the learning rule sees the same spikes, the currents differ by the within-image
weight change, ≤ ν_post per post spike). With ``normalisation: reprogram`` that burst also writes the
column-sum normalisation of the columns it touched — one programming pass per image to
``clip(clip(w + Δw)·total/Σ_i clip(w + Δw))`` (the next presentation then finds them normalised).

Readout: label assignment by the largest mean response per class over labelled samples (learning off);
prediction by the Diehl & Cook vote: the class whose assigned neurons have the largest mean spike count.
BindsNET's second readout, ``proportion_weighting`` (:func:`proportion_vote`), weights each assigned
neuron's spikes by the share of its labelling response that went to its class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor

from ..encoding import PoissonEncoder, isi_spike_trains
from ..neurons import current_kernel
from ..neurons.diehl_cook import (
    DiehlCookConductanceLIF,
    DiehlCookCurrentLIF,
    DiehlCookInhibitoryLIF,
    _pick_one,
    run_conductance,
)
from .rules import LearningRule, OnlineTripletDrive, PairSTDP, PowerLawSTDP, TripletSTDP
from .synapses import NORMALISATIONS, Synapses

__all__ = ["DiehlCookConfig", "DiehlCookNetwork", "MODES", "WRITE_EVERY", "NU_SCHEDULES", "rate_scale", "assign_labels", "vote",
           "class_rates", "labels_from_rates", "proportion_vote",
           "init_weights", "E_NEURON_CURRENT_J", "E_NEURON_CONDUCTANCE_J", "E_TRACE_J", "E_DW_J"]

MODES = ("paper", "fast")
WRITE_EVERY = ("step", "image")
RULE_NAMES = ("pair", "triplet", "power")
INPUT_SPIKES = ("poisson", "poisson_isi")
NU_SCHEDULES = ("constant", "linear", "exponential")


def rate_scale(schedule: str, final: float, progress: float) -> float:
    """Learning-rate factor at ``progress`` ∈ [0, 1] of training (images learned / images to learn):
    ``constant`` 1; ``linear`` ``1 − (1 − final)·progress``; ``exponential`` ``final**progress`` (a geometric
    decay from 1 to ``final``). Annealing the rate over the pass is xbarsim's option, not Diehl & Cook's
    (their rates are constant); it is the usual cure for a one-pass learner that keeps overwriting what it
    learned early (README, STDP accuracy)."""
    if schedule not in NU_SCHEDULES:
        raise ValueError(f"algorithm.nu_schedule: got {schedule!r}; allowed {list(NU_SCHEDULES)}")
    if not 0.0 < final <= 1.0:
        raise ValueError(f"algorithm.nu_final: got {final!r}; the final rate as a fraction of the first, in (0, 1]")
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - (1.0 - final) * p
    if schedule == "exponential":
        return final ** p
    return 1.0

#: Energy per neuron update [J], digital fp32 at 45 nm (Horowitz, ISSCC 2014: mult 3.7 pJ, add 0.9 pJ) [est]:
#: current-based: 1 mult (leak) + 3 adds (rest term, input, threshold compare) = 6.4 pJ;
#: conductance-based: 4 mults + 8 adds (two conductance decays, three driving-force products, sums, compare).
E_NEURON_CURRENT_J = 3.7e-12 + 3 * 0.9e-12
E_NEURON_CONDUCTANCE_J = 4 * 3.7e-12 + 8 * 0.9e-12
#: STDP bookkeeping, event-driven [est, same source]: a spike stores its time stamp (the trace is
#: ``e^(−Δt/τ)`` of the stamp, looked up when used): 1 add per pre or post spike; each Δw entry is one
#: trace look-up times ν and an add: 1 mult + 1 add.
E_TRACE_J = 0.9e-12
E_DW_J = 3.7e-12 + 0.9e-12


@dataclass
class DiehlCookConfig:
    """All constants of one network (SI units). Use :meth:`preset` for the two published parameter sets."""

    mode: str = "fast"
    n_neurons: int = 100
    dt_s: float = 1e-3
    t_present_s: float = 0.25
    t_rest_s: float = 0.0
    max_rate_hz: float = 128.0
    conductance: bool = False
    rule: str = "pair"
    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    #: rule ``power`` (Diehl & Cook Eq. 3): target pre trace and weight-dependence exponent (η = ``nu_post``)
    x_tar: float = 0.4
    mu: float = 0.2
    theta_plus: float = 0.05e-3
    tau_theta_s: float = 1e4
    norm_total: float | None = None
    norm_fraction: float = 0.1
    w_ei: float = 22.5
    w_ie: float = 120.0
    w_init_scale: float = 0.3
    w_init_offset: float = 0.0
    w_max: float = 1.0
    one_spike: bool = True
    min_spikes: int = 0
    intensity_step: float = 0.5
    max_retries: int = 10
    reset_between: bool = True
    #: BindsNET's synchronous update (every connection delivers the spikes of step t−1; current-based only)
    synchronous: bool = True
    #: input spike trains: ``poisson`` (a spike with p = 1 − e^(−r·dt) every step: a Poisson process) or
    #: ``poisson_isi`` (BindsNET 0.3.4 ``PoissonEncoder``: Poisson-distributed inter-spike intervals, regular)
    input_spikes: str = "poisson"
    write_every: str = "image"
    normalisation: str = "reprogram"
    #: conductance (paper) mode, triplet rule: a presentation's Δw acts on its own input drive as it accrues
    #: (Brian 1 writes w at every spike event), the weights being written after the presentation
    online_dw: bool = False
    #: conductance (paper) mode, software synapses: per-synapse input delays drawn U[0, input_delay_s) once per
    #: network (Brian's ``delay['ee_input']``), acting on the drive and on the triplet rule (arrival times)
    input_delay_s: float = 0.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"algorithm.mode: got {self.mode!r}; allowed: {', '.join(MODES)}")
        if self.rule not in RULE_NAMES:
            raise ValueError(f"algorithm.rule: got {self.rule!r}; allowed: {', '.join(RULE_NAMES)}")
        if self.input_spikes not in INPUT_SPIKES:
            raise ValueError(f"algorithm.input_spikes: got {self.input_spikes!r}; allowed: {', '.join(INPUT_SPIKES)}")
        if self.write_every not in WRITE_EVERY:
            raise ValueError(f"algorithm.write_every: got {self.write_every!r}; allowed: {', '.join(WRITE_EVERY)}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"algorithm.normalisation: got {self.normalisation!r}; allowed: {', '.join(NORMALISATIONS)}")
        if int(self.n_neurons) != self.n_neurons or self.n_neurons < 1:
            raise ValueError(f"algorithm.n_neurons: got {self.n_neurons!r}; must be an integer ≥ 1")
        if self.norm_total is not None and not (math.isfinite(self.norm_total) and self.norm_total > 0):
            raise ValueError(f"algorithm.norm_total: got {self.norm_total!r}; must be a finite number > 0 or null")
        for name in ("dt_s", "t_present_s", "max_rate_hz", "w_max", "norm_fraction", "tau_theta_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"algorithm.{name}: got {v!r}; must be a finite number > 0")
        for name in ("t_rest_s", "nu_pre", "nu_post", "x_tar", "mu", "theta_plus", "w_ei", "w_ie", "w_init_scale", "w_init_offset",
                     "intensity_step", "input_delay_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"algorithm.{name}: got {v!r}; must be a finite number ≥ 0")
        self.steps = int(round(self.t_present_s / self.dt_s))
        self.rest_steps = int(round(self.t_rest_s / self.dt_s))
        if self.steps < 1:
            raise ValueError(f"algorithm.t_present_s: got {self.t_present_s!r}; shorter than one step dt_s = {self.dt_s!r}")

    @classmethod
    def preset(cls, mode: str = "fast", **overrides) -> DiehlCookConfig:
        """The ``paper`` or ``fast`` constants (module docstring), with ``overrides``."""
        if mode == "paper":
            base = dict(mode="paper", dt_s=0.5e-3, t_present_s=0.35, t_rest_s=0.15, max_rate_hz=63.75, conductance=True,
                        rule="triplet", norm_fraction=78.0 / 784, w_ei=10.4, w_ie=17.0, w_init_offset=0.01, one_spike=False,
                        min_spikes=5, reset_between=False)
        elif mode == "fast":
            base = dict(mode="fast")
        else:
            raise ValueError(f"algorithm.mode: got {mode!r}; allowed: {', '.join(MODES)}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"algorithm.{unknown[0]}: unknown network constant; allowed: {', '.join(sorted(names))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def column_sum(self, n_in: int) -> float:
        """The normalised column sum: ``norm_total``, or ``norm_fraction·n_in`` (78 / 78.4 for 784 inputs)."""
        return float(self.norm_total) if self.norm_total is not None else self.norm_fraction * n_in

    def make_rule(self) -> LearningRule:
        if self.rule == "pair":
            return PairSTDP(self.nu_pre, self.nu_post, dt_s=self.dt_s, reset_traces=self.reset_between)
        if self.rule == "power":
            return PowerLawSTDP(self.nu_post, self.x_tar, self.mu, dt_s=self.dt_s, w_max=self.w_max,
                                reset_traces=self.reset_between)
        return TripletSTDP(self.nu_pre, self.nu_post, dt_s=self.dt_s, reset_traces=self.reset_between)


def init_weights(cfg: DiehlCookConfig, n_in: int, replicas: int, generator: torch.Generator | None,
                 dtype=torch.float32, device=None) -> Tensor:
    """Initial input weights ``[R, in, out]``: ``w_init_scale·(U[0,1) + w_init_offset)``."""
    u = torch.rand(replicas, n_in, cfg.n_neurons, generator=generator, dtype=dtype, device=device)
    return (u + cfg.w_init_offset) * cfg.w_init_scale


@dataclass
class _Stats:
    steps: int = 0
    input_spikes: float = 0.0
    exc_spikes: float = 0.0
    presentations: int = 0
    dw_entries: float = 0.0
    extra: dict = field(default_factory=dict)


class DiehlCookNetwork:
    """One or ``R`` (``synapses.replicas``) independent Diehl & Cook networks stepped together.

    ``synapses``: a :class:`~algorithms.learning.synapses.Synapses` (software or crossbar) with
    ``[R, n_in, n_neurons]`` weights; ``rule``: the bound learning rule (default: the config's);
    ``generator``: one ``torch.Generator`` for all random draws, or a list of ``R`` (one per replica: replica
    r then draws — and, in ``fast`` mode with weights written per image, computes — bit for bit what a
    one-replica network with generator r would).

    Speed: ``fast`` mode jumps over the steps without a crossing in closed form
    (:meth:`DiehlCookCurrentLIF.scan`), every replica on its own clock (:meth:`_run_replicas`); ``paper``
    mode does the same for the conductance network (:func:`~algorithms.neurons.diehl_cook.run_conductance`).
    ``scan_horizon = 0`` steps every step (the reference loop).
    """

    def __init__(self, cfg: DiehlCookConfig, synapses: Synapses, generator: torch.Generator | None = None,
                 rule: LearningRule | None = None):
        if synapses.n_post != cfg.n_neurons:
            raise ValueError(f"synapses: {synapses.n_post} columns; algorithm.n_neurons is {cfg.n_neurons}")
        self.cfg = cfg
        self.syn = synapses
        if isinstance(generator, (list, tuple)):
            if len(generator) != synapses.replicas:
                raise ValueError(f"generator: got a list of {len(generator)} generators; one per replica ({synapses.replicas}) "
                                 "or a single torch.Generator")
            self.generators = list(generator)
            self.generator = self.generators[0]
        else:
            self.generators = None
            self.generator = generator
        self.R, self.n_in, self.n = synapses.replicas, synapses.n_pre, synapses.n_post
        self.device, self.dtype = synapses.device, synapses.dtype
        self.encoder = PoissonEncoder(cfg.max_rate_hz, cfg.dt_s)
        if cfg.conductance:
            self.exc = DiehlCookConductanceLIF(dt_s=cfg.dt_s, theta_plus=cfg.theta_plus, tau_theta_s=cfg.tau_theta_s)
            self.inh = DiehlCookInhibitoryLIF(dt_s=cfg.dt_s, conductance=True)
            self.w_unit = 1.0  # a weight is a conductance increment in leak units
        else:
            self.exc = DiehlCookCurrentLIF(dt_s=cfg.dt_s, theta_plus=cfg.theta_plus, tau_theta_s=cfg.tau_theta_s,
                                           one_spike=cfg.one_spike)
            self.inh = DiehlCookInhibitoryLIF(dt_s=cfg.dt_s, conductance=False, v_init_offset=0.0)
            self.w_unit = self.exc.w_unit  # 1 mV per weight unit
        self.rule = (rule or cfg.make_rule()).bind(synapses)
        self.theta = None
        self.state = None
        self.istate = None
        self.stats = _Stats()
        #: steps the loop looks ahead in closed form (:meth:`DiehlCookCurrentLIF.scan`, :func:`scan_conductance`;
        #: 0: step by step, the reference)
        self.scan_horizon = 64
        #: the conductance-based (paper) closed-form windows are used up to this many rows R·B (a batch of
        #: test samples in lockstep has an event almost every step: stepped one by one, in numpy)
        self.scan_rows = 16
        self._no_rows = torch.zeros(1, dtype=torch.long, device=self.device)  # the rest: one silent input
        self._counted = 0.0
        self._ops_counted = 0.0
        self.e_neuron = E_NEURON_CONDUCTANCE_J if cfg.conductance else E_NEURON_CURRENT_J
        self.exc_one_spike = bool(getattr(self.exc, "one_spike", False))

    def _uniform(self, t_steps: int, b: int, a: int) -> Tensor:
        """``U[0, 1)`` of shape ``[T, R, b, a]``: one draw from the generator, or with one generator per replica
        each replica's ``[T, 1, b, a]`` from its own (replica r then draws what a one-replica network would)."""
        kw = dict(device=self.device, dtype=self.dtype)
        if self.generators is None:
            return torch.rand(t_steps, self.R, b, a, generator=self.generator, **kw)
        buf = torch.empty(self.R, t_steps, b, a, **kw)  # replica-major storage, [T, R, b, a] view
        for k, g in enumerate(self.generators):
            torch.rand((t_steps, b, a), generator=g, out=buf[k])
        return buf.permute(1, 0, 2, 3)

    def _isi_trains(self, rate_hz: Tensor) -> Tensor:
        """``input_spikes: poisson_isi``: BindsNET's spike trains (:func:`~algorithms.encoding.isi_spike_trains`)
        for the rates ``[R, b, a]`` [Hz], ``[T, R, b, a]`` (one generator per replica: replica r draws its own)."""
        t = self.cfg.steps
        if self.generators is None:
            return isi_spike_trains(rate_hz, t, self.cfg.dt_s, self.generator)
        return torch.cat([isi_spike_trains(rate_hz[k:k + 1], t, self.cfg.dt_s, g) for k, g in enumerate(self.generators)], 1)

    # -- state ------------------------------------------------------------------------------------
    def _train_state(self):
        if self.state is None:
            self.state = self.exc.init_state((self.R, 1, self.n), self.device, self.dtype, theta=self.theta)
            self.theta = self.state.theta
            self.istate = self.inh.init_state((self.R, 1, self.n), self.device, self.dtype)
        return self.state, self.istate

    def _fresh_state(self, b: int):
        """State for inference on ``b`` samples per replica: at rest, θ frozen at its learned value."""
        theta = self.theta if self.theta is not None else self.exc.init_state((self.R, 1, self.n), self.device, self.dtype).theta
        st = self.exc.init_state((self.R, b, self.n), self.device, self.dtype, theta=theta)
        st.v.fill_(self.exc.v_rest)
        ist = self.inh.init_state((self.R, b, self.n), self.device, self.dtype)
        ist.v.fill_(self.inh.v_rest)
        return st, ist

    # -- simulation -------------------------------------------------------------------------------
    def _run(self, spikes: Tensor, st, ist, learning: bool, ledger=None, record: bool = False, rows=None):
        """Simulate ``spikes`` ``[T, R, B, A]`` (bool) on the input ``rows`` (``A`` of them; None: all).
        Returns excitatory spike counts ``[R, B, n]`` and, with ``record``, the spike train ``[T, R, B, n]``."""
        cfg = self.cfg
        t_steps, r, b, _ = spikes.shape
        per_step = learning and cfg.write_every == "step"
        sync = cfg.synchronous and not cfg.conductance
        # synchronous: the input spikes of step t drive the neurons at t + 1 (those of the last step arrive after
        # the presentation and are never read)
        delivered = spikes[:-1] if sync else spikes
        any_input = bool(delivered.any())
        if not per_step and any_input:
            # replica-major [R, T, b, ·] throughout (the layout the draws come in, the compiled loops use);
            # ``drive`` is the [T, R, b, N] view
            t_read = delivered.shape[0]
            x = torch.empty(r, t_read, b, spikes.shape[-1], dtype=self.dtype, device=self.device)
            x.copy_(delivered.permute(1, 0, 2, 3))
            y = self.syn.read(x.view(r, t_read * b, -1), ledger, rows).view(r, t_read, b, self.n)
            if self.w_unit != 1.0:
                y = y * self.w_unit
            drive_rm = torch.empty(r, t_steps, b, self.n, dtype=y.dtype, device=self.device)
            if sync:
                drive_rm[:, 0] = self.exc.drive(0.0)
                torch.add(y, self.exc.drive(0.0), out=drive_rm[:, 1:])
            else:
                torch.add(y, self.exc.drive(0.0), out=drive_rm)
            drive = drive_rm.permute(1, 0, 2, 3)
        if cfg.conductance and not per_step and self.scan_horizon > 0 and self.device.type == "cpu":
            horizon = self.scan_horizon if r * b <= self.scan_rows else 0
            return self._run_conductance(drive if any_input else None, t_steps, st, ist, learning, record, horizon,
                                         spikes=spikes, rows=rows)
        # one-spike choices: U[0, 1) per step and neuron, drawn up front (every engine picks alike)
        picks = self._uniform(t_steps, b, 1) if (self.exc_one_spike and not cfg.conductance) else None
        if (any_input and not per_step and not cfg.conductance and self.scan_horizon > 0 and current_kernel.AVAILABLE
                and self.device.type == "cpu" and self.dtype == torch.float32 and (b == 1 or not learning)):
            pk = picks[..., 0].permute(1, 0, 2) if picks is not None else drive_rm.new_zeros(drive_rm.shape[:3])
            post = torch.from_numpy(current_kernel.run_current(
                self.exc, self.inh, drive_rm.numpy(), pk.contiguous().numpy(), st, ist,
                cfg.w_ei * self.w_unit, -cfg.w_ie * self.w_unit, learning, sync)).permute(1, 0, 2, 3)
            self.stats.steps += t_steps
            return post.sum(0), (post if record else None)
        if r > 1 and any_input and not per_step and not cfg.conductance and self.scan_horizon > 0:
            return self._run_replicas(drive, st, ist, learning, record, picks)
        post = torch.zeros(t_steps, r, b, self.n, dtype=self.dtype, device=self.device)
        exc, inh, gen = self.exc, self.inh, self.generator
        conductance = cfg.conductance
        pending = None  # synchronous: the excitatory spikes of step t−1, reaching the inhibitory layer at t
        w_ei = cfg.w_ei * self.w_unit
        w_ie = cfg.w_ie * self.w_unit
        inhibition = st.pending if conductance else None
        exc_to_inh = ist.pending if conductance else None
        t_inh = -1  # last step the (current-based, event-driven) inhibitory layer was brought up to date
        drives = drive.unbind(0) if (any_input and not per_step) else None
        skim = any_input and not per_step and not conductance and self.scan_horizon > 0
        t = -1
        while t + 1 < t_steps:
            t += 1
            if skim and inhibition is None and pending is None:  # jump over steps in which no excitatory neuron fires
                t += exc.scan(drive[t:t + self.scan_horizon], st)
                if t >= t_steps:
                    break
            if not any_input:
                xt = None
            elif per_step:
                if sync and t == 0:
                    xt = None  # the input spikes of step t reach the neurons at t + 1
                else:
                    xt = self.syn.read(spikes[t - 1 if sync else t].to(self.dtype), ledger, rows)
                    xt = self.exc.drive(xt * self.w_unit if self.w_unit != 1.0 else xt)
            else:
                xt = drives[t]
            if sync:  # BindsNET's synchronous update: every connection delivers the spikes of step t − 1
                arriving = inhibition
                inhibition = None
                if pending is not None:
                    si, ist = inh.step_after(pending * w_ei, ist, t - t_inh - 1)
                    t_inh = t
                    if bool(si.any()):
                        inhibition = (si.sum(-1, keepdim=True) - si) * (-w_ie)  # reaches the excitatory layer at t + 1
                if arriving is not None:
                    xt = (xt if xt is not None else exc.rest_term) + arriving
                s, st = exc.step(xt, st, learning, gen, picks[t] if picks is not None else None)
                pending = s
            elif conductance:  # Brian 1's order: a spike acts on its targets' update of the next step
                s, st = exc.step(xt, st, learning, gen, inhibition=inhibition)
                si, ist = inh.step(exc_to_inh, ist)
                exc_to_inh = s * w_ei if s is not None else None
                inhibition = (si.sum(-1, keepdim=True) - si) * w_ie if bool(si.any()) else None
            else:
                if inhibition is not None:
                    xt = (xt if xt is not None else exc.rest_term) + inhibition
                    inhibition = None
                s, st = exc.step(xt, st, learning, gen, picks[t] if picks is not None else None)
                if s is not None:  # the inhibitory layer only has input (and can only spike) now
                    si, ist = inh.step_after(s * w_ei, ist, t - t_inh - 1)
                    t_inh = t
                    if bool(si.any()):
                        inhibition = (si.sum(-1, keepdim=True) - si) * (-w_ie)
            if s is not None:
                post[t] = s
            if per_step:
                self.rule.step(spikes[t, :, 0].to(self.dtype), s[:, 0] if s is not None else None, rows)
                self._flush(ledger)
        if conductance:
            st.pending, ist.pending = inhibition, exc_to_inh
        else:
            inh.advance(ist, t_steps - 1 - t_inh)
        self.stats.steps += t_steps
        return post.sum(0), (post if record else None)

    def _run_replicas(self, drive: Tensor, st, ist, learning: bool, record: bool, picks: Tensor | None = None):
        """:meth:`_run` for ``R > 1`` current-based networks: every replica keeps its **own clock**. Each
        round, every replica without pending inhibition jumps over its quiet steps from its own time
        (:meth:`DiehlCookCurrentLIF.scan`, per replica: the first crossing of each), then every replica not yet
        at the end takes its next exact step (spike, reset, θ, one-spike pick, inhibitory layer, inhibition of
        the next step), all replicas in the same tensor operations. The rounds are as many as the busiest
        replica needs (not the sum over replicas, as a common clock would take).

        Each replica runs the operations a one-replica network runs, in the same order and rounding (the
        closed-form window, the exact step with its fused leak, the inhibitory catch-up ``e^(−(n+1)dt/τ)``
        per replica), so with one generator per replica (``generator=[g_0, …]``) replica r gives bit for bit
        the spikes and states of a one-replica network with generator ``g_r``. One-spike picks draw
        ``U[0, 1)`` of the replica's ``[1, B, N]`` from its generator when it has more than one crossing
        (B = 1) or any spike (B > 1), as :meth:`DiehlCookCurrentLIF.step` does; with a single shared
        generator the replicas draw from it in turn."""
        exc, inh = self.exc, self.inh
        t_steps, r, b, n = drive.shape
        dev, dt = self.device, self.dtype
        gens = self.generators if self.generators is not None else [self.generator] * r
        horizon = self.scan_horizon
        key = (horizon, t_steps, dt, dev)
        cache = self.__dict__.setdefault("_rep_cache", {})
        if key not in cache:
            kk = torch.arange(horizon, device=dev, dtype=dt).view(-1, 1, 1, 1)
            inv = torch.exp(kk * (exc.dt_s / exc.tau_s))  # as DiehlCookCurrentLIF.scan
            # the inhibitory catch-up factors e^(−k·dt/τ_i) and rest terms as the one-replica code forms them
            # (python float powers, cast by the operation)
            d64 = torch.tensor([inh.decay**k for k in range(t_steps + 2)], dtype=torch.float64, device=dev)
            cache[key] = (kk, inv, d64.to(dt), (inh.v_rest * (1.0 - d64)).to(dt),
                          torch.arange(horizon, device=dev), torch.arange(r, device=dev))
        kk, inv, dpow, crest, jh, rr = cache[key]
        mask_rows = min(horizon, exc.refrac_steps)  # refrac − k ≤ 0 holds for every k ≥ refrac_steps
        post = torch.zeros(t_steps, r, b, n, dtype=dt, device=dev)
        t = torch.zeros(r, dtype=torch.long, device=dev)  # next step of each replica
        t_inh = torch.full((r,), -1, dtype=torch.long, device=dev)
        inhib = None  # inhibition arriving at each replica's next step (±0 where none)
        pend = torch.zeros(r, dtype=torch.bool, device=dev)
        sync = self.cfg.synchronous
        pend_s = None  # synchronous: each replica's excitatory spikes of its previous step (0 where none)
        pend_e = torch.zeros(r, dtype=torch.bool, device=dev)  # replicas whose previous step had a spike
        v, refrac, vi, ri = st.v, st.refrac, ist.v, ist.refrac
        rest, decay, thr_steps = exc.rest_term, exc.decay, float(exc.refrac_steps)
        shape1 = (r, 1, 1)
        while True:
            # -- quiet stretches, per replica (those without inhibition arriving) -----------------
            if sync and pend_s is not None:
                scan = ~(pend_e | pend) if inhib is not None else ~pend_e
            else:
                scan = ~pend if inhib is not None else None
            if scan is None or bool(scan.any()):
                length = (t_steps - t).clamp_(max=horizon)  # [R] window of each replica (≤ 0: at the end)
                idx = (t.view(1, r) + jh.view(-1, 1)).clamp_(max=t_steps - 1)  # [H, R]
                u = drive[idx, rr.view(1, r)]  # [H, R, B, N]
                u[:mask_rows] = torch.where(refrac - kk[:mask_rows] <= 0, u[:mask_rows], rest)
                v_all = torch.cumsum(u.mul_(inv), 0).add_(v, alpha=decay).div_(inv)
                hit = (v_all >= st.thr).view(horizon, r, -1).any(2)  # [H, R]
                hit &= jh.view(-1, 1) < length.view(1, r)
                m = torch.where(hit.any(0), hit.to(torch.int8).argmax(0), length.clamp_(min=0))  # [R] quiet steps
                if scan is not None:
                    m.masked_fill_(~scan, 0)
                v.copy_(torch.where((m > 0).view(shape1), v_all[(m - 1).clamp_(min=0), rr], v))
                refrac.sub_(m.to(dt).view(shape1))
                t += m
            ev = t < t_steps
            n_ev = int(ev.sum())
            if n_ev == 0:
                break
            # -- one exact step of every replica not at the end ------------------------------------
            xt = drive[t.clamp(max=t_steps - 1), rr]  # [R, B, N]
            if inhib is not None:
                xt += inhib  # ±0 where none arrives (x + (±0) = x)
            inhib = None
            if sync and pend_s is not None:
                # the inhibitory layers of the replicas that spiked at their previous step take this step
                inhib, got = self._inhibit_replicas(pend_s, pend_e & ev, t, t_inh, ist, dpow, crest)
                if inhib is not None:
                    pend = got
                t_inh = torch.where(pend_e & ev, t, t_inh)
                pend_s = None
                pend_e = torch.zeros_like(pend_e)
            u1 = torch.where(refrac <= 0, xt, rest)
            if n_ev == r:
                torch.add(u1, v, alpha=decay, out=v)
                refrac.sub_(1.0)
                s = v >= st.thr
            else:
                evv = ev.view(shape1)
                v_new = torch.add(u1, v, alpha=decay)
                s = (v_new >= st.thr) & evv
                v.copy_(torch.where(evv, v_new, v))
                refrac.sub_(evv.to(dt))
            if not bool(s.any()):
                t += ev
                continue
            refrac.masked_fill_(s, thr_steps)
            v.masked_fill_(s, exc.v_reset)
            sf = s.to(dt)
            if learning:
                inc = sf.sum(1, keepdim=True).mul_(exc.theta_plus) if b > 1 else sf * exc.theta_plus
                st.theta.add_(inc)
                st.thr.add_(inc)
            cnt = sf.sum((1, 2))  # [R]
            if exc.one_spike:
                need = (cnt > 1) if b == 1 else (cnt > 0)
                for k in torch.nonzero(need).flatten().tolist():  # ties: a few replicas, a few steps
                    sf[k:k + 1] = _pick_one(sf[k:k + 1], gens[k], picks[t[k], k:k + 1] if picks is not None else None)
            spk = cnt > 0  # [R] replicas with a spike: their inhibitory layer steps now (synchronous: next step)
            ti = torch.nonzero(spk).flatten()
            post[t[ti], ti] = sf[ti]
            if sync:
                pend_s, pend_e = sf, spk
            else:
                inhib, got = self._inhibit_replicas(sf, spk, t, t_inh, ist, dpow, crest)
                if inhib is not None:
                    pend = got
                t_inh = torch.where(spk, t, t_inh)
            t += ev
        # the inhibitory layers catch up to the end of the presentation
        nq = (t_steps - 1 - t_inh).clamp_(min=0)
        go = (nq > 0).view(shape1)
        vi.copy_(torch.where(go, (vi - inh.v_rest).mul_(dpow[nq].view(shape1)).add_(inh.v_rest), vi))
        ri.sub_(nq.to(dt).view(shape1))
        st.busy = exc.refrac_steps + 1  # refractory masks stay on (exact: they select the input where free)
        self.stats.steps += t_steps
        return post.sum(0), (post if record else None)

    def _inhibit_replicas(self, sf: Tensor, spk: Tensor, t: Tensor, t_inh: Tensor, ist, dpow: Tensor, crest: Tensor):
        """:meth:`DiehlCookInhibitoryLIF.step_after` for the replicas ``spk`` ``[R]`` at their step ``t``, with the
        excitatory spikes ``sf`` ``[R, B, N]`` as input, after ``t − t_inh`` steps since each one's last update
        (``dpow``/``crest``: the catch-up factors ``e^(−k·dt/τ_i)`` and rest terms). Returns the inhibition of the
        excitatory layer (``None`` if no inhibitory neuron fired) and the replicas it reaches."""
        inh, dt = self.inh, self.dtype
        vi, ri = ist.v, ist.refrac
        shape1 = (spk.shape[0], 1, 1)
        gap = (t - t_inh).clamp_(max=dpow.shape[0] - 1)
        vi_new = torch.addcmul(torch.where(ri <= (gap - 1).to(dt).view(shape1), sf * (self.cfg.w_ei * self.w_unit), 0.0),
                               vi, dpow[gap].view(shape1).expand_as(vi)).add_(crest[gap].view(shape1))
        ri_new = ri - gap.to(dt).view(shape1)
        sp = spk.view(shape1)
        si = (vi_new >= inh.v_thresh) & sp
        ri_new.masked_fill_(si, float(inh.refrac_steps))
        vi_new.masked_fill_(si, inh.v_reset)
        vi.copy_(torch.where(sp, vi_new, vi))
        ri.copy_(torch.where(sp, ri_new, ri))
        if not bool(si.any()):
            return None, None
        sif = si.to(dt)
        return (sif.sum(-1, keepdim=True) - sif) * (-self.cfg.w_ie * self.w_unit), si.flatten(1).any(1)

    def _run_conductance(self, drive: Tensor | None, t_steps: int, st, ist, learning: bool, record: bool,
                         horizon: int, spikes: Tensor | None = None, rows: Tensor | None = None):
        """:meth:`_run` for conductance-based neurons (:func:`~algorithms.neurons.diehl_cook.run_conductance`:
        quiet stretches jumped over in closed form, the steps with spikes stepped exactly). The weights are
        those of the presentation's start; with ``online_dw`` (learning, triplet rule, one sample per replica)
        the rule's Δw acts on the drive as it accrues, as Brian 1's per-event writes do
        (:class:`~algorithms.learning.rules.OnlineTripletDrive`; the weights themselves are written after the
        presentation as before — on a crossbar the correction is an ideal digital side path on the chip's
        weights, not a device read, and its energy is not charged). ``input_delay_s > 0`` (software synapses):
        the drive with per-synapse delays (:meth:`_delayed_drive`), the rule on arrival times."""
        cfg = self.cfg
        if cfg.input_delay_s > 0 and spikes is not None:
            drive = self._delayed_drive(spikes, rows, t_steps, st, drive is not None)
        plastic = None
        if (learning and cfg.online_dw and drive is not None and spikes is not None and spikes.shape[2] == 1
                and isinstance(self.rule, TripletSTDP)):
            w = self.syn.weights()
            w = w if rows is None else w.index_select(1, rows)
            d = None
            if cfg.input_delay_s > 0:
                d = self._input_delays() if rows is None else self._input_delays().index_select(1, rows)
            plastic = OnlineTripletDrive(self.rule, spikes[:, :, 0].to(self.dtype), rows, w, self.syn.gain, d)
        post = run_conductance(self.exc, self.inh, drive, t_steps, st, ist, cfg.w_ei * self.w_unit,
                               cfg.w_ie * self.w_unit, learning, horizon, plastic=plastic)
        self.stats.steps += t_steps
        return post.sum(0), (post if record else None)

    def _input_delays(self) -> Tensor:
        """Per-synapse input delays in steps ``[R, n_in, n]`` (long): ``floor(U[0, 1)·input_delay_s/dt)``, as Brian 1's
        ``DelayConnection`` (``delay=(0 ms, 10 ms)``: a uniform delay per synapse, truncated to whole steps),
        drawn once from a generator seeded by the network's (replica r: its own), not from its stream."""
        if getattr(self, "_delays", None) is None:
            cfg = self.cfg
            gens = self.generators if self.generators is not None else [self.generator] * self.R
            out = []
            for k, g in enumerate(gens):
                seed = (g.initial_seed() if g is not None else 0) + 0x5DE1A7 + (k if self.generators is None else 0)
                u = torch.rand(self.n_in, self.n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                out.append(torch.floor(u * (cfg.input_delay_s / cfg.dt_s) + 1e-9).long())
            self._delays = torch.stack(out).to(self.device)
            if isinstance(self.rule, TripletSTDP):
                self.rule.delays = self._delays
        return self._delays

    def _delayed_drive(self, spikes: Tensor, rows: Tensor | None, t_steps: int, st, any_input: bool) -> Tensor | None:
        """The input drive ``[T, R, B, N]`` with per-synapse delays: input spike ``(t, i)`` adds ``w_ij`` to column
        ``j`` at step ``t + D_ij`` (the weights of the presentation's start); what arrives after the last step is
        carried in ``st.spill`` to the next call (the rest). Software synapses (a crossbar read delays whole rows:
        see the README)."""
        from .synapses import TorchSynapses

        if not isinstance(self.syn, TorchSynapses):
            raise ValueError("algorithm.input_delay_s: per-synapse input delays are modelled with software synapses "
                             "only (a crossbar row is read at once); set it to 0 for crossbar synapses")
        d_all = self._input_delays()
        _, r, b, _ = spikes.shape
        n = self.n
        kd = int(round(self.cfg.input_delay_s / self.cfg.dt_s)) + 1
        total = t_steps + kd
        out = torch.zeros(total, r, b, n, dtype=self.dtype, device=self.device)
        if any_input:
            w = self.syn.weights() if rows is None else self.syn.weights().index_select(1, rows)
            if self.syn.gain is not None:
                w = w * self.syn.gain
            d = d_all if rows is None else d_all.index_select(1, rows)
            ev = torch.nonzero(spikes)  # (t, r, b, a)
            tt = ev[:, :1] + d[ev[:, 1], ev[:, 3]]  # [K, n] arrival steps
            flat = ((tt * r + ev[:, 1:2]) * b + ev[:, 2:3]) * n + torch.arange(n, device=self.device).view(1, -1)
            out.view(-1).index_add_(0, flat.flatten(), w[ev[:, 1], ev[:, 3]].flatten())
        if st.spill is not None:
            m = st.spill.shape[0]
            out[:m] += st.spill
        st.spill = out[t_steps:].clone() if bool(out[t_steps:].any()) else None
        return out[:t_steps] if (any_input or bool(out[:t_steps].any())) else None

    def _flush(self, ledger, active: Tensor | None = None) -> None:
        syn = self.syn
        if not syn.has_pending():
            return
        if active is not None and not bool(active.all()):
            syn.drop_pending(~active)
        self.stats.dw_entries += syn.pending_entries()
        cfg = self.cfg
        if cfg.normalisation == "reprogram" and cfg.write_every == "image":
            # one programming pass per image: Δw and the column-sum normalisation of the next presentation
            syn.flush(ledger, normalise_to=cfg.column_sum(self.n_in))
        else:
            syn.flush(ledger)

    def _rest(self, st, ist, learning: bool, ledger) -> None:
        """The input-free rest after a presentation (paper mode): the state decays, nothing is reset."""
        if self.cfg.rest_steps:
            z = torch.zeros(self.cfg.rest_steps, self.R, 1, 1, dtype=torch.bool, device=self.device)
            self._present_spikes(z, st, ist, learning, ledger, None, self._no_rows)

    def _present_spikes(self, spikes, st, ist, learning, ledger, active, rows=None):
        record = learning and self.cfg.write_every == "image"
        counts, post = self._run(spikes, st, ist, learning, ledger, record=record, rows=rows)
        if learning:
            self.exc.decay_theta(st, spikes.shape[0])
            if record:
                self.rule.presentation(spikes[:, :, 0].to(self.dtype), post[:, :, 0], rows)
            self._flush(ledger, active)
        return counts

    def present(self, x: Tensor, learning: bool = True, ledger=None) -> Tensor:
        """Show one sample per replica (``x`` ``[R, n_in]`` or ``[n_in]`` in [0, 1]); returns spike counts ``[R, n]``."""
        cfg = self.cfg
        x = x.to(device=self.device, dtype=self.dtype).reshape(-1, self.n_in)
        if x.shape[0] == 1:
            x = x.expand(self.R, -1)
        st, ist = self._train_state()
        if learning and cfg.normalisation != "none":
            self.syn.normalise(cfg.column_sum(self.n_in), cfg.normalisation, ledger)
        rows = torch.nonzero(x.amax(0) > 0).flatten()  # inputs that can spike (event-driven: the rest are never read)
        if rows.numel() == 0:
            rows = self._no_rows
        x = x.index_select(1, rows)
        scale = torch.ones(self.R, 1, device=self.device, dtype=self.dtype)
        active = torch.ones(self.R, dtype=torch.bool, device=self.device)
        result = torch.zeros(self.R, self.n, device=self.device, dtype=self.dtype)
        for attempt in range(cfg.max_retries + 1):
            if cfg.reset_between:
                self.exc.reset(st)
                self.inh.reset(ist)
                if learning:
                    self.rule.reset()
            if cfg.input_spikes == "poisson_isi":
                spikes = self._isi_trains(x.clamp(0, 1).unsqueeze(1) * (cfg.max_rate_hz * scale).unsqueeze(1))
            else:
                p = self.encoder.probability(x, 1.0) if attempt == 0 else -torch.expm1(
                    -x.clamp(0, 1) * (cfg.max_rate_hz * scale) * cfg.dt_s)
                u = self._uniform(cfg.steps, 1, rows.numel())
                spikes = u < p.unsqueeze(1)
            if attempt:
                spikes &= active.view(1, -1, 1, 1)
            counts = self._present_spikes(spikes, st, ist, learning, ledger, active, rows)[:, 0]
            self.stats.input_spikes += float(spikes.sum())
            self.stats.presentations += int(active.sum())
            result = torch.where(active.unsqueeze(1), counts, result)
            self._rest(st, ist, learning, ledger)
            if not cfg.min_spikes:
                break
            need = active & (counts.sum(1) < cfg.min_spikes)
            if not bool(need.any()):
                break
            active = need
            scale = scale + cfg.intensity_step * need.unsqueeze(1).to(self.dtype)
        self.stats.exc_spikes += float(result.sum())
        self.theta = st.theta
        if ledger is not None:
            self._account(ledger, cfg.steps + cfg.rest_steps, learning)
        return result

    def _account(self, ledger, steps: int, learning: bool) -> None:
        """Neuron-update and STDP bookkeeping energy of one presentation per replica (module constants)."""
        n_in_spk = self.stats.input_spikes - self._ops_counted
        self._ops_counted = self.stats.input_spikes
        ledger.add_ops("stdp_input", acs=n_in_spk * self.n, macs_ann=self.R * self.n_in * self.n)
        e = self.R * 2 * self.n * steps * self.e_neuron
        ledger.add("neurons", "neuron", e, events=self.R * 2 * self.n * steps)
        if learning:
            n_tr = self.stats.input_spikes + self.stats.exc_spikes - self._counted
            self._counted = self.stats.input_spikes + self.stats.exc_spikes
            ledger.add("stdp", "digital", n_tr * E_TRACE_J + self.stats.dw_entries * E_DW_J,
                       events=n_tr + self.stats.dw_entries)
            self.stats.dw_entries = 0.0

    def responses(self, x: Tensor, batch_size: int = 64, ledger=None) -> Tensor:
        """Spike counts ``[R, n_samples, n]`` of the frozen network (learning off, θ fixed) for ``x`` ``[n, n_in]``.

        Samples are simulated ``batch_size`` at a time, each from rest. In ``paper`` mode a sample with fewer
        than ``min_spikes`` spikes is shown again at a higher intensity, as in the released code's test run.
        """
        cfg = self.cfg
        x = x.to(device=self.device, dtype=self.dtype).reshape(x.shape[0], -1)
        out = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            b = xb.shape[0]
            rows = torch.nonzero(xb.amax(0) > 0).flatten()
            if rows.numel() == 0:
                rows = self._no_rows
            xb = xb.index_select(1, rows)
            scale = torch.ones(self.R, b, 1, device=self.device, dtype=self.dtype)
            todo = torch.ones(self.R, b, dtype=torch.bool, device=self.device)
            result = torch.zeros(self.R, b, self.n, device=self.device, dtype=self.dtype)
            for _attempt in range(cfg.max_retries + 1):
                st, ist = self._fresh_state(b)
                if cfg.input_spikes == "poisson_isi":
                    spikes = self._isi_trains(xb.clamp(0, 1).unsqueeze(0) * (cfg.max_rate_hz * scale))
                else:
                    p = -torch.expm1(-xb.clamp(0, 1).unsqueeze(0) * (cfg.max_rate_hz * scale) * cfg.dt_s)  # [R, b, in]
                    u = self._uniform(cfg.steps, b, rows.numel())
                    spikes = u < p.unsqueeze(0)
                spikes &= todo.view(1, self.R, b, 1)
                counts, _ = self._run(spikes, st, ist, False, ledger, rows=rows)
                result = torch.where(todo.unsqueeze(-1), counts, result)
                if ledger is not None:
                    ledger.add_ops("stdp_input", acs=float(spikes.sum()) * self.n,
                                   macs_ann=self.R * b * self.n_in * self.n if _attempt == 0 else 0.0)
                    shown = float(todo.sum())  # the samples presented in this round (not those already done)
                    e = shown * 2 * self.n * cfg.steps * self.e_neuron
                    ledger.add("neurons", "neuron", e, events=shown * 2 * self.n * cfg.steps)
                if not cfg.min_spikes:
                    break
                need = todo & (counts.sum(-1) < cfg.min_spikes)
                if not bool(need.any()):
                    break
                todo = need
                scale = scale + cfg.intensity_step * need.unsqueeze(-1).to(self.dtype)
            out.append(result)
            if ledger is not None:
                ledger.count_inferences(self.R * b)
        return torch.cat(out, 1)

    def with_config(self, **changes) -> DiehlCookConfig:
        return replace(self.cfg, **changes)


def class_rates(counts: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Mean spike count of every neuron per class, ``[R, C, N]``, over labelled samples (``counts`` ``[R, n, N]``,
    ``labels`` ``[n]``; a class without samples: 0)."""
    onehot = torch.nn.functional.one_hot(labels.to(counts.device).long(), n_classes).to(counts.dtype)  # [n, C]
    return torch.einsum("rnj,nc->rcj", counts, onehot) / onehot.sum(0).clamp(min=1).view(1, -1, 1)


def labels_from_rates(rates: Tensor) -> Tensor:
    """Each neuron's class ``[R, N]``: the largest of its mean responses ``rates`` ``[R, C, N]``; −1 where it never
    fired (Diehl & Cook ``get_new_assignments``)."""
    best, cls = rates.max(1)
    return torch.where(best > 0, cls, torch.full_like(cls, -1))


def assign_labels(counts: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Each neuron's class: the largest mean spike count per class (``counts`` ``[R, n, N]``, ``labels`` ``[n]``);
    −1 for neurons that never fired (Diehl & Cook ``get_new_assignments``). Returns ``[R, N]`` (long)."""
    return labels_from_rates(class_rates(counts, labels, n_classes))


def _one_hot_labels(assignments: Tensor, n_classes: int, dtype) -> Tensor:
    """``[R, N, C]`` one-hot of the neurons' labels (a row of zeros for −1)."""
    return torch.nn.functional.one_hot((assignments + 1).clamp(min=0), n_classes + 1)[..., 1:].to(dtype)


def vote(counts: Tensor, assignments: Tensor, n_classes: int) -> Tensor:
    """Diehl & Cook vote: class scores ``[R, n, C]`` = mean spike count of the neurons assigned to each class."""
    oh = _one_hot_labels(assignments, n_classes, counts.dtype)
    return torch.bmm(counts, oh) / oh.sum(1, keepdim=True).clamp(min=1)


def proportion_vote(counts: Tensor, rates: Tensor) -> Tensor:
    """BindsNET's ``proportion_weighting`` (``bindsnet.evaluation``, 0.3.4): class scores ``[R, n, C]``,
    ``S_c = Σ_{j: a_j = c} p_jc·s_j / |{j: a_j = c}|``, with ``s_j`` neuron j's spike count, ``a_j`` its label
    (:func:`labels_from_rates`) and ``p_jc = r_jc / Σ_k r_jk`` the share of its labelling response ``rates``
    ``[R, C, N]`` that went to class c. A neuron that never fired while labelled counts for no class (BindsNET
    gives it class 0 with weight 0, which only enlarges class 0's denominator)."""
    total = rates.sum(1, keepdim=True)  # [R, 1, N]
    prop = torch.where(total > 0, rates / total.clamp(min=torch.finfo(rates.dtype).tiny), torch.zeros_like(rates))
    oh = _one_hot_labels(labels_from_rates(rates), rates.shape[1], counts.dtype)  # [R, N, C]
    return torch.bmm(counts, oh * prop.transpose(1, 2).to(counts.dtype)) / oh.sum(1, keepdim=True).clamp(min=1)
