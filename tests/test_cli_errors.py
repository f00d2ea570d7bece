"""Every failure a user can cause: one line naming the key or file and the fix, exit code 2, no traceback."""

import gzip
import importlib

import pytest
import torch

from xbarsim.cli import main
from xbarsim.config import ConfigError

sweep_mod = importlib.import_module("xbarsim.sweep")
experiment = importlib.import_module("xbarsim.experiment")


def _run(capsys, *argv):
    rc = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("xbarsim:")]
    return rc, lines, err


def _yaml(tmp_path, text, name="c.yaml"):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


@pytest.mark.parametrize(
    "text, head",
    [
        ("crossbar: {adc: {bits: true}}\n", "crossbar.adc.bits: got True"),
        ("device: {model: pcm, g_max: .inf}\n", "device.g_max: got inf"),
        ("device: {model: ideal, levels: 12.7}\n", "device.levels: got 12.7"),
        ("seed: -3\n", "seed: got -3"),
        ("seed: 9223372036854775808\n", "seed: got 9223372036854775808"),
        ("runtime: {torch_device: 'cuda:97'}\n", "runtime.torch_device: got 'cuda:97'"),
        ("device: {model: lookup, csv: missing.csv}\n", "device.csv: "),
        ("model: {path: net.pt}\n", "model.path: loading a pickled whole model is refused"),
        ("device: {preset: sot_mtj}\n", "device: got the binary device"),
        ("seed: 1\nseed: 2\n", "config file"),
        ("eval: {n_test: 100000}\n", "eval.n_test: got 100000"),
    ],
)
def test_user_errors_are_one_keyed_line_exit_2(tmp_path, capsys, text, head):
    rc, lines, err = _run(capsys, "run", "-q", _yaml(tmp_path, text))
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith(f"xbarsim: error: {head}"), err
    assert "Traceback" not in err


def test_corrupt_and_truncated_dataset_files(tmp_path, capsys, mnist_dir):
    d = tmp_path / "mnist"
    d.mkdir()
    for f in mnist_dir.iterdir():
        (d / f.name).symlink_to(f)
    target = next(p for p in d.iterdir() if p.name.startswith("t10k-labels"))
    raw = target.read_bytes()
    target.unlink()
    (d / target.name).write_bytes(raw[: len(raw) // 2])  # truncated download
    cfg = _yaml(tmp_path, f"dataset: {{name: mnist, path: {d}}}\n")
    rc, lines, err = _run(capsys, "run", "-q", cfg)
    assert rc == 2 and len(lines) == 1 and "t10k-labels" in lines[0] and "truncated or corrupt" in lines[0], err


def test_idx_header_checks(tmp_path):
    from xbarsim.datasets import DatasetError, _read_idx

    good = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    (tmp_path / "a").write_bytes(good)
    assert list(_read_idx(tmp_path / "a")) == [1, 2, 3]
    (tmp_path / "b").write_bytes(good[:-1])
    with pytest.raises(DatasetError, match=r"has 10 bytes, its header \(3,\) needs 11"):
        _read_idx(tmp_path / "b")
    (tmp_path / "c.gz").write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(DatasetError, match="cannot be decompressed"):
        _read_idx(tmp_path / "c.gz")
    (tmp_path / "d").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DatasetError, match="not an IDX file"):
        _read_idx(tmp_path / "d")


def test_bad_out_extension_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a point ran")

    monkeypatch.setattr(sweep_mod, "run_point", boom)
    monkeypatch.setattr(experiment, "prepare", boom)
    rc, lines, _ = _run(capsys, "run", "-q", "--out", str(tmp_path / "table.xlsx"))
    assert rc == 2 and lines[0].startswith("xbarsim: error: --out: got") and ".csv or .parquet" in lines[0]
    rc, lines, _ = _run(capsys, "run", "-q", "--breakdown", str(tmp_path / "bd.txt"))
    assert rc == 2 and lines[0].startswith("xbarsim: error: --breakdown")


def test_debug_shows_the_traceback(tmp_path):
    cfg = _yaml(tmp_path, "crossbar: {adc: {bits: 0}}\n")
    with pytest.raises(ConfigError, match="crossbar.adc.bits"):
        main(["run", "-q", cfg, "--debug"])
    with pytest.raises(ConfigError, match="crossbar.adc.bits"):
        main(["--debug", "run", "-q", cfg])  # before or after the command


def test_ctrl_c_exits_130_with_a_message(tmp_path, capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_mod, "run_point", interrupted)
    rc, lines, err = _run(capsys, "run", "-q", "--out", str(tmp_path / "t.csv"))
    assert rc == 130 and len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err


def test_calibration_data_checks():
    from algorithms.ann_algorithm import check_calibration_data

    with pytest.raises(ValueError, match=r"^eval\.n_calibration: .* is empty"):
        check_calibration_data(torch.zeros(0, 1, 8, 8))
    with pytest.raises(ValueError, match=r"holds 1 non-finite values"):
        check_calibration_data(torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError, match=r"is all zeros"):
        check_calibration_data(torch.zeros(4, 3))
    check_calibration_data(torch.rand(4, 3))


def test_calibration_on_bad_data_is_a_keyed_error(monkeypatch):
    import xbarsim
    from xbarsim.datasets import Dataset, load_digits

    d = load_digits()
    zeros = Dataset("digits", torch.zeros_like(d.x_train), d.y_train, d.x_test, d.y_test, d.image_shape)
    monkeypatch.setattr(experiment, "prepare_data", lambda cfg: zeros)
    with pytest.raises(ConfigError, match=r"^dataset: the calibration data .* is all zeros"):
        xbarsim.run({"model": {"epochs": 1, "hidden": [8]}, "eval": {"n_test": 20}}, progress=False)


@pytest.mark.slow
def test_unreachable_scheduler(tmp_path, capsys):
    cfg = _yaml(tmp_path, "eval: {n_test: 30}\nsweep: {seed: [1, 2]}\n")
    rc, lines, _ = _run(capsys, "run", "-q", cfg, "--scheduler", "tcp://127.0.0.1:1")
    assert rc == 2 and lines[-1].startswith("xbarsim: error: --scheduler: cannot reach")


def test_keys_lists_every_generated_key(capsys):
    from circuits import ADC
    from xbarsim.schema import yaml_fields

    assert main(["keys", "crossbar.adc"]) == 0
    out = capsys.readouterr().out
    for key, _eng, f, _ann in yaml_fields(ADC):
        assert f"  {key}: " in out and f.metadata["description"] in out
    assert "bits: 8    # an integer ≥ 1 and ≤ 16 [bit], or null." in out
    assert main(["keys", "algorithm"]) == 0 and "algorithm (name: ann):" in capsys.readouterr().out
    rc, lines, _ = _run(capsys, "keys", "nope")
    assert rc == 2 and lines[0].startswith("xbarsim: error: keys: got section 'nope'")
