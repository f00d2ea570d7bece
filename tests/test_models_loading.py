"""Models from files only as state dicts through a factory; no code from data files; the global RNG untouched."""

import functools
import os
import pickle
import textwrap

import pytest
import torch
import yaml
from torch import nn

import xbarsim
from algorithms.base import accuracy
from xbarsim import ConfigError, load_config
from xbarsim.datasets import load_digits
from xbarsim.experiment import prepare
from xbarsim.models import clear_model_cache, model_sha

FACTORY = textwrap.dedent(
    """
    from torch import nn

    def build(hidden=16, n_in=64, n_out=10):
        return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    """
)
BASE = {"eval": {"n_test": 80, "n_calibration": 64}}


@functools.lru_cache
def _trained(hidden=16, seed=3):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    d = load_digits()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(d.x_train), d.y_train).backward()
        opt.step()
    return net.eval(), d


def _write(tmp_path, model_section, name="c.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump({**BASE, "model": model_section}))
    return f


def test_factory_and_state_dict_next_to_the_yaml(tmp_path):
    """``pkg.module:function`` is found next to the YAML file; the weights are loaded, not trained: the run's software
    accuracy and model hash are those of the saved network."""
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "__init__.py").write_text("")
    (tmp_path / "nets" / "mlp.py").write_text(FACTORY)
    net, d = _trained(hidden=24)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    f = _write(tmp_path, {"factory": "nets.mlp:build", "kwargs": {"hidden": 24}, "weights": "w.pt"})
    cfg = load_config(f)
    assert cfg.model.factory == f"{(tmp_path / 'nets' / 'mlp.py').resolve()}:build"
    df = xbarsim.run(cfg, progress=False)
    want = accuracy(net, d.x_test[:80], d.y_test[:80])
    assert df.accuracy_sw.iloc[0] == pytest.approx(want, abs=1e-12)
    assert df.model_sha.iloc[0] == model_sha(net)
    # a file path form works too, relative to the YAML
    (tmp_path / "alt.py").write_text(FACTORY)
    f2 = _write(tmp_path, {"factory": "alt.py:build", "kwargs": {"hidden": 24}, "weights": "w.pt"}, "c2.yaml")
    assert xbarsim.run(f2, progress=False).accuracy_sw.iloc[0] == pytest.approx(want, abs=1e-12)


def test_factory_without_weights_is_trained(tmp_path):
    (tmp_path / "alt.py").write_text(FACTORY)
    f = _write(tmp_path, {"factory": "alt.py:build", "kwargs": {"hidden": 32}, "epochs": 20})
    row = xbarsim.run(f, progress=False).iloc[0]
    assert row.accuracy_sw > 0.85  # trained, not the ~10 % of random weights


def test_pickled_whole_module_is_refused_without_running_it(tmp_path):
    """A weights file that is a pickled object (here one whose unpickling would create a file) is refused by
    ``weights_only=True`` before any code runs; the message says how to save a state dict."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump(Evil(), fh)
    net, _ = _trained()
    torch.save(net, tmp_path / "whole.pt")  # a pickled nn.Module
    (tmp_path / "alt.py").write_text(FACTORY)
    for name in ("evil.pt", "whole.pt"):
        f = _write(tmp_path, {"factory": "alt.py:build", "weights": name})
        with pytest.raises(ConfigError) as e:
            xbarsim.run(f, progress=False)
        msg = str(e.value)
        assert msg.startswith("model.weights:") and "not a state dict" in msg and "torch.save(model.state_dict()" in msg, msg
    assert not marker.exists()


def test_bad_weight_files_are_keyed(tmp_path):
    (tmp_path / "alt.py").write_text(FACTORY)
    net, _ = _trained()
    torch.save(net.state_dict(), tmp_path / "w.pt")
    raw = (tmp_path / "w.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    cases = {
        "cut.pt": "cannot be read as a torch file",
        "missing.pt": "does not exist",
    }
    for name, text in cases.items():
        with pytest.raises(ConfigError, match=rf"^model\.weights: .*{text}"):
            xbarsim.run(_write(tmp_path, {"factory": "alt.py:build", "weights": name}), progress=False)
    with pytest.raises(ConfigError, match=r"^model\.weights: .*does not fit the model built by"):
        xbarsim.run(_write(tmp_path, {"factory": "alt.py:build", "kwargs": {"hidden": 8}, "weights": "w.pt"}), progress=False)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(ConfigError, match=r"^model\.weights: .*holds a Tensor, not a state dict"):
        xbarsim.run(_write(tmp_path, {"factory": "alt.py:build", "weights": "tensor.pt"}), progress=False)


@pytest.mark.parametrize(
    "factory, text",
    [
        ("os:system", "standard-library module"),
        ("nosuchpkg_xyz.mod:build", "cannot import"),
        ("alt.py:nothere", "has no function 'nothere'"),
        ("no_colon", "must be 'pkg.module:function'"),
    ],
)
def test_bad_factories_are_keyed(tmp_path, factory, text):
    (tmp_path / "alt.py").write_text(FACTORY)
    with pytest.raises(ConfigError, match=rf"^model\.factory: .*{text}"):
        xbarsim.run(_write(tmp_path, {"factory": factory}), progress=False)


def test_fetching_a_model_leaves_the_global_rng_alone():
    clear_model_cache()
    cfg = load_config({**BASE, "model": {"hidden": [8], "epochs": 1, "seed": 11}})
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    prepare(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    a = model_sha(prepare(cfg)[1])
    clear_model_cache()
    torch.manual_seed(999)  # another global state gives the same model: it is built from model.seed only
    assert model_sha(prepare(cfg)[1]) == a


def test_in_memory_model_runs_through_the_yaml_engine():
    net, d = _trained(hidden=20)
    df = xbarsim.run({**BASE, "sweep": {"crossbar.adc.bits": [4, 8]}}, model=net, progress=False)
    want = accuracy(net, d.x_test[:80], d.y_test[:80])
    assert list(df["crossbar.adc.bits"]) == [4, 8]
    assert (df.accuracy_sw == want).all() and (df.model_sha == model_sha(net)).all()
    assert df.accuracy_hw.iloc[1] >= want - 0.03  # 8-bit converters on an ideal device: within 2 samples of software
    with pytest.raises(TypeError, match="model="):
        xbarsim.experiment.run_point(load_config(BASE), model="net.pt")


def test_builtin_arch_with_weights_is_not_trained(tmp_path):
    cfg = load_config({**BASE, "model": {"hidden": [16], "epochs": 2}})
    _, model = prepare(cfg)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    cfg2 = load_config({**BASE, "model": {"hidden": [16], "epochs": 500, "weights": os.fspath(tmp_path / "w.pt")}})
    assert model_sha(prepare(cfg2)[1]) == model_sha(model)  # loaded: 500 epochs were not run
