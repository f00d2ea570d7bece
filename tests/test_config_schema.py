"""One schema: YAML sections generated from the engine's dataclasses, strict values, keyed errors, cross-checks."""

import dataclasses
from dataclasses import dataclass, field

import pytest
import torch

import xbarsim
from algorithms.base import Algorithm, param
from algorithms.registry import ALGORITHMS, register_algorithm
from circuits import ADC, DAC, CrossbarSpec
from xbarsim import ConfigError, load_config, validate_config
from xbarsim.config import SEED_MAX
from xbarsim.experiment import build_hardware, run_point
from xbarsim.schema import ADCSection, CrossbarSection, DACSection, MappingSection, crossbar_objects, section_model

SMALL = {"model": {"hidden": [16], "epochs": 3}, "eval": {"n_test": 60, "n_calibration": 64}}


def _err(data) -> str:
    with pytest.raises(ConfigError) as e:
        validate_config(data)
    return str(e.value)


# -- one schema ---------------------------------------------------------------------------------
def test_every_engine_field_is_a_yaml_key_with_its_documentation():
    """Each init field of ADC/DAC/CrossbarSpec is a YAML key (renamed where declared) carrying its description,
    so adding an ADC option is one edit in circuits/converters.py."""
    for cls, model, extra in ((ADC, ADCSection, set()), (DAC, DACSection, set()),
                              (CrossbarSpec, CrossbarSection, {"dac", "adc", "input_mode"})):
        keys = set()
        for f in dataclasses.fields(cls):
            if f.name.startswith("_") or f.metadata.get("internal") or f.metadata.get("section"):
                continue
            key = f.metadata.get("yaml", f.name)
            keys.add(key)
            assert key in model.model_fields, (cls.__name__, key)
            assert model.model_fields[key].description, (cls.__name__, key)
        assert set(model.model_fields) - keys <= extra
    assert set(MappingSection.model_fields) == {"scheme", "weight_bits", "bits_per_cell"}
    assert "range" in ADCSection.model_fields and "range_mode" not in ADCSection.model_fields
    assert "signed" not in ADCSection.model_fields  # internal: set by the mapping


def test_a_new_dataclass_field_becomes_a_validated_key():
    @dataclass
    class Widget:
        gain: float = field(default=1.0, metadata=dict(description="gain", unit="V/V", gt=0, le=10))
        taps: int = field(default=4, metadata=dict(description="taps", ge=1))

    model = section_model(Widget, "WidgetSection")
    assert model().engine_kwargs() == {"gain": 1.0, "taps": 4}
    assert model(gain=2, taps=8.0).engine_kwargs() == {"gain": 2.0, "taps": 8}
    for bad in ({"gain": 0}, {"gain": 11}, {"gain": float("inf")}, {"taps": True}, {"taps": 2.5}, {"other": 1}):
        with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError
            model(**bad)


def test_engine_objects_equal_the_yaml_values():
    cfg = validate_config({"crossbar": {"rows": 64, "cols": 32, "r_wire_row": 2.0, "input_mode": "bit_serial",
                                        "dac": {"bits": 6}, "adc": {"bits": 5, "range": "max", "cols_per_adc": 4}},
                           "mapping": {"scheme": "offset", "weight_bits": 6}})
    spec, dac, adc = crossbar_objects(cfg.crossbar, cfg.mapping)
    assert (spec.rows, spec.cols, spec.r_wire_row, spec.scheme, spec.weight_bits) == (64, 32, 2.0, "offset", 6)
    assert (dac.bits, dac.mode) == (6, "bit_serial")
    assert (adc.bits, adc.range_mode, adc.cols_per_adc) == (5, "max", 4)


