"""One experiment point: config → device, arrays, network → rows of the results table.

This is the one place where configuration turns into engine objects.
"""

from __future__ import annotations

import copy
import json
import time
from functools import lru_cache

import torch

from algorithms import CrossbarNetwork, accuracy
from circuits import ADC, COMPONENTS, DAC, CrossbarSpec, EnergyLedger
from device_models import Device, make_device

from .config import Config
from .datasets import Dataset, load_dataset
from .models import get_trained_model

__all__ = ["build_device", "device_label", "run_point", "build_network", "prepare"]

#: energy components always reported (so tables from different configs share columns)
ENERGY_COMPONENTS = COMPONENTS


def build_device(device_cfg: dict) -> Device:
    """A device from its config section: ``{model: rram, ...}`` or ``{preset: name, ...overrides}``."""
    params = copy.deepcopy(dict(device_cfg))
    params.pop("label", None)
    preset = params.pop("preset", None)
    if preset is not None:
        import device_models

        if not hasattr(device_models, "load_preset"):
            raise ValueError("preset: presets are not available in this build")
        params.pop("model", None)
        return device_models.load_preset(preset, **params)
    model = params.pop("model", "ideal")
    return make_device(model, **params)


def device_label(device_cfg: dict) -> str:
    return str(device_cfg.get("label") or device_cfg.get("preset") or device_cfg.get("model", "ideal"))


@lru_cache(maxsize=4)
def _dataset(name: str, path: str | None, test_fraction: float, split_seed: int) -> Dataset:
    return load_dataset(name, path, test_fraction, split_seed)


def prepare(cfg: Config):
    """Dataset (cached) and trained software model (cached) for ``cfg``."""
    d = cfg.dataset
    data = _dataset(d.name, d.path, d.test_fraction, cfg.model.seed)
    if d.n_train is not None:
        data = Dataset(data.name, data.x_train[: d.n_train], data.y_train[: d.n_train], data.x_test, data.y_test, data.image_shape)
    data_key = json.dumps(d.model_dump(), sort_keys=True)
    model = get_trained_model(cfg.model.model_dump(), data, data_key)
    return data, model


def build_network(cfg: Config, model: torch.nn.Module, generator: torch.Generator) -> CrossbarNetwork:
    xb = cfg.crossbar
    spec = CrossbarSpec(
        rows=xb.rows,
        cols=xb.cols,
        r_wire_row=xb.r_wire_row,
        r_wire_col=xb.r_wire_col,
        r_source=xb.r_source,
        r_sense=xb.r_sense,
        r_access=xb.r_access,
        solver=xb.solver,
        v_read=xb.v_read,
        t_read_s=xb.t_read_s,
        scheme=cfg.mapping.scheme,
        weight_bits=cfg.mapping.weight_bits,
        bits_per_cell=cfg.mapping.bits_per_cell,
    )
    dac = DAC(bits=xb.dac.bits, x_max=xb.dac.x_max, e_1bit_J=xb.dac.e_1bit_J, mode=xb.input_mode)
    adc = ADC(
        bits=xb.adc.bits,
        range_mode=xb.adc.range,
        percentile=xb.adc.percentile,
        i_range=xb.adc.i_range,
        fom_J_per_step=xb.adc.fom_J_per_step,
        e_floor_J=xb.adc.e_floor_J,
        energy_model=xb.adc.energy_model,
        tech_node_nm=xb.adc.tech_node_nm,
        roadmap=xb.adc.roadmap,
        e_conv_J=xb.adc.e_conv_J,
        t_conv_s=xb.adc.t_conv_s,
        cols_per_adc=xb.adc.cols_per_adc,
        gain_sigma=xb.adc.gain_sigma,
        offset_sigma_lsb=xb.adc.offset_sigma_lsb,
        noise_sigma_lsb=xb.adc.noise_sigma_lsb,
    )
    dtype = getattr(torch, cfg.runtime.dtype)
    return CrossbarNetwork(model, build_device(cfg.device), spec, dac, adc, generator=generator, dtype=dtype)


def ledger_columns(ledger: EnergyLedger) -> dict:
    """Result-row metrics of one evaluation: energies per inference by component (summing to
    ``energy_per_inference_J``), ``latency_s``, op counts and op-count energies (circuits.energy)."""
    per_inf = ledger.per_inference()
    row = {"energy_per_inference_J": per_inf.pop("total")}
    for comp in ENERGY_COMPONENTS:
        row[f"energy_{comp}_J"] = per_inf.pop(comp, 0.0)
    for comp, e in sorted(per_inf.items()):
        row[f"energy_{comp}_J"] = e
    row["latency_s"] = ledger.latency_s()
    ops = ledger.ops_per_inference()
    row.update({"ops_mac": ops["ops_mac"], "ops_ac": ops["ops_ac"]})
    row.update(ledger.opcount_energy())
    return row


def run_point(cfg: Config, breakdown: bool = False) -> list[dict]:
    """Evaluate one configuration: one row per (evaluation time, drift-compensation setting).

    With ``breakdown=True`` every row carries ``"_breakdown"``: the ledger's tidy records
    (layer × component: energy, events and latency per inference) for that evaluation.
    """
    t_start = time.perf_counter()
    data, model = prepare(cfg)
    n_test = cfg.eval.n_test or data.x_test.shape[0]
    x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]
    acc_sw = accuracy(model, x_test, y_test, cfg.eval.batch_size)

    tdev = torch.device(cfg.runtime.torch_device)
    gen = torch.Generator(device=tdev).manual_seed(cfg.seed)
    net = build_network(cfg, model, gen)
    net.calibrate(data.x_train[: cfg.eval.n_calibration])

    rows = []
    for t_s in cfg.eval.times_s:
        net.set_time(t_s)
        for dc in cfg.eval.drift_compensation:
            net.set_drift_compensation(dc)
            ledger = EnergyLedger()
            acc_hw = accuracy(lambda x, _l=ledger: net.forward(x, _l), x_test, y_test, cfg.eval.batch_size)
            row = {
                "name": cfg.name,
                "seed": cfg.seed,
                "device": device_label(cfg.device),
                "t_s": float(t_s),
                "drift_compensation": bool(dc),
                "accuracy_sw": acc_sw,
                "accuracy_hw": acc_hw,
                "accuracy_drop": acc_sw - acc_hw,
                **ledger_columns(ledger),
            }
            row.update({"n_arrays": net.n_arrays, "n_test": n_test})
            if breakdown:
                row["_breakdown"] = ledger.records()
            rows.append(row)
    wall = time.perf_counter() - t_start
    for row in rows:
        row["wall_s"] = wall
    return rows
