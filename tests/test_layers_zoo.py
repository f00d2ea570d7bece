"""The layer zoo on crossbars: BatchNorm folding, pooling, flatten, dropout, FX chains, op counts, the CNN model."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ideal_net
from torch import nn

import xbarsim
from algorithms import UnsupportedLayerError, flatten_layers, fold_batchnorm
from circuits import EnergyLedger
from xbarsim.models import build_model


def _rel_err(y, ref):
    y, ref = y.detach(), ref.detach()
    return float((y - ref).abs().max() / ref.abs().max())




def _randomise_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters (as after training)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g, dtype=m.running_mean.dtype))
            m.running_var.copy_(0.2 + 2 * torch.rand(n, generator=g, dtype=m.running_var.dtype))
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g, dtype=m.weight.dtype))
                m.bias.data.copy_(torch.randn(n, generator=g, dtype=m.bias.dtype))
    return model.eval()


def _bn_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 6, (3, 2), stride=2, padding=1, bias=False),
        nn.Dropout(0.3),
        nn.BatchNorm2d(6, affine=False),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(6 * 2 * 2, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Linear(12, 5),
    )
    return _randomise_bn(model).double()


def test_fold_batchnorm_software_equal_in_eval_mode(gen):
    """The folded model (no BatchNorm left) equals the original in eval mode to 1e-6 (float64: ~1e-15)."""
    model = _bn_cnn()
    x = torch.randn(10, 3, 8, 8, dtype=torch.float64, generator=gen)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in folded.modules())
    assert _rel_err(folded(x), model(x)) < 1e-6
    assert model[1].running_mean.abs().sum() > 0 and model.training is False  # the input model is untouched


def test_fold_equation_by_hand():
    """W̃ = (γ/σ)W, b̃ = (γ/σ)(b − μ) + β with σ = sqrt(var + eps), checked on a 1×2 Linear."""
    lin = nn.Linear(2, 1).double()
    bn = nn.BatchNorm1d(1, eps=0.0).double().eval()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, -4.0]]))
        lin.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0)  # σ = 2
        bn.weight.fill_(0.5)  # γ/σ = 0.25
        bn.bias.fill_(-1.0)
    f = fold_batchnorm(nn.Sequential(lin, bn))[0]
    torch.testing.assert_close(f.weight, torch.tensor([[0.5, -1.0]], dtype=torch.float64))
    torch.testing.assert_close(f.bias, torch.tensor([0.25 * (1.0 - 3.0) - 1.0], dtype=torch.float64))


def test_bn_model_on_crossbars_matches_software(gen):
    """A BatchNorm CNN (folded before mapping) on ideal crossbars equals the software model to 1e-6."""
    model = _bn_cnn()
    x = torch.randn(16, 3, 8, 8, dtype=torch.float64, generator=gen)
    net = ideal_net(model)
    assert len(net.mapped) == 4  # BN adds no array
    assert not any(type(layer).__name__ == "ChannelAffine" for layer in net.layers)
    net.calibrate(x)
    assert _rel_err(net(x), model(x)) < 1e-6


def test_batchnorm_without_linear_before_runs_digitally(gen):
    """A BN first in the chain, or after a ReLU, cannot be folded: it runs as a digital affine, still exact."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.BatchNorm2d(2),
        nn.Conv2d(2, 4, 3),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )
    model = _randomise_bn(model, seed=5).double()
    x = torch.randn(7, 2, 6, 6, dtype=torch.float64, generator=gen)
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded) == 2
    net = ideal_net(model)
    assert [type(layer).__name__ for layer in net.layers].count("ChannelAffine") == 2
    net.calibrate(x)
    assert _rel_err(net(x), model(x)) < 1e-6


