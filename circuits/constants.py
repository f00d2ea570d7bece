"""Published constants of the peripheral energy and latency models, each with its source.

Tags (docs/references.md): **[code]**/**[src]** read in a public tool's source, **[lit]** a
literature value, **[mem]** recalled and not re-checked, **[est]** an engineering estimate.
"""

from __future__ import annotations

__all__ = [
    "HOROWITZ_45NM_J",
    "INT_ADD_J",
    "OPCOUNT_E_MAC_J",
    "OPCOUNT_E_AC_J",
    "NEUROSIM_SAR_LSTP",
    "NEUROSIM_SAR_HP",
    "NEUROSIM_SAR_CYCLE_S",
    "NEUROSIM_COLS_PER_ADC",
    "ISAAC_ADC_POWER_W",
    "ISAAC_ADC_RATE_HZ",
    "ISAAC_ADC_E_CONV_J",
    "ISAAC_T_READ_S",
    "SENSE_AMP_E_J",
    "SENSE_AMP_T_S",
    "int_add_energy_J",
]

#: Energy per operation at 45 nm, 0.9 V [J] (Horowitz, "Computing's energy problem", ISSCC 2014, Fig. 1.1.9).
#: int32 add/mult and fp32 add/mult are verified against a table citing Horowitz; int8/int16 add, int8 mult,
#: fp16 values are [mem] (docs/circuits.md).
HOROWITZ_45NM_J: dict[str, float] = {
    "int8_add": 0.03e-12,
    "int16_add": 0.05e-12,
    "int32_add": 0.1e-12,
    "int8_mult": 0.2e-12,
    "int32_mult": 3.1e-12,
    "fp16_add": 0.4e-12,
    "fp16_mult": 1.1e-12,
    "fp32_add": 0.9e-12,
    "fp32_mult": 3.7e-12,
}

#: Integer add energy by word width [J] (Horowitz 2014, 45 nm; see :data:`HOROWITZ_45NM_J`).
INT_ADD_J: dict[int, float] = {8: 0.03e-12, 16: 0.05e-12, 32: 0.1e-12}

#: SNN-paper op-count convention, 45 nm (Horowitz 2014): MAC = fp32 mult + add = 3.7 + 0.9 = 4.6 pJ;
#: AC (accumulate only) = fp32 add = 0.9 pJ (docs/circuits.md; Lee et al. 2020; Rathi 2020).
OPCOUNT_E_MAC_J = 4.6e-12
OPCOUNT_E_AC_J = 0.9e-12

#: NeuroSim SAR-ADC power fit per technology node [nm] → (a [µW], b [µW], c [W], d)
#: ``P = (a·log2 L + b)·1e-6 + c·exp(−d·log10 R_col)`` (DNN+NeuroSim V1.4 ``SarADC.cpp`` [src];
#: docs/circuits.md). LSTP/LP roadmap (the V1.4 default). Nodes 5–1 nm have no ``d`` in the
#: source table as transcribed; 2.303 (= ln 10, the value at every other node) is used there [est].
NEUROSIM_SAR_LSTP: dict[int, tuple[float, float, float, float]] = {
    130: (8.4483, 65.243, 0.16938, 2.303),
    90: (5.9869, 37.462, 0.144323, 2.303),
    65: (3.7506, 25.844, 0.121272, 2.303),
    45: (2.1691, 16.693, 0.100225, 2.303),
    32: (1.1294, 8.8998, 0.079449, 2.297),
    22: (0.538, 4.3753, 0.072341, 2.303),
    14: (0.3132, 2.5681, 0.061085, 2.303),
    10: (0.1823, 1.5073, 0.05158, 2.303),
    7: (0.1061, 0.8847, 0.043555, 2.303),
    5: (0.0645, 0.5511, 0.0388, 2.303),
    3: (0.0333, 0.2849, 0.0388, 2.303),
    2: (0.0207, 0.1764, 0.0313, 2.303),
    1: (0.0101, 0.0843, 0.0288, 2.303),
}
#: Same fit, HP roadmap (docs/circuits.md).
NEUROSIM_SAR_HP: dict[int, tuple[float, float, float, float]] = {
    130: (6.4806, 49.047, 0.207452, 2.367),
    90: (4.3474, 31.782, 0.1649, 2.345),
    65: (2.9503, 22.047, 0.128483, 2.321),
    45: (2.1843, 11.931, 0.097754, 2.296),
    32: (1.0157, 7.6286, 0.083709, 2.313),
    22: (0.7213, 3.3041, 0.084273, 2.311),
    14: (0.4710, 1.9529, 0.060584, 2.311),
    10: (0.3076, 1.1543, 0.049418, 2.311),
    7: (0.2008, 0.6823, 0.04031, 2.311),
}
#: NeuroSim SAR timing: one 1-ns cycle per bit plus one, ``t_conv = (log2 L + 1)·1 ns`` [src SarADC.cpp].
NEUROSIM_SAR_CYCLE_S = 1e-9
#: Columns multiplexed onto one ADC: ``numColMuxed = 8`` in DNN+NeuroSim V1.4 [code] (docs/circuits.md).
NEUROSIM_COLS_PER_ADC = 8

#: ISAAC (Shafiee et al., ISCA 2016): 8-bit ADC at 1.28 GS/s drawing 2 mW, hence 2 mW / 1.28 GS/s =
#: 1.5625 pJ per conversion (docs/circuits.md: MNSIM ``ADC.py`` choice 2, PUMA constants 1.8 mW dyn +
#: 0.2 mW leak [src]); one ADC per 128×128 array, 100 ns crossbar read cycle [lit].
ISAAC_ADC_POWER_W = 2e-3
ISAAC_ADC_RATE_HZ = 1.28e9
ISAAC_ADC_E_CONV_J = ISAAC_ADC_POWER_W / ISAAC_ADC_RATE_HZ
ISAAC_T_READ_S = 100e-9

#: 1-bit current/voltage sense amplifier: 1–20 fJ per sense at 22–45 nm [est] (docs/circuits.md);
#: 10 fJ is the log-midpoint of that span [est]. Sensing time 1 ns [est].
SENSE_AMP_E_J = 10e-15
SENSE_AMP_T_S = 1e-9


def int_add_energy_J(bits: int) -> float:
    """Energy [J] of one integer add of ``bits``-bit words (Horowitz 2014, 45 nm).

    The smallest tabulated width ≥ ``bits`` (8, 16, 32: 0.03, 0.05, 0.1 pJ); wider words scale
    linearly from the 32-bit value, ``0.1 pJ·bits/32`` [est].
    """
    bits = max(int(bits), 1)
    for width in sorted(INT_ADD_J):
        if bits <= width:
            return INT_ADD_J[width]
    return INT_ADD_J[32] * bits / 32
