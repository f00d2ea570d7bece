"""The algorithm registry: YAML name (``algorithm: {name: ...}``) -> class.

Adding an algorithm: write its module (a subclass of :class:`algorithms.base.Algorithm` with a
``Params`` dataclass) and add one entry below.
"""

from __future__ import annotations

from .base import Algorithm

__all__ = ["ALGORITHMS", "get_algorithm", "register_algorithm"]

#: YAML name -> Algorithm subclass (entries are added below as the modules are imported)
ALGORITHMS: dict[str, type[Algorithm]] = {}


def register_algorithm(cls: type[Algorithm]) -> type[Algorithm]:
    """Add ``cls`` under ``cls.name`` (usable as a class decorator)."""
    ALGORITHMS[cls.name] = cls
    return cls


def get_algorithm(name: str) -> type[Algorithm]:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm.name: got {name!r}; allowed: {', '.join(sorted(ALGORITHMS))}")
    return ALGORITHMS[name]


# -- entries ----------------------------------------------------------------------------------
from .ann_algorithm import AnnAlgorithm  # noqa: E402  (name: ann)

register_algorithm(AnnAlgorithm)

from .snn.conversion import ConversionAlgorithm, HybridAlgorithm, SurrogateAlgorithm  # noqa: E402  (conversion, hybrid, surrogate)

register_algorithm(ConversionAlgorithm)
register_algorithm(HybridAlgorithm)
register_algorithm(SurrogateAlgorithm)

from .stdp import STDPAlgorithm  # noqa: E402  (stdp)

register_algorithm(STDPAlgorithm)

from .stochastic_stdp import StochasticSTDPAlgorithm  # noqa: E402  (stochastic_stdp)

register_algorithm(StochasticSTDPAlgorithm)

from .asp import ASPAlgorithm  # noqa: E402  (asp)

register_algorithm(ASPAlgorithm)
