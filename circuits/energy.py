"""Energy and event ledger: joules and event counts per layer and component."""

from __future__ import annotations

from collections import defaultdict

__all__ = ["EnergyLedger"]


class EnergyLedger:
    """Accumulates energy [J] and event counts keyed by ``(layer, component)``.

    Components used by the circuits layer: ``array`` (read energy in the cells and
    wires, exact from the circuit solve), ``dac`` (row drivers), ``adc`` (column
    conversions). ``n_inferences`` counts the samples the energy was spent on, so
    :meth:`per_inference` reports joules per inference.
    """

    def __init__(self):
        self._energy: dict[tuple[str, str], float] = defaultdict(float)
        self._events: dict[tuple[str, str], float] = defaultdict(float)
        self.n_inferences = 0

    def add(self, layer: str, component: str, energy_J: float, events: float = 0.0) -> None:
        self._energy[(layer, component)] += float(energy_J)
        self._events[(layer, component)] += float(events)

    def count_inferences(self, n: int) -> None:
        self.n_inferences += int(n)

    def reset(self) -> None:
        self._energy.clear()
        self._events.clear()
        self.n_inferences = 0

    def total_J(self) -> float:
        return float(sum(self._energy.values()))

    def by_component(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (_, comp), e in self._energy.items():
            out[comp] += e
        return dict(out)

    def per_inference(self) -> dict[str, float]:
        """``{component: J per inference}`` plus ``"total"``."""
        n = max(self.n_inferences, 1)
        out = {c: e / n for c, e in self.by_component().items()}
        out["total"] = self.total_J() / n
        return out

    def records(self) -> list[dict]:
        """Tidy rows ``{layer, component, energy_J, events, energy_per_inference_J}``."""
        n = max(self.n_inferences, 1)
        return [
            {
                "layer": layer,
                "component": comp,
                "energy_J": e,
                "events": self._events[(layer, comp)],
                "energy_per_inference_J": e / n,
            }
            for (layer, comp), e in self._energy.items()
        ]
