"""``algorithm: {name: stochastic_stdp}`` — the Diehl & Cook network with binary, stochastically switching synapses.

Same network, label assignment, vote and result rows as ``stdp`` (:mod:`algorithms.stdp`; Diehl & Cook,
Front. Comput. Neurosci. 9:99, 2015, BindsNET ``fast`` mode by default); the input synapses are binary
(``w ∈ {w_min, w_max}``, or the sum of ``k`` binary elements for long-term/short-term synapses) and learn
by the stochastic STDP rule of :mod:`algorithms.learning.stochastic` (Srinivasan, Sengupta & Roy, Sci. Rep.
6:29545, 2016; Srinivasan & Roy, Front. Neurosci. 13:189, 2019):

* ``synapse: bernoulli`` — the algorithm draws the switches (software reference, no write energy);
* ``synapse: crossbar`` — the same with one MTJ per synapse on a ``unipolar`` :class:`circuits.MappedMatrix`
  (reads through its solver/IR drop/ADC, writes through ``MappedMatrix.switch``);
* ``synapse: device`` — each element is an MTJ cell of the configured ``device`` (``stt_mtj``/``sot_mtj``):
  the switching probability becomes a write current through the model's inverse at nominal parameters
  (scaled by ``current_scale``; pulse width ``t_pulse_s``), and the cell switches with its own
  Néel–Brown/precessional probability, device-to-device Δ and Ic0, and read disturb. Write energy
  ``I²·R·t`` per attempt goes to the training ledger (``energy_train_write_J`` per image); the read energy
  of the input spikes to ``array``.

Binary synapses cannot be rescaled: ``normalisation`` is ``gain`` (default: a digital per-neuron input gain
``g_j = total/Σ_i w_ij``, recomputed before every training presentation and after ``fit``, keeps each neuron's
effective input weight sum at the Diehl & Cook column sum ``total`` (78.4 in fast mode) without writing a cell —
the role the column normalisation plays for the deterministic rule; on a crossbar ``Σ_i w_ij`` is one column
read with all rows driven) or ``none`` (the anti-Hebbian depression alone bounds the number of ON synapses,
which then drifts to where it balances potentiation, ≈ 0.2 of the synapses on MNIST, and the network's input
grows with it).
Extra row columns: ``synapse``, ``write_attempts_per_image``, ``switches_per_image``,
``write_energy_per_attempt_J``, ``on_fraction``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from circuits import DAC, MappedMatrix

from .base import Hardware, param
from .learning.diehl_cook import MODES, NU_SCHEDULES, WRITE_EVERY, DiehlCookConfig
from .learning.stochastic import DEPRESSION_MODES, SYNAPSE_MODES, BinarySynapses, MTJCrossbarSynapses, StochasticSTDP
from .stdp import LAYER, STDPAlgorithm

__all__ = ["StochasticSTDPAlgorithm", "RuleConfig"]


#: the network constants a learner built on the Diehl & Cook network may override (null: the mode's)
NETWORK_KEYS = ("dt_s", "t_present_s", "max_rate_hz", "theta_plus", "tau_theta_s", "norm_total", "w_ie")


@dataclass
class RuleConfig(DiehlCookConfig):
    """:class:`DiehlCookConfig` whose learning rule comes from ``rule_factory`` (a new rule class, not a flag)."""

    rule_factory: Callable | None = field(default=None, repr=False, compare=False)

    def make_rule(self):
        return self.rule_factory() if self.rule_factory is not None else super().make_rule()


class StochasticSTDPAlgorithm(STDPAlgorithm):
    """Diehl & Cook network with binary stochastic-STDP synapses (module docstring)."""

    name: ClassVar[str] = "stochastic_stdp"

    @dataclass
    class Params:
        n_neurons: int = param(100, description="excitatory (and inhibitory) neurons", ge=1)
        mode: str = param("fast", description="network constants: fast (BindsNET DiehlAndCook2015) or paper "
                          "(the released Brian code); see algorithm stdp", choices=list(MODES))
        epochs: int = param(1, description="passes over the training images", ge=1)
        n_assign: int | None = param(None, description="label assignment from the last n training images "
                                     "(learning off); null: all", ge=1, nullable=True)
        synapse: str = param("bernoulli", description="bernoulli: the algorithm draws the switches; device: MTJ cells "
                             "of the configured device switch with their own probability (ideal readout); crossbar: "
                             "the same cells on a unipolar MappedMatrix (its solver, IR drop, ADC; one element)",
                             choices=[*SYNAPSE_MODES, "crossbar"])
        gamma_pot: float = param(0.015, description="potentiation: P(OFF→ON) = gamma_pot·x_pre on a post spike "
                                 "(0.015: best measured over one MNIST pass; 0.03 learns faster on short runs)", ge=0, le=1)
        gamma_dep: float = param(0.005, description="depression probability scale (anti_hebbian: gamma_dep·(1 − x_pre) "
                                 "for silent pres on a post spike; pre: gamma_dep·x_post on a pre spike)", ge=0, le=1)
        nu_schedule: str = param("constant", description="schedule of the switching probabilities over the training "
                                 "images (all passes): constant, linear (1 → nu_final) or exponential (geometric, "
                                 "1 → nu_final); scales gamma_pot and gamma_dep", choices=list(NU_SCHEDULES))
        nu_final: float = param(0.05, description="nu_schedule linear/exponential: gamma_pot and gamma_dep at the end "
                                "of training as a fraction of the first", gt=0, le=1)
        depression: str = param("anti_hebbian", description="anti_hebbian (ReStoCNet HB-STDP), balanced (anti-Hebbian "
                                "with the depression scaled per post spike so the column's expected ON count goes to "
                                "on_target·n_in), pre (pair rule), both, none", choices=list(DEPRESSION_MODES))
        on_target: float | None = param(None, description="balanced: target fraction of ON synapses per neuron (null: "
                                        "the mode's column sum / (n_in·w_max), 0.1 in fast mode)", gt=0, le=1,
                                        nullable=True)
        x_window: float = param(math.exp(-1.0), description="pre trace above which a pre counts as recent "
                                "(anti-Hebbian window Δt ≤ τ_pre·ln(1/x_window))", ge=0, le=1)
        tau_pre_s: float = param(20e-3, description="pre trace time constant", unit="s", gt=0)
        tau_post_s: float = param(20e-3, description="post trace time constant", unit="s", gt=0)
        p_min: float = param(1e-3, description="attempts with a smaller probability are not made (no pulse)", ge=0, le=1)
        element_scales: list[float] = param(default_factory=lambda: [1.0], description="long-term/short-term "
                                            "synapse: one binary element per entry, switched with P·scale; weight = "
                                            "w_max × mean of the elements ([1.0]: one binary synapse)")
        w_max: float = param(1.0, description="weight of an ON synapse", gt=0)
        p_init: float = param(0.1, description="probability that an element starts ON", ge=0, le=1)
        t_pulse_s: float | None = param(None, description="device mode: write pulse width (null: the device's "
                                        "t_write_s)", unit="s", gt=0, nullable=True)
        read_before_write: bool = param(False, description="device mode: the driver reads each selected cell and pulses "
                                        "only those not already in the target state (read energy charged)")
        current_scale: float = param(1.0, description="device mode: factor on the nominal-calibrated write current "
                                     "(≠ 1: a miscalibrated driver)", gt=0)
        normalisation: str = param("gain", description="gain (digital per-neuron input gain: each neuron's effective "
                                   "input sum = norm_total, no writes) or none; binary cells cannot be reprogrammed",
                                   choices=["none", "gain"])
        write_every: str = param("image", description="image: the attempts of a presentation are made after it "
                                 "(weights frozen during it); step: after every time step", choices=list(WRITE_EVERY))
        replicas: int = param(1, description="independent networks trained together in one loop (one row each)", ge=1)
        dt_s: float | None = param(None, description="time step (null: the mode's)", unit="s", gt=0, nullable=True)
        t_present_s: float | None = param(None, description="presentation time (null: the mode's)", unit="s", gt=0,
                                          nullable=True)
        max_rate_hz: float | None = param(None, description="input rate of a white pixel (null: the mode's)", unit="Hz",
                                          gt=0, nullable=True)
        theta_plus: float | None = param(None, description="threshold increment per spike (null: 0.05 mV)", unit="V",
                                         ge=0, nullable=True)
        tau_theta_s: float | None = param(None, description="adaptive-threshold decay time constant τ_θ (null: 1e4 s, "
                                          "the codes' 1e7 ms)", unit="s", gt=0, nullable=True)
        norm_total: float | None = param(None, description="column sum for normalisation gain (null: the mode's)",
                                         gt=0, nullable=True)
        w_ie: float | None = param(None, description="inhibitory weight (null: the mode's)", ge=0, nullable=True)
        eval_batch: int = param(64, description="test images simulated together (learning off)", ge=1)

    def __init__(self, params: Any, hardware: Hardware, model: torch.nn.Module | None = None):
        p = params
        if not p.element_scales or any(not (0 < float(s) <= 1) for s in p.element_scales):
            raise ValueError(f"algorithm.element_scales: got {p.element_scales!r}; expected a non-empty list of "
                             "numbers in (0, 1]")
        if p.depression not in DEPRESSION_MODES:
            raise ValueError(f"algorithm.depression: got {p.depression!r}; allowed: {', '.join(DEPRESSION_MODES)}")
        if p.on_target is not None and not (isinstance(p.on_target, (int, float)) and 0 < p.on_target <= 1):
            raise ValueError(f"algorithm.on_target: got {p.on_target!r}; must be a number in (0, 1] or null")
        if p.synapse == "crossbar" and len(p.element_scales) != 1:
            raise ValueError(f"algorithm.element_scales: got {p.element_scales!r}; synapse 'crossbar' holds one "
                             "binary element per synapse (use synapse: device for LT-ST synapses)")
        if p.synapse in ("device", "crossbar") and not getattr(hardware.device, "binary",
                                                               hasattr(hardware.device, "switch")):
            raise ValueError(f"algorithm.synapse: 'device' needs a binary stochastic device (stt_mtj, sot_mtj); the "
                             f"config's device is {getattr(hardware.device, 'name', hardware.device)!r}")
        self.params, self.hardware, self.model = p, hardware, model
        overrides = {k: getattr(p, k) for k in NETWORK_KEYS}
        self.cfg = RuleConfig.preset(p.mode, n_neurons=int(p.n_neurons), write_every=p.write_every,
                                     normalisation=p.normalisation, w_max=float(p.w_max), **overrides)
        self.cfg.rule_factory = self._make_rule
        self.net = None
        self.mm = None
        self._assign_x = self._assign_y = None
        self._n_classes = 10
        self._cols: dict = {}
        self._t_s = 0.0
        self._image_shape = None
        self._train_ledger = None

    def _make_rule(self) -> StochasticSTDP:
        p = self.params
        return StochasticSTDP(gamma_pot=p.gamma_pot, gamma_dep=p.gamma_dep, tau_pre_s=p.tau_pre_s,
                              tau_post_s=p.tau_post_s, depression=p.depression, x_window=p.x_window, p_min=p.p_min,
                              dt_s=self.cfg.dt_s, reset_traces=self.cfg.reset_between, on_target=self.on_target())

    def on_target(self) -> float:
        """Target ON fraction of the ``balanced`` depression: ``on_target``, or the column sum / (n_in·w_max)."""
        if self.params.on_target is not None:
            return float(self.params.on_target)
        n_in = getattr(self, "_n_in", None)
        if n_in is None:
            return 0.1
        return min(1.0, self.cfg.column_sum(n_in) / (n_in * float(self.params.w_max)))

    def _synapses(self, n_in: int):
        p, hw = self.params, self.hardware
        self._n_in = int(n_in)
        gen = hw.generator if hw.generator is not None else torch.Generator().manual_seed(int(torch.seed() % 2**62))
        if p.synapse == "crossbar":
            device, spec, _dac, adc = hw.for_layer(LAYER)
            spec = dataclasses.replace(spec, scheme="unipolar", weight_bits=None, bits_per_cell=None)
            w0 = (torch.rand(p.replicas, self.cfg.n_neurons, n_in, generator=gen, device=gen.device) < p.p_init)
            seeds = torch.randint(0, 2**62, (p.replicas,), generator=gen, device=gen.device).tolist()
            gens = [torch.Generator(device=gen.device).manual_seed(int(s)) for s in seeds]
            self.mm = MappedMatrix((w0.to(hw.dtype) * p.w_max), device, spec=spec, dac=DAC(mode="spikes"), adc=adc,
                                   generator=gens, dtype=hw.dtype, name=LAYER, w_max=p.w_max, replicas=p.replicas)
            syn = MTJCrossbarSynapses(self.mm, t_pulse_s=p.t_pulse_s, current_scale=p.current_scale,
                                      ledger=self._train_ledger)
            self.syn = syn
            return syn, gen
        syn = BinarySynapses(p.replicas, n_in, self.cfg.n_neurons, mode=p.synapse,
                             device=hw.device if p.synapse == "device" else None, element_scales=p.element_scales,
                             w_min=0.0, w_max=p.w_max, p_init=p.p_init, t_pulse_s=p.t_pulse_s,
                             current_scale=p.current_scale, generator=gen, dtype=hw.dtype, name="stochastic_stdp_input",
                             ledger=self._train_ledger, read_before_write=p.read_before_write)
        self.syn = syn
        return syn, gen

    def fit(self, data, ledger=None) -> None:
        self._train_ledger = ledger
        super().fit(data, ledger)
        syn, p = self.net.syn, self.params
        if p.normalisation == "gain":  # the gain of the final weights (the last presentation wrote after its gain)
            syn.normalise(self.cfg.column_sum(syn.n_pre), "gain")
        n_img = max(self._cols["n_train"] * p.replicas, 1)
        self._cols.update({
            "synapse": p.synapse,
            "elements": len(p.element_scales),
            "write_attempts_per_image": syn.attempts / n_img,
            "switches_per_image": syn.switches / n_img,
            "write_energy_per_attempt_J": syn.write_energy_J / syn.attempts if syn.attempts else math.nan,
            "write_energy_per_image_J": syn.write_energy_J / n_img,
            "t_pulse_s": syn.t_pulse_s if p.synapse != "bernoulli" else math.nan,
            "current_scale": p.current_scale,
            "depression": p.depression,
            "on_target": self.on_target() if p.depression == "balanced" else math.nan,
        })

    def evaluate(self, x, y, t_s: float, batch_size: int = 512) -> list[dict]:
        rows = super().evaluate(x, y, t_s, batch_size)
        on = self.net.syn.on_fraction()
        for r in rows:
            r["on_fraction"] = float(on[r["replica"]].mean())
        return rows
