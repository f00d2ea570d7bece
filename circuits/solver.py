"""Crossbar circuit solve (placeholder: the exact solver is being built under issue 3)."""

from __future__ import annotations

__all__ = ["transfer_matrix", "solve_crossbar"]


def transfer_matrix(g, r_wire_row, r_wire_col, r_source=0.0, r_sense=0.0, r_access=0.0):
    raise NotImplementedError("the exact IR-drop solver is not implemented yet")


def solve_crossbar(g, v, r_wire_row, r_wire_col, r_source=0.0, r_sense=0.0, r_access=0.0, iv=None):
    raise NotImplementedError("the exact IR-drop solver is not implemented yet")