# -- strict values ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, key, value",
    [
        ({"crossbar": {"adc": {"bits": True}}}, "crossbar.adc.bits", "True"),
        ({"crossbar": {"rows": 12.7}}, "crossbar.rows", "12.7"),
        ({"crossbar": {"r_wire_row": float("nan")}}, "crossbar.r_wire_row", "nan"),
        ({"crossbar": {"adc": {"percentile": float("inf")}}}, "crossbar.adc.percentile", "inf"),
        ({"crossbar": {"adc": {"bits": "8"}}}, "crossbar.adc.bits", "'8'"),
        ({"device": {"model": "ideal", "levels": 12.7}}, "device.levels", "12.7"),
        ({"device": {"model": "rram", "g_max": float("inf")}}, "device.g_max", "inf"),
        ({"device": {"model": "rram", "sigma_prog": True}}, "device.sigma_prog", "True"),
        ({"eval": {"times_s": [0.0, float("inf")]}}, "eval.times_s", "inf"),
        ({"eval": {"n_test": 0}}, "eval.n_test", "0"),
        ({"model": {"hidden": [64, 0]}}, "model.hidden", "0"),
        ({"seed": -1}, "seed", "-1"),
        ({"seed": SEED_MAX}, "seed", str(SEED_MAX)),
        ({"seed": 1.5}, "seed", "1.5"),
        ({"model": {"seed": True}}, "model.seed", "True"),
        ({"runtime": {"dtype": "float16"}}, "runtime.dtype", "float16"),
        ({"sweep_mode": "random"}, "sweep_mode", "random"),
    ],
)
def test_non_finite_non_integral_and_bool_values_are_refused_with_the_key(data, key, value):
    msg = _err(data)
    assert msg.startswith(key + ":") and value in msg and "must be" in msg, msg


def test_integral_floats_are_integers_and_seed_range_is_the_generators():
    cfg = validate_config({"crossbar": {"rows": 64.0}, "seed": SEED_MAX - 1, "eval": {"n_test": 1e2}})
    assert cfg.crossbar.rows == 64 and type(cfg.crossbar.rows) is int and cfg.eval.n_test == 100
    torch.Generator().manual_seed(cfg.seed)  # the largest allowed seed is a valid torch seed
    levels = validate_config({"device": {"model": "ideal", "levels": 4.0}}).device["levels"]
    assert levels == 4 and type(levels) is int


@pytest.mark.parametrize(
    "data, key",
    [
        ({"crossbar": {"adc": {"energy_model": "sense_amp"}}}, "crossbar.adc.energy_model"),
        ({"crossbar": {"adc": {"range": "fixed"}}}, "crossbar.adc.i_range"),
        ({"crossbar": {"adc": {"bits": None, "noise_sigma_lsb": 0.5}}}, "crossbar.adc.bits"),
        ({"crossbar": {"adc": {"energy_model": "neurosim_sar", "roadmap": "hp", "tech_node_nm": 5}}}, "crossbar.adc.tech_node_nm"),
        ({"crossbar": {"input_mode": "bit_serial", "dac": {"bits": None}}}, "crossbar.dac.bits"),
        ({"mapping": {"bits_per_cell": 2}}, "mapping.bits_per_cell"),
        ({"crossbar": {"cols": 4}, "mapping": {"scheme": "offset", "weight_bits": 8, "bits_per_cell": 2}}, "crossbar.cols"),
    ],
)
def test_cross_field_rules_come_from_the_engine_and_name_the_yaml_key(data, key):
    msg = _err(data)
    assert msg.startswith(key), msg


