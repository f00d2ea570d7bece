"""Hardware-aware fine-tuning of a hybrid SNN on a noisy device: does it narrow the chip-vs-software gap?

Digits CNN (the model of ``examples/hybrid_digits.yaml``), hybrid conversion + STDB BPTT at T = 8 (Rathi
et al., ICLR 2020), RRAM with programming noise ``sigma_prog`` and an ``adc_bits`` ADC. Routes, all
starting from the same converted network and trained with the same settings:

* ``software``: BPTT in software (ideal weights), then programmed onto the chips;
* ``chip``: ``hardware_aware: true``: the forward through the chips (programming noise, ADC), straight-through
  gradients, the chips re-programmed (noise redrawn) after every step;
* ``noise×k``: BPTT in software with Gaussian weight noise ``k·η_l·max|W_l|`` redrawn per mini-batch,
  ``η_l`` measured on the programmed chips (Joshi et al., Nat. Commun. 11, 2473, 2020;
  :func:`algorithms.snn.training.programming_noise`); ``+clip`` also clips the weights to
  ±``clip_std``·std(W) after every step (Joshi 2020).

Every trained network is then programmed onto the same ``chips`` fresh chip draws (seeds 1000, 1001, …:
the same noise draws for every route, a paired comparison), the converters re-calibrated, and scored on
the whole test split (540 images) at T = 8. Prints one markdown table (mean ± std over chips, and
the paired difference to ``software``) and writes the per-chip numbers as JSON with ``--out``.

    python scripts/snn_hardware_aware.py --chips 5 --out /tmp/hw_aware.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algorithms.snn.conversion import HybridAlgorithm  # noqa: E402
from algorithms.snn.surrogate import make_surrogate  # noqa: E402
from algorithms.snn.training import programming_noise, train_bptt  # noqa: E402
from xbarsim.config import load_config  # noqa: E402
from xbarsim.experiment import build_hardware, prepare  # noqa: E402


def config(sigma_prog: float, adc_bits: int, epochs: int, lr: float, seed: int) -> dict:
    return {
        "name": "snn_hardware_aware", "seed": seed,
        "dataset": {"name": "digits"},
        "model": {"arch": "cnn", "channels": [8, 16], "hidden": [32], "epochs": 20, "lr": 0.005, "batch_size": 64, "seed": 0},
        "device": {"model": "rram", "sigma_prog": sigma_prog},
        "crossbar": {"rows": 128, "cols": 128, "dac": {"bits": 8}, "adc": {"bits": adc_bits}},
        "eval": {"n_calibration": 256},
        "algorithm": {"name": "hybrid", "timesteps": [8], "train_timesteps": 8, "epochs": epochs, "lr": lr, "surrogate": "stdb"},
    }


class NoiseInjectedHybrid(HybridAlgorithm):
    """Hybrid with software BPTT under device-matched weight-noise injection (Joshi et al. 2020)."""

    noise_scale = 1.0
    clip_std: float | None = None

    def _train(self, data, x_cal, snn):
        p = self.params
        etas = programming_noise(self.snn_hw)  # the chips hold the converted network's weights now
        self.extra["eta"] = etas
        n = data.x_train.shape[0] if p.n_train is None else min(p.n_train, data.x_train.shape[0])
        losses = train_bptt(snn, data.x_train[:n], data.y_train[:n], p.train_timesteps, make_surrogate(p.surrogate, p.alpha, p.beta),
                            p.epochs, p.lr, p.batch_size, leak=p.leak, generator=self.net.generator,
                            weight_noise={k: v * self.noise_scale for k, v in etas.items()}, clip_std=self.clip_std)
        self.extra.update({"train_timesteps": int(p.train_timesteps), "train_loss": losses[-1] if losses else math.nan})


def chip_scores(alg, x_cal, x_test, y_test, seeds) -> list[float]:
    """Accuracy at T = 8 of the trained network programmed onto fresh chips ``seeds`` (same thresholds)."""
    thresholds = {s.name: s.theta for s in alg.snn_hw.stages if s.kind == "weight"}
    out = []
    for seed in seeds:
        alg.net.reprogram(seed)
        alg._balance(alg.snn_hw, x_cal, thresholds=thresholds)
        out.append(alg._snn_accuracies(alg.snn_hw, x_test, y_test, 540)[0][0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigma-prog", type=float, default=0.06)
    ap.add_argument("--adc-bits", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--chips", type=int, default=5, help="fresh chip draws per route")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="config seeds (chips during training, noise draws)")
    ap.add_argument("--routes", nargs="+", default=["software", "chip", "noise1", "noise1+clip"],
                    help="software | chip | noiseK (K: multiple of the measured η) | noiseK+clip")
    ap.add_argument("--clip-std", type=float, default=2.5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    chips = list(range(1000, 1000 + args.chips))
    results = []
    for tseed in args.train_seeds:
        cfg = load_config(config(args.sigma_prog, args.adc_bits, args.epochs, args.lr, tseed))
        data, model = prepare(cfg)
        for route in args.routes:
            t0 = time.perf_counter()
            hw = build_hardware(cfg)
            params = HybridAlgorithm.make_params(**{**cfg.algorithm.engine_kwargs(), "hardware_aware": route == "chip"})
            if route.startswith("noise"):
                alg = NoiseInjectedHybrid(params, hw, model)
                k, _, clip = route[len("noise"):].partition("+")
                alg.noise_scale = float(k)
                alg.clip_std = args.clip_std if clip == "clip" else None
            elif route in ("software", "chip"):
                alg = HybridAlgorithm(params, hw, model)
            else:
                raise ValueError(f"--routes: got {route!r}; allowed: software, chip, noiseK, noiseK+clip")
            alg.fit(data)
            ev = alg.evaluate(data.x_test, data.y_test, 0.0, 540)[0]
            row = {"route": route, "train_seed": tseed, "accuracy_snn_sw": ev["accuracy_snn_sw"], "accuracy_training_chip": ev["accuracy_snn_hw"],
                   "eta": alg.extra.get("eta"), "train_loss": alg.extra.get("train_loss")}
            row["chips"] = chip_scores(alg, alg._calibration(data), data.x_test, data.y_test, chips)
            row["wall_s"] = time.perf_counter() - t0
            results.append(row)
            print(json.dumps(row), flush=True)
    base = {r["train_seed"]: r["chips"] for r in results if r["route"] == "software"}
    print(f"\nσ_prog {args.sigma_prog}, {args.adc_bits}-bit ADC, {args.epochs} epochs, {len(chips)} fresh chips × "
          f"{data.x_test.shape[0]} test images, T = 8, train seeds {args.train_seeds}\n")
    print("| route | train seed | SNN, software | training chip | fresh chips, mean ± std | − software (paired) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        c = r["chips"]
        sd = statistics.stdev(c) if len(c) > 1 else 0.0
        diff = ""
        if r["train_seed"] in base and r["route"] != "software":
            d = [a - b for a, b in zip(c, base[r["train_seed"]])]
            diff = f"{100 * statistics.mean(d):+.1f} ± {100 * (statistics.stdev(d) if len(d) > 1 else 0):.1f}"
        print(f"| {r['route']} | {r['train_seed']} | {100 * r['accuracy_snn_sw']:.1f} % | {100 * r['accuracy_training_chip']:.1f} % | "
              f"{100 * statistics.mean(c):.1f} ± {100 * sd:.1f} % | {diff} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
