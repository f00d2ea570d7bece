"""``algorithm: {name: stdp}`` — unsupervised STDP (Diehl & Cook 2015) with every input synapse a device.

The network, modes and equations: :mod:`algorithms.learning.diehl_cook` (Diehl & Cook, Front. Comput.
Neurosci. 9:99, 2015; BindsNET 0.3.4 for ``mode: fast``). The ``n_in × n_neurons`` input weights live on a
plastic ``unipolar`` crossbar (:class:`circuits.MappedMatrix`, one cell per weight plus a reference
column, ``w ∈ [0, 1]`` mapped to ``[g_min, g_max]``): each time step the input spikes drive their rows
as read pulses and the column currents, through the ADC (``crossbar.adc.bits``) or directly
(``bits: null``, analog column input), feed the excitatory neurons; the rule's Δw become device pulses
(:class:`~algorithms.learning.synapses.CrossbarSynapses`).

``fit`` learns on ``data.x_train`` for ``epochs`` passes (training energy per image → the training ledger);
``evaluate`` assigns labels from the responses to the last ``n_assign`` training images (learning off,
θ fixed) and scores the test images by the Diehl & Cook vote (``accuracy``) and by BindsNET's proportion
weighting (``accuracy_proportion``). With ``replicas: R`` R independent networks
(own initial weights, spikes and chips) learn in one loop; every replica gives its own row (``replica``).

Receptive fields: :func:`plot_receptive_fields` draws the chip's weights (``weights()``) as 28×28 images.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from circuits import DAC, EnergyLedger, MappedMatrix

from .base import Algorithm, Hardware, ledger_columns, param, per_class_accuracy
from .learning.diehl_cook import (
    MODES,
    NU_SCHEDULES,
    WRITE_EVERY,
    DiehlCookConfig,
    DiehlCookNetwork,
    class_rates,
    init_weights,
    labels_from_rates,
    proportion_vote,
    rate_scale,
    vote,
)
from .learning.synapses import NORMALISATIONS, ROUNDINGS, CrossbarSynapses, TorchSynapses

__all__ = ["STDPAlgorithm", "plot_receptive_fields", "receptive_field_similarity"]

LAYER = "stdp_input"


class STDPAlgorithm(Algorithm):
    """Diehl & Cook (2015) unsupervised STDP on a plastic crossbar (module docstring)."""

    name: ClassVar[str] = "stdp"

    @dataclass
    class Params:
        n_neurons: int = param(100, description="excitatory (and inhibitory) neurons", ge=1)
        mode: str = param("fast", description="paper: the released Brian code (conductance-based, triplet rule, "
                          "dt 0.5 ms, 350+150 ms, 63.75 Hz); fast: BindsNET DiehlAndCook2015 (current-based, pair rule, "
                          "dt 1 ms, 250 ms, 128 Hz, one spike per step)", choices=list(MODES))
        epochs: int = param(1, description="passes over the training images", ge=1)
        n_assign: int | None = param(None, description="label assignment from the last n training images "
                                     "(learning off); null: all", ge=1, nullable=True)
        normalisation: str = param("reprogram", description="column sum (78 / 78.4) on hardware: reprogram (write the "
                                   "rescaled weights, write energy charged), gain (digital per-neuron input gain, no "
                                   "writes) or none", choices=list(NORMALISATIONS))
        write_every: str = param("image", description="when Δw is written to the devices: image (one burst after each "
                                 "presentation) or step (after every time step, the reference semantics)",
                                 choices=list(WRITE_EVERY))
        rounding: str = param("auto", description="Δw → pulses: stochastic (unbiased rounding of Δw/step), "
                              "nearest, none (exact continuous writes; ideal device without levels), accumulate "
                              "(mixed precision: a digital accumulator per synapse, whole pulses when it reaches a "
                              "step) or auto (none where the device writes continuously, else stochastic)",
                              choices=["auto", *ROUNDINGS])
        synapses: str = param("crossbar", description="crossbar (devices) or software (plain-torch reference, no energy)",
                              choices=["crossbar", "software"])
        replicas: int = param(1, description="independent networks trained together in one loop (one row each)", ge=1)
        rule: str | None = param(None, description="STDP rule (null: the mode's: triplet for paper, pair for fast); "
                                 "power: the paper's Eq. 3, Δw = ν_post·(x_pre − x_tar)·(w_max − w)^μ on post spikes",
                                 choices=["pair", "triplet", "power"], nullable=True)
        x_tar: float | None = param(None, description="rule power: target pre trace x_tar (null: 0.4)", ge=0,
                                    nullable=True)
        mu: float | None = param(None, description="rule power: weight-dependence exponent μ (null: 0.2)", ge=0,
                                 nullable=True)
        dt_s: float | None = param(None, description="time step (null: the mode's)", unit="s", gt=0, nullable=True)
        t_present_s: float | None = param(None, description="presentation time (null: the mode's)", unit="s", gt=0,
                                          nullable=True)
        max_rate_hz: float | None = param(None, description="input rate of a white pixel (null: the mode's)", unit="Hz",
                                          gt=0, nullable=True)
        nu_pre: float | None = param(None, description="depression rate (null: 1e-4)", ge=0, nullable=True)
        nu_post: float | None = param(None, description="potentiation rate (null: 1e-2)", ge=0, nullable=True)
        nu_schedule: str = param("constant", description="learning-rate schedule over the training images "
                                 "(all passes): constant (the codes'), linear (1 → nu_final) or exponential (geometric, "
                                 "1 → nu_final); scales the rule's rates (ν_pre, ν_post; η)", choices=list(NU_SCHEDULES))
        nu_final: float = param(0.05, description="nu_schedule linear/exponential: the rate at the end of training as "
                                "a fraction of the first", gt=0, le=1)
        theta_plus: float | None = param(None, description="threshold increment per spike (null: 0.05 mV)", unit="V",
                                         ge=0, nullable=True)
        tau_theta_s: float | None = param(None, description="adaptive-threshold decay time constant τ_θ (null: 1e4 s, "
                                          "the codes' 1e7 ms)", unit="s", gt=0, nullable=True)
        norm_total: float | None = param(None, description="column sum of the input weights (null: 78/784 (paper) or "
                                         "0.1 (fast) of the inputs: 78 / 78.4 for MNIST)", gt=0, nullable=True)
        w_ie: float | None = param(None, description="inhibitory weight (null: 17.0 paper, 120 fast)", ge=0,
                                   nullable=True)
        synchronous: bool = param(True, description="fast mode's spike order: true — BindsNET's synchronous update "
                                  "(input at t drives the neurons at t+1, inhibition 2 steps after an excitatory "
                                  "spike); false — input at t, inhibition at t+1 (paper mode: Brian 1's order)")
        online_dw: bool = param(False, description="paper mode: the rule's Δw acts on the input drive at every spike "
                                "event within a presentation, as Brian 1 writes w per event (the devices are still "
                                "written after the presentation)")
        input_delay_s: float = param(0.0, description="paper mode, software synapses: per-synapse input delays "
                                     "U[0, input_delay_s) (the released code: 0.01); 0: none", unit="s", ge=0)
        input_spikes: str = param("poisson", description="input spike trains: poisson (a spike with p = 1 − e^(−r·dt) "
                                  "each step) or poisson_isi (BindsNET 0.3.4's PoissonEncoder: Poisson-distributed "
                                  "inter-spike intervals, far more regular)", choices=["poisson", "poisson_isi"])
        eval_batch: int = param(64, description="test images simulated together (learning off)", ge=1)

    def __init__(self, params: Any, hardware: Hardware, model: torch.nn.Module | None = None):
        super().__init__(params, hardware, model)
        p = params
        overrides = {k: getattr(p, k) for k in ("rule", "dt_s", "t_present_s", "max_rate_hz", "nu_pre", "nu_post",
                                                 "x_tar", "mu", "theta_plus", "tau_theta_s", "norm_total",
                                                 "w_ie")}
        self.cfg = DiehlCookConfig.preset(p.mode, n_neurons=int(p.n_neurons), write_every=p.write_every,
                                          normalisation=p.normalisation, synchronous=bool(p.synchronous),
                                          input_spikes=p.input_spikes, online_dw=bool(p.online_dw),
                                          input_delay_s=float(p.input_delay_s), **overrides)
        rate_scale(p.nu_schedule, p.nu_final, 0.0)  # checks algorithm.nu_schedule and nu_final
        self.net: DiehlCookNetwork | None = None
        self.mm: MappedMatrix | None = None
        self._assign_x = self._assign_y = None
        self._n_classes = 10
        self._cols: dict = {}
        self._t_s = 0.0
        self._image_shape = None

    # -- build ---------------------------------------------------------------------------------
    def _synapses(self, n_in: int):
        p, hw = self.params, self.hardware
        gen = hw.generator if hw.generator is not None else torch.Generator().manual_seed(int(torch.seed() % 2**62))
        w0 = init_weights(self.cfg, n_in, p.replicas, gen, dtype=hw.dtype, device=hw.torch_device)
        if p.synapses == "software":
            return TorchSynapses(w0, 0.0, self.cfg.w_max), gen
        device, spec, _dac, adc = hw.for_layer(LAYER)
        spec = dataclasses.replace(spec, scheme="unipolar", weight_bits=None, bits_per_cell=None)
        seeds = torch.randint(0, 2**62, (p.replicas,), generator=gen, device=gen.device).tolist()
        gens = [torch.Generator(device=gen.device).manual_seed(int(s)) for s in seeds]
        self.mm = MappedMatrix(w0.transpose(1, 2).contiguous(), device, spec=spec, dac=DAC(mode="spikes"), adc=adc,
                               generator=gens, dtype=hw.dtype, name=LAYER, w_max=self.cfg.w_max, replicas=p.replicas)
        rounding = p.rounding
        if rounding == "auto":
            rounding = "none" if getattr(device, "continuous_writes", False) else "stochastic"
        return CrossbarSynapses(self.mm, rounding=rounding), gen

    def _calibrate(self, x: Tensor, gen) -> None:
        """ADC range from input spikes of the first training images (one read per time step)."""
        if self.mm is None or self.mm.adc.bits is None:
            return
        xs = x[: min(32, x.shape[0])].to(self.mm.dtype)
        p = -torch.expm1(-xs.clamp(0, 1) * self.cfg.max_rate_hz * self.cfg.dt_s)
        u = torch.rand(16, *p.shape, generator=gen, device=p.device, dtype=p.dtype)
        spikes = (u < p).reshape(-1, p.shape[-1]).to(self.mm.dtype)
        self.mm.calibrate(spikes.unsqueeze(0).expand(self.params.replicas, -1, -1))

    # -- lifecycle -------------------------------------------------------------------------------
    def fit(self, data, ledger: EnergyLedger | None = None) -> None:
        p = self.params
        x = data.x_train.reshape(data.x_train.shape[0], -1).float()
        y = data.y_train
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError(f"dataset: STDP needs pixel intensities in [0, 1]; got [{float(x.min()):.3g}, {float(x.max()):.3g}]")
        self._n_classes = int(getattr(data, "n_classes", int(y.max()) + 1))
        shape = tuple(getattr(data, "image_shape", ()))
        self._image_shape = shape[-2:] if len(shape) >= 2 else None
        syn, gen = self._synapses(x.shape[1])
        self.net = DiehlCookNetwork(self.cfg, syn, gen)
        self._calibrate(x, gen)
        n = x.shape[0]
        n_learn = max(n * p.epochs, 1)
        schedule = (getattr(p, "nu_schedule", "constant"), getattr(p, "nu_final", 1.0))  # asp has no schedule
        t0 = time.perf_counter()
        for e in range(p.epochs):
            for i in range(n):
                if schedule[0] != "constant":
                    self.net.rule.scale_rates(rate_scale(*schedule, (e * n + i) / n_learn))
                self.net.present(x[i], learning=True, ledger=ledger)
                if ledger is not None:
                    ledger.count_inferences(p.replicas)
        wall = time.perf_counter() - t0
        n_img = n * p.epochs
        st = self.net.stats
        k = n if p.n_assign is None else min(int(p.n_assign), n)
        self._assign_x, self._assign_y = x[n - k:], y[n - k:]
        pulses = getattr(syn, "pulses", 0.0)
        self._cols = {
            "n_neurons": self.cfg.n_neurons,
            "mode": self.cfg.mode,
            "n_train": n_img,
            "n_assign": k,
            "replicas": p.replicas,
            "normalisation": p.normalisation,
            "write_every": p.write_every,
            "images_per_s": n_img / wall if wall > 0 else math.nan,
            "image_networks_per_s": n_img * p.replicas / wall if wall > 0 else math.nan,
            "exc_spikes_per_image": st.exc_spikes / max(n_img * p.replicas, 1),
            "presentations_per_image": st.presentations / max(n_img * p.replicas, 1),
            "pulses_per_image": pulses / max(n_img * p.replicas, 1),
            "time_per_image_s": (self.cfg.steps + self.cfg.rest_steps) * self.cfg.dt_s,
        }

    def set_time(self, t_s: float) -> None:
        self._t_s = float(t_s)
        if self.mm is not None:
            self.mm.set_time(t_s)
            self.net.syn.invalidate()

    def _need_fit(self) -> DiehlCookNetwork:
        if self.net is None:
            raise RuntimeError("stdp: call fit(data) before predict/evaluate")
        return self.net

    def responses(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """Spike counts ``[R, n, n_neurons]`` of the learned networks (learning off)."""
        net = self._need_fit()
        return net.responses(x.reshape(x.shape[0], -1).float(), self.params.eval_batch, ledger)

    def label_rates(self) -> Tensor:
        """Mean response ``[R, n_classes, n_neurons]`` per class to the last ``n_assign`` training images."""
        return class_rates(self.responses(self._assign_x), self._assign_y, self._n_classes)

    def assignments(self) -> Tensor:
        """Neuron labels ``[R, n_neurons]`` from the last ``n_assign`` training images (−1: never fired)."""
        return labels_from_rates(self.label_rates())

    def predict(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """Vote scores ``[B, n_classes]`` of replica 0 (``evaluate`` scores every replica)."""
        a = self.assignments()
        return vote(self.responses(x, ledger), a, self._n_classes)[0]

    def columns(self) -> dict:
        return dict(self._cols)

    def evaluate(self, x: Tensor, y: Tensor, t_s: float, batch_size: int = 512) -> list[dict]:
        """One row per replica: ``accuracy`` (= ``accuracy_hw``; the Diehl & Cook vote), ``accuracy_proportion``
        (BindsNET's proportion weighting of the same responses), per-class accuracy (the vote's), inference energy
        per test image."""
        self.set_time(t_s)
        rates = self.label_rates()
        assign = labels_from_rates(rates)
        ledger = EnergyLedger()
        t0 = time.perf_counter()
        counts = self.responses(x, ledger)
        wall = time.perf_counter() - t0
        pred = vote(counts, assign, self._n_classes).argmax(-1).cpu()
        pred_pw = proportion_vote(counts, rates).argmax(-1).cpu()
        energy = ledger_columns(ledger)
        rows = []
        for r in range(pred.shape[0]):
            acc = float((pred[r] == y.cpu()).float().mean()) if y.numel() else math.nan
            rows.append({
                "t_s": float(t_s),
                "replica": r,
                "accuracy": acc,
                "accuracy_hw": acc,
                "accuracy_proportion": float((pred_pw[r] == y.cpu()).float().mean()) if y.numel() else math.nan,
                **per_class_accuracy(pred[r], y, self._n_classes),
                "neurons_assigned": int((assign[r] >= 0).sum()),
                "rf_similarity": receptive_field_similarity(self.net.syn.weights()[r]),
                "test_images_per_s": x.shape[0] / wall if wall > 0 else math.nan,
                **energy,
            })
        return rows

    # -- figures ---------------------------------------------------------------------------------
    def weights(self) -> Tensor:
        """The weights the chip holds ``[R, n_in, n_neurons]`` (crossbar layout)."""
        return self._need_fit().syn.weights()

    def plot_receptive_fields(self, path, replica: int = 0, image_shape=None):
        """Save the receptive fields of ``replica`` (image shape: the dataset's) to ``path``."""
        shape = image_shape or self._image_shape
        if shape is None:
            n_in = self.weights().shape[1]
            side = int(round(math.sqrt(n_in)))
            shape = (side, n_in // side)
        return plot_receptive_fields(self.weights()[replica], path, shape)


def receptive_field_similarity(w: Tensor) -> float:
    """Mean pairwise correlation of the neurons' receptive fields (columns of ``w [in, out]``); 1 = all alike."""
    c = w.to(torch.float64)
    c = c - c.mean(0, keepdim=True)
    c = c / c.norm(dim=0, keepdim=True).clamp(min=1e-30)
    corr = c.T @ c
    n = corr.shape[0]
    if n < 2:
        return math.nan
    return float((corr.sum() - corr.diagonal().sum()) / (n * (n - 1)))


def plot_receptive_fields(weights: Tensor, path, image_shape=(28, 28), max_neurons: int = 400):
    """Save the receptive fields (columns of ``weights [in, out]``, rows of ``[out, in]`` as ``MappedMatrix.weights()``
    gives them; ``[R, ·, ·]``: replica 0) as a grid of ``image_shape`` images to ``path`` (PNG/PDF/SVG by
    extension). Needs matplotlib; returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - optional dependency
        raise RuntimeError("plot_receptive_fields needs matplotlib (pip install matplotlib)") from e
    w = weights.detach().cpu().to(torch.float32)
    if w.dim() == 3:
        w = w[0]
    h, wd = image_shape
    if w.dim() != 2 or h * wd not in w.shape:
        raise ValueError(f"weights: got shape {tuple(weights.shape)}; image_shape {tuple(image_shape)} needs {h * wd} inputs")
    if w.shape[0] != h * wd:  # [out, in] (MappedMatrix.weights() layout)
        w = w.T
    n = min(w.shape[1], max_neurons)
    side = math.ceil(math.sqrt(n))
    grid = torch.zeros(side * h, side * wd)
    for k in range(n):  # a few hundred tiles at most: figure assembly, not a hot path
        r, c = divmod(k, side)
        grid[r * h:(r + 1) * h, c * wd:(c + 1) * wd] = w[:, k].reshape(h, wd)
    fig, ax = plt.subplots(figsize=(6, 6))
    im = ax.imshow(grid.numpy(), cmap="hot_r", vmin=0.0, vmax=float(w.max()) if w.numel() else 1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"receptive fields ({n} neurons)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="weight")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
