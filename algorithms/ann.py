"""ANN inference with every weight matrix on crossbars; the hardware network as an ``nn.Module``.

A trained ``torch.nn.Module`` made of a chain of supported layers is turned into a
:class:`CrossbarNetwork`: each ``Linear`` and ``Conv2d`` (im2col) becomes a
:class:`circuits.MappedMatrix` (bias added digitally), BatchNorm layers that follow one are
folded into its weight first, and every other layer runs digitally in software (see
:mod:`algorithms.layers` for the mapping, the folding equations and the op-count convention).
The network is calibrated once (DAC/ADC ranges layer by layer on the *hardware* activations of
a calibration batch), then evaluated.

Supported layers: ``Linear``, ``Conv2d`` (groups = 1, zero padding), ``BatchNorm1d/2d``
(folded, or digital when no linear op precedes it), ``ReLU``, ``AvgPool2d``,
``AdaptiveAvgPool2d``, ``MaxPool2d`` (digital), ``Flatten``, ``Dropout``/``Identity``
(removed). Models are ``nn.Sequential`` (nested) or FX-traceable single chains that may use
``F.relu``, ``torch.flatten(x, 1)``, ``x.view(x.size(0), -1)``, ``F.avg_pool2d``,
``F.max_pool2d`` and ``F.dropout``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from circuits import ADC, DAC, CrossbarSpec, EnergyLedger, MappedMatrix
from device_models import Device

from .base import accuracy
from .layers import (
    BATCHNORMS,
    DEFAULT_CHUNK_ELEMENTS,
    DIGITAL_MODULES,
    IDENTITIES,
    ChannelAffine,
    DigitalLayer,
    FlattenTo,
    Folded,
    MappedConv2d,
    MappedLinear,
    UnsupportedLayerError,
    _bn_affine,
    copy_module,
    fold_chain,
)

__all__ = ["CrossbarNetwork", "flatten_layers", "fold_batchnorm", "accuracy", "UnsupportedLayerError", "fresh_generator"]

_SUPPORTED = (nn.Linear, nn.Conv2d, *BATCHNORMS, *DIGITAL_MODULES, *IDENTITIES)
_SUPPORTED_NAMES = "Linear, Conv2d, BatchNorm1d/2d, ReLU, AvgPool2d, AdaptiveAvgPool2d, MaxPool2d, Flatten, Dropout, Identity"


def flatten_layers(model: nn.Module) -> list[nn.Module]:
    """The model as an ordered chain of leaf layers (nested ``nn.Sequential`` or an FX-traceable chain).

    Leaf ``torch.nn`` layers are returned as they are (supported or not: :class:`CrossbarNetwork`
    names the unsupported ones); other modules are traced with ``torch.fx`` and must form a single
    chain (each operation consumes the output of the previous one).
    """
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        out: list[nn.Module] = []
        for child in model.children():
            out.extend(flatten_layers(child))
        return out
    if isinstance(model, _SUPPORTED) or (type(model).__module__.startswith("torch.nn") and not list(model.children())):
        return [model]
    return _trace_chain(model)


# functional operations an FX-traced chain may use, as the module that computes the same thing
_FUNCTIONS: dict[Callable, Callable[..., nn.Module]] = {
    torch.relu: nn.ReLU,
    F.relu: nn.ReLU,
    F.avg_pool2d: nn.AvgPool2d,
    F.max_pool2d: nn.MaxPool2d,
    F.adaptive_avg_pool2d: nn.AdaptiveAvgPool2d,
}
_DROPOUTS = (F.dropout, F.dropout1d, F.dropout2d, torch.dropout)


def _trace_chain(model: nn.Module) -> list[nn.Module]:
    import torch.fx as fx

    name = type(model).__name__
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - report any tracing failure the same way
        raise UnsupportedLayerError(
            f"model {name}: not an nn.Sequential and not FX-traceable ({exc}); wrap its layers in nn.Sequential"
        ) from exc

    def unsupported(node, why: str = "is not supported") -> UnsupportedLayerError:
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", repr(node.target))
        return UnsupportedLayerError(f"model {name}: operation {node.name!r} ({node.op} {target}) {why}; supported: {_SUPPORTED_NAMES}")

    out: list[nn.Module] = []
    cur = None  # the node holding the running activation
    shape_nodes: set = set()  # x.size(0), x.shape[0], ...: batch-size helpers
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if cur is not None:
                raise unsupported(node, "is a second input; only single-input chains are supported")
            cur = node
            continue
        if node.op == "output":
            if node.args[0] is not cur:
                raise unsupported(node, "does not return the last layer's output (not a single chain)")
            continue
        if _is_shape_helper(node, shape_nodes):
            shape_nodes.add(node)
            continue
        inputs = [a for a in node.all_input_nodes if a not in shape_nodes]
        if inputs != [cur]:
            raise unsupported(node, "does not consume the previous layer's output alone (not a single chain)")
        args = node.args[1:]
        if node.op == "call_module":
            out.extend(flatten_layers(gm.get_submodule(node.target)))
        elif node.op == "call_function" and node.target in _FUNCTIONS:
            cls = _FUNCTIONS[node.target]
            kwargs = {k: v for k, v in node.kwargs.items() if k not in ("inplace", "return_indices")}
            out.append(nn.ReLU() if cls is nn.ReLU else cls(*args, **kwargs))
        elif node.op == "call_function" and node.target in _DROPOUTS:
            pass  # identity at inference
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            out.append(nn.ReLU())
        elif (node.op == "call_function" and node.target is torch.flatten) or (node.op == "call_method" and node.target == "flatten"):
            start = node.kwargs.get("start_dim", args[0] if args else 0)
            end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
            if start != 1 or end != -1:
                raise unsupported(node, f"flattens dims {start}..{end}; only flatten(x, 1) keeps the batch")
            out.append(nn.Flatten())
        elif node.op == "call_method" and node.target in ("view", "reshape"):
            out.append(_view_as_flatten(node, shape_nodes, unsupported))
        else:
            raise unsupported(node)
        cur = node
    return out


def _is_shape_helper(node, shape_nodes: set) -> bool:
    """``x.size(...)``, ``x.shape``, ``x.shape[i]``, ``x.dim()``: values derived from shapes, not activations."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
        return True
    return node.op == "call_function" and node.target is operator.getitem and node.args[0] in shape_nodes


