"""On-line learning on plastic crossbars: rules bound to synapse arrays, and the networks that use them.

* :mod:`.rules` — pair (BindsNET ``PostPre``) and triplet (Diehl & Cook code) STDP; the rule interface.
* :mod:`.synapses` — the synapse arrays: plain torch (reference) and a crossbar of devices.
* :mod:`.diehl_cook` — the Diehl & Cook (2015) network, label assignment, vote and proportion weighting.
"""

from .diehl_cook import (
    DiehlCookConfig,
    DiehlCookNetwork,
    assign_labels,
    class_rates,
    init_weights,
    labels_from_rates,
    proportion_vote,
    rate_scale,
    vote,
)
from .rules import (
    RULES,
    LearningRule,
    PairSTDP,
    PowerLawSTDP,
    TripletSTDP,
    additive_trace,
    make_rule,
    trace_at,
    trace_final,
)
from .synapses import NORMALISATIONS, CrossbarSynapses, Synapses, TorchSynapses

__all__ = [
    "DiehlCookConfig",
    "DiehlCookNetwork",
    "assign_labels",
    "init_weights",
    "vote",
    "class_rates",
    "labels_from_rates",
    "proportion_vote",
    "rate_scale",
    "RULES",
    "LearningRule",
    "PairSTDP",
    "TripletSTDP",
    "PowerLawSTDP",
    "additive_trace",
    "make_rule",
    "trace_at",
    "trace_final",
    "NORMALISATIONS",
    "CrossbarSynapses",
    "Synapses",
    "TorchSynapses",
]
