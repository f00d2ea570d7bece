"""Energy, latency and event ledger per layer and component, plus SNN-paper op counts (docs/circuits.md).

Components
----------
``array``   read energy in the cells and wires, exact from the circuit solve (``t_read·vᵀYv``)
``dac``     row drivers (amplitude DAC conversions or 1-bit drives; none for spikes)
``adc``     column conversions (or 1-bit sense amplifiers)
``digital`` shift-and-add over slices and input bits, partial-sum accumulation (Horowitz integer adds)
``neuron``  column neuron updates (reserved: spiking networks)
``write``   programming / learning pulses (reserved: from the device model when it reports energy)

Latency is recorded per (layer, component) as the summed time of all the MVMs the layer ran;
divided by the number of inferences it is the time one inference spends there (layers and the
vectors of one layer in sequence, the arrays of a layer in parallel).

Op counts (docs/circuits.md): ``macs`` multiply-accumulates and ``acs`` accumulates the network
executed, and ``macs_ann`` the MACs of the equivalent ANN; the op-count energies use
``E_MAC = 4.6 pJ`` and ``E_AC = 0.9 pJ`` (fp32, 45 nm, Horowitz ISSCC 2014) by default.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .constants import OPCOUNT_E_AC_J, OPCOUNT_E_MAC_J

try:  # torch is optional here: the ledger also takes plain floats
    import torch as _torch
except ImportError:  # pragma: no cover
    _torch = None

__all__ = ["COMPONENTS", "EnergyLedger"]

#: components every report lists (zero when unused), in this order
COMPONENTS = ("array", "dac", "adc", "digital", "neuron", "write")


def _is_tensor(x) -> bool:
    return _torch is not None and isinstance(x, _torch.Tensor)


class _Acc:
    """A running sum of floats and 0-d tensors: tensors are added on their device, without syncing."""

    __slots__ = ("f", "t")

    def __init__(self):
        self.f = 0.0
        self.t = None

    def add(self, x) -> None:
        if _is_tensor(x):
            x = x.detach()
            if x.dim() != 0:
                x = x.sum()
            self.t = x.to(_torch.float64) if self.t is None else self.t + x.to(device=self.t.device, dtype=_torch.float64)
        else:
            self.f += float(x)

    def value(self) -> float:
        """The sum as a float (syncs once; later calls reuse the folded value)."""
        if self.t is not None:
            self.f += float(self.t)
            self.t = None
        return self.f


class _AccDict(dict):
    """``{key: _Acc}`` whose items read as floats (synced on access)."""

    def add(self, key, x) -> None:
        acc = dict.get(self, key)
        if acc is None:
            acc = dict.__setitem__(self, key, _Acc()) or dict.__getitem__(self, key)
        acc.add(x)

    def __getitem__(self, key) -> float:
        acc = dict.get(self, key)
        return 0.0 if acc is None else acc.value()

    def values(self):
        return [a.value() for a in dict.values(self)]

    def items(self):
        return [(k, a.value()) for k, a in dict.items(self)]


class EnergyLedger:
    """Accumulates energy [J], event counts and latency [s] keyed by ``(layer, component)``.

    ``n_inferences`` counts the samples the energy was spent on, so :meth:`per_inference`,
    :meth:`latency_s` and :meth:`records` report per inference. :meth:`add` takes floats or tensors;
    tensors are summed on their device and synchronised only when a report is asked for (no
    host–device sync per MVM or write step).
    """

    def __init__(self):
        self._energy = _AccDict()
        self._events = _AccDict()
        self._latency = _AccDict()
        self._ops: dict[str, dict[str, float]] = {}
        self.spiking = False
        self.n_inferences = 0

    # -- recording --------------------------------------------------------------------------
    def add(self, layer: str, component: str, energy_J, events=0.0, latency_s=0.0) -> None:
        """Add ``energy_J`` joules, ``events`` events and ``latency_s`` seconds (all totals) to ``(layer, component)``.

        Each may be a float or a tensor (summed; kept on its device until a report)."""
        key = (layer, component)
        self._energy.add(key, energy_J)
        self._events.add(key, events)
        self._latency.add(key, latency_s)

    def add_ops(self, layer: str, macs: float = 0.0, acs: float | None = None, macs_ann: float | None = None) -> None:
        """Record op counts (totals over the batch) for ``layer``.

        ``macs``: multiply-accumulates executed (ANN layers; SNN layers with analog inputs);
        ``acs``: accumulates executed by spike-driven layers — giving it (even 0) marks the run as
        spiking; ``macs_ann``: MACs of the equivalent ANN layer (default ``macs``).
        """
        ops = self._ops.setdefault(layer, {"macs": 0.0, "acs": 0.0, "macs_ann": 0.0})
        ops["macs"] += float(macs)
        ops["macs_ann"] += float(macs if macs_ann is None else macs_ann)
        if acs is not None:
            ops["acs"] += float(acs)
            self.spiking = True

    def count_inferences(self, n: int) -> None:
        self.n_inferences += int(n)

    def reset(self) -> None:
        self._energy.clear()
        self._events.clear()
        self._latency.clear()
        self._ops.clear()
        self.spiking = False
        self.n_inferences = 0

    # -- totals -----------------------------------------------------------------------------
    @property
    def _n(self) -> int:
        return max(self.n_inferences, 1)

    def total_J(self) -> float:
        return float(math.fsum(self._energy.values()))

    def by_component(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (_, comp), e in self._energy.items():
            out[comp] += e
        return dict(out)

    def per_inference(self) -> dict[str, float]:
        """``{component: J per inference}`` plus ``"total"``."""
        out = {c: e / self._n for c, e in self.by_component().items()}
        out["total"] = self.total_J() / self._n
        return out

    def latency_s(self) -> float:
        """Latency of one inference [s]: every layer's MVMs in sequence."""
        return float(math.fsum(self._latency.values())) / self._n

    def ops_per_inference(self) -> dict[str, float]:
        """``{"ops_mac", "ops_ac", "ops_mac_ann"}`` per inference."""
        tot = {k: math.fsum(o[k] for o in self._ops.values()) for k in ("macs", "acs", "macs_ann")}
        return {"ops_mac": tot["macs"] / self._n, "ops_ac": tot["acs"] / self._n, "ops_mac_ann": tot["macs_ann"] / self._n}

    def opcount_energy(self, e_mac_J: float = OPCOUNT_E_MAC_J, e_ac_J: float = OPCOUNT_E_AC_J) -> dict[str, float]:
        """Op-count energies per inference (the convention of SNN papers, docs/circuits.md).

        ``energy_opcount_ann_J = #MAC_ann·E_MAC``; ``energy_opcount_snn_J = #MAC·E_MAC + #AC·E_AC``
        for a spiking run (NaN otherwise: nothing spiking was run).
        """
        ops = self.ops_per_inference()
        snn = ops["ops_mac"] * e_mac_J + ops["ops_ac"] * e_ac_J if self.spiking else math.nan
        return {"energy_opcount_ann_J": ops["ops_mac_ann"] * e_mac_J, "energy_opcount_snn_J": snn}

    # -- tables -----------------------------------------------------------------------------
    def records(self) -> list[dict]:
        """Tidy rows, one per (layer, component): ``layer, component, energy_J, events`` (totals) and
        ``energy_per_inference_J, events_per_inference, latency_s`` (per inference)."""
        n = self._n
        return [
            {
                "layer": layer,
                "component": comp,
                "energy_J": e,
                "events": self._events[(layer, comp)],
                "energy_per_inference_J": e / n,
                "events_per_inference": self._events[(layer, comp)] / n,
                "latency_s": self._latency[(layer, comp)] / n,
            }
            for (layer, comp), e in self._energy.items()
        ]

    def op_records(self) -> list[dict]:
        """Tidy rows of op counts per layer and inference: ``layer, ops_mac, ops_ac, ops_mac_ann``."""
        n = self._n
        return [{"layer": layer, "ops_mac": o["macs"] / n, "ops_ac": o["acs"] / n, "ops_mac_ann": o["macs_ann"] / n} for layer, o in self._ops.items()]

    def breakdown(self):
        """:meth:`records` as a ``pandas.DataFrame`` (layer × component)."""
        import pandas as pd

        cols = ["layer", "component", "energy_J", "events", "energy_per_inference_J", "events_per_inference", "latency_s"]
        return pd.DataFrame(self.records(), columns=cols)
