"""xbarsim plot: the drawn lines carry exactly the table's values."""

import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from xbarsim.cli import main  # noqa: E402
from xbarsim.plot import plot_table, swept_columns  # noqa: E402


def _table():
    return pd.DataFrame(
        {
            "device.sigma_prog": [0.1, 0.0, 0.05, 0.1, 0.0, 0.05],
            "crossbar.adc.bits": [4, 4, 4, 8, 8, 8],
            "device": ["rram"] * 6,
            "accuracy_hw": [0.5, 0.9, 0.7, 0.6, 0.95, 0.8],
            "energy_per_inference_J": [1e-9, 1e-9, 1e-9, 2e-9, 2e-9, 2e-9],
            "point_id": list("abcdef"),
        }
    )


def test_lines_follow_the_table(tmp_path):
    df = _table()
    assert swept_columns(df) == ["device.sigma_prog", "crossbar.adc.bits"]
    fig = plot_table(df, out=tmp_path / "p.png")
    acc = fig.axes[0]
    lines = {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata())) for ln in acc.lines}
    assert lines["crossbar.adc.bits=4"] == ([0.0, 0.05, 0.1], [0.9, 0.7, 0.5])
    assert lines["crossbar.adc.bits=8"] == ([0.0, 0.05, 0.1], [0.95, 0.8, 0.6])
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_plot(tmp_path):
    f = tmp_path / "t.csv"
    _table().to_csv(f, index=False)
    assert main(["plot", str(f), "-x", "crossbar.adc.bits", "-m", "accuracy_hw"]) == 0
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert main(["plot", str(f), "-x", "nope"]) == 2
