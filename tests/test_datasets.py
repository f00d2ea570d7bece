"""Datasets: MNIST from IDX files (MD5-verified) and the embedded digits."""

import gzip
import os

import pytest
import torch

from xbarsim.datasets import DatasetError, load_digits, load_mnist

#: documented facts of the official MNIST training set (shared/data/README.md)
MNIST_TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_documented_facts(mnist_dir):
    """60 000/10 000 samples of 1×28×28 in [0, 1]; training pixel mean 0.1307, std 0.3081; label counts.

    The mean and std are the usual normalisation constants, quoted to 4 decimals, so they are
    checked to 1e-4 (computed in float64 over all 47 M training pixels).
    """
    d = load_mnist(mnist_dir)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.y_train.shape == (60000,) and d.y_test.shape == (10000,)
    assert d.image_shape == (1, 28, 28) and d.n_classes == 10
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    x = d.x_train.to(torch.float64)
    assert abs(float(x.mean()) - 0.1307) < 1e-4
    assert abs(float(x.std()) - 0.3081) < 1e-4
    assert torch.bincount(d.y_train, minlength=10).tolist() == MNIST_TRAIN_LABEL_COUNTS
    assert torch.bincount(d.y_test, minlength=10).sum() == 10000


def test_mnist_from_env_variable(mnist_dir, monkeypatch):
    """``XBARSIM_DATA`` may name the directory holding ``mnist/`` (or the IDX directory itself)."""
    monkeypatch.setenv("XBARSIM_DATA", str(mnist_dir.parent))
    d = load_mnist()
    assert d.x_test.shape[0] == 10000


def test_mnist_corrupted_file_fails_md5(mnist_dir, tmp_path):
    for f in mnist_dir.iterdir():
        if f.name.endswith(".gz"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(bad.read_bytes()))
    raw[-1] ^= 1
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DatasetError, match="MD5"):
        load_mnist(tmp_path)


def test_mnist_missing_directory_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("XBARSIM_DATA", raising=False)
    with pytest.raises(DatasetError, match="XBARSIM_DATA"):
        load_mnist()
    with pytest.raises(DatasetError, match="no train-images"):
        load_mnist(tmp_path)
    assert not os.environ.get("XBARSIM_DATA")


def test_digits_shapes():
    d = load_digits(test_fraction=0.3, seed=0)
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.shape[0] + d.x_test.shape[0] == 1797
    assert float(d.x_train.max()) <= 1.0 and d.n_classes == 10


def test_shuffle_seed_permutes_the_training_order_only():
    """``dataset.shuffle_seed``: the same samples (image with its label) in a seed-fixed order, the first
    ``n_train`` of that order, the test set untouched; the same seed gives the same order; a bad seed is refused."""
    from xbarsim import ConfigError, validate_config
    from xbarsim.experiment import prepare_data

    base = prepare_data(validate_config({"dataset": {"name": "digits"}}))
    a = prepare_data(validate_config({"dataset": {"name": "digits", "shuffle_seed": 3}}))
    b = prepare_data(validate_config({"dataset": {"name": "digits", "shuffle_seed": 3, "n_train": 50}}))
    n = base.x_train.shape[0]
    assert not torch.equal(a.y_train, base.y_train)
    # every training image appears once, with its own label: match the images back to the file order
    flat_a, flat_base = a.x_train.reshape(n, -1), base.x_train.reshape(n, -1)
    match = (flat_a.unsqueeze(1) == flat_base.unsqueeze(0)).all(-1)  # [n, n]: equal images
    first = match.float().argmax(1)
    assert bool(match.any(1).all()) and torch.equal(a.y_train, base.y_train[first])
    assert torch.equal(torch.bincount(a.y_train), torch.bincount(base.y_train))
    assert torch.equal(b.x_train, a.x_train[:50]) and torch.equal(a.x_test, base.x_test)
    with pytest.raises(ConfigError, match=r"dataset\.shuffle_seed.*got -1"):
        validate_config({"dataset": {"name": "digits", "shuffle_seed": -1}})
