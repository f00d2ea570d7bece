"""Results files: append point by point, CSV and parquet alike, atomic writes."""

import pandas as pd
import pytest

from xbarsim.results import append_rows, read_table


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_append_unions_columns(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    f = tmp_path / f"r{suffix}"
    append_rows(f, [{"a": 1, "b": 0.5}])
    append_rows(f, [{"a": 2, "c": "x"}])
    df = read_table(f)
    assert list(df["a"]) == [1, 2] and set(df.columns) == {"a", "b", "c"}
    assert pd.isna(df["b"].iloc[1]) and df["c"].iloc[1] == "x"
    assert not (tmp_path / f"r{suffix}.tmp").exists()


def test_bad_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"--out: got .*\.txt'; the file name must end in \.csv or \.parquet"):
        append_rows(tmp_path / "r.txt", [{"a": 1}])