def test_duplicate_yaml_keys_name_the_key_and_line(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("seed: 1\ncrossbar:\n  rows: 64\n  cols: 64\n  rows: 32\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'rows' at line 5 \(first at line 3\)"):
        load_config(f)


def test_unknown_keys_list_the_allowed_ones():
    msg = _err({"crossbar": {"adc": {"range_mode": "max"}}})
    assert msg.startswith("crossbar.adc.range_mode: unknown key") and "range" in msg and "percentile" in msg
    msg = _err({"algorithm": {"name": "ann", "lr": 0.1}})
    assert msg.startswith("algorithm.lr: unknown key") and "chunk_elements" in msg
    msg = _err({"crossbar": {"adc": [8]}})
    assert msg.startswith("crossbar.adc: got [8]; must be a mapping")


# -- algorithms ------------------------------------------------------------------------------------
def test_algorithm_union_comes_from_the_registry():
    assert _err({"algorithm": {"name": "nope"}}).startswith("algorithm.name: got 'nope'; allowed: ")
    assert validate_config({}).algorithm.name == "ann"

    class Echo(Algorithm):
        name = "echo_test"

        @dataclass
        class Params:
            gain: float = param(2.0, description="a gain", gt=0)

    register_algorithm(Echo)
    try:
        cfg = validate_config({"algorithm": {"name": "echo_test", "gain": 3}})
        assert cfg.algorithm.engine_kwargs() == {"gain": 3.0}
        assert _err({"algorithm": {"name": "echo_test", "gain": 0}}).startswith("algorithm.gain: got 0; must be")
        assert validate_config({"algorithm": {"name": "ann"}}).algorithm.name == "ann"
    finally:
        ALGORITHMS.pop("echo_test")
    assert _err({"algorithm": {"name": "echo_test"}}).startswith("algorithm.name")


# -- cross-checks between sections --------------------------------------------------------------------
def test_binary_device_under_an_analog_network_is_refused():
    msg = _err({"device": {"preset": "stt_mtj"}})
    assert msg.startswith("device:") and "binary" in msg and "ann" in msg


def test_unavailable_torch_device_is_refused():
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert _err({"runtime": {"torch_device": f"cuda:{n + 3}"}}).startswith("runtime.torch_device: got 'cuda:")
    assert _err({"runtime": {"torch_device": "warp_drive"}}).startswith("runtime.torch_device")


def test_pickled_model_path_is_refused_with_the_recipe():
    msg = _err({"model": {"path": "net.pt"}})
    assert msg.startswith("model.path") and "torch.save(model.state_dict()" in msg and "factory" in msg


def test_n_test_larger_than_the_test_set_is_refused():
    with pytest.raises(ConfigError, match=r"eval\.n_test: got 5000; the digits test set has 540 samples"):
        validate_config({**SMALL, "eval": {"n_test": 5000}})
    assert validate_config({"eval": {"n_test": 540}}).eval.n_test == 540
    cfg = validate_config({**SMALL, "eval": {"n_test": 200}})
    cfg.dataset.test_fraction = 0.1  # bypasses the load-time check: run_point checks against the data it loaded
    with pytest.raises(ConfigError, match=r"eval\.n_test: got 200; the digits test set has 180 samples"):
        run_point(cfg)


# -- sizes refused before allocating -----------------------------------------------------------------
def test_impossible_sizes_are_refused_with_the_numbers_and_key():
    msg = _err({"crossbar": {"rows": 65536, "cols": 65536}})
    assert msg.startswith("crossbar.rows / crossbar.cols") and "GB" in msg and "memory" in msg
    msg = _err({"model": {"hidden": [10**8]}})
    assert msg.startswith("model.hidden") and "GB" in msg
    msg = _err({"runtime": {"memory_limit_GB": 1e-4}})  # 100 kB: the quickstart's arrays need more
    assert "runtime.memory_limit_GB" in msg
    with pytest.warns(UserWarning, match="exact crossbar solves are estimated"):
        validate_config({"crossbar": {"rows": 2048, "cols": 2048, "solver": "exact"}, "runtime": {"memory_limit_GB": 1000}})


# -- per-layer overrides --------------------------------------------------------------------------------
def test_layer_overrides_validated_with_their_key():
    assert _err({"layers": {"linear1": {"adc": {"bits": 0}}}}).startswith("layers.linear1.adc.bits: got 0")
    assert _err({"layers": {"linear1": {"adcs": {}}}}).startswith("layers.linear1.adcs: unknown key")
    assert _err({"layers": {"linear1": {"device": {"g_max": -1.0}}}}).startswith("layers.linear1.device.g_max")
    assert _err({"layers": {"linear1": {"crossbar": {"rows": 0}}}}).startswith("layers.linear1.crossbar.rows")
    cfg = validate_config({"layers": {"linear1": {"adc": {"bits": 4}, "device": {"model": "rram"}, "mapping": {"scheme": "offset"}}}})
    hw = build_hardware(cfg)
    dev, spec, dac, adc = hw.for_layer("linear1")
    assert adc.bits == 4 and spec.scheme == "offset" and type(dev).__name__ == "RRAM"
    assert hw.for_layer("linear2")[3].bits == 8 and hw.for_layer("linear2")[1].scheme == "differential"


def test_layer_override_changes_exactly_that_layers_adc_energy():
    """A fixed 1 pJ conversion on linear1 only: its ADC energy per inference is conversions × 1 pJ, linear2 keeps the
    survey model's max(1 pJ floor, 30 fJ·2^8 = 7.68 pJ) per conversion."""
    base = {**SMALL, "crossbar": {"adc": {"bits": 8}}}
    cfg = validate_config({**base, "layers": {"linear1": {"adc": {"energy_model": "fixed", "e_conv_J": 1e-12}}}})
    rows = run_point(cfg, breakdown=True)
    adc = {r["layer"]: r for r in rows[0]["_breakdown"] if r["component"] == "adc"}
    assert adc["linear1"]["energy_per_inference_J"] == pytest.approx(adc["linear1"]["events_per_inference"] * 1e-12, rel=1e-9)
    assert adc["linear2"]["energy_per_inference_J"] == pytest.approx(adc["linear2"]["events_per_inference"] * 7.68e-12, rel=1e-9)
    with pytest.raises(ConfigError, match=r"layers\.linear9: no such layer; the model's crossbar layers are linear1, linear2"):
        run_point(validate_config({**base, "layers": {"linear9": {"adc": {"bits": 4}}}}))


def test_sweep_over_a_layer_key():
    cfg = validate_config({**SMALL, "layers": {"linear2": {"adc": {"bits": 8}}},
                           "sweep": {"layers.linear2.adc.bits": [1, 8]}})
    df = xbarsim.run(cfg, progress=False)
    assert list(df["layers.linear2.adc.bits"]) == [1, 8]
    assert df.accuracy_hw.iloc[0] < df.accuracy_hw.iloc[1]  # a 1-bit output layer loses the class ranking
    assert _err({"sweep": {"layers.linear2.adc.bits": [4]}}).startswith("sweep.layers.linear2.adc.bits")


def test_configs_pickle_and_round_trip():
    import pickle

    cfg = validate_config({"layers": {"linear1": {"adc": {"bits": 4}}}, "crossbar": {"adc": {"range": "max"}}})
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert validate_config(cfg.model_dump()) == cfg


def test_every_registered_algorithm_has_a_generated_section():
    for name, cls in ALGORITHMS.items():
        cfg = validate_config({"algorithm": {"name": name}})
        assert cfg.algorithm.engine_kwargs() == {f.name: getattr(cls.Params(), f.name) for f in dataclasses.fields(cls.Params)}


def test_an_algorithm_without_a_software_model_is_not_given_one():
    """``needs_model = False`` (learning algorithms): no software model is trained; rows keep the common columns."""

    class Chance(Algorithm):
        name = "chance_test"
        needs_model = False

        @dataclass
        class Params:
            pass

        def fit(self, data, ledger=None):
            assert self.model is None
            self.n = int(data.y_train.max()) + 1

        def predict(self, x, ledger=None):
            return torch.zeros(x.shape[0], self.n)  # always class 0

    register_algorithm(Chance)
    try:
        rows = run_point(validate_config({"algorithm": {"name": "chance_test"}, "eval": {"n_test": 50, "times_s": [0, 1]}}))
    finally:
        ALGORITHMS.pop("chance_test")
    assert [r["t_s"] for r in rows] == [0.0, 1.0] and rows[0]["algorithm"] == "chance_test" and rows[0]["model_sha"] == ""
    from xbarsim.datasets import load_digits

    assert rows[0]["accuracy_hw"] == int((load_digits().y_test[:50] == 0).sum()) / 50
