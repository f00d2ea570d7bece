"""Property-based fuzzing of configs: a mutated valid config either fails with a ConfigError naming a dotted key, or
runs to finite results — never another exception (issue: trustworthy runs).

Mutations: a leaf set to a value of another type, out of range, non-finite, boolean, string, null, list or mapping;
an unknown key added; a section replaced by a scalar or list (wrong nesting); a key removed; a leaf nested one
level too deep. The base is a small digits MLP (1 epoch, 24 test images) so that a run takes a fraction of a second.
"""

import copy
import math
import os
import re
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbarsim.config import ConfigError, validate_config
from xbarsim.experiment import run_point
from xbarsim.resources import ResourceWarning_

BASE = {
    "name": "fuzz",
    "seed": 0,
    "dataset": {"name": "digits", "test_fraction": 0.3},
    "model": {"arch": "mlp", "hidden": [16], "epochs": 3, "batch_size": 64, "seed": 0, "lr": 0.01},
    "device": {"model": "rram", "sigma_prog": 0.02, "g_max": 1e-5},
    "crossbar": {"rows": 32, "cols": 32, "solver": "ideal", "r_wire_row": 0.0, "input_mode": "amplitude",
                 "dac": {"bits": 6}, "adc": {"bits": 6, "range": "calibrate", "percentile": 99.9}},
    "mapping": {"scheme": "differential", "weight_bits": None},
    "algorithm": {"name": "ann"},
    "eval": {"n_test": 24, "n_calibration": 16, "batch_size": 64, "times_s": [0.0], "drift_compensation": [False]},
    "runtime": {"dtype": "float32"},
}
TOP = set(BASE) | {"layers", "sweep", "sweep_mode"}


def _leaves(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, prefix + (k,))
        yield prefix + (k,)


PATHS = sorted(_leaves(BASE))
#: keys whose value scales the run time: fuzzed with small values only
SLOW = {("model", "epochs"): st.sampled_from([-1, 0, 1, 2, 1.5, True, None, "2", math.inf]),
        ("model", "batch_size"): st.sampled_from([0, 1.5, True, None, 16, 1000, -4, "64"])}

words = st.sampled_from(["ideal", "rram", "pcm", "stt_mtj", "lookup", "exact", "offset", "unipolar", "bit_serial",
                         "spikes", "max", "fixed", "neurosim_sar", "sense_amp", "mnist", "float64", "cuda", "", "ann", "x"])
scalars = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([0, 1, 2, 2**63, -(2**63), 10**12, 65536]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.5, 1e-6, 1e-12, 99.99, -0.0]),
    st.booleans(),
    st.none(),
    words,
)
values = st.one_of(scalars, st.lists(st.one_of(st.integers(-2, 40), st.floats(-1, 1e4), st.booleans()), max_size=3),
                   st.dictionaries(st.sampled_from(["a", "bits", "model", "value"]), st.integers(-1, 9), max_size=2))


def _section(d, path):
    for k in path:
        d = d[k]
    return d


def plausible(path):
    """Values of the base value's own type, often valid: these mutations reach the engine and must run."""
    v = _section(BASE, path)
    if isinstance(v, bool):
        return st.booleans()
    if isinstance(v, int):
        return st.integers(0, 64)
    if isinstance(v, float):
        return st.one_of(st.floats(0, 1), st.sampled_from([1e-6, 5e-5, 2.0, 50.0]))
    if isinstance(v, str):
        return words
    if isinstance(v, list):
        return st.lists(st.integers(1, 24) if isinstance(v[0], int) and not isinstance(v[0], bool) else
                        st.sampled_from(v), min_size=1, max_size=3)
    return values


@st.composite
def mutated(draw):
    cfg = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["set", "plausible", "plausible", "plausible", "unknown", "nesting", "delete", "deeper"]))
        path = draw(st.sampled_from(PATHS))
        try:
            parent = _section(cfg, path[:-1])
        except (KeyError, TypeError):
            continue
        if not isinstance(parent, dict):
            continue
        key = path[-1]
        if kind == "set":
            parent[key] = draw(SLOW.get(path, values))
        elif kind == "plausible":
            parent[key] = draw(SLOW.get(path, plausible(path)))
        elif kind == "unknown":
            parent[draw(st.sampled_from(["bitz", "r_wire", "sigma", "extra"]))] = draw(scalars)
        elif kind == "nesting":
            parent[key] = draw(st.sampled_from([[parent.get(key)], 3, "section", None]))
        elif kind == "delete":
            parent.pop(key, None)
        elif kind == "deeper" and path not in SLOW:
            parent[key] = {"value": parent.get(key)}
    return cfg


_KEY = re.compile(r"^(?:<root>|config file|([A-Za-z_][\w]*)(?:\.[\w\-]+)*)(?:[:\s(]|$)")


def _names_a_key(msg: str) -> bool:
    m = _KEY.match(msg)
    return bool(m) and (m.group(1) is None or m.group(1) in TOP or msg.split(":")[1].strip().startswith("unknown key"))


#: more examples, random instead of derandomised: XBARSIM_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_config.py
_N = int(os.environ.get("XBARSIM_FUZZ_EXAMPLES", "0"))


@settings(max_examples=_N or 45, deadline=None, derandomize=not _N, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_configs_fail_with_a_key_or_run_finite(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning_)
        try:
            point = validate_config(cfg)
            rows = run_point(point)
        except ConfigError as exc:
            msg = str(exc)
            assert _names_a_key(msg), msg
            return
    assert rows
    for row in rows:
        assert 0.0 <= row["accuracy_hw"] <= 1.0
        for col in ("energy_per_inference_J", "latency_s", "energy_array_J", "energy_adc_J", "energy_dac_J"):
            assert math.isfinite(row[col]) and row[col] >= 0, (col, row[col])


def test_the_base_config_runs():
    rows = run_point(validate_config(BASE))
    assert rows[0]["accuracy_hw"] > 0.3 and rows[0]["n_test"] == 24


@pytest.mark.parametrize("path", PATHS)
def test_every_leaf_refuses_a_non_finite_or_structured_value(path):
    """``.inf``, ``.nan`` and a mapping in place of a value are never valid."""
    for bad in (math.inf, math.nan, {"value": 1}):
        cfg = copy.deepcopy(BASE)
        _section(cfg, path[:-1])[path[-1]] = bad
        try:
            validate_config(cfg)
        except ConfigError as exc:
            assert _names_a_key(str(exc)), str(exc)
        else:
            pytest.fail(f"{'.'.join(path)} = {bad!r} was accepted")