def _view_as_flatten(node, shape_nodes: set, unsupported) -> nn.Module:
    """``x.view(x.size(0), -1)`` / ``x.reshape(x.shape[0], -1)`` → Flatten; ``x.view(-1, n)`` → FlattenTo(n)."""
    args = node.args[1:]
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    if len(args) == 2 and args[1] == -1 and _is_batch_size(args[0], shape_nodes):
        return nn.Flatten()
    if len(args) == 2 and args[0] == -1 and isinstance(args[1], int) and args[1] > 0:
        return FlattenTo(args[1])
    raise unsupported(node, f"reshapes to {args!r}; only x.view(x.size(0), -1) or x.view(-1, n) (a flatten) is supported")


def _is_batch_size(a, shape_nodes: set) -> bool:
    if a not in shape_nodes:
        return False
    if a.op == "call_method" and a.target == "size":
        return (a.args[1:] or a.kwargs.get("dim", None)) in ((0,), 0)
    return a.op == "call_function" and a.target is operator.getitem and a.args[1] == 0


def fold_batchnorm(model: nn.Module) -> nn.Sequential:
    """The software model as an ``nn.Sequential`` (eval mode) with every BatchNorm after a Conv2d/Linear folded.

    ``W̃ = (γ/σ)W``, ``b̃ = (γ/σ)(b − μ) + β``, ``σ = sqrt(var + eps)`` (running statistics;
    Rueckauer et al., Front. Neurosci. 11:682, 2017). Dropout and Identity are dropped (identities
    at inference); other layers are copied. The input model is not modified. In eval mode the
    result computes the same function as ``model`` (to rounding).
    """
    layers = [item.to_module() if isinstance(item, Folded) else copy_module(item) for item in fold_chain(flatten_layers(model))]
    return nn.Sequential(*layers).eval()


def fresh_generator(device: torch.device | str | None = None) -> torch.Generator:
    """A generator seeded from OS entropy (``Generator.seed()``): never a fixed seed."""
    g = torch.Generator(device=device) if device is not None else torch.Generator()
    g.seed()
    return g


_OVERRIDE_KEYS = ("device", "spec", "dac", "adc")


