"""The asp algorithm's continual-learning bookkeeping: one row per algorithm × phase with per-class accuracy
of the classes seen so far, identical start for ASP and plain STDP, the forgetting figure."""

import math

import pytest
import torch

from algorithms.base import Hardware
from algorithms.learning.asp import ASPLearning
from algorithms.registry import get_algorithm
from circuits import EnergyLedger
from device_models import IdealDevice
from xbarsim.datasets import load_digits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = load_digits()
    cls = get_algorithm("asp")
    figs = tmp_path_factory.mktemp("figs")
    params = cls.make_params(n_neurons=6, phases=[2, 0, 1], images_per_phase=12, n_assign_per_class=10,
                             compare_stdp=True, max_rate_hz=400.0, figures_dir=str(figs))
    alg = cls(params, Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0)))
    alg.fit(d, EnergyLedger())
    rows = alg.evaluate(d.x_test, d.y_test, 0.0)
    return alg, rows, d, figs


def test_rows_per_algorithm_and_phase(run):
    alg, rows, d, _ = run
    assert [(r["algorithm"], r["phase"]) for r in rows] == [("stdp", 0), ("stdp", 1), ("stdp", 2),
                                                            ("asp", 0), ("asp", 1), ("asp", 2)]
    order = [2, 0, 1]
    for r in rows:
        seen = order[: r["phase"] + 1]
        assert r["classes_seen"] == len(seen) and r["classes"] == " ".join(map(str, seen))
        assert r["newest"] == str(order[r["phase"]])
        for k in range(10):
            v = r[f"accuracy_class_{k}"]
            assert (k in seen) == (not math.isnan(v)), (k, seen, v)
        assert r["accuracy_seen"] == pytest.approx(sum(r[f"accuracy_class_{k}"] for k in seen) / len(seen))
        assert r["accuracy_newest"] == r[f"accuracy_class_{order[r['phase']]}"]
        assert r["n_test_seen"] == int(sum(int((d.y_test == k).sum()) for k in seen))
        assert r["accuracy"] == r["accuracy_seen"]
        assert 0.0 <= r["accuracy_seen_proportion"] <= 1.0 and 0.0 <= r["accuracy_newest_proportion"] <= 1.0
        if r["phase"] == 0:  # one class labelled: every neuron's share is 1, so both readouts agree
            assert r["accuracy_seen_proportion"] == r["accuracy_seen"]


def test_same_start_and_phase_snapshots(run):
    alg, _, d, figs = run
    snaps = alg.snapshots()
    assert [s["n_train"] for s in snaps] == [12] * 6
    # both algorithms start from the same initial weights and see the same images: the phase-0 weights differ
    # only through the rule (ASP has no normalisation and leaks), so the untouched-by-learning structure is shared
    assert snaps[0]["weights"].shape == snaps[3]["weights"].shape == (1, 64, 6)
    assert not torch.equal(snaps[0]["weights"], snaps[3]["weights"])
    assert (figs / "forgetting.png").stat().st_size > 1000


def test_asp_rule_is_bound_and_leaks(run):
    alg, *_ = run
    assert isinstance(alg.net.rule, ASPLearning)
    assert alg.net.rule.leak_writes == 3 * 12  # one digital leak per presentation (leak_interval 1)


def test_bad_phases_are_named():
    cls = get_algorithm("asp")
    hw = Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="phases"):
        cls(cls.make_params(phases=[0, 0]), hw)
    with pytest.raises(ValueError, match="phases"):
        cls(cls.make_params(phases=[]), hw)


def test_label_images_are_held_out_from_training(run):
    """The labels of every phase come from the same n_assign_per_class images per class, never trained on."""
    alg, *_ = run
    d = load_digits()
    for c in range(10):
        idx = alg._assign_idx[c]
        assert len(idx) == 10 and bool((d.y_train[idx] == c).all())
    trained = torch.cat(alg._phase_idx)
    assert len(trained) == 3 * 12 and not bool(torch.isin(torch.cat(alg._assign_idx), trained).any())
    cls = get_algorithm("asp")
    hw = Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(0))
    n0 = int((d.y_train == 0).sum())
    alg = cls(cls.make_params(n_neurons=4, phases=[0], images_per_phase=n0 - 5, n_assign_per_class=10), hw)
    with pytest.raises(ValueError, match="images_per_phase"):
        alg.fit(d, EnergyLedger())


def test_gain_normalisation_is_kept_in_the_phase_scores():
    """With ``normalisation: gain`` the digital per-neuron input gain is part of the chip: the phase snapshot stores
    the gain Σ-normalising each column (column_sum/Σ_i w_ij) and the frozen scoring network reads through it."""
    d = load_digits()
    cls = get_algorithm("asp")
    params = cls.make_params(n_neurons=5, phases=[0, 1], images_per_phase=8, n_assign_per_class=10,
                             normalisation="gain", max_rate_hz=400.0)
    alg = cls(params, Hardware(device=IdealDevice(), generator=torch.Generator().manual_seed(1)))
    alg.fit(d, EnergyLedger())
    for snap in alg.snapshots():
        w, gain = snap["weights"], snap["gain"]
        want = snap["cfg"].column_sum(w.shape[1]) / w.sum(1, keepdim=True)
        assert gain is not None and torch.allclose(gain, want, rtol=1e-6)
        net = alg.frozen_network(snap)
        assert torch.equal(net.syn.gain, gain)
        x = (torch.rand(3, w.shape[1], generator=torch.Generator().manual_seed(0)) < 0.5).float()
        assert torch.allclose(net.syn.read(x.unsqueeze(0)), x.unsqueeze(0) @ w * gain, rtol=1e-5)
    rows = alg.evaluate(d.x_test, d.y_test, 0.0)
    assert [r["phase"] for r in rows] == [0, 1]
