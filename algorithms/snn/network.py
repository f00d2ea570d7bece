"""A converted spiking network on crossbars: IF neurons, threshold balancing, time-batched inference.

Conversion (Rueckauer et al., Front. Neurosci. 11:682, 2017; Sengupta et al., Front. Neurosci.
13:95, 2019)
------------------------------------------------------------------------------------------------
Every ``ReLU`` after a weight layer becomes an IF neuron; the weights stay as trained (the chip
holds the ANN's weights) and the balancing is carried by the thresholds. With ``λ_l`` the
activation scale of layer ``l`` (λ_0 the input scale: 1 for direct input, ``max|x|`` for rate
coding) the spike rate of layer ``l`` approximates ``a_l/λ_l`` when

    z_l(t) = W_l·s_{l−1}(t) + b_l/λ_{l−1},      θ_l = λ_l/λ_{l−1}

which is Rueckauer's weight normalisation ``W ← W·λ_{l−1}/λ_l``, ``b ← b/λ_l``, θ = 1 (Eq. 9
there) multiplied through by ``λ_l/λ_{l−1}``. ``λ_l`` is either

* ``percentile``: the p-th percentile (99.9 by default) of layer ``l``'s ReLU activations over
  calibration images (Rueckauer 2017, "robust normalisation"), computed on the **hardware's**
  activations (the ANN run on the same programmed chips), or
* ``spike_norm``: Sengupta's Spike-Norm, layer by layer on the running SNN: θ_l = the largest
  input ``z_l(t)`` any neuron of the layer receives over ``norm_timesteps`` steps, with the
  thresholds of the layers below already fixed (λ_l = θ_l·λ_{l−1}); times ``threshold_scale``
  (0.7 for hybrid initialisation, Rathi et al., ICLR 2020).

Average pooling is linear and keeps rates. The algorithms fold it into the next weight layer
(:func:`fold_pooling`: exact, every row still sees binary spikes). Pools left in the chain get a
**pool neuron** (IF, θ = 1, reset by subtraction) that turns the pooled rate back into binary
spikes (one extra step of latency per pool), or with ``pool_neurons=False`` pass the fractional
pooled values on, as SpikingJelly does, through an amplitude DAC of full scale 1.

**Count pooling** (``pool_counts=True``, ``pooling: count``): an ``AvgPool2d(k)`` (kernel = stride, no
padding) after IF neurons stays a pool. A small counter per pooled output adds the ``k²`` spikes of
its window each step (``k² − 1`` adds of ``⌈log2(k² + 1)⌉``-bit words, ledger ``digital``), and the
count ``c ∈ {0 … k²}`` drives the next layer's row with ``c`` read pulses of ``v_read`` within
``k²`` pulse slots (:class:`circuits.DAC` ``pulses``; pulse ``p`` drives the rows with ``c ≥ p``).
The column integrates the charge of the pulses and the ADC converts once per step, so on a linear
array the layer computes ``W·(c/k²) = W·avgpool(s)``: the function of the folded layer, with the
layer's own rows (``k²`` times fewer than folding) and no DAC. The read takes ``k²·t_read``; its
energy is the sum over the pulses (linear in ``c`` with ideal wires, the quadratic form of each
pulse with wire resistance). This is a design choice of this simulator [est]: a pulse-count input,
the rate-coded read of a spiking input applied to the summed spikes of a window. Conv layers with
count inputs compute each tile's partial sums as a convolution over the tile's channels
(:meth:`algorithms.layers.MappedConv2d._product_direct`, no im2col), and the IF scan feeding a count
pool pools each step's spikes while they are in cache (:meth:`SpikingNetwork._scan_count_pool`).
The output layer integrates its input without
firing (``output="membrane"``: logits ≈ λ_{L−1}·Σ_t z_L(t)/T) or with IF neurons at θ_L
(``output="spikes"``: the spike count; ties go to the lower class index).

Crossbars
---------
Spikes drive the rows as read pulses (``DAC(mode="spikes")``: no DAC). The first layer receives
the analog image through the DAC at every step (``encoding="direct"``) or Bernoulli spikes
(``encoding="rate"``: ``P(spike) = |x|/λ_0`` per step, signed). Weights are frozen, so every
layer computes all the time steps of a chunk in **one** batched crossbar call (``[T_c·B, in]``
rows), then scans its neurons over time (exact for feed-forward IF networks); the chunks split
the run at the requested time-step counts, so one run reports every ``T`` of the list.

Readouts (``readout``):

* ``adc``: the column currents are digitised each step and a digital IF neuron integrates them
  (energy ``neuron``: 2 integer adds per neuron and step, accumulate and compare, plus one per
  spike for the reset, at the 16-bit Horowitz add energy, ISSCC 2014 [est]).
* ``analog``: the column current charges a capacitor (the membrane), a comparator fires at θ and
  the reset removes θ's charge: no ADC. Energy per neuron and step ``e_step_J`` (one clocked
  comparator decision, 10 fJ, the 1–20 fJ span of 22–45 nm sense amplifiers [est]) and per spike
  ``e_spike_J`` (4 fJ: Sourikopoulos et al., Front. Neurosci. 11:123, 2017, 65 nm analog neuron
  [lit]); the output membranes are read once per inference by the layer's ADC. The value
  integrated is the exact analog column current (tiles' currents summed on the capacitor).

Op counts (Lee et al., Front. Neurosci. 14:119, 2020; Rathi et al. 2020): a spiking layer costs
``#AC = Σ_t Σ_{spiking inputs j} fan-out_j`` (Linear: spikes × out; Conv2d: per output position
the spikes in its receptive field × C_out, exact at borders); a layer fed analog values (direct
input, fractional pooled values) costs its ANN MACs at every step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from circuits import ADC, DAC, EnergyLedger
from circuits.constants import int_add_energy_J

from ..ann import CrossbarNetwork
from ..layers import ChannelAffine, DigitalLayer, FlattenTo, MappedConv2d, MappedLinear, UnsupportedLayerError
from ..neurons.integrate_fire import RESETS

__all__ = ["SpikingNetwork", "Stage", "check_convertible", "fold_pooling", "merge_ledger", "ANALOG_E_STEP_J", "ANALOG_E_SPIKE_J"]

#: analog column neuron: one clocked comparator decision per step [est] and the reset per spike [lit]
ANALOG_E_STEP_J = 10e-15
ANALOG_E_SPIKE_J = 4e-15
#: digital IF neuron word width [bits] (membrane accumulator) [est]
DIGITAL_NEURON_BITS = 16

ENCODINGS = ("direct", "rate")
OUTPUTS = ("membrane", "spikes")
READOUTS = ("adc", "analog")
NORMS = ("percentile", "spike_norm")
POOLINGS = ("fold", "neurons", "analog", "count")


def check_convertible(layers: list[nn.Module]) -> None:
    """Raise :class:`UnsupportedLayerError` naming the first layer conversion cannot handle."""
    for i, m in enumerate(layers):
        if isinstance(m, nn.MaxPool2d):
            raise UnsupportedLayerError(
                f"layer {i} ({m}): max-pooling has no exact integrate-and-fire equivalent; "
                "use average pooling (nn.AvgPool2d) or implement the rate-gated max-pool (Rueckauer et al. 2017)"
            )


def fold_pooling(model: nn.Module, in_shape: tuple[int, ...]) -> tuple[nn.Sequential, dict[int, float]]:
    """The model with every ``AvgPool2d`` that feeds a weight layer folded into that layer's weights.

    Average pooling is linear, so ``AvgPool2d(k) → Conv2d(K, stride s, padding p)`` equals one
    ``Conv2d(k·K, stride k·s, padding k·p)`` with ``W'[o, c, k·i + a, k·j + b] = W[o, c, i, j]/k²``,
    and ``AvgPool2d(k) → Flatten → Linear`` one Linear on the unpooled map with each weight spread
    over its ``k×k`` window (÷k²). The spiking network then drives every row with the binary spikes
    of the layer below (no pool neuron, no DAC) and computes exactly what the ANN computes; the
    layer holds ``k²`` times the rows. Returns the new ``nn.Sequential`` (BatchNorm folded) and, per
    weight-layer index, ``#MAC(original)/#MAC(folded)`` for the op counts of the ANN.
    Pools that cannot be folded (padding, ceil mode, kernel ≠ stride, before a dilated or grouped conv,
    a padded conv on a map the pool trims, or a non-weight layer) are kept.
    """
    from ..ann import fold_batchnorm

    layers = list(fold_batchnorm(model))
    shapes = []
    x = torch.zeros(1, *in_shape, dtype=next(iter(model.parameters())).dtype)
    with torch.no_grad():
        for m in layers:
            shapes.append(tuple(x.shape[1:]))
            x = m(x)
    out: list[nn.Module] = []
    scales: dict[int, float] = {}
    n_weight = 0
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, nn.AvgPool2d) and _foldable_pool(m):
            k = _pair(m.kernel_size)[0]
            j = i + 1
            while j < len(layers) and isinstance(layers[j], nn.ReLU):  # ReLU of a pooled ReLU output: identity
                j += 1
            nxt = layers[j] if j < len(layers) else None
            c_in, h_in, w_in = shapes[i]
            exact_border = _pair(nxt.padding) == (0, 0) if isinstance(nxt, nn.Conv2d) and not isinstance(nxt.padding, str) else False
            exact_border = exact_border or (h_in % k == 0 and w_in % k == 0)  # padding must not meet the rows pooling dropped
            if (isinstance(nxt, nn.Conv2d) and all(d == 1 for d in _pair(nxt.dilation)) and nxt.groups == 1
                    and not isinstance(nxt.padding, str) and exact_border):
                conv = nn.Conv2d(nxt.in_channels, nxt.out_channels, tuple(k * q for q in _pair(nxt.kernel_size)),
                                 tuple(k * q for q in _pair(nxt.stride)), tuple(k * q for q in _pair(nxt.padding)),
                                 bias=nxt.bias is not None, dtype=nxt.weight.dtype)
                with torch.no_grad():
                    conv.weight.copy_(nxt.weight.repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k))
                    if nxt.bias is not None:
                        conv.bias.copy_(nxt.bias)
                out.append(conv)
                scales[n_weight] = 1.0 / (k * k)
                n_weight += 1
                i = j + 1
                continue
            if isinstance(nxt, nn.Flatten) and j + 1 < len(layers) and isinstance(layers[j + 1], nn.Linear):
                lin = layers[j + 1]
                c, h, w = shapes[i]
                hp, wp = h // k, w // k
                if lin.in_features == c * hp * wp:
                    wt = lin.weight.reshape(lin.out_features, c, hp, wp).repeat_interleave(k, 2).repeat_interleave(k, 3) / (k * k)
                    wt = F.pad(wt, (0, w - wp * k, 0, h - hp * k))
                    new = nn.Linear(c * h * w, lin.out_features, bias=lin.bias is not None, dtype=lin.weight.dtype)
                    with torch.no_grad():
                        new.weight.copy_(wt.reshape(lin.out_features, -1))
                        if lin.bias is not None:
                            new.bias.copy_(lin.bias)
                    out += [nn.Flatten(), new]
                    scales[n_weight] = lin.in_features / new.in_features
                    n_weight += 1
                    i = j + 2
                    continue
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            n_weight += 1
        out.append(m)
        i += 1
    return nn.Sequential(*out).eval(), scales


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _foldable_pool(m: nn.AvgPool2d) -> bool:
    k, st = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    return k[0] == k[1] == st[0] == st[1] and _pair(m.padding) == (0, 0) and not m.ceil_mode and m.divisor_override is None


def _count_window(m: nn.Module) -> int:
    """Window size ``k_h·k_w`` of an average pool that can emit spike counts (kernel = stride, no padding,
    no ceil mode, no divisor override), else 1 (the pool then passes fractional values on, as ``analog``)."""
    if not isinstance(m, nn.AvgPool2d):
        return 1
    k, st = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    if k != st or _pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override is not None:
        return 1
    return k[0] * k[1]


@dataclass
class Stage:
    """One step of the spiking chain: a weight layer (with or without neurons), a pool or a reshape."""

    kind: str  # "weight" | "pool" | "reshape"
    name: str
    layer: object
    sw: nn.Module | None = None
    neurons: bool = False
    theta: float = 1.0
    lam_in: float = 1.0  # λ of the layer's input (bias scale 1/λ_in)
    pulses: int = 1  # pool: window size k_h·k_w when it emits spike counts (pooling "count"), else 1


def merge_ledger(dst: EnergyLedger, src: EnergyLedger, factor: float = 1.0, components: tuple[str, ...] | None = None) -> None:
    """Add ``factor ×`` the energy, events and latency of ``src`` (and its op counts) to ``dst``."""
    n = max(src.n_inferences, 1)
    for r in src.records():
        if components is None or r["component"] in components:
            dst.add(r["layer"], r["component"], factor * r["energy_J"], factor * r["events"], factor * r["latency_s"] * n)
    for r in src.op_records():
        dst.add_ops(r["layer"], macs=factor * r["ops_mac"] * n, acs=factor * r["ops_ac"] * n if src.spiking else None,
                    macs_ann=factor * r["ops_mac_ann"] * n)


class SpikingNetwork:
    """The SNN of a :class:`CrossbarNetwork`: run on its crossbars (``backend="hw"``) or in software (``"sw"``).

    Parameters are described in the module docstring. Build, :meth:`balance` on calibration
    images, then :meth:`run` for the outputs at each requested ``T``.
    """

    def __init__(
        self,
        net: CrossbarNetwork,
        backend: str = "hw",
        reset: str = "subtract",
        encoding: str = "direct",
        output: str = "membrane",
        readout: str = "adc",
        pool_neurons: bool = True,
        pool_counts: bool = False,
        e_step_J: float = ANALOG_E_STEP_J,
        e_spike_J: float = ANALOG_E_SPIKE_J,
        generator: torch.Generator | None = None,
        macs_scale: dict[str, float] | None = None,
    ):
        for key, val, allowed in (("backend", backend, ("hw", "sw")), ("reset", reset, RESETS), ("encoding", encoding, ENCODINGS),
                                  ("output", output, OUTPUTS), ("readout", readout, READOUTS)):
            if val not in allowed:
                raise ValueError(f"algorithm.{key}: got {val!r}; allowed: {', '.join(map(repr, allowed))}")
        self.net, self.backend, self.reset, self.encoding = net, backend, reset, encoding
        self.output, self.readout, self.pool_neurons = output, readout, bool(pool_neurons)
        self.pool_counts = bool(pool_counts) and not self.pool_neurons
        self.e_step_J, self.e_spike_J = float(e_step_J), float(e_spike_J)
        self.macs_scale = dict(macs_scale or {})  # #MAC of the original ANN layer / #MAC of the mapped (pool-folded) layer
        self.generator = generator if generator is not None else net.generator
        self.dtype = net.dtype
        self.tdev = net.generator.device
        self.stages = self._stages()
        self.lam0 = 1.0
        self.balanced = False
        self._adc_templates: dict[str, ADC] = {}
        self._ann_converters: dict[str, tuple[DAC, ADC]] = {}
        self._snn_adcs: dict[str, ADC] = {}

    # -- structure ------------------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        layers, sws = self.net.layers, list(self.net.software)
        weights = [i for i, layer in enumerate(layers) if layer.kind == "mapped"]
        stages: list[Stage] = []
        i = 0
        while i < len(layers):
            layer, sw = layers[i], sws[i]
            if layer.kind == "mapped":
                last = i == weights[-1]
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                relu = isinstance(nxt, DigitalLayer) and isinstance(nxt.module, nn.ReLU)
                if not last and not relu:
                    raise UnsupportedLayerError(
                        f"layer {layer.name}: a weight layer that is not the output must be followed by ReLU to become IF neurons"
                    )
                stages.append(Stage("weight", layer.name, layer, sw, neurons=not last))
                i += 2 if relu else 1
                continue
            if isinstance(layer, ChannelAffine):
                raise UnsupportedLayerError(
                    f"layer {layer.name}: a BatchNorm that does not follow a Conv2d/Linear cannot be folded into a spiking layer"
                )
            mod = layer.module
            if isinstance(mod, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
                stages.append(Stage("pool", layer.name, layer, neurons=self.pool_neurons,
                                    pulses=_count_window(mod) if self.pool_counts else 1))
            elif isinstance(mod, (nn.Flatten, FlattenTo)):
                stages.append(Stage("reshape", layer.name, layer))
            elif isinstance(mod, nn.ReLU):
                pass  # ReLU of non-negative rates: the identity
            elif isinstance(mod, nn.MaxPool2d):
                check_convertible([mod])
            else:
                raise UnsupportedLayerError(f"layer {layer.name} ({type(mod).__name__}) cannot be converted to spiking layers")
            i += 1
        if self.output == "spikes":
            [s for s in stages if s.kind == "weight"][-1].neurons = True
        spikes = self.encoding == "rate"  # a count pool needs spikes (or counts) at its input
        for s in stages:
            if s.kind == "weight":
                spikes = s.neurons
            elif s.kind == "pool":
                if not spikes:
                    s.pulses = 1
                spikes = spikes and (s.neurons or s.pulses > 1)
        return stages

    @property
    def neuron_layers(self) -> list[str]:
        """Names of the stages that spike (weight layers with neurons and pool neurons)."""
        return [s.name for s in self.stages if s.neurons]

    def _spiking_input(self) -> dict[str, bool]:
        """Whether each weight layer's rows are driven by spikes (binary, or spike counts of a pool)."""
        return {k: v > 0 for k, v in self._input_pulses().items()}

    def _input_pulses(self) -> dict[str, int]:
        """Read pulses per row and step of each weight layer: 1 for binary spikes, ``n`` for the spike counts
        of an ``n``-element pooling window (``pooling: count``), 0 for analog values (DAC)."""
        key = (self.encoding, tuple((s.kind, s.neurons, s.pulses) for s in self.stages))
        cached = getattr(self, "_pulses_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        out, pulses = {}, 1 if self.encoding == "rate" else 0
        for s in self.stages:
            if s.kind == "weight":
                out[s.name] = pulses
                pulses = 1 if s.neurons else 0
            elif s.kind == "pool":
                pulses = 1 if s.neurons else (pulses * s.pulses if pulses and s.pulses > 1 else 0)
        self._pulses_cache = (key, out)
        return out

    # -- hardware set-up --------------------------------------------------------------------------
    def _set_mode(self, spiking: bool) -> None:
        """Converters of the SNN (``spiking``) or of the ANN pass used for percentile balancing.

        SNN: spike-driven layers read their rows with spikes (no DAC); layers fed fractional pooled
        rates keep an amplitude DAC of full scale 1; the analog readout removes the ADC.
        """
        if self.backend != "hw":
            return
        if not self._ann_converters:
            self._ann_converters = {s.name: (s.layer.mm.dac, s.layer.mm.adc) for s in self.stages if s.kind == "weight"}
        pulses_in = self._input_pulses()
        first = True
        for s in self.stages:
            if s.kind != "weight":
                continue
            mm = s.layer.mm
            dac, adc = self._ann_converters[s.name]
            if not spiking:
                mm.dac, mm.adc = dac, adc
                first = False
                continue
            mm.adc = self._snn_adcs.setdefault(s.name, copy.deepcopy(adc))  # its own range (spike currents)
            if pulses_in[s.name]:
                mm.dac = DAC(bits=None, mode="spikes", pulses=pulses_in[s.name])
            elif not first:
                mm.dac = DAC(bits=dac.bits, x_max=1.0, e_1bit_J=dac.e_1bit_J, mode=dac.mode)
            if self.readout == "analog":
                self._adc_templates[s.name] = adc
                mm.adc = ADC(bits=None)
            first = False

    # -- products ----------------------------------------------------------------------------------
    def _product(self, s: Stage, x: Tensor, ledger: EnergyLedger | None) -> Tensor:
        """``W·x`` of weight stage ``s`` (no bias) for ``x [N, ...]``.

        A layer fed by count pools (``pooling: count``) receives the spike counts ``k`` and returns
        ``W·(k/n)``, the product with the average-pooled rates."""
        n = self._input_pulses().get(s.name, 0)
        if self.backend == "sw":
            w = s.sw.weight
            if isinstance(s.sw, nn.Conv2d):
                y = F.conv2d(x, w, None, s.sw.stride, s.sw.padding, s.sw.dilation)
            else:
                y = F.linear(x, w)
            return y * (1.0 / n) if n > 1 else y
        mm = s.layer.mm
        if n and mm.dac.mode == "spikes":
            # the rows see spikes this network made (IF neurons: 0/1; rate coding: ±1; count pools: 0..n pulses):
            # no per-element check
            first = s is next(st for st in self.stages if st.kind == "weight")
            with mm.assume_spikes(nonnegative=not (first and self.encoding == "rate"), counts=n > 1):
                return self._hw_product(s, x, ledger)
        return self._hw_product(s, x, ledger)

    def _hw_product(self, s: Stage, x: Tensor, ledger: EnergyLedger | None) -> Tensor:
        if ledger is None or self.readout == "adc":
            return s.layer.product(x, ledger)
        tmp = EnergyLedger()
        y = s.layer.product(x, tmp)
        merge_ledger(ledger, tmp, components=("array", "dac"))  # no ADC, no digital recombination
        return y

    def _bias(self, s: Stage, lam_in: float) -> Tensor | None:
        b = s.sw.bias
        if b is None:
            return None
        b = b.detach() / lam_in
        return b.reshape(1, -1, 1, 1) if isinstance(s.sw, nn.Conv2d) else b

    def _currents(self, s: Stage, x: Tensor, tc: int, ledger: EnergyLedger | None, constant: bool,
                  cache: dict | None = None) -> Tensor:
        """Input currents ``z [tc, B, ...]`` of weight stage ``s`` for inputs ``x [tc, B, ...]``.

        ``constant``: the input is the same at every step (direct coding); without read noise the
        product is computed once and its cost counted ``tc`` times. ``cache`` (one dict per
        :meth:`run`) keeps that product for the later time chunks of the run: the chip reads the
        same image with the same result, and each chunk is still charged its ``tc`` reads.
        """
        b = x.shape[1]
        noisy = self.backend == "hw" and (s.layer.mm.device.read_noise_rel() > 0 or s.layer.mm.adc.noise_sigma_lsb > 0)
        bias = self._bias(s, s.lam_in)
        if constant and not noisy:
            hit = cache.get(s.name) if cache is not None else None
            if hit is None:
                tmp = EnergyLedger() if ledger is not None else None
                y = self._product(s, x[0], tmp)
                if bias is not None:  # added once, to the one product (elementwise: the same values as after expanding)
                    y = y + bias
                if cache is not None:
                    cache[s.name] = (y, tmp)
            else:
                y, tmp = hit
            if ledger is not None:
                merge_ledger(ledger, tmp, factor=tc)
            return y.unsqueeze(0).expand(tc, *y.shape)  # a view: the same currents at every step, not copied
        y = self._product(s, x.reshape(tc * b, *x.shape[2:]), ledger)
        y = y.reshape(tc, b, *y.shape[1:])
        if bias is None:
            return y
        return y.add_(bias) if y.is_contiguous() else y + bias  # the product is a fresh tensor: add in place

    # -- neurons -------------------------------------------------------------------------------------
    def _scan(self, z: Tensor, v: Tensor, theta: float) -> Tensor:
        """IF neurons over ``z [tc, ...]`` from membrane ``v`` (updated in place); returns spikes."""
        out = torch.empty_like(z)
        for t in range(z.shape[0]):
            v += z[t]
            s = out[t]
            torch.ge(v, theta, out=s)
            if self.reset == "subtract":
                v.sub_(s, alpha=theta)  # v − θ·s: the same values as v − (s·θ) (s is 0 or 1), without a temporary
            else:
                v.mul_(1.0 - s)
        return out

    def _next_stage(self, s: Stage) -> Stage | None:
        i = self.stages.index(s)
        return self.stages[i + 1] if i + 1 < len(self.stages) else None

    @staticmethod
    def _fusable(nxt: Stage | None, z: Tensor) -> bool:
        """The IF layer's spikes go straight into a count pool (``pooling: count``) over ``[tc, B, C, H, W]`` maps."""
        return nxt is not None and nxt.kind == "pool" and nxt.pulses > 1 and not nxt.neurons and z.dim() == 5

    def _scan_count_pool(self, z: Tensor, v: Tensor, theta: float, pool: Stage,
                         block_elements: int = 2**17) -> tuple[Tensor, float]:
        """IF neurons over ``z [tc, B, C, H, W]`` (as :meth:`_scan`) with the count pool applied step by step.

        Returns the window spike counts ``[tc, B, C, H/k_h, W/k_w]`` (the values :meth:`_pool` gives on the
        spikes of :meth:`_scan`: the same elementwise operations in the same order) and the total number
        of spikes. The full-size spike maps are never stored: each step's spikes are pooled while they are
        in cache, a block of images at a time (``block_elements`` membrane values per block).
        """
        kh, kw = _pair(pool.layer.module.kernel_size)
        tc, b, c, h, w = z.shape
        hp, wp = h // kh, w // kw
        out = z.new_empty(tc, b, c, hp, wp)
        nb = max(1, min(b, block_elements // max(1, c * h * w)))
        buf = z.new_empty(nb, c, h, w)
        trimmed = hp * kh != h or wp * kw != w
        n_sp = 0.0
        for b0 in range(0, b, nb):
            vb = v[b0 : b0 + nb]
            sb = buf[: vb.shape[0]]
            for t in range(tc):
                vb += z[t, b0 : b0 + nb]
                torch.ge(vb, theta, out=sb)
                if self.reset == "subtract":
                    vb.sub_(sb, alpha=theta)
                else:
                    vb.mul_(1.0 - sb)
                y = out[t, b0 : b0 + nb]
                views = [sb[..., i : hp * kh : kh, j : wp * kw : kw] for i in range(kh) for j in range(kw)]
                if len(views) == 1:
                    y.copy_(views[0])
                else:
                    torch.add(views[0], views[1], out=y)
                    for view in views[2:]:
                        y.add_(view)
                if trimmed:  # spikes in the rows/columns the pool drops
                    n_sp += float(sb.sum()) - float(y.sum())
        per_map = out.view(tc * b, -1).sum(1)  # float32 sums of small integers per image and step: exact
        return out, n_sp + float(per_map.sum(dtype=torch.float64))

    def _neuron_energy(self, name: str, n_updates: int, n_spikes: float, ledger: EnergyLedger) -> None:
        if self.backend != "hw":
            return
        if self.readout == "analog":
            e = n_updates * self.e_step_J + n_spikes * self.e_spike_J
        else:
            e = (2 * n_updates + n_spikes) * int_add_energy_J(DIGITAL_NEURON_BITS)
        ledger.add(name, "neuron", e, events=n_updates)

    # -- encoding ----------------------------------------------------------------------------------------
    def _encode(self, x: Tensor, tc: int) -> Tensor:
        if self.encoding == "direct":
            return x.unsqueeze(0).expand(tc, *x.shape)
        p = (x / self.lam0).clamp(-1.0, 1.0)
        u = torch.rand((tc, *x.shape), generator=self.generator, device=x.device, dtype=x.dtype)
        return (u < p.abs()).to(x.dtype) * torch.sign(p)

    # -- balancing ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def balance(self, x: Tensor, norm: str = "percentile", percentile: float = 99.9, timesteps: int = 64,
                threshold_scale: float = 1.0, thresholds: dict[str, float] | None = None) -> dict[str, float]:
        """Set the thresholds from calibration images ``x`` (see the module docstring); returns ``{layer: θ}``.

        Hardware backend: the ANN activations (``percentile``) are those of the programmed chips,
        then the spike-driven rows are switched to spike reads and every ADC is calibrated on the
        currents of the running SNN.
        """
        if thresholds is not None:
            norm = "fixed"
        elif norm not in NORMS:
            raise ValueError(f"algorithm.norm: got {norm!r}; allowed: {', '.join(map(repr, NORMS))}")
        if not 0 < percentile <= 100:
            raise ValueError(f"algorithm.percentile: got {percentile!r}; must be in (0, 100]")
        x = x.to(self.tdev, self.dtype)
        self.lam0 = float(x.abs().max()) if self.encoding == "rate" else 1.0
        if self.lam0 <= 0:
            self.lam0 = 1.0
        lams: dict[str, float] = {}
        if norm == "percentile":
            lams = self._ann_percentiles(x, percentile)
        self._set_mode(spiking=True)
        # layer by layer on the SNN: ADC calibration (hw) and Spike-Norm maxima
        tc = int(timesteps)
        cur = self._encode(x, tc)
        constant = self.encoding == "direct"
        lam = self.lam0
        pooled = None
        for s in self.stages:
            if s.kind == "weight":
                s.lam_in = lam
                if self.backend == "hw":
                    xc = self._calibration_inputs(s, cur[0] if constant else cur.flatten(0, 1))
                    n_in = self._input_pulses().get(s.name, 0)
                    if n_in > 1:  # spike counts k → the layer's input k/n (exact)
                        xc = xc * (1.0 / n_in)
                    s.layer._calibrate_matrix(s.layer._rows(xc))
                z = self._currents(s, cur, tc, None, constant)
                if norm == "fixed":
                    theta = float(thresholds[s.name])
                    lam_out = theta * lam
                elif norm == "spike_norm":
                    theta = float(z.max()) * threshold_scale
                    lam_out = theta * lam
                else:
                    lam_out = lams.get(s.name, 1.0) * threshold_scale
                    theta = lam_out / lam
                if not theta > 0 or not math.isfinite(theta):
                    theta, lam_out = 1.0, lam
                s.theta = theta
                if s.neurons:
                    nxt = self._next_stage(s)
                    if self._fusable(nxt, z):
                        cur = self._scan_count_pool(z, torch.zeros_like(z[0]), theta, nxt)[0]
                        pooled = nxt
                    else:
                        cur = self._scan(z, torch.zeros_like(z[0]), theta)
                    constant = False
                    lam = lam_out
                else:
                    cur = z
            elif s.kind == "pool":
                if pooled is not s:
                    cur = self._pool(s, cur)
                if s.neurons:
                    cur = self._scan(cur, torch.zeros_like(cur[0]), 1.0)
                    constant = False
            else:
                cur = self._apply(s, cur)
        self.balanced = True
        return {s.name: s.theta for s in self.stages if s.kind == "weight"}

    def _calibration_inputs(self, s: Stage, x: Tensor, budget: int = 2**24) -> Tensor:
        """At most ``budget`` elements of receptive fields: a random subset of the (step, image) inputs
        ``x [N, ...]`` (seeded from the network's generator) for the ADC range statistics."""
        per_input = s.layer.mm.in_features * max(1, math.prod(s.layer.out_shape(tuple(x.shape[1:]))) // s.layer.mm.out_features)
        n_max = max(1, budget // max(per_input, 1))
        if x.shape[0] <= n_max:
            return x
        g = torch.Generator().manual_seed(int(self.net.generator.initial_seed()))
        idx = torch.randperm(x.shape[0], generator=g)[:n_max].sort().values.to(x.device)
        return x[idx]

    def _ann_percentiles(self, x: Tensor, percentile: float) -> dict[str, float]:
        """``λ_l``: percentile of each weight layer's ReLU output (hardware: the chips' ANN activations)."""
        out = {}
        if self.backend == "hw":
            self._set_mode(spiking=False)
            self.net.calibrate(x)
        cur = x
        layers = self.net.layers
        names = {s.name for s in self.stages if s.kind == "weight"}
        for i, layer in enumerate(layers):
            if self.backend == "hw" or layer.kind != "mapped":
                cur = layer.forward(cur)
            else:
                cur = self.net.software[i](cur)
            if layer.kind == "mapped" and layer.name in names:
                a = cur.clamp(min=0).flatten().to(torch.float64)
                a = a[a > 0]
                out[layer.name] = float(torch.quantile(a[: 2**24], percentile / 100.0)) if a.numel() else 1.0
        return out

    def neuron_counts(self, in_shape: tuple[int, ...]) -> dict[str, int]:
        """Neurons per sample of every spiking stage, ``{name: N}``."""
        return {s.name: math.prod(s.layer.out_shape(shape)) for s, shape in self._shapes(tuple(in_shape)) if s.neurons}

    def _pool(self, s: Stage, cur: Tensor) -> Tensor:
        """Average pooling of ``cur [tc, B, ...]``; a count pool returns the window sums (``n ×`` the average,
        exact: spike counts are small integers), added from the ``k_h·k_w`` strided views of the window."""
        tc, b = cur.shape[:2]
        if s.kind == "pool" and s.pulses > 1:
            kh, kw = _pair(s.layer.module.kernel_size)
            h, w = cur.shape[-2] // kh * kh, cur.shape[-1] // kw * kw
            views = [cur[..., i:h:kh, j:w:kw] for i in range(kh) for j in range(kw)]
            if len(views) == 1:
                return views[0].clone(memory_format=torch.contiguous_format)
            y = torch.add(views[0], views[1])  # window sums in the order of _scan_count_pool
            for view in views[2:]:
                y.add_(view)
            return y
        y = s.layer.module(cur.reshape(tc * b, *cur.shape[2:]))
        return y.reshape(tc, b, *y.shape[1:])

    _apply = _pool

    # -- inference --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, x: Tensor, timesteps: list[int], ledgers: list[EnergyLedger] | None = None,
            max_chunk_elements: int = 2**25) -> tuple[list[Tensor], dict[str, list[float]]]:
        """Outputs ``[B, n_classes]`` at each ``T`` of ``timesteps`` (one run of ``max(T)`` steps).

        Returns ``(outputs, spikes)`` with ``spikes[layer][k]`` the total spike count of that
        layer in the first ``timesteps[k]`` steps. ``ledgers[k]`` (optional) receives the energy,
        latency and op counts of the first ``timesteps[k]`` steps.
        """
        if not self.balanced:
            raise RuntimeError("SpikingNetwork: call balance(x_calibration) before run")
        ts = sorted({int(t) for t in timesteps})
        if not ts or ts[0] < 1:
            raise ValueError(f"algorithm.timesteps: got {timesteps!r}; need integers ≥ 1")
        x = x.to(self.tdev, self.dtype)
        b = x.shape[0]
        # time chunks: split at every requested T and keep the largest activation bounded
        widest = max(math.prod(s.layer.out_shape(shape)) for s, shape in self._shapes(tuple(x.shape[1:])) if s.kind == "weight")
        step_max = max(1, max_chunk_elements // max(1, b * widest))
        bounds, t0 = [], 0
        for t_end in ts:
            while t0 < t_end:
                t1 = min(t_end, t0 + step_max)
                bounds.append((t0, t1))
                t0 = t1
        seg_ledgers = [EnergyLedger() for _ in bounds] if ledgers is not None else None
        state: dict[str, Tensor] = {}
        acc = None
        counts: dict[str, float] = {n: 0.0 for n in self.neuron_layers}
        outs: list[Tensor] = []
        spikes_at: dict[str, list[float]] = {n: [] for n in self.neuron_layers}
        macs_ann = self.net.op_counts(tuple(x.shape[1:]))
        const_cache: dict = {}  # the direct-input layer's currents, computed in the first chunk
        for k, (t0, t1) in enumerate(bounds):
            tc = t1 - t0
            led = seg_ledgers[k] if seg_ledgers is not None else None
            cur = self._encode(x, tc)
            constant = self.encoding == "direct"
            binary = self.encoding == "rate"
            pooled = None  # count pool already applied by the fused scan of the layer below
            for s in self.stages:
                if s.kind == "weight":
                    if led is not None:
                        if binary:
                            led.add_ops(s.name, macs=0.0, acs=self._acs(s, cur), macs_ann=0.0)
                        else:
                            led.add_ops(s.name, macs=tc * b * macs_ann[s.name] * self.macs_scale.get(s.name, 1.0), acs=0.0, macs_ann=0.0)
                    z = self._currents(s, cur, tc, led, constant, const_cache)
                    if s.neurons:
                        v = state.get(s.name)
                        if v is None:
                            v = state[s.name] = torch.zeros_like(z[0])
                        nxt = self._next_stage(s)
                        if self._fusable(nxt, z):
                            cur, n_sp = self._scan_count_pool(z, v, s.theta, nxt)
                            pooled = nxt
                        else:
                            cur = self._scan(z, v, s.theta)
                            n_sp = float(cur.sum())
                        counts[s.name] += n_sp
                        if led is not None:
                            self._neuron_energy(s.name, int(tc * z[0].numel()), n_sp, led)
                        constant, binary = False, True
                        if s is self.stages[-1] or all(st.kind != "weight" for st in self.stages[self.stages.index(s) + 1:]):
                            acc = cur.sum(0) if acc is None else acc + cur.sum(0)
                    else:
                        zs = z.sum(0)
                        acc = zs if acc is None else acc + zs
                        if led is not None:
                            self._neuron_energy(s.name, int(tc * z[0].numel()), 0.0, led)
                elif s.kind == "pool":
                    if pooled is not s:
                        cur = self._pool(s, cur)
                    if s.neurons:
                        v = state.get(s.name)
                        if v is None:
                            v = state[s.name] = torch.zeros_like(cur[0])
                        cur = self._scan(cur, v, 1.0)
                        counts[s.name] += float(cur.sum())
                        if led is not None:
                            self._neuron_energy(s.name, int(tc * cur[0].numel()), float(cur.sum()), led)
                    elif s.pulses > 1 and binary:  # count pool: a counter per pooled row sums the window's spikes
                        if led is not None and self.backend == "hw":
                            n_add = (s.pulses - 1) * cur[0].numel() * tc
                            led.add(s.name, "digital", n_add * int_add_energy_J(max(1, math.ceil(math.log2(s.pulses + 1)))),
                                    events=n_add)
                    else:
                        binary = False
                else:
                    cur = self._apply(s, cur)
            if t1 in ts:
                outs.append(self._readout(acc, t1))
                for n in self.neuron_layers:
                    spikes_at[n].append(counts[n])
        if ledgers is not None:
            for k_out, t_end in enumerate(ts):
                lg = ledgers[k_out]
                lg.count_inferences(b)
                for name, m in macs_ann.items():
                    lg.add_ops(name, macs=0.0, macs_ann=b * m * self.macs_scale.get(name, 1.0))
                for k, (_, t1) in enumerate(bounds):
                    if t1 <= t_end:
                        merge_ledger(lg, seg_ledgers[k])
                if self.backend == "hw" and self.readout == "analog":
                    last = [s for s in self.stages if s.kind == "weight"][-1]
                    adc = self._adc_templates.get(last.name)
                    if adc is not None and self.output == "membrane":
                        n_conv = b * last.layer.mm.out_features
                        lg.add(last.name, "adc", n_conv * adc.energy_per_conversion_J, events=n_conv,
                               latency_s=b * adc.conversion_time_s)
        return outs, spikes_at

    def _readout(self, acc: Tensor, t: int) -> Tensor:
        last = [s for s in self.stages if s.kind == "weight"][-1]
        if self.output == "spikes":
            return acc.clone()
        return acc * (last.lam_in / t)

    def _shapes(self, shape: tuple[int, ...]):
        for s in self.stages:
            yield s, shape
            shape = tuple(s.layer.out_shape(shape))

    def _nonnegative_input(self, s: Stage) -> bool:
        """The inputs of weight stage ``s`` are non-negative (IF spikes or their counts; not signed rate spikes)."""
        first = s is next(st for st in self.stages if st.kind == "weight")
        return not (first and self.encoding == "rate")

    def _acs(self, s: Stage, cur: Tensor) -> float:
        """Accumulates triggered by the binary inputs ``cur [tc, B, ...]``: Σ spikes × fan-out (exact per position)."""
        if isinstance(s.layer, MappedConv2d):
            cnt = cur.sum(0) if self._nonnegative_input(s) else cur.abs().sum(0)  # [B, C, H, W] spike counts
            ones = torch.ones(1, cnt.shape[1], *s.layer.kernel_size, dtype=cnt.dtype, device=cnt.device)
            pad = s.layer.padding
            patch = F.conv2d(F.pad(cnt, pad), ones, None, s.layer.stride, 0, s.layer.dilation)
            return float(patch.sum()) * s.layer.out_channels
        if isinstance(s.layer, MappedLinear):
            return float(cur.sum() if self._nonnegative_input(s) else cur.abs().sum()) * s.layer.mm.out_features
        raise TypeError(s.layer)
