"""The ``conversion``, ``hybrid`` and ``surrogate`` algorithms: spiking networks on crossbars.

* ``conversion``: a trained ANN (Linear, Conv2d, ReLU, AvgPool2d, Flatten, Dropout, folded
  BatchNorm) becomes an IF network, thresholds balanced by activation percentile (Rueckauer et al.,
  Front. Neurosci. 11:682, 2017; 99.9 by default) or Spike-Norm (Sengupta et al., Front. Neurosci.
  13:95, 2019) on the hardware's own activations (see :mod:`algorithms.snn.network`).
* ``hybrid``: conversion as initialisation (Spike-Norm thresholds × 0.7), then spike-based
  backprop through time with the STDB surrogate (Rathi, Srinivasan, Panda & Roy, ICLR 2020), soft
  reset, Adam; the fine-tuned weights are then programmed onto the chips. ``hardware_aware``
  trains through the chips (straight-through gradients; :mod:`algorithms.snn.training`).
* ``surrogate``: the same BPTT machinery from a random initialisation (Lee et al., Front.
  Neurosci. 10:508, 2016 and 14:119, 2020).

Rows: one per ``T`` of ``timesteps`` with ``method``, ``timesteps``, ``accuracy_ann`` (software
ANN), ``accuracy_ann_hw`` (the ANN on the same chips), ``accuracy_snn_sw`` (the same SNN in
software, ideal devices), ``accuracy_snn_hw`` (also as ``accuracy_hw``; ``accuracy_sw`` is
``accuracy_snn_sw``), ``spike_rate_<layer>`` (spikes per neuron and step), ``ops_ac``,
``ops_mac``, ``energy_opcount_ann_J``, ``energy_opcount_snn_J`` and their ratio
``opcount_energy_ratio`` (ANN/SNN, Horowitz 45 nm energies), and the crossbar energy per
inference by component with the latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from circuits import EnergyLedger

from ..ann import CrossbarNetwork, flatten_layers
from ..base import Algorithm, DataSplit, Hardware, accuracy, ledger_columns, param
from ..neurons.integrate_fire import RESETS
from .network import (
    ANALOG_E_SPIKE_J,
    ANALOG_E_STEP_J,
    ENCODINGS,
    NORMS,
    OUTPUTS,
    POOLINGS,
    READOUTS,
    SpikingNetwork,
    check_convertible,
    fold_pooling,
)
from .surrogate import make_surrogate
from .training import init_random_, programming_noise, train_bptt

__all__ = ["ConversionAlgorithm", "HybridAlgorithm", "SurrogateAlgorithm", "ConversionParams", "HybridParams", "SurrogateParams"]


@dataclass
class ConversionParams:
    """Parameters of ``algorithm: {name: conversion}`` (shared by ``hybrid`` and ``surrogate``)."""

    timesteps: list[int] = param(default_factory=lambda: [8, 16, 32, 64], ge=1, min_items=1, scalar_ok=True,
                                 description="time-step counts T to report (one row each, all from one run of max T)")
    norm: str = param("percentile", choices=NORMS,
                      description="threshold balancing: activation percentile (Rueckauer 2017) or Spike-Norm max (Sengupta 2019)")
    percentile: float = param(99.9, unit="%", gt=0, le=100, description="activation percentile for norm 'percentile'")
    norm_timesteps: int = param(64, ge=1, description="SNN steps for Spike-Norm and for the ADC calibration on spike currents")
    n_norm: int = param(256, ge=1, description="training images used for threshold balancing and calibration")
    threshold_scale: float = param(1.0, gt=0, description="thresholds multiplied by this (0.7: the hybrid initialisation of Rathi 2020)")
    reset: str = param("subtract", choices=RESETS, description="IF reset: by subtraction (soft) or to zero (hard)")
    encoding: str = param("direct", choices=ENCODINGS, description="input: analog first layer (direct) or Bernoulli rate spikes")
    output: str = param("membrane", choices=OUTPUTS, description="class score: output membrane potential or spike count")
    readout: str = param("adc", choices=READOUTS,
                         description="column readout: ADC + digital IF neuron, or analog IF neuron integrating on a capacitor (no ADC)")
    pooling: str = param("fold", choices=POOLINGS,
                         description="average pooling: folded into the next layer's weights (rows see the spikes below), "
                                     "IF pool neurons (threshold 1), fractional pooled values through an amplitude DAC, "
                                     "or count: each window's spike count drives one row with that many read pulses")
    neuron_e_step_J: float = param(ANALOG_E_STEP_J, unit="J", ge=0, description="analog column neuron energy per integration step")
    neuron_e_spike_J: float = param(ANALOG_E_SPIKE_J, unit="J", ge=0, description="analog column neuron energy per spike")
    software_snn: bool = param(True, description="also run the same SNN in software on ideal devices (accuracy_snn_sw)")


@dataclass
class HybridParams(ConversionParams):
    """Parameters of ``algorithm: {name: hybrid}``: conversion fields plus BPTT training."""

    norm: str = param("spike_norm", choices=NORMS, description="threshold initialisation (Spike-Norm in Rathi 2020)")
    threshold_scale: float = param(0.7, gt=0, description="Spike-Norm thresholds multiplied by this (0.7 in Rathi 2020)")
    train_timesteps: int | None = param(None, ge=1, nullable=True, description="time steps of BPTT training (null: the smallest T)")
    epochs: int = param(2, ge=0, description="training epochs")
    lr: float = param(1e-4, gt=0, description="Adam learning rate (1e-4 in Rathi 2020)")
    batch_size: int = param(64, ge=1, description="training batch size")
    n_train: int | None = param(None, ge=1, nullable=True, description="training samples used (null: all)")
    surrogate: str = param("stdb", choices=("stdb", "linear"),
                           description="surrogate gradient: STDB α·exp(−β·Δt) (Rathi 2020) or linear α·max(0, 1−|u/θ−1|)")
    alpha: float = param(0.3, gt=0, description="surrogate scale α")
    beta: float = param(0.01, ge=0, description="STDB decay β per step since the neuron's last spike")
    leak: float = param(1.0, gt=0, le=1, description="membrane leak factor per step during training (1: IF)")
    hardware_aware: bool = param(False, description="train through the chips (chip in the loop): device noise and quantisation "
                                 "forward, straight-through gradients")
    weight_noise: float | None = param(None, ge=0, nullable=True,
                                       description="weight-noise injection during software training (Joshi et al. 2020): "
                                       "Gaussian noise of this multiple of the programming noise η measured on the chips "
                                       "(1.0: the device's own level), redrawn per mini-batch; null: off")
    clip_std: float | None = param(None, gt=0, nullable=True,
                                   description="after every training step clip each layer's weights to ±clip_std·std(W) "
                                   "(Joshi et al. 2020); null: no clipping")


@dataclass
class SurrogateParams(HybridParams):
    """Parameters of ``algorithm: {name: surrogate}`` (random initialisation, thresholds 1)."""

    threshold_scale: float = param(1.0, gt=0, description="unused (thresholds are 1 from scratch)")
    epochs: int = param(5, ge=0, description="training epochs")
    lr: float = param(1e-3, gt=0, description="Adam learning rate")
    surrogate: str = param("linear", choices=("stdb", "linear"), description="surrogate gradient (linear: Bellec 2018; stdb: Rathi 2020)")


class _SpikingAlgorithm(Algorithm):
    """Common part: build, balance, evaluate rows per T."""

    method = "conversion"
    supports_binary_devices = False

    def __init__(self, params, hardware: Hardware, model: torch.nn.Module | None = None):
        super().__init__(params, hardware, model)
        p = params
        ts = [int(t) for t in (p.timesteps if isinstance(p.timesteps, (list, tuple)) else [p.timesteps])]
        if not ts or min(ts) < 1:
            raise ValueError(f"algorithm.timesteps: got {p.timesteps!r}; need a list of integers ≥ 1")
        self.timesteps = sorted(set(ts))
        self.net: CrossbarNetwork | None = None
        self.snn_hw: SpikingNetwork | None = None
        self.snn_sw: SpikingNetwork | None = None
        self._t: float | None = None
        self._cache: dict = {}
        self.extra: dict = {}
        self._macs_scale: dict[str, float] = {}

    # -- building -------------------------------------------------------------------------------
    def _check_model(self) -> None:
        if self.model is None:
            raise ValueError(f"model: the {self.name} algorithm needs a software model")
        check_convertible(flatten_layers(self.model))

    def _snn(self, backend: str) -> SpikingNetwork:
        p = self.params
        return SpikingNetwork(self.net, backend=backend, reset=p.reset, encoding=p.encoding, output=p.output, readout=p.readout,
                              pool_neurons=p.pooling == "neurons",
                              pool_counts=p.pooling == "count", e_step_J=p.neuron_e_step_J, e_spike_J=p.neuron_e_spike_J,
                              generator=self.net.generator, macs_scale=self._macs_scale)

    def build(self, in_shape: tuple[int, ...]) -> None:
        """Map the (pool-folded) software model onto the chips; the SNN views on it."""
        self._check_model()
        model, self._macs_scale = self.model, {}
        if self.params.pooling == "fold":
            model, scales = fold_pooling(self.model, tuple(in_shape))
        self.net = CrossbarNetwork.from_hardware(model, self.hardware)
        if self.params.pooling == "fold":
            names = self.net.layer_names
            self._macs_scale = {names[i]: v for i, v in scales.items()}
        for p in self.net.software.parameters():
            p.requires_grad_(False)
        self.snn_hw = self._snn("hw")
        self.snn_sw = self._snn("sw") if self.params.software_snn else None

    def _calibration(self, data: DataSplit) -> Tensor:
        n = min(self.params.n_norm, data.x_train.shape[0])
        x = data.x_train[:n]
        if x.numel() == 0 or not bool((x != 0).any()) or not bool(torch.isfinite(x).all()):
            raise ValueError("dataset: the calibration images are empty, all zero or not finite")
        return x

    def _balance(self, snn: SpikingNetwork, x: Tensor, thresholds: dict | None = None) -> dict:
        p = self.params
        return snn.balance(x, norm=p.norm, percentile=p.percentile, timesteps=p.norm_timesteps,
                           threshold_scale=p.threshold_scale, thresholds=thresholds)

    def fit(self, data: DataSplit, ledger: EnergyLedger | None = None) -> None:
        """Build the chips, balance the thresholds of the hardware SNN (and of the software twin)."""
        if self.net is None:
            self.build(tuple(data.x_train.shape[1:]))
        x = self._calibration(data)
        self._ann_hw_ready(x)
        th = self._balance(self.snn_hw, x)
        self.extra.update({f"threshold_{k}": v for k, v in th.items()})
        if self.snn_sw is not None:
            self._balance(self.snn_sw, x)

    def _ann_hw_ready(self, x: Tensor) -> None:
        """Calibrate the chips for the ANN pass (``accuracy_ann_hw``)."""
        self.snn_hw._set_mode(spiking=False)
        self.net.calibrate(x)
        self.snn_hw._set_mode(spiking=True)

    # -- inference --------------------------------------------------------------------------------
    def predict(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        if self.snn_hw is None:
            raise RuntimeError(f"{type(self).__name__}: call fit(data) before predict")
        outs, _ = self.snn_hw.run(x, [self.timesteps[-1]], [ledger] if ledger is not None else None)
        return outs[0]

    def set_time(self, t_s: float) -> None:
        if self.net is not None and t_s != self._t:
            self.net.set_time(t_s)
            self._t = t_s

    def columns(self) -> dict:
        return dict(self.extra)

    def _ann_accuracies(self, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
        key = ("ann", id(x), x.shape[0], self._t)
        if key not in self._cache:
            acc_sw = accuracy(self._software_model(), x, y, batch_size)
            self.snn_hw._set_mode(spiking=False)
            try:
                acc_hw = accuracy(lambda xb: self.net(xb), x, y, batch_size)
            finally:
                self.snn_hw._set_mode(spiking=True)
            self._cache[key] = (acc_sw, acc_hw)
        return self._cache[key]

    def _software_model(self):
        """The given software ANN (the reference of every method)."""
        model = self.model
        model.eval()
        return model

    def _snn_accuracies(self, snn: SpikingNetwork, x: Tensor, y: Tensor, batch_size: int, ledgers=None):
        correct = [0] * len(self.timesteps)
        spikes: dict[str, list[float]] = {}
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size].to(snn.tdev)
                outs, sp = snn.run(xb, self.timesteps, ledgers)
                for k, o in enumerate(outs):
                    correct[k] += int((o.argmax(-1) == yb).sum())
                for name, vals in sp.items():
                    acc = spikes.setdefault(name, [0.0] * len(vals))
                    for k, v in enumerate(vals):
                        acc[k] += v
        n = max(x.shape[0], 1)
        return [c / n for c in correct], spikes

    def evaluate(self, x: Tensor, y: Tensor, t_s: float, batch_size: int = 512) -> list[dict]:
        """One row per ``T`` of ``timesteps`` (see the module docstring)."""
        self.set_time(t_s)
        acc_ann, acc_ann_hw = self._ann_accuracies(x, y, batch_size)
        acc_sw = [math.nan] * len(self.timesteps)
        if self.snn_sw is not None:
            key = ("snn_sw", id(x), x.shape[0])
            if key not in self._cache:
                self._cache[key] = self._snn_accuracies(self.snn_sw, x, y, batch_size)[0]
            acc_sw = self._cache[key]
        ledgers = [EnergyLedger() for _ in self.timesteps]
        acc_hw, spikes = self._snn_accuracies(self.snn_hw, x, y, batch_size, ledgers)
        neurons = self.snn_hw.neuron_counts(tuple(x.shape[1:]))
        rows = []
        for k, t in enumerate(self.timesteps):
            cols = ledger_columns(ledgers[k])
            snn_e = cols.get("energy_opcount_snn_J", math.nan)
            row = {
                "t_s": float(t_s),
                "method": self.method,
                "timesteps": t,
                "accuracy_ann": acc_ann,
                "accuracy_ann_hw": acc_ann_hw,
                "accuracy_snn_sw": acc_sw[k],
                "accuracy_snn_hw": acc_hw[k],
                "accuracy_sw": acc_sw[k],
                "accuracy_hw": acc_hw[k],
                **{f"spike_rate_{name}": spikes[name][k] / (neurons[name] * t * max(x.shape[0], 1)) for name in neurons},
                **cols,
                "opcount_energy_ratio": cols["energy_opcount_ann_J"] / snn_e if snn_e and snn_e > 0 else math.nan,
                "n_arrays": self.net.n_arrays,
                "_ledger": ledgers[k],
            }
            rows.append(row)
        return rows


class ConversionAlgorithm(_SpikingAlgorithm):
    """ANN→SNN conversion on crossbars (module docstring)."""

    name = "conversion"
    method = "conversion"
    Params = ConversionParams


class _TrainedAlgorithm(_SpikingAlgorithm):
    """Hybrid and surrogate: BPTT on the software weights, then programmed onto the chips."""

    def _train(self, data: DataSplit, x_cal: Tensor, snn: SpikingNetwork) -> None:
        p = self.params
        n = data.x_train.shape[0] if p.n_train is None else min(p.n_train, data.x_train.shape[0])
        t_train = p.train_timesteps if p.train_timesteps is not None else self.timesteps[0]
        sur = make_surrogate(p.surrogate, p.alpha, p.beta)
        noise = None
        if p.weight_noise:
            if p.hardware_aware:
                raise ValueError(f"algorithm.weight_noise: got {p.weight_noise!r} with algorithm.hardware_aware: true; "
                                 "the chip-in-the-loop forward already has the device's own noise, use one or the other")
            etas = programming_noise(self.snn_hw)  # the chips hold the network's weights as programmed now
            noise = {k: v * p.weight_noise for k, v in etas.items()}
            self.extra.update({f"eta_{k}": v for k, v in etas.items()})
        losses = train_bptt(snn, data.x_train[:n], data.y_train[:n], t_train, sur, p.epochs, p.lr, p.batch_size,
                            leak=p.leak, hardware=p.hardware_aware, generator=self.net.generator,
                            weight_noise=noise, clip_std=p.clip_std)
        self.extra.update({"train_timesteps": int(t_train), "train_loss": losses[-1] if losses else math.nan})

    def _ann_accuracies(self, x: Tensor, y: Tensor, batch_size: int) -> tuple[float, float]:
        """``accuracy_ann`` of the given software ANN; the chips hold the trained SNN weights (``accuracy_ann_hw`` NaN)."""
        key = ("ann", id(x), x.shape[0])
        if key not in self._cache:
            self._cache[key] = (accuracy(self._software_model(), x, y, batch_size), math.nan)
        return self._cache[key]

    def fit(self, data: DataSplit, ledger: EnergyLedger | None = None) -> None:
        if self.net is None:
            self.build(tuple(data.x_train.shape[1:]))
        x = self._calibration(data)
        p = self.params
        self._initialise(x)
        # the SNN that is trained: hardware-aware trains through the chips (its thresholds), otherwise the software twin
        train_snn = self.snn_hw if p.hardware_aware else (self.snn_sw or self._snn("sw"))
        if train_snn.backend == "sw" and not train_snn.balanced:
            self._balance(train_snn, x)
        self._train(data, x, train_snn)
        thresholds = {s.name: s.theta for s in train_snn.stages if s.kind == "weight"}
        self.net.program_weights(recalibrate=False)
        # the chips (and the software twin) run the trained network with the trained thresholds
        for snn in (self.snn_hw, self.snn_sw):
            if snn is not None:
                snn.lam0 = train_snn.lam0
                self._balance(snn, x, thresholds=thresholds)
        self.extra.update({f"threshold_{k}": v for k, v in thresholds.items()})

    def _initialise(self, x: Tensor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class HybridAlgorithm(_TrainedAlgorithm):
    """Hybrid conversion + STDB fine-tuning (Rathi et al., ICLR 2020)."""

    name = "hybrid"
    method = "hybrid"
    Params = HybridParams

    def _initialise(self, x: Tensor) -> None:
        # conversion: thresholds from the SNN (Spike-Norm × scale), on the chips when training through them
        snn = self.snn_hw if self.params.hardware_aware else (self.snn_sw or self._snn("sw"))
        if snn.backend == "hw":
            self._ann_hw_ready(x)
        if self.snn_sw is None and snn.backend == "sw":
            self.snn_sw = snn
        self._balance(snn, x)
        # accuracy of the conversion before fine-tuning is reported by the conversion algorithm itself


class SurrogateAlgorithm(_TrainedAlgorithm):
    """Surrogate-gradient BPTT from random initialisation (Lee et al. 2016/2020); thresholds 1."""

    name = "surrogate"
    method = "surrogate"
    Params = SurrogateParams

    def _initialise(self, x: Tensor) -> None:
        init_random_(self.net, self.net.generator)
        snn = self.snn_hw if self.params.hardware_aware else (self.snn_sw or self._snn("sw"))
        if self.snn_sw is None and snn.backend == "sw":
            self.snn_sw = snn
        if snn.backend == "hw":
            self.net.program_weights(recalibrate=False)
            self._ann_hw_ready(x)
        snn.balance(x, thresholds={s.name: 1.0 for s in snn.stages if s.kind == "weight"}, timesteps=self.params.norm_timesteps)

