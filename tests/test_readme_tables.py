"""The README's result tables are what the code prints (scripts/readme_tables.py generates them).

The cheap tables (quickstart, PCM drift: seconds; the model is cached per process) run in the default
set; the examples that take a minute or two each (IR drop, MNIST CNN) are in the slow set.
"""

import importlib.util
import os

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

README = (ROOT / "README.md").read_text()
HINT = "the README table drifted from the code; regenerate it: python scripts/readme_tables.py --only {}"


def test_every_table_has_markers_and_content():
    for name in readme_tables.TABLES:
        assert readme_tables.block(README, name).strip(), name


@pytest.mark.parametrize("name", [n for n, (_, cheap) in readme_tables.TABLES.items() if cheap])
def test_cheap_tables_are_current(name):
    assert readme_tables.block(README, name) == readme_tables.generate(name), HINT.format(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, (_, cheap) in readme_tables.TABLES.items() if not cheap])
def test_expensive_tables_are_current(name, mnist_dir, monkeypatch):
    if name == "cnn_mnist":
        monkeypatch.setenv("XBARSIM_DATA", os.fspath(mnist_dir.parent))
    assert readme_tables.block(README, name) == readme_tables.generate(name), HINT.format(name)


def test_check_mode_reports_drift(tmp_path, monkeypatch):
    """``--check`` exits 1 on a stale table and leaves the file alone; a regeneration fixes it."""
    stale = tmp_path / "README.md"
    stale.write_text("intro\n<!-- table:quickstart -->\nold numbers\n<!-- /table:quickstart -->\n## Benchmarks\n")
    monkeypatch.setitem(readme_tables.TABLES, "quickstart", (lambda: "new numbers", True))
    assert readme_tables.main(["--check", "--only", "quickstart", "--readme", str(stale)]) == 1
    assert "old numbers" in stale.read_text()
    assert readme_tables.main(["--only", "quickstart", "--readme", str(stale)]) == 0
    assert stale.read_text() == "intro\n<!-- table:quickstart -->\nnew numbers\n<!-- /table:quickstart -->\n## Benchmarks\n"
    assert readme_tables.main(["--check", "--only", "quickstart", "--readme", str(stale)]) == 0
