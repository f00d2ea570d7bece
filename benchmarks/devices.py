"""Device-model operation cost per array, against a plain elementwise baseline measured in the same run.

For each model and array size, times ``program``, ``read`` (at 1 h), ``pulse`` (random signed
counts in [-3, 3]) and, for MTJs, ``switch``; prints ns per cell and the ratio to the baseline
``g * 1.0001`` (one elementwise multiply on the same tensor), so the table is comparable across
machines. Intra-op threads default to 1: on a busy 2-core machine OpenMP barriers made every
elementwise op on a 128×128 array ~40× slower with 2 threads (15 ms instead of 0.3 ms).

    python benchmarks/devices.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from device_models import PCM, RRAM, SOTMTJ, STTMTJ, LookupDevice

CSV = Path(__file__).resolve().parents[1] / "examples" / "lookup_taox.csv"


def _time(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small size, few repeats")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [128] if args.quick else [128, 512]
    repeats = 3 if args.quick else 10
    models = {
        "rram": RRAM(sigma_d2d_nl=0.2, p_stuck_on=0.01),
        "pcm": PCM(),
        "stt_mtj": STTMTJ(),
        "sot_mtj": SOTMTJ(),
        "lookup": LookupDevice(csv=str(CSV), sigma_c2c=0.02),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"{'model':<8} {'cells':>8} {'op':<8} {'ns/cell':>9} {'x baseline':>11}")
    for n in sizes:
        gen = torch.Generator().manual_seed(0)
        g = torch.rand(n, n, generator=gen)
        base = _time(lambda g=g: g * 1.0001, repeats)
        print(f"{'baseline':<8} {n * n:>8} {'mul':<8} {1e9 * base / (n * n):>9.2f} {1.0:>11.1f}")
        for name, dev in models.items():
            state = dev.new_state((n, n), gen)
            target = dev.g_min + (dev.g_max - dev.g_min) * torch.rand(n, n, generator=gen)
            state = dev.program(state, target, gen)
            counts = torch.randint(-3, 4, (n, n), generator=gen).float()
            ops = {
                "program": lambda d=dev, s=state, t=target, r=gen: d.program(s, t, r),
                "read": lambda d=dev, s=state, r=gen: d.read(s, 3600.0, r),
                "pulse": lambda d=dev, s=state, c=counts, r=gen: d.pulse(s, c, r),
            }
            if isinstance(dev, STTMTJ | SOTMTJ):
                ops["switch"] = lambda d=dev, s=state, r=gen: d.switch(s, d.i_c0, 5e-9, r)
            for op, fn in ops.items():
                t = _time(fn, repeats)
                print(f"{name:<8} {n * n:>8} {op:<8} {1e9 * t / (n * n):>9.2f} {t / base:>11.1f}")


if __name__ == "__main__":
    main()
