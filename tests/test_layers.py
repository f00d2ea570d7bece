"""The layer contract xbarsim → algorithms → circuits → device_models (import-linter)."""

import shutil
import subprocess

import pytest
from conftest import ROOT


def test_import_linter_contract_kept():
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter not installed (pip install 'xbarsim[test]')")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 kept, 0 broken" in res.stdout
