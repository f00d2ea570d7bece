"""ANN inference with every weight matrix on crossbars (DESIGN §6).

A trained ``torch.nn.Module`` made of a chain of supported layers is turned into a
:class:`CrossbarNetwork`: each ``Linear`` becomes a :class:`circuits.MappedMatrix`
(bias added digitally), every other layer runs digitally in software. The
network is calibrated once (DAC/ADC ranges layer by layer on the *hardware*
activations of a calibration batch), then evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from circuits import ADC, DAC, CrossbarSpec, EnergyLedger, MappedMatrix
from device_models import Device

__all__ = ["CrossbarNetwork", "flatten_layers", "accuracy", "UnsupportedLayerError"]

#: layers run digitally, unchanged
_DIGITAL = (nn.ReLU, nn.Flatten, nn.Dropout, nn.Identity)


class UnsupportedLayerError(TypeError):
    """The model contains a layer the crossbar network cannot run."""


def flatten_layers(model: nn.Module) -> list[nn.Module]:
    """The model as an ordered chain of leaf layers (nested ``nn.Sequential`` or an FX-traceable chain)."""
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for child in model.children():
            out.extend(flatten_layers(child))
        return out
    if isinstance(model, (nn.Linear, *_DIGITAL)):
        return [model]
    return _trace_chain(model)


def _trace_chain(model: nn.Module) -> list[nn.Module]:
    import torch.fx as fx

    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - report any tracing failure the same way
        raise UnsupportedLayerError(
            f"model {type(model).__name__}: not an nn.Sequential and not FX-traceable ({exc}); "
            "wrap its layers in nn.Sequential"
        ) from exc
    functions = {torch.relu: nn.ReLU, nn.functional.relu: nn.ReLU, torch.flatten: nn.Flatten}
    out: list[nn.Module] = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        if node.op == "call_module":
            out.extend(flatten_layers(gm.get_submodule(node.target)))
        elif node.op == "call_function" and node.target in functions:
            out.append(nn.Flatten(*node.args[1:2]) if node.target is torch.flatten else nn.ReLU())
        elif node.op == "call_method" and node.target in ("relu", "flatten"):
            out.append(nn.ReLU() if node.target == "relu" else nn.Flatten(*node.args[1:2]))
        else:
            raise UnsupportedLayerError(f"model {type(model).__name__}: operation {node.op} {node.target!r} is not supported")
    return out


class CrossbarNetwork:
    """A chain of layers whose weight matrices live on crossbar arrays.

    Parameters
    ----------
    model:
        Trained software model (not modified).
    device, spec, dac, adc:
        Cell model, array spec and converter templates used for every layer.
    generator:
        Seeds programming noise, faults and read noise (deterministic results).
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
    ):
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.layers: list[Callable | tuple] = []
        self.mapped: list[MappedMatrix] = []
        n_linear = 0
        for layer in flatten_layers(model):
            if isinstance(layer, nn.Linear):
                n_linear += 1
                mm = MappedMatrix(
                    layer.weight.detach(),
                    device,
                    spec,
                    dac,
                    adc,
                    generator=self.generator,
                    dtype=dtype,
                    drift_compensation=drift_compensation,
                    name=f"linear{n_linear}",
                )
                bias = None if layer.bias is None else layer.bias.detach().to(self.generator.device, dtype)
                self.mapped.append(mm)
                self.layers.append(("mapped", mm, bias))
            elif isinstance(layer, nn.Dropout):
                continue  # inference: identity
            elif isinstance(layer, _DIGITAL):
                self.layers.append(("digital", layer, None))
            else:
                raise UnsupportedLayerError(f"layer {type(layer).__name__} is not supported on crossbars yet")
        if not self.mapped:
            raise UnsupportedLayerError("model has no Linear layer to map onto crossbars")
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
        """Set converter ranges layer by layer on the hardware activations of ``x``."""
        x = x.to(self.generator.device, self.dtype)
        for kind, layer, bias in self.layers:
            if kind == "mapped":
                layer.calibrate(x)
                x = layer.matmul(x)
                if bias is not None:
                    x = x + bias
            else:
                x = layer(x)
        self.calibrated = True

    @torch.no_grad()
    def forward(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        if not self.calibrated:
            raise RuntimeError("CrossbarNetwork: call calibrate(x) before forward")
        x = x.to(self.generator.device, self.dtype)
        if ledger is not None:
            ledger.count_inferences(x.shape[0])
        for kind, layer, bias in self.layers:
            if kind == "mapped":
                x = layer.matmul(x, ledger)
                if bias is not None:
                    x = x + bias
            else:
                x = layer(x)
        return x

    __call__ = forward


@torch.no_grad()
def accuracy(predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` whose arg-max prediction equals ``y`` (evaluated in batches)."""
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        out = predict(x[start : start + batch_size])
        correct += int((out.argmax(-1).cpu() == y[start : start + batch_size].cpu()).sum())
    return correct / max(x.shape[0], 1)
