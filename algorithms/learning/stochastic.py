"""Stochastic STDP on binary synapses, in software (Bernoulli draws) or on MTJ devices that decide themselves.

The rule (:class:`StochasticSTDP`)
----------------------------------
Every synapse is binary, ``w ∈ {w_min, w_max}`` (MTJ antiparallel = OFF, parallel = ON). An STDP
event does not add ``Δw``; it *switches* the synapse with a probability set by spike timing
(Srinivasan, Sengupta & Roy, Sci. Rep. 6:29545, 2016; Srinivasan & Roy, Front. Neurosci. 13:189,
2019, "ReStoCNet"; the talk's ``p(Δw) ≈ exp(−(t_post − t_pre)/τ)``). The timing enters through
nearest-spike traces, ``x ← x·e^(−dt/τ)`` every step and ``x = 1`` on a spike, so
``x_pre = exp(−Δt/τ_pre)`` with ``Δt`` the time since the last pre spike:

* potentiation, on a post spike of neuron ``j``:  ``P(OFF → ON) = γ_pot·x_pre,i``;
* depression, one of (``depression``):

  - ``"anti_hebbian"`` (ReStoCNet's hybrid HB-STDP, the default): on the same post spike, a synapse
    whose pre neuron was silent within the window (``x_pre < x_window``, i.e.
    ``Δt > τ_pre·ln(1/x_window)``) switches ``ON → OFF`` with ``P = γ_dep·(1 − x_pre,i)``; recent
    pres (``x_pre ≥ x_window``) are potentiated instead, so each write is one signed attempt;
  - ``"pre"`` (the pair rule's depression branch, Srinivasan 2016): on a pre spike of input ``i``,
    ``P(ON → OFF) = γ_dep·x_post,j`` (``x_post`` read before this step's post spikes);
  - ``"balanced"``: the anti-Hebbian window rule with the depression scale chosen per post spike so that
    the column's expected number of ON synapses moves to ``N* = on_target·n_in`` (the binary counterpart of
    the Diehl & Cook column normalisation, whose column sum 0.1·784 = 78.4 weight units is ``N*·w_max`` at
    ``on_target = 0.1``). For the post spike ``k`` of neuron ``j`` with ON states ``b_i`` (fraction of the
    elements ON, read before the presentation's writes), potentiation mass ``A = Σ_{recent} γ_pot·x_i·(1 − b_i)``
    and depression mass ``S = Σ_{silent} (1 − x_i)·b_i``, the silent ON synapses switch OFF with
    ``P = c·(1 − x_i)``, ``c = clip((A + (Σ_i b_i − N*)/n_j)/S, 0, 1)`` (``n_j``: post spikes of neuron ``j`` in
    this presentation), so that ``E[ΔN_on] = A − c·S = −(N_on − N*)/n_j``: the expected ON count is pulled to
    ``N*`` at every presentation instead of drifting to where a fixed ``γ_dep`` balances ``γ_pot`` (which depends
    on the input statistics: ≈ 0.2 of the synapses for MNIST at ``γ_dep/γ_pot = 1/3``). ``gamma_dep`` is not
    used. On a crossbar ``A``, ``S`` and ``N_on`` are column reads with the trace values (or 1) on the rows.
    The papers' own depression (a fixed ``γ_dep``) is ``"anti_hebbian"``; this form is xbarsim's choice;
  - ``"both"``: the two above; ``"none"``: potentiation only.

  One write pulse per cell and step: in the column of a neuron that spiked, the post-triggered
  decision replaces a pre-triggered depression (potentiation wins). The exact HB-STDP constants of ReStoCNet
  (window, γ) are not reproduced; the window rule above is the form implemented here.
* attempts with ``P < p_min`` are not made (no pulse, no energy): the write driver skips them.

Multi-device "long-term short-term" synapses (Srinivasan 2016): ``k`` binary elements per synapse,
element ``m`` switching with ``P·s_m`` (``element_scales`` = ``s``; e.g. ``[1, 0.1]``: a volatile-like
fast element and a stable slow one); the effective weight is
``w = w_min + (w_max − w_min)·(1/k)·Σ_m b_m`` — ``k = 1`` is the plain binary synapse.

Two realisms (:class:`BinarySynapses`)
--------------------------------------
* ``bernoulli``: the algorithm draws ``u ~ U[0,1)`` per attempted cell and switches where ``u < P``. The draws
  (both modes) are counter-based (:mod:`~algorithms.learning.counter_rng`, SplitMix64: a pure function of the
  attempt's index and a per-call seed from the synapses' generator), so the compiled pass evaluates them only
  for cells not already in the target state and still gives the torch path's result bit for bit.
* ``device``: every element is an MTJ cell (:class:`device_models.STTMTJ` / ``SOTMTJ``). The write
  circuit turns ``P`` into a pulse through the model's inverse at **nominal** parameters,
  ``I = current_scale · I_nom(P, t_pulse)`` (:meth:`~device_models.MTJ.current_for_probability`:
  Néel–Brown ``I = Ic0·[1 − ln(t/(τ0·(−ln(1−P))))/Δ]`` below Ic0, precessional above), and the
  **cell** switches with its own ``P_sw(I, t)`` using its own Δ and Ic0 (device-to-device spread)
  — a circuit calibrated to the nominal device is miscalibrated for every real one. Reads (each
  input spike is a read pulse on its row) disturb STT cells by Néel–Brown at ``I_read`` (applied after
  each read call with the per-row read counts). Energy per attempt ``I²·R_write·t_pulse`` (STT: the MTJ
  in its pre-pulse state; SOT: the heavy-metal strip), charged to the ledger component ``write``
  whether or not the cell switches.

The crossbar input is the column current of a unipolar array with a reference column at the
nominal AP read conductance: ``i_j = v_read·Σ_i s_i·(G_ij − G_AP,nom(v_read))``, in weight units
``i_j/(v_read·g_scale)`` with ``g_scale = k·(G_P,nom − G_AP,nom(v_read))/(w_max − w_min)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from device_models import Device

from . import counter_rng, pair_kernel
from .rules import LearningRule, _set_final, pre_trace_at_events, trace_final_events
from .synapses import CrossbarSynapses, Synapses

__all__ = ["StochasticSTDP", "BinarySynapses", "MTJCrossbarSynapses", "DEPRESSION_MODES", "SYNAPSE_MODES", "expected_switch_probability"]

DEPRESSION_MODES = ("anti_hebbian", "balanced", "pre", "both", "none")
SYNAPSE_MODES = ("bernoulli", "device")


def _check(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: got {value!r}; expected a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"{name}: got {value!r}; must be {'>' if lo_open else '≥'} {lo}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ValueError(f"{name}: got {value!r}; must be {'<' if hi_open else '≤'} {hi}")


@dataclass
class StochasticSTDP(LearningRule):
    """Probabilistic STDP for binary synapses (module docstring for the equations and sources).

    A :class:`~algorithms.learning.rules.LearningRule` bound to a synapse object with ``switch(p)``
    (:class:`BinarySynapses`). ``tau_pre_s``/``tau_post_s`` are the trace time constants [s], ``dt_s``
    the step [s]. :meth:`probabilities` returns the signed switching probability of every synapse for
    one step in the crossbar layout ``[R, in, out]`` (``+P``: towards ON, ``−P``: towards OFF, 0: no
    attempt), or ``None`` when nothing is attempted (the usual step: event-driven).
    """

    rate_fields: ClassVar[tuple[str, ...]] = ("gamma_pot", "gamma_dep")
    gamma_pot: float = 0.05
    gamma_dep: float = 0.05
    tau_pre_s: float = 20e-3
    tau_post_s: float = 20e-3
    depression: str = "anti_hebbian"
    x_window: float = math.exp(-1.0)
    p_min: float = 1e-3
    dt_s: float = 1e-3
    reset_traces: bool = True
    on_target: float = 0.1

    def __post_init__(self):
        _check("gamma_pot", self.gamma_pot, 0.0, 1.0)
        _check("gamma_dep", self.gamma_dep, 0.0, 1.0)
        _check("tau_pre_s", self.tau_pre_s, 0.0, lo_open=True)
        _check("tau_post_s", self.tau_post_s, 0.0, lo_open=True)
        _check("x_window", self.x_window, 0.0, 1.0)
        _check("p_min", self.p_min, 0.0, 1.0)
        _check("dt_s", self.dt_s, 0.0, lo_open=True)
        _check("on_target", self.on_target, 0.0, 1.0)
        if self.depression not in DEPRESSION_MODES:
            raise ValueError(f"depression: got {self.depression!r}; allowed: {', '.join(DEPRESSION_MODES)}")
        self.decay_pre = math.exp(-self.dt_s / self.tau_pre_s)
        self.decay_post = math.exp(-self.dt_s / self.tau_post_s)

    # -- LearningRule interface ----------------------------------------------------------------
    def init_state(self) -> None:
        s = self.synapses
        self.x_pre, self.x_post = self.init_traces(s.replicas, s.n_pre, s.n_post, s.device, s.dtype)

    def reset(self) -> None:
        if self.reset_traces:
            self.x_pre.zero_()
            self.x_post.zero_()

    def step(self, pre: Tensor, post: Tensor | None, rows: Tensor | None = None) -> None:
        """One step: traces, then the switching attempts of this step go to the synapses at once.
        ``rows``: the input indices ``pre`` covers (the other inputs did not spike)."""
        pre = self.synapses.dense(pre, rows)
        if post is None:
            post = self.x_post.new_zeros(self.x_post.shape)
        before = self.x_post.clone() if self.depression in ("pre", "both") else self.x_post
        self.update_traces(self.x_pre, self.x_post, pre, post)
        if self.depression in ("pre", "both"):
            p = self.probabilities(pre, post, self.x_pre, before)
            if p is not None:
                self.synapses.switch(p)
        elif bool(post.any()):
            r, j = torch.nonzero(post > 0, as_tuple=True)
            self._emit(r * self.synapses.n_post + j, self.post_probabilities(self.x_pre[r]))

    def presentation(self, pre: Tensor, post: Tensor, rows: Tensor | None = None) -> None:
        """A whole presentation ``[T, R, ·]`` with the weights frozen during it (``write_every: image``).

        Post-triggered rules (``anti_hebbian``, ``none``): the attempts of every step with a post spike
        are made after the presentation, in time order, with the pre trace of that step. Rules with
        pre-triggered depression fall back to one :meth:`step` per time step.
        """
        if self.depression in ("pre", "both"):
            return LearningRule.presentation(self, pre, post, rows)
        compiled = pair_kernel.AVAILABLE and pre.device.type == "cpu" and self.x_pre.dtype == torch.float32
        if compiled:  # [K, 3] post events (t, r, j) in time order, their probabilities, the final traces
            ev = torch.from_numpy(pair_kernel.spike_events(post.permute(1, 0, 2).contiguous().numpy()))
            self.x_post.copy_(torch.from_numpy(pair_kernel.trace_final_events(ev.numpy(), self.x_post.numpy(),
                                                                              self.decay_post, post.shape[0])))
            p = self._probabilities_compiled(pre, ev, rows)
        else:
            ev = torch.nonzero(post > 0)
            x_pre = pre_trace_at_events(pre, self.decay_pre, self.x_pre, ev, rows) if ev.shape[0] else None
            _set_final(self.x_pre, pre, self.decay_pre, rows)
            p = self.post_probabilities(x_pre) if ev.shape[0] else None
            self.x_post.copy_(trace_final_events(ev, post.shape[0], self.decay_post, self.x_post))
        if ev.shape[0]:
            self._emit(ev[:, 1] * self.synapses.n_post + ev[:, 2], p)

    def _probabilities_compiled(self, pre: Tensor, ev: Tensor, rows: Tensor | None) -> Tensor:
        """:meth:`post_probabilities` of the pre traces at the post events ``[K, in]``, and the final pre traces (set
        in place), in one compiled walk (:func:`~algorithms.learning.pair_kernel.traces_at_events`; inputs outside
        ``rows`` never spiked). ``"balanced"`` takes the traces and scales them in torch."""
        rule = self.depression if self.depression in ("anti_hebbian", "none") else "trace"
        out, x_end = pair_kernel.traces_at_events(
            pre.permute(1, 0, 2).contiguous().numpy(), self.x_pre.numpy(), self.decay_pre, ev[:, 0].numpy(),
            ev[:, 1].numpy(), None if rows is None else rows.numpy(), rule, self.gamma_pot, self.gamma_dep,
            self.x_window, self.p_min)
        self.x_pre.copy_(torch.from_numpy(x_end))
        out = torch.from_numpy(out)
        return out if rule != "trace" else self.post_probabilities(out)

    def _emit(self, cols: Tensor, p: Tensor) -> None:
        """Column attempts ``(cols [K], p [K, in])`` in time order → the synapses.

        :class:`BinarySynapses` take them as one event list; any other synapse object with
        ``switch(p [R, in, out])`` (e.g. :class:`MTJCrossbarSynapses` on ``MappedMatrix.switch``) gets one
        call per round of attempts on distinct columns (the k-th attempt of every column in round k).
        """
        syn = self.synapses
        if self.depression == "balanced":
            p = self.balance(cols, p)
        if hasattr(syn, "switch_events"):
            syn.switch_events(cols, p)
            return
        order = torch.sort(cols, stable=True).indices
        sc = cols[order]
        new = torch.ones_like(sc, dtype=torch.bool)
        new[1:] = sc[1:] != sc[:-1]
        pos = torch.arange(sc.numel(), device=sc.device)
        start = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), 0).values
        rank = torch.empty_like(pos)
        rank[order] = pos - start
        for k in range(int(rank.max()) + 1):
            sel = rank == k
            c = cols[sel]
            full = p.new_zeros(syn.replicas, syn.n_post, syn.n_pre)
            full.view(-1, syn.n_pre)[c] = p[sel]
            syn.switch(full.transpose(1, 2))

    def balance(self, cols: Tensor, p: Tensor) -> Tensor:
        """``"balanced"``: scale the depression part of ``p [K, in]`` (``−(1 − x_pre)`` for silent pres) per event by
        ``c = clip((A + (N_on − N*)/n_j)/S, 0, 1)`` (module docstring); attempts below ``p_min`` are dropped."""
        b = self.synapses.on_columns(cols).to(p.dtype)  # [K, in] fraction of the elements ON
        pot, dep = p.clamp(min=0.0), (-p).clamp(min=0.0)
        a = (pot * (1.0 - b)).sum(1)
        s = (dep * b).sum(1)
        _, inv, counts = torch.unique(cols, return_inverse=True, return_counts=True)
        excess = (b.sum(1) - self.on_target * b.shape[1]) / counts[inv].to(p.dtype)
        c = torch.where(s > 0, (a + excess) / s.clamp(min=1e-30), torch.zeros_like(s)).clamp(0.0, 1.0)
        p = torch.where(p < 0, p * c.unsqueeze(1), p)
        return torch.where(p.abs() >= max(self.p_min, 1e-300), p, p.new_zeros(()))

    def post_probabilities(self, x_pre: Tensor) -> Tensor:
        """Signed probabilities ``[K, in]`` of the column of a post spike, given the pre traces ``[K, in]``
        (``"balanced"``: the depression part unscaled, ``−(1 − x_pre)``; :meth:`balance` scales it)."""
        if self.depression == "balanced":
            return torch.where(x_pre >= self.x_window, self.gamma_pot * x_pre, -(1.0 - x_pre))
        if self.depression in ("anti_hebbian", "both"):
            p = torch.where(x_pre >= self.x_window, self.gamma_pot * x_pre, -self.gamma_dep * (1.0 - x_pre))
        else:
            p = self.gamma_pot * x_pre
        return torch.where(p.abs() >= max(self.p_min, 1e-300), p, p.new_zeros(()))

    # -- traces -----------------------------------------------------------------------------
    def init_traces(self, replicas: int, n_in: int, n_out: int, device=None, dtype=torch.float32):
        """``(x_pre [R, in], x_post [R, out])``, all zero."""
        return (torch.zeros(replicas, n_in, device=device, dtype=dtype),
                torch.zeros(replicas, n_out, device=device, dtype=dtype))

    def update_traces(self, x_pre: Tensor, x_post: Tensor, pre: Tensor, post: Tensor) -> None:
        """In place: decay one step, then set to 1 where the neuron spiked (nearest-spike traces)."""
        x_pre.mul_(self.decay_pre).masked_fill_(pre > 0, 1.0)
        x_post.mul_(self.decay_post).masked_fill_(post > 0, 1.0)

    # -- the rule ---------------------------------------------------------------------------
    def probabilities(self, pre: Tensor, post: Tensor, x_pre: Tensor, x_post_before: Tensor) -> Tensor | None:
        """Signed switching probabilities ``[R, in, out]`` for one step, or ``None`` (no attempt).

        ``pre [R, in]`` and ``post [R, out]`` are this step's spikes (0/1), ``x_pre`` the pre trace
        *after* this step's update (so a coincident pre spike counts as Δt = 0) and
        ``x_post_before`` the post trace *before* this step's post spikes.
        """
        any_post = bool(post.any())
        pre_dep = self.depression in ("pre", "both") and self.gamma_dep > 0 and bool(pre.any())
        if not any_post and not pre_dep:
            return None
        R, n_out = post.shape
        n_in = pre.shape[1]
        p = torch.zeros(R, n_in, n_out, device=pre.device, dtype=x_pre.dtype)
        if pre_dep:
            p = p - self.gamma_dep * pre.unsqueeze(2).to(x_pre.dtype) * x_post_before.unsqueeze(1)
        if any_post:
            col = post.unsqueeze(1) > 0  # [R, 1, out]
            xp = x_pre.unsqueeze(2)  # [R, in, 1]
            if self.depression in ("anti_hebbian", "both"):
                p_col = torch.where(xp >= self.x_window, self.gamma_pot * xp, -self.gamma_dep * (1.0 - xp))
                p = torch.where(col, p_col.expand_as(p), p)
            else:
                p_col = (self.gamma_pot * xp).expand_as(p)
                p = torch.where(col & (p_col > 0), p_col, p)
        p = torch.where(p.abs() >= max(self.p_min, 1e-300), p, p.new_zeros(()))
        return p


def expected_switch_probability(device: Device, p: float, t_pulse_s: float, current_scale: float = 1.0,
                                n_samples: int = 200_000, generator: torch.Generator | None = None) -> float:
    """Mean switching probability of a population of real cells driven by the nominal-calibrated pulse.

    ``E_d2d[P_sw(current_scale·I_nom(p, t), t; Δ, Ic0)]`` by Monte Carlo over the device's
    device-to-device distribution (``n_samples`` cells drawn with ``device.sample_d2d``); this is the
    model's prediction of the mean switching frequency under spread (and miscalibration).
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    d2d = device.sample_d2d((n_samples,), gen, torch.float64)
    i = current_scale * float(device.current_for_probability(float(p), float(t_pulse_s)))
    pp = device._p_sw(torch.full((n_samples,), i, dtype=torch.float64), torch.tensor(float(t_pulse_s), dtype=torch.float64),
                      d2d["delta"].to(torch.float64), d2d["i_c0"].to(torch.float64))
    return float(pp.mean())


