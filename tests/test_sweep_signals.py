"""Ctrl-C and a killed parent: whole points only, no leftover files, a resumable file, no orphan workers.

Each test runs a small script in a subprocess whose points sleep instead of simulating (about 10 s
together on 2 cores, most of it spawning two worker processes that import torch).
"""

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

import xbarsim
from xbarsim.results import read_table

sweep_mod = importlib.import_module("xbarsim.sweep")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and /proc")

SCRIPT = """
import os, sys, time
import xbarsim, xbarsim.sweep as sw

def slow_point(cfg, breakdown=False, model=None):
    time.sleep(0.2)
    return [{"name": cfg.name, "seed": cfg.seed, "accuracy_hw": 0.5}]

def stuck_point(data, breakdown=False, model=None):
    time.sleep(300)
    return []

if __name__ == "__main__":
    mode, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = {"name": "t", "sweep": {"seed": list(range(n))}}
    if mode == "serial":
        sw.run_point = slow_point
    else:
        sw._run_point_data = stuck_point
    try:
        xbarsim.sweep(cfg, out=out, progress=False, workers=1 if mode == "serial" else 2)
    except KeyboardInterrupt as exc:  # what the CLI does: one line, exit 130
        print(f"xbarsim: {exc}", file=sys.stderr)
        sys.exit(130)
"""


def _start(tmp_path, mode, n):
    script = tmp_path / "runner.py"
    script.write_text(SCRIPT)
    out = tmp_path / "data" / "r.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), mode, str(out), str(n)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    return proc, out


def _children(pid):
    """Live (not zombie) processes whose parent is ``pid``."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                kids.append(int(entry))
    return kids


def _workers(pid):
    out = []
    for k in _children(pid):
        try:
            with open(f"/proc/{k}/cmdline", "rb") as fh:
                if b"spawn_main" in fh.read():
                    out.append(k)
        except OSError:
            pass
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(cond, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_leaves_a_resumable_file(tmp_path, monkeypatch):
    proc, out = _start(tmp_path, "serial", 40)
    lines = lambda: out.read_text().count("\n") if out.exists() else 0  # noqa: E731
    assert _wait(lambda: lines() >= 3, 60), proc.communicate(timeout=5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to resume" in err
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.csv"]  # no lock, no temporary file
    text = out.read_text()
    assert text.endswith("\n")
    done = read_table(out)
    assert 2 <= len(done) < 40 and done["accuracy_hw"].notna().all() and done["point_id"].is_unique
    calls = []

    def fast(cfg, breakdown=False, model=None):
        calls.append(cfg.seed)
        return [{"name": cfg.name, "seed": cfg.seed, "accuracy_hw": 0.5}]

    monkeypatch.setattr(sweep_mod, "run_point", fast)
    df = xbarsim.sweep({"name": "t", "sweep": {"seed": list(range(40))}}, out=out, progress=False)
    assert list(df["seed"]) == list(range(40)) and len(calls) == 40 - len(done)


@pytest.mark.parametrize("how", ["sigkill_parent", pytest.param("ctrl_c", marks=pytest.mark.slow)])
def test_workers_die_with_the_parent(tmp_path, how):
    proc, out = _start(tmp_path, "pool", 4)
    assert _wait(lambda: len(_workers(proc.pid)) == 2, 120), proc.pid
    time.sleep(1.0)  # let the workers pick up their (stuck) points
    kids = _children(proc.pid)  # the two workers and multiprocessing's resource tracker
    if how == "sigkill_parent":
        os.kill(proc.pid, signal.SIGKILL)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if how == "sigkill_parent" else 130)
    assert _wait(lambda: not any(_alive(k) for k in kids), 15), [k for k in kids if _alive(k)]
    if how == "ctrl_c":
        assert not out.exists() and list(out.parent.iterdir()) == []  # nothing finished: no file, no lock
