"""ANN inference with every weight matrix on crossbars (DESIGN §6).

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

__all__ = ["CrossbarNetwork", "flatten_layers", "fold_batchnorm", "accuracy", "UnsupportedLayerError"]

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
    Rueckauer et al. 2017; REFERENCES Part B §4.1). Dropout and Identity are dropped (identities
    at inference); other layers are copied. The input model is not modified. In eval mode the
    result computes the same function as ``model`` (to rounding).
    """
    layers = [item.to_module() if isinstance(item, Folded) else copy_module(item) for item in fold_chain(flatten_layers(model))]
    return nn.Sequential(*layers).eval()


class CrossbarNetwork:
    """A chain of layers whose weight matrices live on crossbar arrays.

    Parameters
    ----------
    model:
        Trained software model (not modified). BatchNorm layers after a Conv2d/Linear are folded
        into its weights before mapping.
    device, spec, dac, adc:
        Cell model, array spec and converter templates used for every layer.
    generator:
        Seeds programming noise, faults and read noise (deterministic results).
    chunk_elements:
        Largest intermediate tensor (elements) one hardware call may create; larger batches
        (e.g. the ``B·H_out·W_out`` receptive fields of a convolution) run in chunks.
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
    ):
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.chunk_elements = int(chunk_elements)
        tdev = self.generator.device
        chain = fold_chain(flatten_layers(model))
        for i, item in enumerate(chain):  # check everything before programming any array
            _check_supported(i, item)
        self.layers: list = []
        self.mapped: list[MappedMatrix] = []
        counts: dict[str, int] = {}

        def next_name(kind: str) -> str:
            counts[kind] = counts.get(kind, 0) + 1
            return f"{kind}{counts[kind]}"

        for item in chain:
            if isinstance(item, Folded):
                conv = isinstance(item.module, nn.Conv2d)
                name = next_name("conv" if conv else "linear")
                mm = MappedMatrix(
                    item.weight.reshape(item.weight.shape[0], -1),
                    device,
                    spec,
                    dac,
                    adc,
                    generator=self.generator,
                    dtype=dtype,
                    drift_compensation=drift_compensation,
                    name=name,
                )
                bias = None if item.bias is None else item.bias.to(tdev, dtype)
                self.mapped.append(mm)
                if conv:
                    self.layers.append(MappedConv2d(name, mm, bias, self.chunk_elements, item.module))
                else:
                    self.layers.append(MappedLinear(name, mm, bias, self.chunk_elements))
            elif isinstance(item, BATCHNORMS):
                scale, shift = _bn_affine(item)
                self.layers.append(ChannelAffine(next_name("batchnorm"), scale.to(tdev, dtype), shift.to(tdev, dtype)))
            else:
                self.layers.append(DigitalLayer(next_name(type(item).__name__.lower()), copy_module(item)))
        if not self.mapped:
            raise UnsupportedLayerError("model has no Linear or Conv2d layer to map onto crossbars")
        self.input_shape: tuple[int, ...] | None = None
        self.calibrated = False

    @property
    def n_arrays(self) -> int:
        return sum(m.n_arrays for m in self.mapped)

    def set_time(self, t_s: float) -> None:
        """Evaluate every array ``t_s`` seconds after programming."""
        for m in self.mapped:
            m.set_time(t_s)

    def set_drift_compensation(self, enabled: bool) -> None:
        """Switch global drift compensation (all-ones reference read) on or off for every layer."""
        for m in self.mapped:
            m.drift_compensation = bool(enabled)

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set converter ranges layer by layer on the hardware activations of ``x``.

        Each layer's DAC range comes from all its inputs; its ADC range statistics from at most
        ``chunk_elements``-bounded rows of them (a fixed-seed random subset of the receptive
        fields of a convolution when there are more).
        """
        x = x.to(self.generator.device, self.dtype)
        self.input_shape = tuple(x.shape[1:])
        for layer in self.layers:
            x = layer.calibrate(x)
        self.calibrated = True

    @torch.no_grad()
    def forward(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        """The hardware output for ``x [B, ...]``; energy, events and op counts go to ``ledger``."""
        if not self.calibrated:
            raise RuntimeError("CrossbarNetwork: call calibrate(x) before forward")
        x = x.to(self.generator.device, self.dtype)
        b = x.shape[0]
        if ledger is not None:
            ledger.count_inferences(b)
        for layer in self.layers:
            if ledger is not None and layer.kind == "mapped":
                ledger.add_ops(layer.name, macs=b * layer.macs(tuple(x.shape[1:])))
            x = layer.forward(x, ledger)
        return x

    __call__ = forward

    def op_counts(self, input_shape: tuple[int, ...] | None = None) -> dict[str, int]:
        """Multiply-accumulates per inference of each weight layer, ``{name: #MAC}`` in network order.

        ``#MAC_l = fan-in_l × #outputs_l`` (Linear: ``in·out``; Conv2d:
        ``k_h·k_w·C_in·C_out·H_out·W_out``; REFERENCES Part B §6). ``input_shape`` is one
        sample's shape (default: the one seen by :meth:`calibrate`).
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


@torch.no_grad()
def accuracy(predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` whose arg-max prediction equals ``y`` (evaluated in batches)."""
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        out = predict(x[start : start + batch_size])
        correct += int((out.argmax(-1).cpu() == y[start : start + batch_size].cpu()).sum())
    return correct / max(x.shape[0], 1)
