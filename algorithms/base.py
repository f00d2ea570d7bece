"""The algorithm interface and registry: an ANN, a converted SNN and an STDP network are peers.

Every algorithm is a class registered under its YAML name (``algorithm: {name: ...}``) with

* ``Params`` — a dataclass of its YAML parameters (the ``algorithm:`` section minus ``name``).
  Each field carries its documentation in ``dataclasses.field(metadata=...)`` with the keys of
  :func:`param` (``description``, ``unit``, bounds ``ge``/``gt``/``le``/``lt``, ``choices``); the
  framework layer turns the dataclass into the validated YAML schema, so a parameter is written once;
* ``__init__(params, hardware, model=None)`` — store settings only (scikit-learn style);
* ``fit(data, ledger)`` — calibrate, convert, fine-tune or learn on chip (training energy goes to
  ``ledger``, kept apart from inference ledgers);
* ``predict(x, ledger=None)`` — class scores ``[B, n_classes]`` computed by the hardware;
* ``set_time(t_s)`` — look at the chip ``t_s`` seconds after programming (drift);
* ``evaluate(x, y, t_s, batch_size)`` — result rows for one evaluation time (default: one row
  with ``accuracy_hw`` and the inference ledger's columns); algorithms that report several rows
  (one per time-step count, per learning phase, …) override it;
* ``columns()`` — extra columns added to every row (e.g. software accuracy, spike rates).

Adding an algorithm is adding a file with such a class and one entry in :data:`ALGORITHMS`
(``algorithms/registry.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from circuits import ADC, COMPONENTS, DAC, CrossbarSpec, EnergyLedger
from device_models import Device

__all__ = [
    "Algorithm",
    "DataSplit",
    "Hardware",
    "param",
    "ledger_columns",
    "accuracy",
    "per_class_accuracy",
]


def param(default: Any = dataclasses.MISSING, *, description: str = "", unit: str = "", default_factory=dataclasses.MISSING, **bounds):
    """A dataclass field with its schema: ``description``, ``unit`` and bounds.

    ``bounds`` may hold ``ge``, ``gt``, ``le``, ``lt`` (numbers), ``choices`` (allowed values) and
    ``nullable`` (``None`` allowed). The framework layer validates YAML against these.
    """
    meta = {"description": description, "unit": unit, **bounds}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


class DataSplit(Protocol):
    """What ``fit`` receives (``xbarsim.datasets.Dataset`` satisfies it)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    image_shape: tuple[int, int, int]

    @property
    def n_classes(self) -> int: ...


@dataclass
class Hardware:
    """Everything an algorithm needs to build its chips: the cell model, array spec, converters,
    randomness and per-layer overrides.

    ``overrides`` maps a layer name (``linear1``, ``conv2``, …) to a dict with any of ``device``,
    ``spec``, ``dac``, ``adc`` that replace the defaults for that layer. ``generator`` is the
    single source of randomness (derived from the config seed by the framework).
    """

    device: Device
    spec: CrossbarSpec = field(default_factory=CrossbarSpec)
    dac: DAC = field(default_factory=DAC)
    adc: ADC = field(default_factory=ADC)
    generator: torch.Generator | None = None
    dtype: torch.dtype = torch.float32
    drift_compensation: bool = False
    overrides: dict[str, dict] = field(default_factory=dict)
    n_calibration: int = 256
    batch_size: int = 512

    def for_layer(self, name: str) -> tuple[Device, CrossbarSpec, DAC, ADC]:
        """``(device, spec, dac, adc)`` of layer ``name`` (defaults unless overridden)."""
        o = self.overrides.get(name, {})
        return o.get("device", self.device), o.get("spec", self.spec), o.get("dac", self.dac), o.get("adc", self.adc)

    @property
    def torch_device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")


