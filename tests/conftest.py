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


class SinhCell:
    """Nonlinear test cell ``I = (g/b)·sinh(b·V)`` (small-signal conductance g), independent of device_models."""

    nonlinear_iv = True
    iv = "sinh"

    def __init__(self, b: float = 2.3):
        self.iv_sinh_b = b

    def current(self, g, v):
        return g / self.iv_sinh_b * torch.sinh(self.iv_sinh_b * v)


def ideal_net(model, rows=16, cols=8, **kw):
    """Ideal cells, lossless DAC/ADC, float64: the crossbars compute exact products."""
    from algorithms import CrossbarNetwork
    from circuits import ADC, DAC, CrossbarSpec
    from device_models import IdealDevice

    return CrossbarNetwork(
        model,
        IdealDevice(g_min=0.1e-6, g_max=5e-6),
        CrossbarSpec(rows=rows, cols=cols),
        DAC(bits=None),
        ADC(bits=None),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
        **kw,
    )
