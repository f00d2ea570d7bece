"""CrossbarNetwork as an nn.Module: straight-through gradients, reprogramming, per-layer overrides, generators."""

import pytest
import torch
from conftest import ideal_net
from torch import nn

from algorithms import CrossbarNetwork, fold_batchnorm
from algorithms.base import Hardware
from circuits import ADC, DAC, CrossbarSpec, EnergyLedger
from device_models import RRAM, IdealDevice


def _mlp(seed=0, bn=True):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(12, 9)]
    if bn:
        layers.append(nn.BatchNorm1d(9))
    layers += [nn.ReLU(), nn.Linear(9, 4)]
    m = nn.Sequential(*layers)
    if bn:
        with torch.no_grad():
            m[2].running_mean.uniform_(-0.2, 0.2)
            m[2].running_var.uniform_(0.5, 2.0)
    return m.double().eval()


def _noisy_rram():
    return RRAM(sigma_prog=0.05)


def test_is_an_nn_module_with_the_software_weights_as_parameters():
    net = ideal_net(_mlp())
    assert isinstance(net, nn.Module)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["software.1.weight", "software.1.bias", "software.3.weight", "software.3.bias"]


def test_ste_gradient_equals_the_software_gradient_on_an_ideal_device():
    """Ideal cells, lossless converters, float64: the hardware forward equals the software forward, so the
    straight-through gradient must equal the software model's gradient (to rounding, 1e-10 relative)."""
    model = _mlp()
    x = torch.randn(16, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(2))
    net = ideal_net(model)
    net.calibrate(x)
    loss_hw = nn.functional.cross_entropy(net(x), y)
    loss_hw.backward()
    ref = fold_batchnorm(model).double()  # the folded software model, same function
    for p in ref.parameters():
        p.requires_grad_(True)
    loss_sw = nn.functional.cross_entropy(ref(x), y)
    loss_sw.backward()
    assert loss_hw.item() == pytest.approx(loss_sw.item(), rel=1e-12)
    hw_grads = [p.grad for p in net.software.parameters()]
    sw_grads = [p.grad for p in ref.parameters()]
    assert len(hw_grads) == len(sw_grads) == 4
    for g_hw, g_sw in zip(hw_grads, sw_grads):
        assert torch.allclose(g_hw, g_sw, rtol=1e-10, atol=1e-14)


def test_ste_gradient_reaches_the_input_and_the_forward_value_is_the_hardware_one():
    """On a quantising chip the forward value is the hardware's (not the software's), the gradient the software's."""
    model = _mlp(bn=False)
    x = torch.randn(8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    net = CrossbarNetwork(model, IdealDevice(), CrossbarSpec(rows=8, cols=8), DAC(bits=3), ADC(bits=3),
                          generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    net.calibrate(x.detach())
    with torch.no_grad():
        y_hw = net(x.detach())
    y = net(x)
    assert torch.equal(y.detach(), y_hw)
    assert not torch.allclose(y_hw, model(x).detach(), atol=1e-3)  # 3-bit converters do change the value
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_program_weights_writes_trained_weights_onto_the_chips():
    model = _mlp(bn=False)
    net = ideal_net(model)
    x = torch.randn(8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    net.calibrate(x)
    with torch.no_grad():
        for p in net.software.parameters():
            p.mul_(0.5)
        net.program_weights()
        ref = fold_batchnorm(model).double()
        for p in ref.parameters():
            p.mul_(0.5)
        assert torch.allclose(net(x), ref(x), rtol=1e-9, atol=1e-12)


def test_reprogram_with_a_seed_redraws_the_chips_without_rebuilding():
    model = _mlp(bn=False)
    x = torch.randn(32, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    net = CrossbarNetwork(model, _noisy_rram(), CrossbarSpec(rows=16, cols=16), DAC(bits=8), ADC(bits=8),
                          generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    net.calibrate(x)
    layers = list(net.layers)
    with torch.no_grad():
        y10 = net(x)
        net.reprogram(11)
        y11 = net(x)
        net.reprogram(10)
        y10b = net(x)
    assert net.layers == layers  # the same layer objects: nothing rebuilt but the chips
    assert torch.equal(y10, y10b)
    assert not torch.allclose(y10, y11)


def test_generator_none_draws_fresh_noise():
    """Two networks built without a generator must not share their programming noise."""
    model = _mlp(bn=False)
    x = torch.randn(16, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    outs = []
    for _ in range(2):
        net = CrossbarNetwork(model, _noisy_rram(), CrossbarSpec(rows=16, cols=16), DAC(bits=None), ADC(bits=None),
                              dtype=torch.float64)
        net.calibrate(x)
        with torch.no_grad():
            outs.append(net(x))
    assert not torch.allclose(outs[0], outs[1])


def test_per_layer_overrides():
    """A 4-bit ADC on linear1 only: that layer's converter differs, the other keeps the default, and the
    Hardware object builds the same network."""
    model = _mlp(bn=False)
    over = {"linear1": {"adc": ADC(bits=4), "spec": CrossbarSpec(rows=8, cols=8)}}
    net = CrossbarNetwork(model, IdealDevice(), CrossbarSpec(rows=16, cols=16), DAC(bits=8), ADC(bits=8),
                          generator=torch.Generator().manual_seed(0), overrides=over)
    mm = dict(zip(net.layer_names, net.mapped))
    assert mm["linear1"].adc.bits == 4 and mm["linear2"].adc.bits == 8
    assert mm["linear1"].spec.rows == 8 and mm["linear2"].spec.rows == 16
    hw = Hardware(IdealDevice(), CrossbarSpec(rows=16, cols=16), DAC(bits=8), ADC(bits=8),
                  generator=torch.Generator().manual_seed(0), overrides=over)
    net2 = CrossbarNetwork.from_hardware(model, hw)
    assert [m.adc.bits for m in net2.mapped] == [4, 8]
    with pytest.raises(ValueError, match="linear7"):
        CrossbarNetwork(model, IdealDevice(), overrides={"linear7": {"adc": ADC(bits=4)}})
    with pytest.raises(ValueError, match="overrides.linear1.bits"):
        CrossbarNetwork(model, IdealDevice(), overrides={"linear1": {"bits": 4}})


def test_forward_still_fills_the_ledger_and_runs_without_grad():
    model = _mlp(bn=False)
    net = ideal_net(model)
    x = torch.randn(8, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    net.calibrate(x)
    led = EnergyLedger()
    with torch.no_grad():
        y = net(x, led)
    assert y.grad_fn is None
    assert led.ops_per_inference()["ops_mac"] == 12 * 9 + 9 * 4
