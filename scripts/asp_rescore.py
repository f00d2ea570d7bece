"""Rescore the networks saved by ``scripts/asp_sequential.py`` (its ``OUT.s<seed>.pt`` files) with another readout,
learning off: the readout studies of docs/asp_validation.md ("What bounds the 400-neuron margin").

    python scripts/asp_rescore.py /tmp/asp/base.s0.pt /tmp/asp/base.s1.pt --readout own theta0 cap50

Readouts: ``own`` (the network as trained: the study's score), ``theta0`` (adaptive thresholds set to 0),
``cap<S>`` (every column sum capped at S: ``w_ij·min(1, S/Σ_i w_ij)``). Labels are re-assigned from the same
held-out images as the study (the last ``n_assign_per_class`` training images of each class among the first
``--n-train``), and the first ``--n-test`` test images of the digits seen are scored by the Diehl & Cook vote.
Prints one line per file × algorithm × readout: accuracy over the digits seen and per digit.
"""

from __future__ import annotations

import argparse

import torch
from asp_sequential import _value, study_mnist  # scripts/ is on sys.path when run as a script

from algorithms.base import Hardware, per_class_accuracy
from algorithms.learning.diehl_cook import class_rates, labels_from_rates, vote
from algorithms.registry import get_algorithm
from device_models import IdealDevice


def readout_weights(w: torch.Tensor, theta: torch.Tensor, readout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights [in, out], θ [out])`` for the readout ``own``, ``theta0`` or ``cap<S>``."""
    if readout == "own":
        return w, theta
    if readout == "theta0":
        return w, torch.zeros_like(theta)
    if readout.startswith("cap"):
        cap = float(readout[3:])
        return w * (cap / w.sum(0, keepdim=True).clamp(min=1e-30)).clamp(max=1.0), theta
    raise ValueError(f"--readout: got {readout!r}; allowed: own, theta0, cap<S> (e.g. cap50)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("snapshots", nargs="+", help="OUT.s<seed>.pt files of scripts/asp_sequential.py")
    ap.add_argument("--readout", nargs="+", default=["own"])
    ap.add_argument("--phase", type=int, default=None, help="phase to rescore (default: the last)")
    ap.add_argument("--algorithms", nargs="+", default=["stdp", "asp"])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--n-assign-per-class", type=int, default=100)
    ap.add_argument("--set", nargs="*", default=[], help="network keys of the run other than n_neurons, key=value")
    a = ap.parse_args()
    torch.set_num_threads(1)
    full = study_mnist()
    y = full.y_train[: a.n_train]
    x = full.x_train[: a.n_train].reshape(len(y), -1).float()
    n_classes = int(y.max()) + 1
    pick = torch.cat([torch.nonzero(y == c).flatten()[-a.n_assign_per_class:] for c in range(n_classes)])
    xt = full.x_test[: a.n_test].reshape(a.n_test, -1).float()
    yt = full.y_test[: a.n_test]
    over = {k: _value(v) for k, v in (kv.split("=", 1) for kv in a.set)}
    cls = get_algorithm("asp")
    for path in a.snapshots:
        snaps = torch.load(path)
        n = int(snaps[0]["weights"].shape[1])  # the network's size, from the saved weights [in, out]
        alg = cls(cls.make_params(**{**over, "n_neurons": n}), Hardware(device=IdealDevice(), generator=torch.Generator()))
        phase = a.phase if a.phase is not None else max(s["phase"] for s in snaps)
        for s in snaps:
            if s["phase"] != phase or s["algorithm"] not in a.algorithms:
                continue
            seen = sorted(set(int(c) for c in s.get("classes", range(phase + 1))))
            mask = torch.isin(yt, torch.tensor(seen))
            lab = torch.isin(y[pick], torch.tensor(seen))
            for readout in a.readout:
                w, th = readout_weights(s["weights"], s["theta"], readout)
                net = alg.frozen_network({"weights": w.unsqueeze(0), "theta": th.reshape(1, 1, -1), "cfg": alg.cfg, "gain": None})
                assign = labels_from_rates(class_rates(net.responses(x[pick][lab], 64), y[pick][lab], n_classes))
                pred = vote(net.responses(xt[mask], 64), assign, n_classes).argmax(-1)[0].cpu()
                per = per_class_accuracy(pred, yt[mask], n_classes)
                acc = [per[f"accuracy_class_{c}"] for c in seen]
                print(f"{path} {s['algorithm']:5s} phase {phase} {readout:7s} seen {sum(acc) / len(acc):.3f}  per digit "
                      + " ".join(f"{v:.2f}" for v in acc), flush=True)


if __name__ == "__main__":
    main()
