"""``algorithm: {name: asp}`` — Adaptive Synaptic Plasticity ("learning to forget") on the Diehl & Cook network,
and the continual-learning experiment of classes presented in sequence.

ASP (Panda, Allred, Ramanathan & Roy, IEEE JETCAS 8(1):51–64, 2018; arXiv 1703.07655): STDP whose learning
rate falls with the post-neuron's activity (recovery phase) plus a weight leak whose time constant grows
with the post-neuron's activity and adaptive threshold (decay phase). Equations, sources and our choices
where the paper's exact forms were not available: :mod:`algorithms.learning.asp`. The network, label
assignment, vote and rows are those of ``stdp`` (:mod:`algorithms.stdp`); the weights live on the same
``unipolar`` plastic crossbar (``synapses: crossbar``) or in software (``synapses: software``), and the
leak is *digital*: written back every ``leak_interval`` presentations as device pulses (write energy
charged to the training ledger). No column normalisation by default (it would undo the leak).

Defaults: the paper's constants were not available (:mod:`algorithms.learning.asp`); ``offset`` 0.2,
``k_const`` 0.1, ``η0`` 0.01, ``P0`` 10, ``P_leak`` 2.5, ``τ0`` 20 s, ``w_rest`` 0.05 and the cumulative
activity count are the values chosen on sequential MNIST digits 0–9 with 100 neurons (the default size) in
the fast network, on seeds 0–2 and checked on seeds 3–9 (README, "Continual learning";
``scripts/asp_sequential.py``). Earlier, with 50 neurons, ``offset`` 0.1, ``P0`` 20 and ``P_leak`` 5 were
chosen; at 100 neurons those constants leave half the neurons unlabelled and end below plain STDP, while
halving both activity references (each neuron of a network twice the size fires about half the spikes) and
potentiating only the inputs that spiked within ≈ 32 ms (``offset`` 0.2; 0.1: ≈ 46 ms, τ_pre 20 ms) keeps
every seed above STDP; the reverse holds too (these defaults at 50 neurons end below STDP: set offset
0.1, P0 20, P_leak 5 there). With ``offset`` 0.4 and no normalisation the receptive fields shrink to the digits'
common core and homeostasis spreads the first class over every neuron (none left for the next classes);
``w_rest`` ≤ 0.03 leaves neurons whose weights leaked away unable to fire again. The sequential run is
sensitive to these constants and to the network (README).

Continual learning (``phases``): the training images are shown class by class in the order given
(``classes_per_phase`` classes per phase, ``images_per_phase`` images each phase; default all images of
those classes in ``dataset.n_train`` but the label images). After each phase the network is frozen (θ
too) and scored on the test images of every class seen so far, with labels assigned from the last
``n_assign_per_class`` training images of every seen class — held out from training, the same images
after every phase and for both algorithms. With ``compare_stdp: true`` plain STDP (``stdp`` with the same network constants,
synapses, initial weights, seed and data; its own normalisation ``stdp_normalisation``) runs the same
sequence. Rows: one per algorithm × phase with ``algorithm``, ``phase``, ``classes_seen`` (how many),
``classes`` (which, e.g. ``"0 1 2"``), ``accuracy_seen`` (mean of the per-class accuracies over the
classes seen), ``accuracy_newest`` (the classes of this phase), ``accuracy_class_<k>`` (NaN for unseen),
``accuracy`` (= ``accuracy_seen``), and ``accuracy_seen_proportion`` / ``accuracy_newest_proportion`` (the
same responses scored by BindsNET's proportion weighting instead of the vote). Phase scores use the weights
the chip held at the end of the phase (``weights()``) through an ideal readout. ``figures_dir``: the receptive fields of every algorithm ×
phase are drawn into ``forgetting.png`` there (rows: algorithms; columns: phases).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from .base import Hardware, param, per_class_accuracy
from .learning.asp import DECAY_MODES, ASPLearning, ASPRule
from .learning.diehl_cook import (
    MODES,
    WRITE_EVERY,
    DiehlCookConfig,
    DiehlCookNetwork,
    class_rates,
    labels_from_rates,
    proportion_vote,
    vote,
)
from .learning.synapses import NORMALISATIONS, ROUNDINGS, TorchSynapses
from .stdp import STDPAlgorithm
from .stochastic_stdp import NETWORK_KEYS, RuleConfig

__all__ = ["ASPAlgorithm", "plot_forgetting"]


class ASPAlgorithm(STDPAlgorithm):
    """ASP on the Diehl & Cook network; continual learning over class phases (module docstring)."""

    name: ClassVar[str] = "asp"

    @dataclass
    class Params:
        n_neurons: int = param(100, description="excitatory (and inhibitory) neurons", ge=1)
        mode: str = param("fast", description="network constants: fast (BindsNET DiehlAndCook2015) or paper "
                          "(the released Brian code); see algorithm stdp", choices=list(MODES))
        epochs: int = param(1, description="passes over the training images (non-sequential runs)", ge=1)
        n_assign: int | None = param(None, description="non-sequential runs: label assignment from the last n "
                                     "training images; null: all", ge=1, nullable=True)
        eta0: float = param(0.01, description="recovery learning rate of a silent neuron (η0)", ge=0)
        offset: float = param(0.2, description="STDP offset: Δw ∝ (x_pre − offset) − k_const/2^Pre_acc", ge=0)
        k_const: float = param(0.1, description="depression of inputs silent in the presentation (k_const)", ge=0)
        post_ref: float = param(10.0, description="post spike count P0 at which η halves", gt=0)
        leak_post_ref: float | None = param(2.5, description="post spike count P_leak at which τ_leak doubles (null: "
                                            "post_ref)", gt=0, nullable=True)
        tau_leak0_s: float = param(20.0, description="leak time constant of a silent neuron (τ0)", unit="s", gt=0)
        alpha: float = param(1.0, description="leak strength α (exp: rate factor; linear: weight units per τ_leak)",
                             ge=0)
        decay: str = param("exp", description="exp: τ_leak·dw/dt = −α(w − w_rest); linear: τ_leak·dw/dt = −α",
                           choices=list(DECAY_MODES))
        w_rest: float = param(0.05, description="weight the leak decays to (0: the talk's equation; a neuron "
                              "whose weights reach 0 never fires again)", ge=0)
        theta_ref: float | None = param(None, description="adaptive threshold θ0 in τ_leak = τ0(1 + P/P_leak)(1 + θ/θ0) "
                                        "(null: θ not used)", unit="V", gt=0, nullable=True)
        leak_corr_ref: float | None = param(None, description="per-synapse leak: τ_leak,ij = τ_leak,j·(1 + C_ij/C_ref), "
                                            "C_ij the summed pre trace at the post spikes (pre–post correlation); "
                                            "null: per neuron only", gt=0, nullable=True)
        tau_post_acc_s: float | None = param(None, description="decay time of the post activity count P (null: "
                                             "cumulative)", unit="s", gt=0, nullable=True)
        leak_interval: int = param(1, description="digital leak: write the decayed weights every n presentations",
                                   ge=1)
        normalisation: str = param("none", description="column normalisation for ASP (none: the leak and the offset "
                                   "bound the weights)", choices=list(NORMALISATIONS))
        phases: list[int] | None = param(None, description="continual learning: the class order (e.g. [0, 1, 2]); "
                                         "null: ordinary training on all images", nullable=True)
        classes_per_phase: int = param(1, description="classes shown per phase", ge=1)
        images_per_phase: int | None = param(None, description="training images per phase (null: all of the "
                                             "phase's classes in the training set)", ge=1, nullable=True)
        n_assign_per_class: int = param(100, description="sequential runs: labelled training images per class, held "
                                        "out from training (the last of each class), for the label assignment after "
                                        "each phase", ge=1)
        compare_stdp: bool = param(False, description="also run plain STDP (algorithm stdp) on the same sequence "
                                   "(rows with algorithm = stdp)")
        stdp_normalisation: str = param("reprogram", description="normalisation of the plain-STDP comparison",
                                        choices=list(NORMALISATIONS))
        figures_dir: str | None = param(None, description="directory for the receptive-field figure of every "
                                        "algorithm × phase (forgetting.png)", nullable=True)
        synapses: str = param("software", description="crossbar (devices, leak as write pulses) or software",
                              choices=["crossbar", "software"])
        rounding: str = param("stochastic", description="Δw → pulses (crossbar): stochastic, nearest, none or "
                              "accumulate (a digital accumulator per synapse, whole pulses when it reaches a step)",
                              choices=list(ROUNDINGS))
        write_every: str = param("image", description="image (one write burst after each presentation) or step",
                                 choices=list(WRITE_EVERY))
        replicas: int = param(1, description="independent networks (non-sequential runs)", ge=1)
        dt_s: float | None = param(None, description="time step (null: the mode's)", unit="s", gt=0, nullable=True)
        t_present_s: float | None = param(None, description="presentation time (null: the mode's)", unit="s", gt=0,
                                          nullable=True)
        max_rate_hz: float | None = param(None, description="input rate of a white pixel (null: the mode's)",
                                          unit="Hz", gt=0, nullable=True)
        theta_plus: float | None = param(None, description="threshold increment per spike (null: 0.05 mV)", unit="V",
                                         ge=0, nullable=True)
        tau_theta_s: float | None = param(None, description="adaptive-threshold decay time constant τ_θ (null: 1e4 s, "
                                          "the codes' 1e7 ms)", unit="s", gt=0, nullable=True)
        norm_total: float | None = param(None, description="column sum when normalising (null: the mode's)", gt=0,
                                         nullable=True)
        w_ie: float | None = param(None, description="inhibitory weight (null: the mode's)", ge=0, nullable=True)
        eval_batch: int = param(64, description="test images simulated together (learning off)", ge=1)

    def __init__(self, params: Any, hardware: Hardware, model: torch.nn.Module | None = None):
        p = params
        if p.phases is not None:
            if not p.phases or any(int(c) != c or c < 0 for c in p.phases):
                raise ValueError(f"algorithm.phases: got {p.phases!r}; expected a non-empty list of class indices ≥ 0")
            if len(set(p.phases)) != len(p.phases):
                raise ValueError(f"algorithm.phases: got {p.phases!r}; a class may appear once")
            if p.replicas != 1:
                raise ValueError(f"algorithm.replicas: got {p.replicas!r}; sequential runs (phases) use 1")
        self.params, self.hardware, self.model = p, hardware, model
        self._overrides = {k: getattr(p, k) for k in NETWORK_KEYS}
        self.cfg = RuleConfig.preset(p.mode, n_neurons=int(p.n_neurons), write_every=p.write_every,
                                     normalisation=p.normalisation, **self._overrides)
        self.cfg.rule_factory = self._make_rule
        self.net = None
        self.mm = None
        self._assign_x = self._assign_y = None
        self._n_classes = 10
        self._cols: dict = {}
        self._t_s = 0.0
        self._image_shape = None
        self._snapshots: list[dict] = []

    # -- build ---------------------------------------------------------------------------------
    def _make_rule(self) -> ASPLearning:
        p, cfg = self.params, self.cfg
        rule = ASPRule(eta0=p.eta0, offset=p.offset, k_const=p.k_const, post_ref=p.post_ref,
                       leak_post_ref=p.leak_post_ref, tau_leak0_s=p.tau_leak0_s, alpha=p.alpha, decay=p.decay, w_rest=p.w_rest,
                       theta_ref=p.theta_ref, leak_corr_ref=p.leak_corr_ref,
                       tau_post_acc_s=p.tau_post_acc_s, w_min=0.0, w_max=cfg.w_max,
                       dt_s=cfg.dt_s)
        learning = ASPLearning(rule, leak_interval=p.leak_interval, theta=lambda: self._theta(),
                               extra_steps=cfg.rest_steps)
        learning.reset_traces = cfg.reset_between
        return learning

    def _theta(self):
        net = self.net
        if net is None:
            return None
        return net.state.theta if net.state is not None else net.theta

    # -- lifecycle -------------------------------------------------------------------------------
    def fit(self, data, ledger=None) -> None:
        if self.params.phases is None:
            super().fit(data, ledger)
            self._cols.update({"leak_writes_per_image": self.net.rule.leak_writes / max(self._cols["n_train"], 1)})
            return
        self._fit_sequential(data, ledger)

    def _fit_sequential(self, data, ledger) -> None:
        p, hw = self.params, self.hardware
        x = data.x_train.reshape(data.x_train.shape[0], -1).float()
        y = data.y_train.cpu()
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError(f"dataset: ASP needs pixel intensities in [0, 1]; got [{float(x.min()):.3g}, "
                             f"{float(x.max()):.3g}]")
        self._n_classes = int(getattr(data, "n_classes", int(y.max()) + 1))
        bad = [c for c in p.phases if c >= self._n_classes]
        if bad:
            raise ValueError(f"algorithm.phases: class {bad[0]} does not exist (the dataset has {self._n_classes})")
        shape = tuple(getattr(data, "image_shape", ()))
        self._image_shape = shape[-2:] if len(shape) >= 2 else None
        base = hw.generator if hw.generator is not None else torch.Generator().manual_seed(int(torch.seed() % 2**62))
        seed = int(torch.randint(0, 2**62, (1,), generator=base, device=base.device))
        groups = [p.phases[i:i + p.classes_per_phase] for i in range(0, len(p.phases), p.classes_per_phase)]
        runs = (["stdp"] if p.compare_stdp else []) + ["asp"]
        # label-assignment images: the last n_assign_per_class training images of every class, held out from
        # training, the same for every phase and both algorithms; each phase trains on the other images of its classes
        pick = [torch.nonzero(y == c).flatten()[-p.n_assign_per_class:] for c in range(self._n_classes)]
        held = torch.cat(pick)
        phase_idx = []
        for classes in groups:
            idx = torch.nonzero(torch.isin(y, torch.tensor(classes)) & ~torch.isin(torch.arange(len(y)), held)).flatten()
            if p.images_per_phase is not None:
                if len(idx) < p.images_per_phase:
                    raise ValueError(f"algorithm.images_per_phase: got {p.images_per_phase}; classes {classes} have only "
                                     f"{len(idx)} training images besides the {p.n_assign_per_class} per class held out "
                                     "for labels (n_assign_per_class): lower one of them or raise dataset.n_train")
                idx = idx[: p.images_per_phase]
            phase_idx.append(idx)
        self._phase_idx = phase_idx
        self._snapshots = []
        t0 = time.perf_counter()
        n_img = 0
        for alg in runs:
            gen = torch.Generator(device=base.device).manual_seed(seed)  # same weights and spikes for every run
            hw.generator = gen
            if alg == "asp":
                self.cfg.rule_factory = self._make_rule
                cfg = self.cfg
            else:
                cfg = DiehlCookConfig.preset(p.mode, n_neurons=int(p.n_neurons), write_every=p.write_every,
                                             normalisation=p.stdp_normalisation, **self._overrides)
            self.cfg, keep = cfg, self.cfg
            syn, _ = self._synapses(x.shape[1])
            self.cfg = keep
            self.net = DiehlCookNetwork(cfg, syn, gen)
            self._calibrate(x, gen)
            seen: list[int] = []
            for k, classes in enumerate(groups):
                idx = phase_idx[k]
                for i in idx.tolist():
                    self.net.present(x[i], learning=True, ledger=ledger)
                    if ledger is not None:
                        ledger.count_inferences(1)
                n_img += len(idx)
                seen += list(classes)
                syn = self.net.syn
                if cfg.normalisation == "gain":  # the digital input gain the next presentation would use
                    syn.normalise(cfg.column_sum(x.shape[1]), "gain")
                self._snapshots.append({
                    "algorithm": alg, "phase": k, "classes": list(seen), "newest": list(classes),
                    "weights": syn.weights().detach().clone(), "theta": self.net.theta.detach().clone(),
                    "gain": None if syn.gain is None else syn.gain.detach().clone(),
                    "cfg": cfg, "n_train": int(len(idx)),
                })
        hw.generator = base
        wall = time.perf_counter() - t0
        self._assign_idx = pick
        self._x_train = x
        self._labels = y
        self._cols = {"n_neurons": self.cfg.n_neurons, "mode": self.cfg.mode, "phases": " ".join(map(str, p.phases)),
                      "classes_per_phase": p.classes_per_phase, "images_per_s": n_img / wall if wall > 0 else math.nan,
                      "time_per_image_s": (self.cfg.steps + self.cfg.rest_steps) * self.cfg.dt_s}

    def evaluate(self, x: Tensor, y: Tensor, t_s: float, batch_size: int = 512) -> list[dict]:
        if self.params.phases is None:
            return super().evaluate(x, y, t_s, batch_size)
        if not self._snapshots:
            raise RuntimeError("asp: call fit(data) before evaluate")
        x = x.reshape(x.shape[0], -1).float()
        y = y.cpu()
        rows = []
        for snap in self._snapshots:
            net = self.frozen_network(snap)
            seen = snap["classes"]
            a_idx = torch.cat([self._assign_idx[c] for c in seen])
            rates = class_rates(net.responses(self._x_train[a_idx], self.params.eval_batch), self._labels[a_idx],
                                self._n_classes)
            assign = labels_from_rates(rates)
            mask = torch.isin(y, torch.tensor(seen))
            xs, ys = x[mask], y[mask]
            counts = net.responses(xs, self.params.eval_batch)
            pred = vote(counts, assign, self._n_classes).argmax(-1)[0].cpu()
            per = per_class_accuracy(pred, ys, self._n_classes)
            per_pw = per_class_accuracy(proportion_vote(counts, rates).argmax(-1)[0].cpu(), ys, self._n_classes)
            acc_seen = _mean_over(seen, per)
            rows.append({
                "t_s": float(t_s), "algorithm": snap["algorithm"], "phase": snap["phase"],
                "classes_seen": len(seen), "classes": " ".join(map(str, seen)),
                "newest": " ".join(map(str, snap["newest"])), "accuracy_seen": acc_seen,
                "accuracy_newest": _mean_over(snap["newest"], per), "accuracy": acc_seen, "accuracy_hw": acc_seen,
                "accuracy_seen_proportion": _mean_over(seen, per_pw),
                "accuracy_newest_proportion": _mean_over(snap["newest"], per_pw), **per,
                "n_train_phase": snap["n_train"], "neurons_assigned": int((assign[0] >= 0).sum()),
                "n_test_seen": int(mask.sum()),
            })
        if self.params.figures_dir:
            d = Path(self.params.figures_dir)
            d.mkdir(parents=True, exist_ok=True)
            plot_forgetting(self._snapshots, d / "forgetting.png", self._image_shape or _square(self._x_train.shape[1]))
        return rows

    def frozen_network(self, snap: dict) -> DiehlCookNetwork:
        """The scoring network of a phase snapshot (learning off, θ frozen): ``snap`` holds ``weights [R, in, out]``,
        ``theta``, the network ``cfg`` and the ``gain`` of ``normalisation: gain`` (or None), as :meth:`snapshots`."""
        gen = torch.Generator(device=snap["weights"].device).manual_seed(12345)
        syn = TorchSynapses(snap["weights"], 0.0, snap["cfg"].w_max)
        syn.gain = None if snap.get("gain") is None else snap["gain"].clone()  # normalisation: gain (digital)
        net = DiehlCookNetwork(snap["cfg"], syn, gen, rule=_NoRule())
        net.theta = snap["theta"].clone()
        return net

    def snapshots(self) -> list[dict]:
        """Per algorithm × phase: weights ``[R, in, out]`` and θ at the end of the phase (sequential runs)."""
        return list(self._snapshots)


def _mean_over(classes, per: dict) -> float:
    """Mean of the per-class accuracies ``per`` (``accuracy_class_<k>``) over ``classes``."""
    return sum(per[f"accuracy_class_{c}"] for c in classes) / len(classes)


class _NoRule:
    """Placeholder rule for frozen evaluation networks (learning is off)."""

    def bind(self, synapses):
        self.synapses = synapses
        return self


def _square(n: int) -> tuple[int, int]:
    side = int(round(math.sqrt(n)))
    return (side, n // side)


def plot_forgetting(snapshots: list[dict], path, image_shape=(28, 28), max_neurons: int = 100):
    """Receptive fields after every phase, one row per algorithm, one column per phase (the "catastrophic vs
    controlled forgetting" picture); ``snapshots`` as :meth:`ASPAlgorithm.snapshots`. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algs = list(dict.fromkeys(s["algorithm"] for s in snapshots))
    n_ph = max(s["phase"] for s in snapshots) + 1
    fig, axes = plt.subplots(len(algs), n_ph, figsize=(2.6 * n_ph, 2.8 * len(algs)), squeeze=False)
    h, wd = image_shape
    for s in snapshots:
        ax = axes[algs.index(s["algorithm"])][s["phase"]]
        w = s["weights"][0].detach().cpu().float()
        n = min(w.shape[1], max_neurons)
        side = math.ceil(math.sqrt(n))
        grid = torch.zeros(side * h, side * wd)
        for k in range(n):  # figure assembly (≤ 100 tiles), not a hot path
            r, c = divmod(k, side)
            grid[r * h:(r + 1) * h, c * wd:(c + 1) * wd] = w[:, k].reshape(h, wd)
        ax.imshow(grid.numpy(), cmap="hot_r", vmin=0.0, vmax=max(float(w.max()), 1e-9))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{s['algorithm']}: after {' '.join(map(str, s['newest']))}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
