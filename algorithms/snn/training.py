"""Spike-based backpropagation through time for hybrid fine-tuning and surrogate training from scratch.

One machinery for both (the software weights of a :class:`algorithms.ann.CrossbarNetwork`, the
stages and thresholds of a :class:`algorithms.snn.network.SpikingNetwork`):

* forward over ``T`` steps, each weight layer computing all the steps in one batched product,
  then the (L)IF neurons scanned over time with a surrogate spike function
  (:mod:`algorithms.snn.surrogate`) and the reset detached from the graph;
* ``u_l(t) = leak·u_l(t−1) + W_l·o_{l−1}(t) + b_l/λ_{l−1}``, ``o = Θ(u/θ − 1)``, soft reset
  ``u ← u − θ·o`` (Rathi, Srinivasan, Panda & Roy, ICLR 2020, Eqs. 6–8; Lee et al., Front.
  Neurosci. 14:119, 2020, with leak);
* the output layer accumulates without firing, logits ``λ_{L−1}·Σ_t u_L(t)/T``, cross-entropy,
  Adam (lr 1e-4 in Rathi 2020);
* **hardware-aware**, chip in the loop (``hardware=True``): every product is the crossbar's (device
  noise, IR drop, converter quantisation in the forward pass) with the software gradient passed
  straight through (``y = y_sw + (y_hw − y_sw).detach()``); after each optimiser step the weights
  are programmed onto the chips again (programming noise redrawn — noise injection as in aihwkit's
  hardware-aware training, Rasch et al., Nat. Commun. 14, 5282, 2023).
* **hardware-aware**, weight-noise injection (``weight_noise=η``): the software forward uses
  ``W_l + η_l·max|W_l|·N(0, 1)``, the noise redrawn for every mini-batch and independent of ``W``
  (so ``∂L/∂W`` is the gradient at the noisy weights), as in Joshi et al., "Accurate deep neural
  network inference using computational phase-change memory", Nat. Commun. 11, 2473 (2020),
  Methods ("additive Gaussian noise … with standard deviation η_tr·W_max,l, redrawn every
  mini-batch"). :func:`programming_noise` measures ``η_l`` on the programmed chips
  (``std(W_chip − W)/max|W|`` per layer), so the injected noise matches the device's programming
  noise. Optionally, after every step the weights are clipped to ``±clip_std·std(W_l)`` (Joshi
  2020's weight clipping, α = 2–2.5 there): the chip's weight range ``w_max`` shrinks to the clipped
  range and with it the programming noise in weight units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons.integrate_fire import LIF
from .network import SpikingNetwork

__all__ = ["bptt_forward", "train_bptt", "init_random_", "programming_noise"]


def _encode(snn: SpikingNetwork, x: Tensor, t: int, generator: torch.Generator) -> Tensor:
    if snn.encoding == "direct":
        return x.unsqueeze(0).expand(t, *x.shape)
    p = (x / snn.lam0).clamp(-1.0, 1.0)
    u = torch.rand((t, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p.abs()).to(x.dtype) * torch.sign(p)


def _product(snn: SpikingNetwork, s, x: Tensor, hardware: bool, noise: dict | None = None) -> Tensor:
    sw = s.sw
    w = sw.weight
    if noise is not None and s.name in noise:
        w = w + noise[s.name]
    if isinstance(sw, nn.Conv2d):
        y = F.conv2d(x, w, None, sw.stride, sw.padding, sw.dilation)
    else:
        y = F.linear(x, w)
    if hardware:
        with torch.no_grad():
            y_hw = s.layer.product(x.detach())
        y = y + (y_hw - y).detach()
    return y


def _check_noise(snn: SpikingNetwork, weight_noise) -> dict[str, float]:
    """``weight_noise`` (η for every weight layer, or ``{layer: η}``) as a checked ``{layer: η}``."""
    names = [s.name for s in snn.stages if s.kind == "weight"]
    if weight_noise is None:
        return {}
    if isinstance(weight_noise, dict):
        bad = sorted(set(weight_noise) - set(names))
        if bad:
            raise ValueError(f"weight_noise: got layer {bad[0]!r}; the network's weight layers are {', '.join(names)}")
        etas = {k: float(v) for k, v in weight_noise.items()}
    else:
        etas = {k: float(weight_noise) for k in names}
    for k, v in etas.items():
        if not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"weight_noise[{k!r}]: got {v!r}; need a finite η ≥ 0 (noise std / max|W| of the layer)")
    return {k: v for k, v in etas.items() if v > 0}


def _draw_noise(snn: SpikingNetwork, etas: dict[str, float], generator: torch.Generator) -> dict[str, Tensor] | None:
    """One draw of ``η_l·max|W_l|·N(0, 1)`` per weight layer (Joshi et al. 2020), detached."""
    if not etas:
        return None
    out = {}
    for s in snn.stages:
        if s.kind == "weight" and s.name in etas:
            w = s.sw.weight.detach()
            z = torch.randn(w.shape, generator=generator, device=generator.device, dtype=w.dtype).to(w.device)
            out[s.name] = z * (etas[s.name] * float(w.abs().max()))
    return out


@torch.no_grad()
def programming_noise(snn: SpikingNetwork) -> dict[str, float]:
    """``η_l = std(W_chip − W)/max|W|`` of every weight layer, measured on the chips as programmed now.

    ``W_chip`` is :meth:`MappedMatrix.weights` (the effective weights the cells hold: programming
    noise, level quantisation, clipping at the conductance window, stuck cells), ``W`` the software
    weights. Feeds :func:`train_bptt`'s ``weight_noise`` to inject the device's own noise level
    (Joshi et al., Nat. Commun. 11, 2473, 2020, inject noise of the size measured on the hardware).
    """
    out = {}
    for s in snn.stages:
        if s.kind != "weight":
            continue
        w = s.sw.weight.detach().reshape(s.sw.weight.shape[0], -1)
        w_chip = s.layer.mm.weights().to(w.device, w.dtype).reshape(w.shape)
        out[s.name] = float((w_chip - w).std()) / max(float(w.abs().max()), 1e-30)
    return out


def bptt_forward(snn: SpikingNetwork, x: Tensor, timesteps: int, surrogate, leak: float = 1.0,
                 hardware: bool = False, generator: torch.Generator | None = None,
                 noise: dict[str, Tensor] | None = None) -> Tensor:
    """Differentiable SNN forward over ``timesteps`` steps: logits ``[B, n_classes]``.

    ``noise``: ``{layer: ΔW}`` added to the software weights in this forward (weight-noise injection).
    """
    gen = generator if generator is not None else snn.generator
    t_steps = int(timesteps)
    b = x.shape[0]
    cur = _encode(snn, x, t_steps, gen)
    constant = snn.encoding == "direct"
    out = None
    for s in snn.stages:
        if s.kind == "weight":
            if constant:
                y1 = _product(snn, s, cur[0], hardware, noise)
                y = y1.unsqueeze(0).expand(t_steps, *y1.shape)
            else:
                y = _product(snn, s, cur.reshape(t_steps * b, *cur.shape[2:]), hardware, noise)
                y = y.reshape(t_steps, b, *y.shape[1:])
            bias = s.sw.bias
            if bias is not None:
                bias = bias / s.lam_in
                y = y + (bias.reshape(1, -1, 1, 1) if isinstance(s.sw, nn.Conv2d) else bias)
            if s.neurons:
                neuron = LIF(threshold=s.theta, beta=leak, reset=snn.reset, surrogate=surrogate)
                cur, _ = neuron.run(y)
                constant = False
            else:
                out = y.sum(0) * (s.lam_in / t_steps)
                cur = y
        elif s.kind == "pool":
            z = s.layer.module(cur.reshape(t_steps * b, *cur.shape[2:]))
            cur = z.reshape(t_steps, b, *z.shape[1:])
            if s.neurons:
                cur, _ = LIF(threshold=1.0, beta=1.0, reset="subtract", surrogate=surrogate).run(cur)
                constant = False
        else:
            z = s.layer.module(cur.reshape(t_steps * b, *cur.shape[2:]))
            cur = z.reshape(t_steps, b, *z.shape[1:])
    if snn.output == "spikes":
        out = cur.sum(0)
    return out


def train_bptt(snn: SpikingNetwork, x: Tensor, y: Tensor, timesteps: int, surrogate, epochs: int, lr: float,
               batch_size: int, leak: float = 1.0, hardware: bool = False, generator: torch.Generator | None = None,
               reprogram: bool = True, weight_noise: float | dict[str, float] | None = None,
               clip_std: float | None = None) -> list[float]:
    """Adam on cross-entropy of :func:`bptt_forward`; returns the mean loss of every epoch.

    Trains the software weights of ``snn.net`` in place (thresholds fixed). ``hardware``: forward
    through the chips with straight-through gradients, re-programming after every step when
    ``reprogram``. ``weight_noise``: η (all weight layers) or ``{layer: η}``: Gaussian weight noise
    of std ``η·max|W_l|`` in every forward, redrawn per mini-batch (Joshi et al. 2020; see the module
    docstring and :func:`programming_noise`). ``clip_std``: after every step clip each layer's
    weights to ``±clip_std·std(W_l)`` (Joshi 2020).
    """
    net = snn.net
    gen = generator if generator is not None else snn.generator
    etas = _check_noise(snn, weight_noise)
    if clip_std is not None and not (clip_std > 0 and math.isfinite(clip_std)):
        raise ValueError(f"clip_std: got {clip_std!r}; need a finite number > 0 (clip at ±clip_std·std(W)) or None")
    if hardware and etas:
        raise ValueError("weight_noise: the chip-in-the-loop forward (hardware=True) has the device's own noise; "
                         "inject weight noise only with hardware=False")
    params = [p for p in net.software.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    n = x.shape[0]
    x = x.to(snn.tdev, snn.dtype)
    y = y.to(snn.tdev)
    losses = []
    cpu_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)))
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=cpu_gen).to(snn.tdev)
        total, count = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            logits = bptt_forward(snn, x[idx], timesteps, surrogate, leak, hardware, gen, _draw_noise(snn, etas, gen))
            loss = F.cross_entropy(logits, y[idx])
            loss.backward()
            opt.step()
            if clip_std is not None:
                _clip_weights_(snn, clip_std)
            if hardware and reprogram:
                net.program_weights(recalibrate=False, headroom=1.25)
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        losses.append(total / max(count, 1))
    for p in params:
        p.requires_grad_(False)
    return losses


@torch.no_grad()
def _clip_weights_(snn: SpikingNetwork, clip_std: float) -> None:
    for s in snn.stages:
        if s.kind == "weight":
            w = s.sw.weight
            c = clip_std * float(w.std())
            w.clamp_(-c, c)


@torch.no_grad()
def init_random_(net, generator: torch.Generator) -> None:
    """Re-initialise the software weights uniformly in ``±1/sqrt(fan_in)`` (PyTorch's default bound) from ``generator``."""
    for layer, sw in zip(net.layers, net.software):
        if layer.kind != "mapped":
            continue
        fan_in = math.prod(sw.weight.shape[1:])
        bound = 1.0 / math.sqrt(fan_in)
        for p in (sw.weight, sw.bias):
            if p is not None:
                r = torch.rand(p.shape, generator=generator, device=generator.device, dtype=p.dtype)
                p.copy_((2 * r - 1) * bound)
