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
* ``bernoulli``: the algorithm draws ``u ~ U[0,1)`` per attempted cell and switches where ``u < P``.
* ``device``: every element is an MTJ cell (:class:`device_models.STTMTJ` / ``SOTMTJ``). The write
  circuit turns ``P`` into a pulse through the model's inverse at **nominal** parameters,
  ``I = current_scale · I_nom(P, t_pulse)`` (:meth:`~device_models.MTJ.current_for_probability`:
  Néel–Brown ``I = Ic0·[1 − ln(t/(τ0·(−ln(1−P))))/Δ]`` below Ic0, precessional above), and the
  **cell** switches with its own ``P_sw(I, t)`` using its own Δ and Ic0 (device-to-device spread)
  — a circuit calibrated to the nominal device is miscalibrated for every real one. Reads (each
  input spike is a read pulse on its row) disturb STT cells by Néel–Brown at ``I_read`` (applied once
  per image with the per-row read counts). Energy per attempt ``I²·R_write·t_pulse`` (STT: the MTJ
  in its pre-pulse state; SOT: the heavy-metal strip), charged to the ledger component ``write``
  whether or not the cell switches.

The crossbar input is the column current of a unipolar array with a reference column at the
nominal AP read conductance: ``i_j = v_read·Σ_i s_i·(G_ij − G_AP,nom(v_read))``, in weight units
``i_j/(v_read·g_scale)`` with ``g_scale = k·(G_P,nom − G_AP,nom(v_read))/(w_max − w_min)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from device_models import Device, DeviceState

__all__ = ["StochasticSTDP", "BinarySynapses", "DEPRESSION_MODES", "SYNAPSE_MODES", "expected_switch_probability"]

DEPRESSION_MODES = ("anti_hebbian", "pre", "both", "none")
SYNAPSE_MODES = ("bernoulli", "device")