class BinarySynapses(Synapses):
    """``k`` binary elements per synapse in the crossbar layout ``[R, in, out]``, in software or on MTJ cells.

    Implements the synapse interface of :mod:`algorithms.learning.synapses` (``read``, ``switch``,
    ``weights``, ``normalise`` with ``"gain"``/``"none"``; binary cells take switching probabilities,
    not ``Δw``). Cells are stored post-major ``[R, out, in]`` so that the columns of the neurons that
    spiked are gathered and written together (event-driven).

    Parameters
    ----------
    replicas, n_pre, n_post:
        ``R`` independent networks, ``in`` inputs (rows), ``out`` post neurons (columns).
    mode:
        ``"bernoulli"`` (software draws) or ``"device"`` (MTJ cells decide; needs a device with
        ``switch``/``current_for_probability``).
    element_scales:
        ``s_m`` per element (``k = len``); element ``m`` is attempted with ``P·s_m``.
    w_min, w_max:
        Weight of an all-OFF / all-ON synapse.
    p_init:
        Probability that an element starts ON (drawn once, for both modes).
    t_pulse_s, current_scale:
        Device mode: write pulse width [s] (``None``: the device's ``t_write_s``) and the factor on the
        nominal-calibrated current (1: calibrated; ≠ 1: a miscalibrated driver or a current sweep).
    ledger:
        Default ledger for the write and read energy (the network sets it to its training ledger).
    read_before_write:
        The write driver reads each selected cell first (read energy charged) and pulses only cells not
        already in the target state; otherwise every attempt is a pulse (failed or not, it costs energy).
    """

    def __init__(self, replicas: int, n_pre: int, n_post: int, *, mode: str = "bernoulli", device: Device | None = None,
                 element_scales=(1.0,), w_min: float = 0.0, w_max: float = 1.0, p_init: float = 0.1,
                 t_pulse_s: float | None = None, current_scale: float = 1.0, p_max: float = 1.0 - 1e-6,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, name: str = "synapses",
                 ledger=None, read_before_write: bool = False):
        if mode not in SYNAPSE_MODES:
            raise ValueError(f"synapse: got {mode!r}; allowed: {', '.join(SYNAPSE_MODES)}")
        scales = [float(x) for x in element_scales]
        if not scales or any(not (0.0 < x <= 1.0) for x in scales):
            raise ValueError(f"element_scales: got {element_scales!r}; expected a non-empty list of numbers in (0, 1]")
        _check("w_max", w_max)
        _check("w_min", w_min, hi=w_max, hi_open=True)
        _check("p_init", p_init, 0.0, 1.0)
        _check("current_scale", current_scale, 0.0, lo_open=True)
        _check("p_max", p_max, 0.0, 1.0, lo_open=True, hi_open=True)
        if mode == "device":
            if device is None or not hasattr(device, "current_for_probability") or not hasattr(device, "switch"):
                raise ValueError(f"synapse: 'device' mode needs a binary stochastic device (stt_mtj, sot_mtj); got "
                                 f"{getattr(device, 'name', device)!r}")
        gen = generator if generator is not None else torch.Generator()
        super().__init__(replicas, n_pre, n_post, w_min, w_max, gen.device, dtype)
        self.mode, self.cell, self.scales, self.k = mode, device, scales, len(scales)
        self.generator, self.name, self.ledger = gen, name, ledger
        self.read_before_write = bool(read_before_write)
        self.current_scale, self.p_max = float(current_scale), float(p_max)
        self.t_pulse_s = float(t_pulse_s if t_pulse_s is not None else getattr(device, "t_write_s", 1e-8))
        _check("t_pulse_s", self.t_pulse_s, 0.0, lo_open=True)
        self.attempts = 0.0  # element write attempts (pulses) so far
        self.switches = 0.0  # elements that changed state
        self.write_energy_J = 0.0
        shape = (self.replicas, self.n_post, self.n_pre)
        bits = [torch.rand(shape, generator=gen, device=gen.device) < p_init for _ in scales]
        if mode == "bernoulli":
            self.bits, self.states = bits, None
        else:
            self.bits = None
            self.states = [device._with_bits(device.new_state(shape, gen, dtype), b) for b in bits]
            self.v_read = float(device.v_read)
            self.t_read_s = float(device.t_read_s)
            self.g_on_nom = float(device.g_p)
            self.g_ref = float(device.g_p / (1.0 + device.tmr_at(self.v_read)))  # nominal AP at the read bias
        self._w: Tensor | None = None
        self._colsum: Tensor | None = None  # [R, out] column sums of ``_w``
        self._w_in: Tensor | None = None  # ``_w`` as [R, in, out]
        self._g_cache: tuple | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def g_scale(self) -> float:
        """Siemens per weight unit of the summed column (device mode)."""
        return self.k * (self.g_on_nom - self.g_ref) / (self.w_max - self.w_min)

    def _on(self) -> Tensor:
        if self.mode == "bernoulli":
            return sum(b.to(self.dtype) for b in self.bits) / self.k
        return sum(self.cell.is_parallel(st).to(self.dtype) for st in self.states) / self.k

    def on_fraction(self) -> Tensor:
        """``(1/k)·Σ_m b_m`` per synapse in [0, 1], ``[R, in, out]`` (device mode: the cells' P/AP state)."""
        return self._on().transpose(1, 2)

    def on_columns(self, cols: Tensor) -> Tensor:
        """``(1/k)·Σ_m b_m`` of the columns ``cols [K]`` (``r·out + j``) → ``[K, in]``."""
        flat = (self.replicas * self.n_post, self.n_pre)
        if self.mode == "bernoulli":
            on = [b.view(flat).index_select(0, cols) for b in self.bits]
        else:
            on = [self.cell.is_parallel(st).view(flat).index_select(0, cols) for st in self.states]
        return sum(o.to(self.dtype) for o in on) / self.k

    def _g(self) -> Tensor:
        """Summed read conductance of the ``k`` elements [S], ``[R, out, in]`` (at t = 0 a read is deterministic:
        kept until a write or a disturb replaces a state)."""
        key = tuple(id(st) for st in self.states)
        if self._g_cache is None or self._g_cache[0] != key:
            self._g_cache = (key, sum(self.cell.read(st, 0.0, self.generator).to(self.dtype) for st in self.states),
                             list(self.states))  # (the states are held so that their ids stay theirs)
        return self._g_cache[1]

    def _w_post_major(self) -> Tensor:
        if self._w is None:
            if self.mode == "bernoulli":
                self._w = self.w_min + (self.w_max - self.w_min) * self._on()
            else:
                self._w = self.w_min + (self._g() - self.k * self.g_ref) / self.g_scale
            self._colsum = None
            self._w_in = None
        return self._w

    def _w_in_major(self) -> Tensor:
        """The held weights in the crossbar layout ``[R, in, out]``, contiguous (reads gather whole input rows);
        Bernoulli writes refresh it with ``_w``."""
        w = self._w_post_major()
        if self._w_in is None:
            self._w_in = w.transpose(1, 2).contiguous()
        return self._w_in

    def column_sums(self) -> Tensor:
        """``Σ_i w_ij`` ``[R, 1, out]``, kept per column between writes (Bernoulli writes refresh their columns)."""
        w = self._w_post_major()
        if self._colsum is None:
            self._colsum = w.sum(2)
        return self._colsum.unsqueeze(1)

    def weights(self) -> Tensor:
        """Effective weights ``[R, in, out]`` in weight units: what the column currents encode."""
        return self._w_post_major().transpose(1, 2)

    def column_currents(self, spikes: Tensor) -> Tensor:
        """Device mode: ``i_j = v_read·Σ_i s_i·Σ_m (G_ijm − G_ref)`` [A] for spikes ``[R, in]`` → ``[R, out]``."""
        if self.mode != "device":
            raise ValueError("column_currents: only defined for synapse mode 'device'")
        g = self._g() - self.k * self.g_ref
        return self.v_read * torch.einsum("ri,roi->ro", spikes.to(self.dtype), g)

    def read(self, spikes: Tensor, ledger=None, rows: Tensor | None = None) -> Tensor:
        """``[R, M, in]`` spikes → ``[R, M, out]`` summed weights (ideal readout of the column currents).

        Device mode: the ``M`` read pulses of each row disturb its cells (STT; applied after the read with
        the per-row count: the order of reads and writes within one call is not resolved) and their energy ``t_read·v_read²·Σ_i s_i·(Σ_j G_ij + k·G_ref)`` (cells and reference column) goes to
        ``ledger`` component ``array``.
        """
        x = spikes.to(self.dtype)
        w = self._w_in_major()
        y = torch.bmm(x, w if rows is None else w.index_select(1, rows))
        if self.mode == "device":
            n = self.dense(x.sum(1), rows)  # [R, in] reads per row
            led = ledger if ledger is not None else self.ledger
            if led is not None:
                g_row = self._g().sum(1) + self.k * self.g_ref  # [R, in]: the row's cells and its reference cell
                led.add(self.name, "array", self.t_read_s * self.v_read**2 * float((n * g_row).sum()), events=float(n.sum()))
            self.read_disturb(n)
        return y * self.gain if self.gain is not None else y

    def input(self, spikes: Tensor) -> Tensor:
        """One step: ``[R, in]`` spikes → ``[R, out]`` (``read`` without the bookkeeping)."""
        y = torch.bmm(spikes.to(self.dtype).unsqueeze(1), self.weights()).squeeze(1)
        return y * self.gain[:, 0] if self.gain is not None else y

    # -- learning ---------------------------------------------------------------------------
    def _apply(self, dw: Tensor, ledger) -> None:
        raise ValueError("binary synapses take switching probabilities (switch), not weight changes (add)")

    def _rescale(self, scale: Tensor, ledger) -> None:
        raise ValueError("normalisation: 'reprogram' cannot rescale binary synapses; use 'gain' or 'none'")

    def switch(self, p: Tensor, ledger=None) -> None:
        """One write step: signed probabilities ``p [R, in, out]`` (``+``: towards ON); zero = no attempt.

        Only the post-neuron columns with an attempt are touched (event-driven): see :meth:`switch_events`.
        """
        touched = (p != 0).any(1)  # [R, out]
        if not bool(touched.any()):
            return
        r, j = touched.nonzero(as_tuple=True)
        self.switch_events(r * self.n_post + j, p[r, :, j], ledger)

    def switch_events(self, cols: Tensor, p: Tensor, ledger=None) -> None:
        """Write attempts on whole columns, in the order given: ``cols [K]`` (``r·out + j``), ``p [K, in]`` signed.

        Several attempts on one column are applied one after the other (each cell ends in the target of its
        last successful attempt, or where it was). Per element ``m`` the attempt probability is
        ``|p|·s_m``; Bernoulli mode draws it, device mode turns it into the nominal-calibrated current and
        lets each cell switch with its own ``P_sw(I, t; Δ, Ic0)``; the energy of every attempt,
        ``I²·R_write·t`` with ``R_write`` of the cell's state just before that pulse, goes to the ledger.
        """
        if cols.numel() == 0:
            return
        order = torch.sort(cols, stable=True).indices  # group by column, keep time order within a column
        cols, p = cols[order], p[order]
        if self.mode == "bernoulli" and pair_kernel.AVAILABLE and cols.device.type == "cpu":
            self._switch_compiled(cols, p)
            return
        K = cols.shape[0]
        new_seg = torch.ones(K, dtype=torch.bool, device=cols.device)
        new_seg[1:] = cols[1:] != cols[:-1]
        pos = torch.arange(1, K + 1, device=cols.device)
        seg_start = torch.cummax(torch.where(new_seg, pos, torch.zeros_like(pos)), 0).values  # 1-based
        last_of_seg = torch.ones(K, dtype=torch.bool, device=cols.device)
        last_of_seg[:-1] = new_seg[1:]
        ucols = cols[last_of_seg]
        sign = p > 0
        wd = torch.float64
        energy, n_att, read_e, n_checks = 0.0, 0.0, 0.0, 0.0
        seed = counter_rng.new_seed(self.generator)
        index = torch.arange(p.numel(), device=p.device).view(p.shape)
        for m, sc in enumerate(self.scales):
            pm = (p.abs().to(wd) * sc).clamp(max=self.p_max)
            att = pm > 0
            n_att += float(att.sum())
            flat = (self.replicas * self.n_post, self.n_pre)
            if self.mode == "bernoulli":
                b_all = self.bits[m].view(flat)
                init = b_all.index_select(0, cols)
                p_sw = pm
            else:
                st = self.states[m]
                d2d = {k: v.reshape(flat).index_select(0, cols) for k, v in st.d2d.items()
                       if torch.is_tensor(v) and v.shape == st.g.shape}
                init = self.cell._above_mid(st.g.reshape(flat).index_select(0, cols), d2d["g_p"].to(st.g.dtype))
                i_abs = self.current_scale * self.cell.current_for_probability(pm, self.t_pulse_s)
                i_abs = torch.where(att, i_abs, torch.zeros_like(i_abs))
                t = torch.tensor(self.t_pulse_s, dtype=wd, device=pm.device)
                p_sw = self.cell._p_sw(i_abs, t, d2d["delta"].to(wd), d2d["i_c0"].to(wd))
            u = counter_rng.uniform(seed, index + m * p.numel())
            ok = att & (u < p_sw)  # [K, in]: this attempt leaves the cell in its target state
            # last successful attempt at or before k within k's column (1-based position; 0: none)
            last = torch.cummax(torch.where(ok, pos.unsqueeze(1), torch.zeros_like(pos).unsqueeze(1)).expand_as(ok), 0).values
            last = torch.where(last >= seg_start.unsqueeze(1), last, torch.zeros_like(last))
            tgt = torch.cat([sign.new_zeros(1, self.n_pre), sign])  # row 0: "no success" placeholder
            after = torch.where(last > 0, torch.gather(tgt, 0, last), init)  # state after attempt k
            before = torch.cat([init[:1], after[:-1]])
            before = torch.where(new_seg.unsqueeze(1), init, before)
            self.switches += float((after != before).sum())
            if self.read_before_write:
                # a pulse towards the state the cell is already in changes nothing: the driver reads first
                # and skips it (the state trajectory is the same; only pulses and energy differ)
                n_att -= float((att & (before == sign)).sum())
                att = att & (before != sign)
            if self.mode == "device":
                g_p = d2d["g_p"].to(wd)
                g_before = torch.where(before, g_p, g_p / (1.0 + self.cell.tmr))
                e = torch.where(att, i_abs * i_abs * self.cell.write_resistance(g_before) * self.t_pulse_s, 0.0)
                energy += float(e.sum())
                if self.read_before_write:
                    checks = pm > 0
                    g_read = torch.where(before, g_p, g_p / (1.0 + self.cell.tmr_at(self.v_read)))
                    read_e += float((checks * g_read).sum()) * self.t_read_s * self.v_read**2
                    n_checks += float(checks.sum())
                # the written columns' conductances only (the cell's own G_P / G_AP, as _with_bits sets them)
                gp_u = d2d["g_p"][last_of_seg].to(st.g.dtype)
                g = st.g.clone()
                g.view(flat).index_copy_(0, ucols, torch.where(after[last_of_seg], gp_u, gp_u / (1.0 + self.cell.tmr)))
                self.states[m] = st.replace(g=g)
            else:
                b_all.index_copy_(0, ucols, after[last_of_seg])
        self.attempts += n_att
        self.write_energy_J += energy
        led = ledger if ledger is not None else self.ledger
        if led is not None and self.mode == "device":
            led.add(self.name, "write", energy, events=n_att)
            if n_checks:
                led.add(self.name, "array", read_e, events=n_checks)
        if self.mode == "bernoulli":
            self._refresh_columns(ucols)
        else:
            self._w = None

    def _switch_compiled(self, cols: Tensor, p: Tensor) -> None:
        """:meth:`switch_events` in Bernoulli mode as one compiled pass over the attempts (same draws, same order,
        same result: :func:`~algorithms.learning.pair_kernel.bernoulli_switch`)."""
        flat = (self.replicas * self.n_post, self.n_pre)
        pc = p.contiguous().numpy()
        seed = counter_rng.new_seed(self.generator)
        for m, sc in enumerate(self.scales):
            bits = self.bits[m].view(flat)
            n_att, n_sw = pair_kernel.bernoulli_switch(cols.numpy(), pc, seed, m * p.numel(), sc, self.p_max,
                                                       bits.numpy(), self.read_before_write)
            self.attempts += n_att
            self.switches += n_sw
        if self._w is not None:  # the held weights, column sums and in-major copy of the written columns
            if self._colsum is None:
                self._colsum = self._w.sum(2)
            pair_kernel.refresh_columns(torch.unique_consecutive(cols).numpy(), tuple(b.view(flat).numpy() for b in self.bits),
                                        self._w.view(flat).numpy(), self._colsum.view(-1).numpy(), self.w_min, self.w_max,
                                        None if self._w_in is None else self._w_in.numpy())

    def _refresh_columns(self, cols: Tensor) -> None:
        """Bernoulli mode: recompute the held weights (and column sums) of the written columns ``cols``
        (``r·out + j``) only, instead of the whole array at the next read."""
        if self._w is None:
            return
        flat = (self.replicas * self.n_post, self.n_pre)
        on = sum(b.view(flat).index_select(0, cols).to(self.dtype) for b in self.bits) / self.k
        w = self.w_min + (self.w_max - self.w_min) * on
        self._w.view(flat).index_copy_(0, cols, w)
        if self._colsum is not None:
            self._colsum.view(-1).index_copy_(0, cols, w.sum(1))
        if self._w_in is not None:
            self._w_in[cols // self.n_post, :, cols % self.n_post] = w
        # (the compiled switching pass does the same in its kernel: pair_kernel.refresh_columns)

    def read_disturb(self, reads_per_row: Tensor) -> None:
        """Device mode: apply the read disturb of ``reads_per_row [R, in]`` read pulses to every cell of the row."""
        if self.mode != "device" or not getattr(self.cell, "read_disturb", False):
            return
        rows = torch.nonzero(reads_per_row.sum(0) > 0).flatten()  # only the rows read (others: P = 0)
        if rows.numel() == 0:
            return
        n = reads_per_row.index_select(1, rows).to(torch.float64).unsqueeze(1).expand(self.replicas, self.n_post, -1)
        for m, st in enumerate(self.states):
            sub = st.replace(g=st.g.index_select(2, rows),
                             d2d={k: v.index_select(2, rows) if torch.is_tensor(v) and v.shape == st.g.shape else v
                                  for k, v in st.d2d.items()})
            g = st.g.clone()
            g.index_copy_(2, rows, self.cell.disturb(sub, n, self.generator).g)
            self.states[m] = st.replace(g=g)
        self._w = None

    def force(self, on: bool) -> None:
        """Set every element ON (P) or OFF (AP) — for tests and calibration."""
        if self.mode == "bernoulli":
            self.bits = [torch.full_like(b, bool(on)) for b in self.bits]
        else:
            self.states = [self.cell._with_bits(st, torch.full(st.shape, bool(on), device=st.g.device))
                           for st in self.states]
        self._w = None


class MTJCrossbarSynapses(CrossbarSynapses):
    """Binary synapses on a plastic ``unipolar`` :class:`circuits.MappedMatrix` of MTJ cells (``synapse: crossbar``).

    Reads go through the matrix (its solver, IR drop, ADC or analog readout: :class:`CrossbarSynapses`);
    writes through ``MappedMatrix.switch(current_A=…)`` with the current the nominal-calibrated driver
    produces, ``current_scale·I_nom(P, t_pulse)``; write energy to ``ledger`` (default: the training ledger
    given at construction). Counts ``attempts`` (pulses) like :class:`BinarySynapses`.
    """

    def __init__(self, mm, t_pulse_s: float | None = None, current_scale: float = 1.0, ledger=None):
        super().__init__(mm, rounding="stochastic")  # unused: binary cells are switched, not pulsed
        _check("current_scale", current_scale, 0.0, lo_open=True)
        self.t_pulse_s = float(t_pulse_s if t_pulse_s is not None else mm.device.t_write_s)
        self.current_scale = float(current_scale)
        self.ledger = ledger
        self.attempts = 0.0
        self.switches = 0.0
        self.write_energy_J = 0.0
        self.k = 1

    def switch(self, p: Tensor, ledger=None) -> None:
        p64 = p.to(torch.float64)
        mag = self.mm.device.current_for_probability(p64.abs().clamp(max=1.0 - 1e-9), self.t_pulse_s)
        cur = torch.where(p64 != 0, torch.sign(p64) * self.current_scale * mag, torch.zeros_like(p64))
        before = self.weights().clone()
        e = self.mm.switch(current_A=cur.transpose(1, 2).to(self.mm.dtype), t_pulse_s=self.t_pulse_s,
                           ledger=ledger if ledger is not None else self.ledger)
        self.invalidate()
        self.attempts += float((p != 0).sum())
        self.write_energy_J += float(e)
        self.switches += float(((self.weights() - before).abs() > 0.5 * self.w_max).sum())

    def on_fraction(self) -> Tensor:
        return (self.weights() > 0.5 * self.w_max).to(self.dtype)

    def on_columns(self, cols: Tensor) -> Tensor:
        """ON (1) / OFF (0) of the cells of the columns ``cols [K]`` (``r·out + j``) → ``[K, in]``."""
        on = self.on_fraction().transpose(1, 2).reshape(self.replicas * self.n_post, self.n_pre)
        return on.index_select(0, cols)
