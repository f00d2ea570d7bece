"""Conv2d on crossbars by im2col: agreement with F.conv2d, tiling, chunking, accounting, errors."""

import math

import pytest
import torch
from conftest import ideal_net
from torch import nn

from algorithms import CrossbarNetwork, UnsupportedLayerError
from algorithms.layers import im2col
from circuits import ADC, DAC, CrossbarSpec, EnergyLedger
from device_models import IdealDevice


def _rel_err(y, ref):
    y, ref = y.detach(), ref.detach()
    return float((y - ref).abs().max() / ref.abs().max())




@pytest.mark.parametrize(
    "kernel,stride,padding,dilation",
    [((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (0, 2), (1, 2)), ((1, 4), (3, 2), (2, 0), (2, 1))],
)
def test_im2col_is_f_unfold_bit_for_bit(gen, kernel, stride, padding, dilation):
    """The strided-view im2col equals F.unfold (transposed to rows) exactly, element order included."""
    x = torch.randn(3, 4, 9, 8, generator=gen)
    ref = torch.nn.functional.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    ref = ref.transpose(1, 2).reshape(-1, ref.shape[1])
    ph, pw = padding
    assert torch.equal(im2col(x, kernel, stride, (pw, pw, ph, ph), dilation), ref)
    xs = x[1:, 1:3, 2:, :]  # a non-contiguous view with a storage offset
    ref = torch.nn.functional.unfold(xs, kernel, dilation=dilation, padding=padding, stride=stride)
    assert torch.equal(im2col(xs, kernel, stride, (pw, pw, ph, ph), dilation), ref.transpose(1, 2).reshape(-1, ref.shape[1]))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize(
    "c_in,c_out,kernel,stride,padding,dilation,hw,rows,cols",
    [
        # C_in·k² = 5·3·2 = 30 > 8 rows (4 input tiles); C_out = 40 > cols/2 = 8 (5 output tiles)
        (5, 40, (3, 2), 2, 1, 1, (11, 9), 8, 16),
        # square 3×3, stride 2, padding 1, 27 rows on 16-row arrays, 20 outputs on 8-column arrays
        (3, 20, 3, 2, 1, 1, (12, 12), 16, 8),
        # non-square kernel, anisotropic stride/padding/dilation
        (4, 7, (2, 5), (2, 1), (1, 2), (2, 1), (13, 10), 7, 6),
        # 'same' padding (asymmetric for the even kernel width), no bias
        (2, 9, (3, 4), 1, "same", 1, (6, 7), 5, 4),
    ],
)
def test_conv_equals_f_conv2d(gen, c_in, c_out, kernel, stride, padding, dilation, hw, rows, cols):
    """Ideal devices, lossless converters, float64: the crossbar conv equals F.conv2d to 1e-6 relative.

    Every product and partial sum is exact in float64 up to rounding (~1e-15); the 1e-6 bound
    leaves room for summation-order differences only, so any layout error (patch order, tile
    boundary, fold-back) fails it by orders of magnitude.
    """
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=padding != "same")
    conv = conv.double()
    x = torch.randn(6, c_in, *hw, dtype=torch.float64, generator=gen)
    net = ideal_net(nn.Sequential(conv), rows, cols)
    mm = net.mapped[0]
    k = c_in * math.prod(conv.kernel_size)
    assert (mm.out_features, mm.in_features) == (c_out, k)
    assert mm.n_tiles_in == math.ceil(k / rows) and mm.n_tiles_out == math.ceil(c_out / (cols // 2))
    assert mm.n_arrays > 1
    net.calibrate(x)
    y = net(x)
    ref = conv(x)
    assert y.shape == ref.shape
    assert _rel_err(y, ref) < 1e-6


def test_conv_chunked_equals_unchunked_and_accounts_every_read(gen):
    """Chunking big batches changes nothing: same outputs, same energy, one array read per receptive field."""
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 10, 3, stride=2, padding=1).double()
    x = torch.randn(9, 3, 10, 10, dtype=torch.float64, generator=gen)
    ref = conv(x)
    outs, ledgers = [], []
    for chunk in (2**24, 500):  # the second forces chunks of a fraction of one image
        net = ideal_net(nn.Sequential(conv), 16, 8, chunk_elements=chunk)
        net.calibrate(x)
        led = EnergyLedger()
        outs.append(net(x, led))
        ledgers.append(led)
    assert _rel_err(outs[0], ref) < 1e-6 and _rel_err(outs[1], ref) < 1e-6
    assert ledgers[0].total_J() == pytest.approx(ledgers[1].total_J(), rel=1e-12)
    n_pos = 5 * 5  # H_out = W_out = ⌊(10 + 2 − 3)/2⌋ + 1 = 5
    n_arrays = math.ceil(27 / 16) * math.ceil(10 / 4)
    events = {r["component"]: r["events"] for r in ledgers[0].records() if r["layer"] == "conv1"}
    assert events["array"] == 9 * n_pos * n_arrays


def test_conv_float32_default_converters_close(gen):
    """Default 8-bit DAC/ADC on ideal cells: the conv stays within a few LSB of F.conv2d."""
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 6, 3, padding=1)
    x = torch.rand(8, 2, 8, 8, generator=gen)
    net = CrossbarNetwork(nn.Sequential(conv), IdealDevice(), CrossbarSpec(rows=32, cols=32), DAC(bits=8), ADC(bits=8))
    net.calibrate(x)
    assert _rel_err(net(x), conv(x)) < 0.05


@pytest.mark.parametrize(
    "layer,match",
    [
        (nn.Conv2d(4, 4, 3, groups=2), "groups=2"),
        (nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), "padding_mode"),
        (nn.Conv1d(2, 4, 3), "Conv1d"),
    ],
)
def test_unsupported_conv_variants_raise(layer, match):
    with pytest.raises(UnsupportedLayerError, match=match):
        ideal_net(nn.Sequential(layer, nn.Flatten()), 8, 8)


def test_conv_rejects_wrong_input_shape(gen):
    conv = nn.Conv2d(3, 4, 3).double()
    net = ideal_net(nn.Sequential(conv), 8, 8)
    with pytest.raises(ValueError, match="expected \\[batch, 3, H, W\\]"):
        net.calibrate(torch.zeros(2, 2, 5, 5, dtype=torch.float64))
