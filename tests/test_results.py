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


def test_csv_append_writes_only_the_new_lines(tmp_path):
    """O(1) per point: the bytes already in the file are not rewritten (same inode, same prefix)."""
    f = tmp_path / "r.csv"
    append_rows(f, [{"a": 1, "b": 0.5}, {"a": 2, "b": 1.5}])
    before, ino = f.read_bytes(), f.stat().st_ino
    append_rows(f, [{"b": 2.5, "a": 3}])  # other column order: aligned to the header
    append_rows(f, [{"a": 4}])  # fewer columns: empty cells
    assert f.stat().st_ino == ino and f.read_bytes().startswith(before)
    df = read_table(f)
    assert list(df["a"]) == [1, 2, 3, 4] and list(df["b"])[:3] == [0.5, 1.5, 2.5] and pd.isna(df["b"].iloc[3])


def test_hashes_stay_strings(tmp_path):
    f = tmp_path / "r.csv"
    append_rows(f, [{"point_id": "0123456789012345", "inputs_sha": "0000000000000001", "x": 1}])
    df = read_table(f)
    assert df["point_id"].iloc[0] == "0123456789012345" and df["inputs_sha"].iloc[0] == "0000000000000001"


def test_parquet_is_a_directory_of_parts(tmp_path):
    pytest.importorskip("pyarrow")
    f = tmp_path / "r.parquet"
    append_rows(f, [{"a": 1}])
    first = (f / "part-00000.parquet").read_bytes()
    append_rows(f, [{"a": 2, "c": "x"}])
    assert sorted(p.name for p in f.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert (f / "part-00000.parquet").read_bytes() == first  # earlier parts untouched
    df = read_table(f)
    assert list(df["a"]) == [1, 2] and list(df.columns) == ["a", "c"]


def test_legacy_parquet_file_becomes_a_directory(tmp_path):
    pytest.importorskip("pyarrow")
    f = tmp_path / "r.parquet"
    pd.DataFrame([{"a": 1}]).to_parquet(f, index=False)
    assert list(read_table(f)["a"]) == [1]
    append_rows(f, [{"a": 2}])
    assert f.is_dir() and list(read_table(f)["a"]) == [1, 2]


def test_lock_repairs_what_a_killed_writer_left(tmp_path):
    from xbarsim.results import TableLock

    f = tmp_path / "r.csv"
    append_rows(f, [{"a": 1, "b": 2}])
    with open(f, "a") as fh:
        fh.write("2,")  # a row cut short by SIGKILL
    (tmp_path / ".r.csv.1234abcd.tmp").write_text("junk")
    with TableLock(f):
        assert (tmp_path / ".r.csv.lock").exists()
        append_rows(f, [{"a": 3, "b": 4}])
    assert list(read_table(f)["a"]) == [1, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]


def test_second_lock_is_refused(tmp_path):
    from xbarsim.results import ResultsLockedError, TableLock

    f = tmp_path / "r.csv"
    with TableLock(f, "--breakdown"):
        with pytest.raises(ResultsLockedError, match=r"--breakdown: .*is being written by another xbarsim run"):
            TableLock(f, "--breakdown").acquire()
    TableLock(f).acquire().release()


def test_adc_percentile_uses_every_value():
    """ADC.calibrate used torch.quantile on the first 2^24 values only: a layer whose large currents sit
    in its last tiles got a range from its first tiles. Now the percentile is over every value."""
    import torch

    from circuits import ADC

    n = 2**24
    small, large = torch.full((n,), 1e-6), torch.full((n // 4,), 1e-4)
    adc = ADC(bits=8, percentile=99.0)
    adc.calibrate(torch.cat([small, large]))
    # the top 20 % of |I| are the large currents: the 99th percentile is one of them
    assert float(adc.full_scale()) == pytest.approx(1e-4, rel=1e-6)
    assert float(ADC(bits=8, percentile=50.0).full_scale() or 0) == 0  # uncalibrated: no range yet
    probe = torch.tensor([3.0, 1.0, 2.0, 4.0], dtype=torch.float64) * 1e-6
    a2 = ADC(bits=8, percentile=50.0)
    a2.calibrate(probe)
    assert float(a2.full_scale()) == pytest.approx(float(torch.quantile(probe, 0.5)), rel=1e-12)
