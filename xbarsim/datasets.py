"""Datasets: scikit-learn's digits (embedded, offline) and MNIST from IDX files.

MNIST is read from a directory given by the config (``dataset.path``) or the
``XBARSIM_DATA`` environment variable; the decompressed files are verified
against the official MD5 sums (LeCun, Cortes & Burges).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["Dataset", "load_dataset", "load_digits", "load_mnist", "MNIST_MD5", "DatasetError"]

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class DatasetError(ValueError):
    """A dataset cannot be found or does not verify."""


@dataclass
class Dataset:
    """Train/test tensors; images flattened or ``[N, C, H, W]``, pixel values in [0, 1]."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    image_shape: tuple[int, int, int]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_digits(test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """scikit-learn's 8×8 digits (1797 images, 10 classes), pixels scaled to [0, 1], stratified split."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    d = _load()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    try:
        xtr, xte, ytr, yte = train_test_split(
            x, d.target, test_size=test_fraction, random_state=seed, stratify=d.target
        )
    except ValueError as exc:  # a stratified split needs every class on both sides
        n = x.shape[0]
        raise DatasetError(
            f"dataset.test_fraction: got {test_fraction!r}; the {n} digits must leave at least one image per class "
            f"(10) on both sides of the split: use a fraction between {10 / n:.4f} and {1 - 10 / n:.4f} ({exc})"
        ) from None
    t = torch.from_numpy
    return Dataset("digits", t(xtr), t(ytr).long(), t(xte), t(yte).long(), (1, 8, 8))


def _read_idx(path: Path) -> np.ndarray:
    """An IDX array (LeCun's format: 2 zero bytes, type code 0x08 = uint8, ndim, big-endian dims, data),
    checked: a truncated, corrupt or mislabelled file raises :class:`DatasetError` naming it."""
    fix = "re-download it (or point dataset.path / XBARSIM_DATA at a good copy)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"dataset.path: cannot read {path} ({exc.strerror or exc})") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"dataset.path: {path} cannot be decompressed ({exc}); the file is truncated or corrupt: {fix}") from None
    else:
        raw = data
    name = path.name.removesuffix(".gz")
    want = MNIST_MD5.get(name)
    if want is not None and hashlib.md5(raw).hexdigest() != want:
        raise DatasetError(f"dataset.path: {path} fails its MD5 check (expected {want} for the decompressed file): "
                           f"the file is truncated or corrupt: {fix}")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DatasetError(f"dataset.path: {path} is not an IDX file of unsigned bytes (bad header {raw[:4]!r}): {fix}")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"dataset.path: {path} is truncated (the header needs {4 + 4 * ndim} bytes, the file has {len(raw)}): {fix}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    need = 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64))
    if len(raw) != need:
        raise DatasetError(f"dataset.path: {path} has {len(raw)} bytes, its header {dims} needs {need}: "
                           f"the file is truncated or corrupt: {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for cand in (directory / stem, directory / f"{stem}.gz"):
        if cand.exists():
            return cand
    raise DatasetError(f"dataset.path: {directory} has no {stem}[.gz] (MNIST IDX files expected)")


def load_mnist(path: str | os.PathLike | None = None) -> Dataset:
    """Full MNIST (60 000 + 10 000 28×28 images) from IDX files in ``path`` or ``$XBARSIM_DATA[/mnist]``."""
    if path is None:
        env = os.environ.get("XBARSIM_DATA")
        if not env:
            raise DatasetError("dataset.path: not set and XBARSIM_DATA is unset; give the directory of the MNIST IDX files")
        path = Path(env) / "mnist" if (Path(env) / "mnist").is_dir() else Path(env)
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise DatasetError(f"dataset.path: {directory} is not a directory")
    arr = {stem: _read_idx(_find(directory, stem)) for stem in MNIST_MD5}
    for split in ("train", "t10k"):
        n_img, n_lab = arr[f"{split}-images-idx3-ubyte"].shape[0], arr[f"{split}-labels-idx1-ubyte"].shape[0]
        if arr[f"{split}-images-idx3-ubyte"].ndim != 3 or n_img != n_lab:
            raise DatasetError(f"dataset.path: {directory}: {split} has {n_img} images but {n_lab} labels (or images that are "
                               "not 2-D); the files do not belong together: re-download them")
    t = torch.from_numpy

    def images(a):
        return t(a.astype(np.float32) / 255.0)[:, None]

    return Dataset(
        "mnist",
        images(arr["train-images-idx3-ubyte"]),
        t(arr["train-labels-idx1-ubyte"].astype(np.int64)),
        images(arr["t10k-images-idx3-ubyte"]),
        t(arr["t10k-labels-idx1-ubyte"].astype(np.int64)),
        (1, 28, 28),
    )


def shuffle_train(data: Dataset, seed: int) -> Dataset:
    """``data`` with its training samples in the order of ``torch.randperm(n)`` under ``seed`` (the test set as is).

    One-pass unsupervised learners end with what they saw last, so their score depends on the order; this
    gives a reproducible other order than the file's."""
    order = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(int(seed)))
    return Dataset(data.name, data.x_train[order], data.y_train[order], data.x_test, data.y_test, data.image_shape)


def load_dataset(name: str, path: str | None = None, test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    if name == "digits":
        return load_digits(test_fraction, seed)
    if name == "mnist":
        return load_mnist(path)
    raise DatasetError(f"dataset.name: got {name!r}; allowed: digits, mnist")
