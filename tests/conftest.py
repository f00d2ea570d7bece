import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def mnist_dir():
    path = Path(os.environ.get("XBARSIM_MNIST", MNIST_DIR))
    if not path.is_dir():
        pytest.skip(f"MNIST IDX files not found at {path} (set XBARSIM_MNIST)")
    return path