class CrossbarNetwork(nn.Module):
    """A chain of layers whose weight matrices live on crossbar arrays, as an ``nn.Module``.

    The forward pass runs through the hardware (crossbars, converters, digital periphery). When
    gradients are enabled, every weight layer's output is the hardware value with the gradient of
    the software layer (straight-through estimator: ``y = y_sw + (y_hw − y_sw).detach()``), so
    ``loss.backward()`` reaches the software weights in :attr:`software` — hardware-aware training
    (the "noise and quantisation in the forward pass, exact gradients backward" scheme of aihwkit,
    Rasch et al., Nat. Commun. 14, 5282, 2023). After changing the weights, :meth:`program_weights`
    writes them onto the chips; :meth:`reprogram` draws new chips (a new seed) without rebuilding
    the network.

    Parameters
    ----------
    model:
        Trained software model (not modified). BatchNorm layers after a Conv2d/Linear are folded
        into its weights before mapping.
    device, spec, dac, adc:
        Cell model, array spec and converter templates used for every layer.
    generator:
        Seeds programming noise, faults and read noise (deterministic results). ``None``: a fresh
        generator seeded from OS entropy (two networks built without one differ in their noise).
    chunk_elements:
        Largest intermediate tensor (elements) one hardware call may create; larger batches
        (e.g. the ``B·H_out·W_out`` receptive fields of a convolution) run in chunks.
    overrides:
        Per-layer settings, ``{layer name: {"device"|"spec"|"dac"|"adc": object}}`` replacing the
        defaults for that layer (layer names: ``conv1``, ``linear1``, … in network order; see
        :attr:`layer_names`).
    """

    def __init__(
        self,
        model: nn.Module,
        device: Device,
        spec: CrossbarSpec | None = None,
        dac: DAC | None = None,
        adc: ADC | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        drift_compensation: bool = False,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        overrides: dict[str, dict] | None = None,
    ):
        super().__init__()
        self.generator = generator if generator is not None else fresh_generator()
        self.dtype = dtype
        self.chunk_elements = int(chunk_elements)
        self.drift_compensation = bool(drift_compensation)
        self.defaults = (device, spec, dac, adc)
        tdev = self.generator.device
        chain = fold_chain(flatten_layers(model))
        for i, item in enumerate(chain):  # check everything before programming any array
            _check_supported(i, item)
        self.layers: list = []
        software: list[nn.Module] = []
        counts: dict[str, int] = {}

        def next_name(kind: str) -> str:
            counts[kind] = counts.get(kind, 0) + 1
            return f"{kind}{counts[kind]}"

        names = []
        for item in chain:
            if isinstance(item, Folded):
                names.append(next_name("conv" if isinstance(item.module, nn.Conv2d) else "linear"))
            elif isinstance(item, BATCHNORMS):
                names.append(next_name("batchnorm"))
            else:
                names.append(next_name(type(item).__name__.lower()))
        self.overrides = self._check_overrides(overrides or {}, [n for n, it in zip(names, chain) if isinstance(it, Folded)])
        seed = int(self.generator.initial_seed())
        for name, item in zip(names, chain):
            if isinstance(item, Folded):
                sw = _software_twin(item, dtype, tdev)
                mm = self._build_matrix(name, item.weight.to(tdev))  # the float64 fold, as the chip's target
                bias = None if sw.bias is None else sw.bias.detach()  # shares storage with the software bias
                if isinstance(item.module, nn.Conv2d):
                    self.layers.append(MappedConv2d(name, mm, bias, self.chunk_elements, item.module, seed))
                else:
                    self.layers.append(MappedLinear(name, mm, bias, self.chunk_elements, seed))
                software.append(sw)
            elif isinstance(item, BATCHNORMS):
                scale, shift = _bn_affine(item)
                self.layers.append(ChannelAffine(name, scale.to(tdev, dtype), shift.to(tdev, dtype)))
                software.append(nn.Identity())
            else:
                self.layers.append(DigitalLayer(name, copy_module(item)))
                software.append(nn.Identity())
        #: the software weights (folded), one module per layer (Identity for digital layers)
        self.software = nn.ModuleList(software)
        if not any(layer.kind == "mapped" for layer in self.layers):
            raise UnsupportedLayerError("model has no Linear or Conv2d layer to map onto crossbars")
        self.input_shape: tuple[int, ...] | None = None
        self.calibrated = False
        self._calib_x: Tensor | None = None

    @classmethod
    def from_hardware(cls, model: nn.Module, hardware, **kwargs) -> CrossbarNetwork:
        """Build from an :class:`algorithms.base.Hardware` (device, spec, converters, generator, overrides)."""
        return cls(
            model, hardware.device, hardware.spec, hardware.dac, hardware.adc, generator=hardware.generator,
            dtype=hardware.dtype, drift_compensation=hardware.drift_compensation, overrides=hardware.overrides, **kwargs,
        )

    @staticmethod
    def _check_overrides(overrides: dict, names: list[str]) -> dict:
        for name, o in overrides.items():
            if name not in names:
                raise ValueError(f"overrides: got layer {name!r}; the model's weight layers are {', '.join(names)}")
            if not isinstance(o, dict):
                raise ValueError(f"overrides.{name}: got {type(o).__name__}; expected a dict with keys {', '.join(_OVERRIDE_KEYS)}")
            bad = sorted(set(o) - set(_OVERRIDE_KEYS))
            if bad:
                raise ValueError(f"overrides.{name}.{bad[0]}: unknown key; allowed: {', '.join(_OVERRIDE_KEYS)}")
        return overrides  # the caller's mapping itself (it may record which layers were asked for)

    def layer_settings(self, name: str) -> tuple[Device, CrossbarSpec | None, DAC | None, ADC | None]:
        """``(device, spec, dac, adc)`` of weight layer ``name`` (defaults unless overridden)."""
        o = self.overrides.get(name, {})
        return tuple(o.get(k, d) for k, d in zip(_OVERRIDE_KEYS, self.defaults))  # type: ignore[return-value]

    def _build_matrix(self, name: str, w: Tensor) -> MappedMatrix:
        device, spec, dac, adc = self.layer_settings(name)
        return MappedMatrix(
            w.reshape(w.shape[0], -1), device, spec, dac, adc, generator=self.generator, dtype=self.dtype,
            drift_compensation=self.drift_compensation, name=name,
        )

    # -- structure ---------------------------------------------------------------------------
    @property
    def mapped(self) -> list[MappedMatrix]:
        """The mapped matrices, in network order."""
        return [layer.mm for layer in self.layers if layer.kind == "mapped"]

    @property
    def layer_names(self) -> list[str]:
        """Names of the weight layers (keys of ``overrides``)."""
        return [layer.name for layer in self.layers if layer.kind == "mapped"]

    @property
    def n_arrays(self) -> int:
        return sum(m.n_arrays for m in self.mapped)

    def software_weights(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """``{layer: (weight, bias)}`` of the software model (folded), detached."""
        out = {}
        for layer, sw in zip(self.layers, self.software):
            if layer.kind == "mapped":
                out[layer.name] = (sw.weight.detach(), None if sw.bias is None else sw.bias.detach())
        return out

    # -- programming -------------------------------------------------------------------------
    @torch.no_grad()
    def program_weights(self, recalibrate: bool = True, headroom: float = 1.0) -> None:
        """Write the current software weights onto the chips (after training them).

        The same chip is re-written (device-to-device variation and faults kept) while the weights
        fit its weight range ``w_max``; a layer whose largest weight outgrew the range (training) is
        re-mapped on a new chip with range ``headroom × max|W|`` (1.25 while training, so that it
        rarely happens twice), keeping its calibrated converters (weights beyond the range would
        saturate). Converter ranges are re-calibrated on the last
        calibration batch when ``recalibrate``.
        """
        for layer, sw in zip(self.layers, self.software):
            if layer.kind != "mapped":
                continue
            w = sw.weight.detach().reshape(sw.weight.shape[0], -1)
            w_max = getattr(layer.mm, "w_max", None)
            fits = w_max is not None and float(w.abs().max()) <= w_max
            if hasattr(layer.mm, "program") and fits:
                layer.mm.program(w)  # same chip; weights beyond ±w_max would saturate, so a grown range re-maps below
            else:
                old = layer.mm
                device, spec, _, _ = self.layer_settings(layer.name)
                extra = {"w_max": headroom * float(w.abs().max())} if w_max is not None else {}
                layer.mm = MappedMatrix(
                    w, device, spec, old.dac, old.adc, generator=self.generator, dtype=self.dtype,
                    drift_compensation=self.drift_compensation, name=layer.name, **extra,
                )
            layer.bias = None if sw.bias is None else sw.bias.detach()
        if recalibrate and self._calib_x is not None:
            self.calibrate(self._calib_x)

    @torch.no_grad()
    def reprogram(self, seed: int | None = None) -> None:
        """New chips for the same network: a new generator (``seed``, or OS entropy when ``None``),
        every matrix re-drawn (programming noise, device-to-device variation, faults, ADC errors)
        with the current software weights, and the converters re-calibrated on the last
        calibration batch. The layers, software weights and overrides stay."""
        tdev = self.generator.device
        self.generator = torch.Generator(device=tdev).manual_seed(int(seed)) if seed is not None else fresh_generator(tdev)
        new_seed = int(self.generator.initial_seed())
        for layer, sw in zip(self.layers, self.software):
            if layer.kind == "mapped":
                layer.mm = self._build_matrix(layer.name, sw.weight.detach())
                layer.calib_seed = new_seed
        self.calibrated = False
        if self._calib_x is not None:
            self.calibrate(self._calib_x)

    # -- time ---------------------------------------------------------------------------------
    def set_time(self, t_s: float) -> None:
        """Evaluate every array ``t_s`` seconds after programming."""
        for m in self.mapped:
            m.set_time(t_s)

    def set_drift_compensation(self, enabled: bool) -> None:
        """Switch global drift compensation (all-ones reference read) on or off for every layer."""
        self.drift_compensation = bool(enabled)
        for m in self.mapped:
            m.drift_compensation = bool(enabled)

    # -- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set converter ranges layer by layer on the hardware activations of ``x``.

        Each layer's DAC range comes from all its inputs; its ADC range statistics from at most
        ``chunk_elements``-bounded rows of them (a random subset of the receptive fields of a
        convolution when there are more, drawn with a seed derived from the network's generator).
        """
        x = x.to(self.generator.device, self.dtype)
        self._calib_x = x
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            x = layer.calibrate(x)
        self.calibrated = True

    def forward(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """The hardware output for ``x [B, ...]``; energy, events and op counts go to ``ledger``.

        With gradients enabled and trainable software weights, each weight layer passes the
        gradient of its software twin straight through (see the class docstring).
        """
        if not self.calibrated:
            raise RuntimeError("CrossbarNetwork: call calibrate(x) before forward")
        x = x.to(self.generator.device, self.dtype)
        b = x.shape[0]
        ste = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.software.parameters()))
        if ledger is not None:
            ledger.count_inferences(b)
        for layer, sw in zip(self.layers, self.software):
            if layer.kind == "mapped":
                if ledger is not None:
                    ledger.add_ops(layer.name, macs=b * layer.macs(tuple(x.shape[1:])))
                if ste:
                    with torch.no_grad():
                        y_hw = layer.forward(x.detach(), ledger)
                    y_sw = sw(x)
                    x = y_sw + (y_hw - y_sw).detach()
                else:
                    with torch.no_grad():
                        x = layer.forward(x, ledger)
            else:
                x = layer.forward(x, ledger)
        return x

    def op_counts(self, input_shape: tuple[int, ...] | None = None) -> dict[str, int]:
        """Multiply-accumulates per inference of each weight layer, ``{name: #MAC}`` in network order.

        ``#MAC_l = fan-in_l × #outputs_l`` (Linear: ``in·out``; Conv2d:
        ``k_h·k_w·C_in·C_out·H_out·W_out``; Lee et al., Front. Neurosci. 14:119, 2020).
        ``input_shape`` is one sample's shape (default: the one seen by :meth:`calibrate`).
        """
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError("op_counts: give input_shape (one sample's shape) or call calibrate first")
        out: dict[str, int] = {}
        for layer in self.layers:
            if layer.kind == "mapped":
                out[layer.name] = int(layer.macs(shape))
            shape = tuple(layer.out_shape(shape))
        return out


def _software_twin(item: Folded, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The folded layer as a trainable software module of ``dtype`` (weights cast once from the float64 fold)."""
    m = item.to_module()
    twin = m.to(device=device, dtype=dtype)
    with torch.no_grad():
        twin.weight.copy_(item.weight.to(device, dtype))
        if item.bias is not None:
            twin.bias.copy_(item.bias.to(device, dtype))
    return twin.train(False)


def _check_supported(i: int, item: object) -> None:
    if isinstance(item, Folded):
        m = item.module
        if isinstance(m, nn.Conv2d):
            if m.groups != 1:
                raise UnsupportedLayerError(
                    f"layer {i} ({m}): groups={m.groups} is not supported; only groups=1 convolutions map onto crossbars"
                )
            if m.padding_mode != "zeros":
                raise UnsupportedLayerError(f"layer {i} ({m}): padding_mode={m.padding_mode!r}; only 'zeros' is supported")
            if isinstance(m.padding, str) and m.padding == "same" and any(s != 1 for s in m.stride):
                raise UnsupportedLayerError(f"layer {i} ({m}): padding='same' needs stride 1")
        return
    if isinstance(item, BATCHNORMS):
        _bn_affine(item)  # raises for BatchNorm without running statistics
        return
    if not isinstance(item, (*DIGITAL_MODULES, *IDENTITIES)):
        raise UnsupportedLayerError(
            f"layer {i} ({type(item).__name__}: {item}) is not supported on crossbars; supported: {_SUPPORTED_NAMES}"
        )