def test_full_cnn_with_pooling_chain_matches_software(gen):
    """Conv→ReLU→MaxPool→Conv→ReLU→AvgPool→AdaptiveAvgPool→Flatten→Dropout→Linear→ReLU→Linear, several tiles per layer."""
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(1, 10, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(10, 12, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d((3, 3)),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Sequential(nn.Linear(12 * 9, 20), nn.ReLU()),
        nn.Linear(20, 10),
    ).double().eval()
    x = torch.rand(12, 1, 14, 14, dtype=torch.float64, generator=gen)
    net = ideal_net(model, rows=32, cols=8)
    assert [m.n_arrays for m in net.mapped] == [1 * 3, 3 * 3, 4 * 5, 1 * 3]
    net.calibrate(x)
    assert _rel_err(net(x), model(x)) < 1e-6


class FunctionalLeNet(nn.Module):
    """Functional style (F.relu, F.max_pool2d, F.avg_pool2d, F.dropout, view(size(0), -1)): FX-traceable chain."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 6, 3)
        self.fc1 = nn.Linear(6 * 1 * 1, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.avg_pool2d(torch.relu(self.c2(x)), 2)
        x = x.view(x.size(0), -1)
        x = F.dropout(x, 0.2, self.training)
        return self.fc2(torch.flatten(self.fc1(x).relu(), 1))


def test_fx_traceable_functional_chain(gen):
    torch.manual_seed(6)
    model = FunctionalLeNet().double().eval()
    kinds = [type(m).__name__ for m in flatten_layers(model)]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "AvgPool2d", "Flatten", "Linear", "ReLU", "Flatten", "Linear"]
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64, generator=gen)
    net = ideal_net(model)
    net.calibrate(x)
    assert _rel_err(net(x), model(x)) < 1e-6


def test_op_counts_by_hand(gen):
    """MACs per inference for a tiny conv + linear network, ``#MAC = fan-in × #outputs``.

    conv1: Conv2d(2→3, 3×3, stride 1, no padding) on 6×6 → 4×4 outputs:
           fan-in 2·3·3 = 18, outputs 3·4·4 = 48 → 18·48 = 864
    (AvgPool2d(2) → 3×2×2, Flatten → 12: digital, not counted)
    linear1: Linear(12→4): 12·4 = 48
    conv2 (second net): Conv2d(1→4, 3×2, stride 2, padding 1) on 7×5:
           H_out = ⌊(7 + 2 − 3)/2⌋ + 1 = 4, W_out = ⌊(5 + 2 − 2)/2⌋ + 1 = 3,
           fan-in 1·3·2 = 6, outputs 4·4·3 = 48 → 288
    """
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4)).double()
    net = ideal_net(model)
    assert net.op_counts((2, 6, 6)) == {"conv1": 864, "linear1": 48}
    x = torch.rand(5, 2, 6, 6, dtype=torch.float64, generator=gen)
    net.calibrate(x)
    assert net.op_counts() == {"conv1": 864, "linear1": 48}
    ledger = EnergyLedger()
    net(x, ledger)
    per_layer = {r["layer"]: r["ops_mac"] for r in ledger.op_records()}
    assert per_layer == {"conv1": 864, "linear1": 48}
    assert ledger.ops_per_inference()["ops_mac"] == 912

    net2 = ideal_net(nn.Sequential(nn.Conv2d(1, 4, (3, 2), stride=2, padding=1)).double())
    assert net2.op_counts((1, 7, 5)) == {"conv1": 288}


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.fc(x)


class _Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


@pytest.mark.parametrize(
    "model,match",
    [
        (nn.Sequential(nn.Linear(4, 4), nn.Tanh()), "Tanh"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.LeakyReLU(), nn.Flatten(), nn.Linear(2, 2)), "LeakyReLU"),
        (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)), "BatchNorm1d"),
        (_Sigmoid(), "sigmoid"),
        (_Residual(), "single chain"),
        (nn.Sequential(nn.ReLU()), "no Linear or Conv2d"),
    ],
)
def test_unsupported_layers_raise_naming_the_layer(model, match):
    with pytest.raises(UnsupportedLayerError, match=match):
        ideal_net(model)


@pytest.mark.parametrize("shape,batchnorm", [((1, 8, 8), False), ((1, 28, 28), True)])
def test_cnn_zoo_model_shapes(shape, batchnorm):
    """The zoo CNN is valid for 8×8 digits and 28×28 MNIST, with and without BatchNorm."""
    model = build_model("cnn", shape, 10, [32], batchnorm=batchnorm).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    assert sum(isinstance(m, nn.Conv2d) for m in model) == 2
    assert any(isinstance(m, nn.BatchNorm2d) for m in model) == batchnorm
    with pytest.raises(ValueError, match="model.arch"):
        build_model("resnet", shape, 10, [])


def test_cnn_config_through_run_on_digits():
    """Digits CNN (BatchNorm, folded): software accuracy > 0.9, ideal-device hardware within 1 point.

    8-bit DAC/ADC on ideal cells perturb each logit by well under 1 % of its range, which can flip
    only near-tied samples; 1 point is 5 of the 540 test images.
    """
    cfg = {
        "name": "cnn_digits",
        "dataset": {"name": "digits"},
        "model": {"arch": "cnn", "channels": [6, 16], "batchnorm": True, "hidden": [32], "epochs": 8, "lr": 0.01},
        "crossbar": {"rows": 64, "cols": 64},
    }
    df = xbarsim.run(cfg, progress=False)
    row = df.iloc[0]
    assert row.accuracy_sw > 0.9
    assert abs(row.accuracy_sw - row.accuracy_hw) <= 0.01
    # ops: conv1 1·9·6·8·8 = 3456, conv2 6·9·16·4·4 = 13824, linear1 64·32 = 2048, linear2 32·10 = 320
    if "ops_mac" in df.columns:
        assert row.ops_mac == 3456 + 13824 + 2048 + 320
