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
* **hardware-aware** option: every product is the crossbar's (device noise, IR drop, converter
  quantisation in the forward pass) with the software gradient passed straight through
  (``y = y_sw + (y_hw − y_sw).detach()``); after each optimiser step the weights are programmed
  onto the chips again (programming noise redrawn — noise injection as in aihwkit's
  hardware-aware training, Rasch et al., Nat. Commun. 14, 5282, 2023).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..neurons.integrate_fire import LIF
from .network import SpikingNetwork

__all__ = ["bptt_forward", "train_bptt", "init_random_"]


def _encode(snn: SpikingNetwork, x: Tensor, t: int, generator: torch.Generator) -> Tensor:
    if snn.encoding == "direct":
        return x.unsqueeze(0).expand(t, *x.shape)
    p = (x / snn.lam0).clamp(-1.0, 1.0)
    u = torch.rand((t, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    return (u < p.abs()).to(x.dtype) * torch.sign(p)


def _product(snn: SpikingNetwork, s, x: Tensor, hardware: bool) -> Tensor:
    sw = s.sw
    if isinstance(sw, nn.Conv2d):
        y = F.conv2d(x, sw.weight, None, sw.stride, sw.padding, sw.dilation)
    else:
        y = F.linear(x, sw.weight)
    if hardware:
        with torch.no_grad():
            y_hw = s.layer.product(x.detach())
        y = y + (y_hw - y).detach()
    return y


def bptt_forward(snn: SpikingNetwork, x: Tensor, timesteps: int, surrogate, leak: float = 1.0,
                 hardware: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """Differentiable SNN forward over ``timesteps`` steps: logits ``[B, n_classes]``."""
    gen = generator if generator is not None else snn.generator
    t_steps = int(timesteps)
    b = x.shape[0]
    cur = _encode(snn, x, t_steps, gen)
    constant = snn.encoding == "direct"
    out = None
    for s in snn.stages:
        if s.kind == "weight":
            if constant:
                y1 = _product(snn, s, cur[0], hardware)
                y = y1.unsqueeze(0).expand(t_steps, *y1.shape)
            else:
                y = _product(snn, s, cur.reshape(t_steps * b, *cur.shape[2:]), hardware)
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
               reprogram: bool = True) -> list[float]:
    """Adam on cross-entropy of :func:`bptt_forward`; returns the mean loss of every epoch.

    Trains the software weights of ``snn.net`` in place (thresholds fixed). ``hardware``: forward
    through the chips with straight-through gradients, re-programming after every step when
    ``reprogram``.
    """
    net = snn.net
    gen = generator if generator is not None else snn.generator
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
            logits = bptt_forward(snn, x[idx], timesteps, surrogate, leak, hardware, gen)
            loss = F.cross_entropy(logits, y[idx])
            loss.backward()
            opt.step()
            if hardware and reprogram:
                net.program_weights(recalibrate=False, headroom=1.25)
            total += float(loss.detach()) * idx.numel()
            count += idx.numel()
        losses.append(total / max(count, 1))
    for p in params:
        p.requires_grad_(False)
    return losses


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