class Algorithm:
    """Base class of every algorithm (see the module docstring for the contract)."""

    name: ClassVar[str] = "algorithm"
    #: the runner builds (or loads) a trained software model for algorithms that convert one
    needs_model: ClassVar[bool] = True
    #: binary (MTJ) devices make sense only for algorithms built for 1-bit synapses
    supports_binary_devices: ClassVar[bool] = True

    @dataclass
    class Params:
        pass

    def __init__(self, params: Any, hardware: Hardware, model: torch.nn.Module | None = None):
        self.params = params
        self.hardware = hardware
        self.model = model

    # -- lifecycle ---------------------------------------------------------------------------
    def fit(self, data: DataSplit, ledger: EnergyLedger | None = None) -> None:
        raise NotImplementedError

    def predict(self, x: Tensor, ledger: EnergyLedger | None = None) -> Tensor:
        raise NotImplementedError

    def set_time(self, t_s: float) -> None:
        """Default: nothing drifts."""

    def columns(self) -> dict:
        """Extra columns added to every row this algorithm reports."""
        return {}

    def evaluate(self, x: Tensor, y: Tensor, t_s: float, batch_size: int = 512) -> list[dict]:
        """Rows for one evaluation time: ``accuracy_hw`` and the inference energy columns.

        The row also carries ``"_ledger"`` (the inference :class:`EnergyLedger`), which the runner
        turns into the per-layer breakdown and drops from the table.
        """
        self.set_time(t_s)
        ledger = EnergyLedger()
        acc = accuracy(lambda xb: self.predict(xb, ledger), x, y, batch_size)
        return [{"t_s": float(t_s), "accuracy_hw": acc, **ledger_columns(ledger), "_ledger": ledger}]

    # -- parameters ------------------------------------------------------------------------
    @classmethod
    def make_params(cls, **values) -> Any:
        """``Params(**values)`` with a clear error naming the unknown key."""
        names = [f.name for f in dataclasses.fields(cls.Params)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"algorithm.{unknown[0]}: unknown parameter for algorithm {cls.name!r}; allowed: {', '.join(names)}")
        return cls.Params(**values)


def ledger_columns(ledger: EnergyLedger, prefix: str = "energy") -> dict:
    """Result-row metrics of one ledger: energy per inference by component (summing to
    ``{prefix}_per_inference_J``), ``latency_s``, op counts and op-count energies.

    ``prefix="energy_train"`` gives the columns of a training ledger (per training image).
    """
    per_inf = ledger.per_inference()
    row = {f"{prefix}_per_inference_J" if prefix == "energy" else f"{prefix}_per_image_J": per_inf.pop("total")}
    for comp in COMPONENTS:
        row[f"{prefix}_{comp}_J"] = per_inf.pop(comp, 0.0)
    for comp, e in sorted(per_inf.items()):
        row[f"{prefix}_{comp}_J"] = e
    if prefix == "energy":
        row["latency_s"] = ledger.latency_s()
        ops = ledger.ops_per_inference()
        row.update({"ops_mac": ops["ops_mac"], "ops_ac": ops["ops_ac"]})
        row.update(ledger.opcount_energy())
    else:
        row[f"{prefix.replace('energy', 'latency')}_per_image_s"] = ledger.latency_s()
    return row


@torch.no_grad()
def accuracy(predict, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of ``x`` whose arg-max prediction equals ``y`` (evaluated in batches)."""
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        out = predict(x[start : start + batch_size])
        correct += int((out.argmax(-1).cpu() == y[start : start + batch_size].cpu()).sum())
    return correct / max(x.shape[0], 1)


def per_class_accuracy(pred: Tensor, y: Tensor, n_classes: int) -> dict:
    """``{"accuracy_class_k": fraction of class-k samples predicted k}`` (NaN for absent classes)."""
    pred, y = pred.cpu(), y.cpu()
    out = {}
    for k in range(n_classes):
        m = y == k
        n = int(m.sum())
        out[f"accuracy_class_{k}"] = float((pred[m] == k).sum()) / n if n else math.nan
    return out