def _check(name: str, value, lo=None, hi=None, lo_open=False, hi_open=False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: got {value!r}; expected a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"{name}: got {value!r}; must be {'>' if lo_open else '≥'} {lo}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise ValueError(f"{name}: got {value!r}; must be {'<' if hi_open else '≤'} {hi}")


@dataclass
class StochasticSTDP:
    """Probabilistic STDP for binary synapses (module docstring for the equations and sources).

    ``tau_pre_s``/``tau_post_s`` are the trace time constants [s] and ``dt_s`` the step [s].
    :meth:`probabilities` returns the signed switching probability of every synapse for one step
    (``+P``: towards ON, ``−P``: towards OFF, 0: no attempt), shaped ``[R, out, in]``, or ``None``
    when nothing is attempted (the usual step: event-driven).
    """

    gamma_pot: float = 0.05
    gamma_dep: float = 0.05
    tau_pre_s: float = 20e-3
    tau_post_s: float = 20e-3
    depression: str = "anti_hebbian"
    x_window: float = math.exp(-1.0)
    p_min: float = 1e-3
    dt_s: float = 1e-3

    def __post_init__(self):
        _check("gamma_pot", self.gamma_pot, 0.0, 1.0)
        _check("gamma_dep", self.gamma_dep, 0.0, 1.0)
        _check("tau_pre_s", self.tau_pre_s, 0.0, lo_open=True)
        _check("tau_post_s", self.tau_post_s, 0.0, lo_open=True)
        _check("x_window", self.x_window, 0.0, 1.0)
        _check("p_min", self.p_min, 0.0, 1.0)
        _check("dt_s", self.dt_s, 0.0, lo_open=True)
        if self.depression not in DEPRESSION_MODES:
            raise ValueError(f"depression: got {self.depression!r}; allowed: {', '.join(DEPRESSION_MODES)}")
        self.decay_pre = math.exp(-self.dt_s / self.tau_pre_s)
        self.decay_post = math.exp(-self.dt_s / self.tau_post_s)

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
        """Signed switching probabilities ``[R, out, in]`` for one step, or ``None`` (no attempt).

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
        p = torch.zeros(R, n_out, n_in, device=pre.device, dtype=x_pre.dtype)
        if pre_dep:
            p_off = self.gamma_dep * x_post_before.unsqueeze(2) * pre.unsqueeze(1).to(x_pre.dtype)
            p = p - p_off
        if any_post:
            col = post.unsqueeze(2) > 0  # [R, out, 1]
            xp = x_pre.unsqueeze(1)  # [R, 1, in]
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


class BinarySynapses:
    """``k`` binary elements per synapse, ``[R, out, in]`` each, in software or on MTJ cells.

    Parameters
    ----------
    replicas, n_out, n_in:
        Shape: ``R`` independent networks, ``out`` post neurons (columns), ``in`` inputs (rows).
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
    """

    def __init__(self, replicas: int, n_out: int, n_in: int, *, mode: str = "bernoulli", device: Device | None = None,
                 element_scales=(1.0,), w_min: float = 0.0, w_max: float = 1.0, p_init: float = 0.1,
                 t_pulse_s: float | None = None, current_scale: float = 1.0, p_max: float = 1.0 - 1e-6,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, name: str = "synapses"):
        if mode not in SYNAPSE_MODES:
            raise ValueError(f"synapse: got {mode!r}; allowed: {', '.join(SYNAPSE_MODES)}")
        scales = [float(s) for s in element_scales]
        if not scales or any(not (0.0 < s <= 1.0) for s in scales):
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
        self.R, self.n_out, self.n_in = int(replicas), int(n_out), int(n_in)
        self.mode, self.device, self.scales, self.k = mode, device, scales, len(scales)
        self.w_min, self.w_max = float(w_min), float(w_max)
        self.generator = generator if generator is not None else torch.Generator()
        self.dtype, self.name = dtype, name
        self.current_scale, self.p_max = float(current_scale), float(p_max)
        self.t_pulse_s = float(t_pulse_s if t_pulse_s is not None else getattr(device, "t_write_s", 1e-8))
        _check("t_pulse_s", self.t_pulse_s, 0.0, lo_open=True)
        self.attempts = 0.0
        self.switches = 0.0
        shape = (self.R, self.n_out, self.n_in)
        tdev = self.generator.device
        bits = [torch.rand(shape, generator=self.generator, device=tdev) < p_init for _ in scales]
        if mode == "bernoulli":
            self.bits = bits
            self.states = None
        else:
            self.bits = None
            self.states = []
            for b in bits:
                st = device.new_state(shape, self.generator, dtype)
                self.states.append(device._with_bits(st, b))
            v = device.v_read
            self.g_on_nom = device.g_p
            self.g_ref = device.g_p / (1.0 + device.tmr_at(v))  # reference column: nominal AP at the read bias
            self.v_read = v
        self._w: Tensor | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def g_scale(self) -> float:
        """Siemens per weight unit of the summed column (device mode)."""
        return self.k * (self.g_on_nom - self.g_ref) / (self.w_max - self.w_min)

    def on_fraction(self) -> Tensor:
        """``(1/k)·Σ_m b_m`` per synapse in [0, 1] (device mode: from the cells' P/AP state)."""
        if self.mode == "bernoulli":
            on = sum(b.to(self.dtype) for b in self.bits)
        else:
            on = sum(self.device.is_parallel(s).to(self.dtype) for s in self.states)
        return on / self.k

    def conductances(self) -> list[Tensor]:
        """Read conductance [S] of every element at ``v_read`` (device mode)."""
        return [self.device.read(s, 0.0, self.generator).to(self.dtype) for s in self.states]

    def weights(self) -> Tensor:
        """Effective weights ``[R, out, in]`` in weight units: what the column currents encode."""
        if self._w is None:
            if self.mode == "bernoulli":
                self._w = self.w_min + (self.w_max - self.w_min) * self.on_fraction()
            else:
                g = sum(self.conductances())
                self._w = self.w_min + (g - self.k * self.g_ref) / self.g_scale
        return self._w

    def column_currents(self, spikes: Tensor) -> Tensor:
        """Device mode: ``i_j = v_read·Σ_i s_i·Σ_m (G_ijm − G_ref)`` [A] for spikes ``[R, in]`` → ``[R, out]``."""
        if self.mode != "device":
            raise ValueError("column_currents: only defined for synapse mode 'device'")
        g = sum(self.conductances()) - self.k * self.g_ref
        return self.v_read * torch.einsum("ri,roi->ro", spikes.to(self.dtype), g)

    def input(self, spikes: Tensor) -> Tensor:
        """Neuron input in weight units, ``Σ_i s_i·w_ij`` ``[R, out]`` (ideal readout of the column currents)."""
        return torch.bmm(self.weights(), spikes.to(self.dtype).unsqueeze(2)).squeeze(2)

    # -- learning ---------------------------------------------------------------------------
    def apply(self, p: Tensor, ledger=None) -> None:
        """One write step: signed probabilities ``p [R, out, in]`` (``+``: towards ON); zero = no attempt.

        Only the post-neuron columns with an attempt are touched (event-driven).
        """
        rows = (p != 0).any(dim=2).reshape(-1)  # flat [R*out]
        if not bool(rows.any()):
            return
        idx = rows.nonzero().squeeze(1)
        pf = p.reshape(self.R * self.n_out, self.n_in).index_select(0, idx)
        sign = torch.sign(pf)
        energy = 0.0
        for m, s in enumerate(self.scales):
            pm = (pf.abs() * s).clamp(max=self.p_max)
            att = pm > 0
            self.attempts += float(att.sum())
            if self.mode == "bernoulli":
                b = self.bits[m].view(self.R * self.n_out, self.n_in)
                sub = b.index_select(0, idx)
                u = torch.rand(pm.shape, generator=self.generator, device=pm.device, dtype=pm.dtype)
                go = u < pm
                new = torch.where(go & (sign > 0), torch.ones_like(sub), sub)
                new = torch.where(go & (sign < 0), torch.zeros_like(sub), new)
                self.switches += float((new != sub).sum())
                b.index_copy_(0, idx, new)
            else:
                energy += self._switch_device(m, idx, pm, sign)
        if ledger is not None and self.mode == "device":
            ledger.add(self.name, "write", energy, events=float((pf != 0).sum()) * self.k)
        self._w = None

    def _switch_device(self, m: int, idx: Tensor, pm: Tensor, sign: Tensor) -> float:
        dev, st = self.device, self.states[m]
        flat = (self.R * self.n_out, self.n_in)
        g = st.g.reshape(flat)
        d2d = {k: v.reshape(flat).index_select(0, idx) for k, v in st.d2d.items()}
        sub = DeviceState(g=g.index_select(0, idx), d2d=d2d, t_prog_s=st.t_prog_s)
        i_nom = dev.current_for_probability(pm.to(torch.float64), self.t_pulse_s)
        i = torch.where(pm > 0, self.current_scale * i_nom * sign.to(torch.float64), i_nom.new_zeros(()))
        before = dev.is_parallel(sub)
        new, e = dev.switch(sub, i, self.t_pulse_s, self.generator)
        self.switches += float((dev.is_parallel(new) != before).sum())
        g2 = g.clone()
        g2.index_copy_(0, idx, new.g)
        self.states[m] = st.replace(g=g2.reshape(st.g.shape))
        return float(e)

    def read_disturb(self, reads_per_row: Tensor) -> None:
        """Device mode: apply the read disturb of ``reads_per_row [R, in]`` read pulses to every cell of the row."""
        if self.mode != "device" or not getattr(self.device, "read_disturb", False):
            return
        n = reads_per_row.to(torch.float64).unsqueeze(1).expand(self.R, self.n_out, self.n_in)
        for m, st in enumerate(self.states):
            self.states[m] = self.device.disturb(st, n, self.generator)
        self._w = None

    def force(self, on: bool) -> None:
        """Set every element ON (P) or OFF (AP) — for tests and calibration."""
        if self.mode == "bernoulli":
            self.bits = [torch.full_like(b, bool(on)) for b in self.bits]
        else:
            self.states = [self.device._with_bits(s, torch.full(s.shape, bool(on), device=s.g.device)) for s in self.states]
        self._w = None
