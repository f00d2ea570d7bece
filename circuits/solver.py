"""Exact crossbar circuit solve: nodal analysis of the canonical topology (docs/circuits.md).

Circuit (docs/circuits.md). Row ``i`` is driven by an ideal source ``v[i]`` through ``r_source`` into row
node (i, 0); row nodes (i, j)–(i, j+1) are joined by ``r_wire_row``; cell (i, j) — conductance
``g[i, j]``, in series with an access resistance ``r_access`` (1T1R) — joins row node (i, j) to
column node (i, j); column nodes (i, j)–(i+1, j) are joined by ``r_wire_col``; column ``j`` leaves
node (rows−1, j) through ``r_sense`` into a virtual ground. The output ``i[:, j]`` is the current
through ``r_sense``, which by Kirchhoff's current law equals the sum of the cell currents of column
``j``. A resistance of 0 is an ideal wire: its two nodes are merged, never divided by.

Linear cells: the network is linear in ``v``, so ``i = v @ T`` and the power drawn from the sources
is ``P = v Y vᵀ``. :func:`transfer_matrix` computes ``T`` and ``Y`` exactly by nested
dissection of the nodal equations (a hierarchical Schur complement; George, SIAM J. Numer. Anal.
10, 345, 1973; as "hierarchical Poincaré–Steklov" merging in Martinsson, J. Comput. Phys. 242, 460,
2013):

* The array is padded to h0·2^a × w0·2^b cells (h0, w0 ∈ 2…7) with g = 0 cells above and to the
  right — their wires dangle and their own ports couple to nothing, so this is exact — and cut into
  leaf blocks of h0×w0 cells. Every block is described by its
  Dirichlet-to-Neumann (DtN) map ``S`` on its *ports*, the nodes wired to the outside: left/right
  row nodes ``L``/``R`` and top/bottom column nodes ``T``/``B`` (when a wire resistance is 0 the
  row — or column — nodes of a block are one node, port ``U`` — or ``W``). ``J = S x`` gives the
  currents injected at the ports for port voltages ``x``. A leaf's ``S`` is the Schur complement of
  its nodal (conductance-Laplacian) matrix onto its ports.
* Two neighbouring blocks merge: the wire segments joining them are put in series with one block's
  facing ports (the series map below), which then *are* the other block's facing ports, and these
  shared nodes are eliminated: ``S = K_EE − K_EI K_II⁻¹ K_IE`` (Cholesky; ``K_II`` is symmetric
  positive definite because every node is wired to an outer port). All merges of a
  level are one batched tensor operation; levels alternate between rows and columns so blocks stay
  square, which makes the cost ``O(n³)`` for an n×n array instead of ``O(n⁴)`` for the
  block-tridiagonal sweep (benchmarks/solver_results.md has both).
* Accuracy: every block is floating (no path to ground inside the array), so each exact ``S`` has
  zero row sums. Its off-diagonal entries come out of the Schur complement without cancellation
  (an M-matrix: ``K_EI ≤ 0``, ``K_II⁻¹ ≥ 0``), but a diagonal entry is a difference of wire-sized
  terms (``1/r_wire`` ≫ ``g``). The diagonal is therefore recomputed as minus the sum of its row's
  off-diagonal entries (the trick of Grassmann, Taksar & Heyman, Oper. Res. 33, 1107, 1985), which
  keeps the small, cell-sized parts of ``S`` accurate to rounding: the computed IR drop stays
  proportional to ``r_wire`` down to ``g·r_wire ≈ 1e-16`` (tests/test_solver.py).
* Whole array: the free ports (right row ends, top column ends) are eliminated, leaving ``S`` on the
  inputs (row nodes (i, 0)) and outputs (column nodes (rows−1, j)). A series resistance ``r`` on a
  set ``I`` of ports maps ``S`` to ``S_EE − r S_EI W S_IE``, ``S_EI W``, ``S_II W`` with
  ``W = (I + r S_II)⁻¹`` (exact and finite for r = 0); with ``r_source`` on the inputs and
  ``r_sense`` on the outputs the far ends are the sources and the virtual ground, so
  ``T = −S_in,out`` and ``Y = S_in,in``.

Nonlinear cells (``iv=`` a device with ``nonlinear_iv`` and ``current(g, v)``; e.g. RRAM
``a·sinh(b·v)``) and the iterative path use the *cell-current* form of the same equations, which
needs no factorisation. With ``c`` the cell currents and ``x`` the voltages across the cells, the
wires give ``x = v·1ᵀ − Z(c)``, where ``Z(c)[i, j]`` is the voltage lost on the way from source ``i``
to cell (i, j) and from there to the virtual ground::

    Z(c)[i, j] = r_source·Σ_l c[i, l] + r_wire_row·Σ_{k=1..j} Σ_{l≥k} c[i, l]       (row i)
               + r_sense·Σ_k c[k, j] + r_wire_col·Σ_{m=i..M−2} Σ_{k≤m} c[k, j]      (column j)
               + r_access·c[i, j]

(prefix/suffix sums: ``O(rows·cols)`` per product, exact for zero resistances). ``Z`` is symmetric
positive semidefinite. Linear cells (``c = g·x``) give ``(I + s Z s) y = s v·1ᵀ`` with ``s = √g``,
``y = s x`` — symmetric positive definite with all eigenvalues ≥ 1, solved by conjugate gradients.
Nonlinear cells ``c = f(x)`` are solved by Newton's method on ``F(x) = x + Z(f(x)) − v·1ᵀ``; each
step solves ``(I + Z D) δ = −F`` (``D = diag f'(x)``) by CG on the symmetric form
``(I + D^½ Z D^½) y = −D^½ F``, ``δ = −F − Z(D^½ y)``, with step halving when a step does not
reduce ``|F|``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import threading
import warnings

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "transfer_matrix",
    "solve_crossbar",
    "solve_crossbar_iterative",
    "SolverConvergenceError",
    "SolverConvergenceWarning",
    "check_resistances",
]


class SolverConvergenceError(RuntimeError):
    """An iterative crossbar solve did not reach its tolerance within its iteration budget."""


class SolverConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`SolverConvergenceError` when ``on_fail="warn"``."""


# ------------------------------------------------------------------------------------------------
# argument checks
# ------------------------------------------------------------------------------------------------
def check_resistances(**resistances) -> dict:
    """Return the resistances as floats; raise ``ValueError`` naming any that is not finite and ≥ 0 Ω."""
    out = {}
    for name, val in resistances.items():
        try:
            f = float(val)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: got {val!r}; expected a resistance in Ω (a number ≥ 0)") from None
        if not (math.isfinite(f) and f >= 0.0):
            raise ValueError(f"{name}: got {val!r}; must be a finite resistance ≥ 0 Ω")
        out[name] = f
    return out


def _check_g(g) -> Tensor:
    if not isinstance(g, Tensor):
        g = torch.as_tensor(np.asarray(g, dtype=np.float64))
    if g.ndim < 2:
        raise ValueError(f"g: got shape {tuple(g.shape)}; expected [..., rows, cols] conductances in S")
    if not g.is_floating_point():
        g = g.to(torch.float64)
    if g.shape[-1] == 0 or g.shape[-2] == 0:
        raise ValueError(f"g: got shape {tuple(g.shape)}; rows and cols must be ≥ 1")
    if not bool(torch.isfinite(g).all()) or bool((g < 0).any()):
        raise ValueError("g: conductances must be finite and ≥ 0 S")
    return g


def _check_v(v, g: Tensor) -> Tensor:
    if not isinstance(v, Tensor):
        v = torch.as_tensor(np.asarray(v, dtype=np.float64))
    if v.ndim < 1 or v.shape[-1] != g.shape[-2]:
        raise ValueError(
            f"v: got shape {tuple(v.shape)}; expected [..., batch, rows] with rows = {g.shape[-2]} (g is {tuple(g.shape)})"
        )
    try:
        torch.broadcast_shapes(tuple(g.shape[:-2]), tuple(v.shape[:-2]))
    except RuntimeError:
        raise ValueError(
            f"v: leading (stack) dims {tuple(v.shape[:-2])} do not broadcast with g's {tuple(g.shape[:-2])}"
        ) from None
    if not bool(torch.isfinite(v).all()):
        raise ValueError("v: voltages must be finite")
    return v


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


# ------------------------------------------------------------------------------------------------
# transfer matrix: nested dissection with DtN maps
# ------------------------------------------------------------------------------------------------
_LEAVES = (4, 3, 5, 2, 6, 7)  # leaf sizes, preferred first among equally padded sizes
_SUPER = 1024  # cells per super-block: levels below it run chunk by chunk
_CHUNK_CELLS = 1 << 15  # cells per chunk of super-blocks
_BIG = 2048  # merges with at least this many ports use all torch threads; smaller ones one thread


def _plan(n: int) -> tuple[int, int]:
    """Leaf size and number of halvings: the smallest ``leaf·2^k ≥ n`` (padding is exact, see below)."""
    best = None
    for leaf in _LEAVES:
        k = 0
        while leaf << k < n:
            k += 1
        if best is None or (leaf << k) < (best[0] << best[1]):
            best = (leaf, k)
    return best


def _layout(h: int, w: int, crow: bool, ccol: bool) -> tuple[dict, int]:
    """Port segments of an h×w block: name -> (offset, length), and the port count."""
    segs = [("U", h)] if crow else [("L", h), ("R", h)]
    segs += [("W", w)] if ccol else [("T", w), ("B", w)]
    out, p = {}, 0
    for name, n in segs:
        out[name] = (p, n)
        p += n
    return out, p


#: the thread budget of the running :func:`transfer_matrix` call (None: leave torch's threading alone)
_BUDGET: contextvars.ContextVar = contextvars.ContextVar("xbarsim_solver_threads", default=None)


@contextlib.contextmanager
def _threads(n: int):
    """Within a :func:`transfer_matrix` call given ``threads=k``: run torch CPU ops with ``min(n, k)``
    intra-op threads, then restore (threading the many small dense steps makes them far slower, and
    the busy-waiting is worst on a loaded machine). Without a budget (the default) this does nothing:
    the solver never changes torch's process-wide thread count on its own."""
    budget = _BUDGET.get()
    if budget is None:
        yield
        return
    old = torch.get_num_threads()
    n = max(1, min(n, budget))
    if n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _gth(S: Tensor, sym: bool = True) -> Tensor:
    """Set the diagonal to minus the off-diagonal row sum (floating network: S·1 = 0); symmetrise first."""
    if sym:
        S = 0.5 * (S + S.mT)
    off = S.sum(-1) - torch.diagonal(S, dim1=-2, dim2=-1)
    S.diagonal(dim1=-2, dim2=-1).copy_(-off)
    return S


def _schur(K: Tensor, keep: int) -> Tensor:
    """Schur complement of ``K`` onto its first ``keep`` nodes (Cholesky), then :func:`_gth`."""
    if K.shape[-1] > keep:
        L = torch.linalg.cholesky(K[..., keep:, keep:])
        X = torch.linalg.solve_triangular(L, K[..., keep:, :keep], upper=False)
        K = K[..., :keep, :keep] - X.mT @ X
    return _gth(K)


@functools.lru_cache(maxsize=64)
def _leaf_structure(h0: int, w0: int, gr: float, gc: float, crow: bool, ccol: bool):
    """Wire part of a leaf's nodal matrix and its cell incidence, nodes ordered [ports, interior]."""
    nu = h0 if crow else h0 * w0
    uid = np.repeat(np.arange(h0)[:, None], w0, 1) if crow else np.arange(h0 * w0).reshape(h0, w0)
    wid = nu + (np.repeat(np.arange(w0)[None, :], h0, 0) if ccol else np.arange(h0 * w0).reshape(h0, w0))
    n = nu + (w0 if ccol else h0 * w0)
    K0 = np.zeros((n, n))

    def stamp(a, b, cond):
        np.add.at(K0, (a, a), cond)
        np.add.at(K0, (b, b), cond)
        np.add.at(K0, (a, b), -cond)
        np.add.at(K0, (b, a), -cond)

    if not crow:
        stamp(uid[:, :-1].ravel(), uid[:, 1:].ravel(), gr)
    if not ccol:
        stamp(wid[:-1, :].ravel(), wid[1:, :].ravel(), gc)
    inc = np.zeros((h0 * w0, n))  # cell incidence: +1 at its row node, −1 at its column node
    np.add.at(inc, (np.arange(h0 * w0), uid.ravel()), 1.0)
    np.add.at(inc, (np.arange(h0 * w0), wid.ravel()), -1.0)
    lay, p = _layout(h0, w0, crow, ccol)
    ports = np.empty(p, dtype=np.int64)
    where = {"U": uid[:, 0], "L": uid[:, 0], "R": uid[:, -1], "W": wid[0], "T": wid[0], "B": wid[-1]}
    for name, (o, m) in lay.items():
        ports[o : o + m] = where[name]
    order = np.concatenate([ports, np.setdiff1d(np.arange(n), ports)])
    return K0[np.ix_(order, order)], inc[:, order], p


def _leaf_dtn(g: Tensor, h0: int, w0: int, gr: float, gc: float, crow: bool, ccol: bool) -> Tensor:
    """DtN maps of leaf blocks ``g`` [X, h0, w0] onto their ports (layout :func:`_layout`)."""
    K0, inc, p = _leaf_structure(h0, w0, gr, gc, crow, ccol)
    inc_t = torch.as_tensor(inc, dtype=g.dtype, device=g.device)
    K = torch.as_tensor(K0, dtype=g.dtype, device=g.device)
    K = K + torch.einsum("cn,xc,cm->xnm", inc_t, g.reshape(g.shape[0], -1), inc_t)
    return _schur(K, p)


@functools.lru_cache(maxsize=256)
def _merge_plan(direction: str, h: int, w: int, crow: bool, ccol: bool):
    """Static index plan of a merge of two h×w blocks A, B ('h': A left of B; 'v': A above B).

    Returns ``(iA, eA, iB, eB, perm, nh, nw)``: A's interface ports ``iA`` (joined through one wire
    segment each to B's ``iB``; empty when that wire is ideal and the ports are shared), the
    remaining ports ``eA``/``eB``, and ``perm`` giving, for each port of the merged block in
    :func:`_layout` order, its position in the natural order [eA, eB].
    """
    lay, p = _layout(h, w, crow, ccol)
    nh, nw = (h, 2 * w) if direction == "h" else (2 * h, w)
    nlay, pn = _layout(nh, nw, crow, ccol)
    rng = {k: np.arange(o, o + n) for k, (o, n) in lay.items()}
    shared = ("U" if crow else None) if direction == "h" else ("W" if ccol else None)
    if direction == "h":
        iA, iB = (rng["R"], rng["L"]) if not crow else (rng["U"][:0], rng["U"][:0])
    else:
        iA, iB = (rng["B"], rng["T"]) if not ccol else (rng["W"][:0], rng["W"][:0])
    eA = np.setdiff1d(np.arange(p), iA)
    eB = np.setdiff1d(np.arange(p), np.concatenate([iB, rng[shared] if shared else iB[:0]]))
    posA = {int(q): k for k, q in enumerate(eA)}  # A's port -> natural position
    posB = {int(q): len(eA) + k for k, q in enumerate(eB)}
    if shared:
        posB.update({int(q): posA[int(q)] for q in rng[shared]})
    perm = np.empty(pn, dtype=np.int64)
    for seg, (o, n) in nlay.items():
        if seg == shared:
            src = [("A", rng[seg])]
        elif (direction == "h" and seg in ("T", "B", "W")) or (direction == "v" and seg in ("L", "R", "U")):
            src = [("A", rng[seg]), ("B", rng[seg])]  # concatenated: A's then B's
        else:  # outer side: L/T from A, R/B from B
            src = [("A" if seg in ("L", "T") else "B", rng[seg])]
        pos = np.concatenate([[(posA if who == "A" else posB)[int(q)] for q in idx] for who, idx in src])
        perm[o : o + n] = pos
    return iA, eA, iB, eB, perm, nh, nw


def _runs(idx) -> tuple:
    """Index array -> runs ``((start, stop), ...)`` of consecutive indices."""
    idx = np.asarray(idx)
    if idx.size == 0:
        return ()
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    return tuple((int(c[0]), int(c[-1]) + 1) for c in np.split(idx, cut))


def _take(S: Tensor, rr: tuple, cr: tuple) -> Tensor:
    """``S[..., rows, cols]`` for rows/cols given as runs: slices and concatenation, no index kernel."""
    rows = [S[..., a:b, :] for a, b in rr]
    if len(cr) == 1:
        c0, c1 = cr[0]
        tiles = [t[..., c0:c1] for t in rows]
    else:
        tiles = [torch.cat([t[..., c0:c1] for c0, c1 in cr], -1) for t in rows]
    return tiles[0] if len(tiles) == 1 else torch.cat(tiles, -2)


@functools.lru_cache(maxsize=256)
def _pair_runs(direction: str, h: int, w: int, crow: bool, ccol: bool):
    """Runs of a merge plan: A's/B's exterior and interface ports, and the output assembly tiles."""
    iA, eA, iB, eB, perm, _, _ = _merge_plan(direction, h, w, crow, ccol)
    na = len(eA)
    out = []  # runs of perm, each inside A's part [0, na) or B's part [na, na + nb)
    for a, b in _runs(perm):
        cuts = [a] + ([na] if a < na < b else []) + [b]
        out += [(int(x), int(y)) for x, y in zip(cuts, cuts[1:])]
    return _runs(iA), _runs(eA), _runs(iB), _runs(eB), tuple(out)


def _merge_pairs(A: Tensor, B: Tensor, plan, r_wire: float, runs) -> Tensor:
    """Merged DtN [X, pn, pn] (new layout) of block pairs ``A``, ``B`` [X, p, p]; see :func:`_merge`."""
    iA, eA, iB, eB, perm, _, _ = plan
    dev = A.device
    na, nb, k = len(eA), len(eB), len(iA)
    if not k:  # ideal wire between the blocks: B's shared ports are A's (same local index); sum them
        Snat = A.new_zeros(A.shape[0], na + nb, na + nb)
        Snat[:, :na, :na] = A
        sh = np.setdiff1d(np.arange(A.shape[-1]), eB)
        pos = torch.as_tensor(np.concatenate([sh, na + np.arange(nb)]), device=dev)
        src = torch.as_tensor(np.concatenate([sh, eB]), device=dev)
        Snat[:, pos[:, None], pos] += B[:, src[:, None], src]
        pt = torch.as_tensor(perm, device=dev)
        return _gth(Snat[:, pt[:, None], pt], sym=False)
    riA, reA, riB, reB, out_runs = runs
    Aie, Aii = _take(A, riA, reA), _take(A, riA, riA)
    Aee = _take(A, reA, reA)
    if r_wire:  # wire segments in series with A's interface ports: W = (I + r A_II)⁻¹ (SPD)
        eye = torch.eye(k, dtype=A.dtype, device=dev)
        L1, _ = torch.linalg.cholesky_ex(eye + r_wire * Aii)
        Z = torch.cholesky_solve(torch.cat([Aii, Aie], -1), L1)
        Aii, Aie_w = Z[..., :k], Z[..., k:]
        Aee = torch.baddbmm(Aee, Aie.mT, Aie_w, alpha=-r_wire)
        Aie = Aie_w
    L, _ = torch.linalg.cholesky_ex(Aii + _take(B, riB, riB))
    Xk = torch.linalg.solve_triangular(L, torch.cat([Aie, _take(B, riB, reB)], -1), upper=False)
    Xa, Xb = Xk[..., :na], Xk[..., na:]
    blocks = {
        (0, 0): torch.baddbmm(Aee, Xa.mT, Xa, alpha=-1.0),
        (0, 1): -(Xa.mT @ Xb),
        (1, 1): torch.baddbmm(_take(B, reB, reB), Xb.mT, Xb, alpha=-1.0),
    }
    blocks[(1, 0)] = blocks[(0, 1)].mT
    off = (0, na)
    rows = []
    for a, b in out_runs:
        pa = int(a >= na)
        tiles = [blocks[(pa, int(c >= na))][..., a - off[pa] : b - off[pa], c - off[int(c >= na)] : d - off[int(c >= na)]]
                 for c, d in out_runs]
        rows.append(torch.cat(tiles, -1))
    return _gth(torch.cat(rows, -2), sym=False)


def _merge(S: Tensor, direction: str, h: int, w: int, crow: bool, ccol: bool, r_wire: float, nt: int = 1):
    """Merge neighbouring blocks of the grid ``S`` [X, nbi, nbj, p, p] along ``direction`` ('h' or 'v').

    The wire segments joining A's interface ports to B's are put in series with A's ports
    (:func:`_series`), after which those ports *are* B's, and the shared nodes are eliminated:
    ``S = K_EE − K_EI K_II⁻¹ K_IE`` with ``K_II = S'_A,II + S_B,II`` (Cholesky), then :func:`_gth`.
    Pairs are processed in chunks of about 16 MB (large fresh allocations are slow); ``nt`` torch
    threads are used for merges with ≥ ``_BIG`` ports, one thread below.
    """
    plan = _merge_plan(direction, h, w, crow, ccol)
    runs = _pair_runs(direction, h, w, crow, ccol)
    nh, nw = plan[-2:]
    Xs, nbi, nbj, p = S.shape[:4]
    pn = len(plan[4])
    if direction == "h":
        P, unit, grid = S.reshape(-1, 2, p, p), 1, (Xs, nbi, nbj // 2)
    else:
        P, unit, grid = S.reshape(-1, 2, nbj, p, p), nbj, (Xs, nbi // 2, nbj)
    out = S.new_empty(P.shape[0] * unit, pn, pn)
    per = max(1, (1 << 21) // (pn * pn * unit))
    with _threads(nt if pn >= _BIG else 1):
        for u0 in range(0, P.shape[0], per):
            u1 = min(u0 + per, P.shape[0])
            A, B = P[u0:u1, 0].reshape(-1, p, p), P[u0:u1, 1].reshape(-1, p, p)
            out[u0 * unit : u1 * unit] = _merge_pairs(A, B, plan, r_wire, runs)
    return out.reshape(*grid, pn, pn), nh, nw


def _series(See: Tensor, Sei: Tensor, Sii: Tensor, r: float, sym: bool = True):
    """Put resistance ``r`` in series with ports I: new DtN blocks (exact and finite for r = 0)."""
    if r == 0.0:
        return See, Sei, Sii
    eye = torch.eye(Sii.shape[-1], dtype=Sii.dtype, device=Sii.device)
    A = eye + r * Sii
    Xi = torch.linalg.solve(A, Sii)
    Xe = torch.linalg.solve(A, Sei.mT)  # (I + r S_II)⁻¹ S_IE
    See = See - r * (Sei @ Xe)
    if not sym:
        return See, Xe.mT, Xi
    return 0.5 * (See + See.mT), Xe.mT, 0.5 * (Xi + Xi.mT)


def _low_levels(blk: Tensor, h0: int, w0: int, steps: str, gr, gc, crow, ccol, r) -> Tensor:
    """DtN maps [X, p, p] of super-blocks ``blk`` [X, hs, ws]: leaves of h0×w0, then ``steps`` merges."""
    hs, ws = blk.shape[-2:]
    leaves = blk.reshape(-1, hs // h0, h0, ws // w0, w0).permute(0, 1, 3, 2, 4)
    S = _leaf_dtn(leaves.reshape(-1, h0, w0), h0, w0, gr, gc, crow, ccol)
    S = S.reshape(blk.shape[0], hs // h0, ws // w0, *S.shape[-2:])
    h, w = h0, w0
    for d in steps:
        S, h, w = _merge(S, d, h, w, crow, ccol, r["r_wire_row"] if d == "h" else r["r_wire_col"])
    return S.reshape(blk.shape[0], *S.shape[-2:])


def _port_dtn(g: Tensor, r: dict, nt: int) -> tuple[Tensor, Tensor, Tensor]:
    """DtN of the whole (floating) array on inputs (row nodes (i,0)) and outputs (column nodes (M−1,j))."""
    X, M, N = g.shape
    crow, ccol = r["r_wire_row"] == 0.0, r["r_wire_col"] == 0.0
    if crow and ccol:  # every row is one node, every column is one node: a bipartite network
        return torch.diag_embed(g.sum(-1)), -g, torch.diag_embed(g.sum(-2))
    gr = 0.0 if crow else 1.0 / r["r_wire_row"]
    gc = 0.0 if ccol else 1.0 / r["r_wire_col"]
    h0, a = _plan(M)
    w0, b = _plan(N)
    Mp, Np = h0 << a, w0 << b
    # Padding: extra rows on top and extra columns on the right with g = 0 cells. Their wires dangle
    # (no current flows), their own ports couple to nothing, so the real ports' S is unchanged.
    gp = torch.nn.functional.pad(g, (0, Np - N, Mp - M, 0))
    if crow:
        steps = "v" * a + "h" * b  # row merges only sum (no interface): do the eliminating ones while small
    elif ccol:
        steps = "h" * b + "v" * a
    else:
        steps, ra, rb = "", a, b
        while ra or rb:
            hw = rb and (not ra or (w0 << (b - rb)) <= (h0 << (a - ra)))
            steps += "h" if hw else "v"
            rb, ra = (rb - 1, ra) if hw else (rb, ra - 1)
    # The first levels (blocks up to _SUPER cells) run on chunks of super-blocks so that their many
    # small matrices stay in cache (memory traffic, not flops, limits those levels).
    n_low = 0
    hs, ws = h0, w0
    while n_low < len(steps) and hs * ws < _SUPER:
        hs, ws = (hs, 2 * ws) if steps[n_low] == "h" else (2 * hs, ws)
        n_low += 1
    sup = gp.reshape(X, Mp // hs, hs, Np // ws, ws).permute(0, 1, 3, 2, 4).reshape(-1, hs, ws)
    chunk = max(1, _CHUNK_CELLS // (hs * ws))
    with _threads(1):
        parts = [
            _low_levels(sup[c0 : c0 + chunk], h0, w0, steps[:n_low], gr, gc, crow, ccol, r)
            for c0 in range(0, sup.shape[0], chunk)
        ]
    S = torch.cat(parts).reshape(X, Mp // hs, Np // ws, *parts[0].shape[-2:])
    h, w = hs, ws
    for d in steps[n_low:]:
        S, h, w = _merge(S, d, h, w, crow, ccol, r["r_wire_row"] if d == "h" else r["r_wire_col"], nt)
    S = S.reshape(X, *S.shape[-2:])
    lay, p = _layout(Mp, Np, crow, ccol)
    rows, cols = np.arange(Mp - M, Mp), np.arange(N)  # the real rows (padding is on top) and columns
    idx = [lay["U" if crow else "L"][0] + rows, lay["W" if ccol else "B"][0] + cols]
    if not crow:
        idx.append(lay["R"][0] + rows)  # free right ends of the rows
    if not ccol:
        idx.append(lay["T"][0] + cols)  # free top ends of the columns
    # Ports of padded rows/columns couple only among themselves, so they are dropped; the free ends
    # of the real rows/columns are eliminated.
    sel = torch.as_tensor(np.concatenate(idx), device=g.device)
    with _threads(nt if len(sel) >= _BIG else 1):
        S = _schur(S[:, sel[:, None], sel[None, :]], M + N)
    return S[:, :M, :M], S[:, :M, M:], S[:, M:, M:]


def _flatten_stack(g: Tensor) -> tuple[Tensor, tuple]:
    stack = tuple(g.shape[:-2])
    return g.reshape(-1, *g.shape[-2:]), stack


def _effective_g(g: Tensor, r_access: float) -> Tensor:
    """A cell in series with ``r_access``: ``g/(1 + g·r_access)`` (exact; finite for g → ∞ is not needed)."""
    return g if r_access == 0.0 else g / (1.0 + g * r_access)


def transfer_matrix(g, r_wire_row, r_wire_col, r_source=0.0, r_sense=0.0, r_access=0.0, threads="auto"):
    """Exact transfer matrix ``T`` and input admittance ``Y`` of crossbars with linear cells.

    Parameters
    ----------
    g : Tensor [..., rows, cols]
        Cell conductances [S] (leading dims: a stack of independent arrays; any float dtype/device).
    r_wire_row, r_wire_col, r_source, r_sense, r_access : float
        Resistances [Ω] of one row-wire segment, one column-wire segment, each row driver, each
        column's sense path and each cell's access transistor (0: ideal).
    threads : "auto", int or None
        Per-call thread budget. An integer ``k``: the many small dense steps run on one thread and
        the large merges on ``k`` threads — much faster than leaving them to torch's pool, above all
        on a loaded machine, where idle OpenMP threads busy-wait (16× at 32×32 on a loaded 2-core
        box; benchmarks/solver_results.md was measured this way). torch's intra-op thread count is
        process-wide, so the call sets it for its duration and restores it after: only safe when no
        other thread runs torch meanwhile. ``None``: torch's threading is left exactly as the caller
        set it (no change of any kind). ``"auto"`` (default): the budget ``torch.get_num_threads()``
        when the calling thread is the process's only Python thread (nobody can observe the
        temporary change), else ``None``. Either way ``torch.get_num_threads()`` is unchanged after
        the call.

    Returns
    -------
    T : Tensor [..., rows, cols]
        ``i = v @ T`` [A] for row voltages ``v`` [V] (current through ``r_sense`` into virtual ground).
    Y : Tensor [..., rows, rows]
        Input admittance [S]: the power drawn from the sources is ``P = v Y vᵀ`` [W] (dissipated in
        cells, wires, source, sense and access resistances), so the read energy is ``P·t_read``.

    Computed in float64 by nested dissection of the nodal equations (module docstring),
    returned in ``g``'s dtype; agrees with a sparse direct solve to ~1e-12 and with ngspice to
    ~1e-13. Cost ``O(n³)`` for an n×n array: 0.40 s at 256×256 and 13 s at 1024×1024 on 2 cores,
    against 1.7 s at 256 for the block-tridiagonal elimination and 14 s for a sparse-LU
    transfer matrix (benchmarks/solver_results.md). Leading dims of ``g`` are solved together.
    """
    r = check_resistances(
        r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_source=r_source, r_sense=r_sense, r_access=r_access
    )
    g = _check_g(g)
    if threads == "auto":
        threads = torch.get_num_threads() if threading.active_count() == 1 else None
    elif threads is not None and (isinstance(threads, (bool, str)) or int(threads) != threads or threads < 1):
        raise ValueError(f"threads: got {threads!r}; allowed: 'auto', an integer ≥ 1, or None (leave torch's threading alone)")
    nt = torch.get_num_threads() if threads is None else int(threads)
    token = _BUDGET.set(None if threads is None else int(threads))
    try:
        return _transfer(g, r, nt)
    finally:
        _BUDGET.reset(token)


def _transfer(g: Tensor, r: dict, nt: int):
    gf, stack = _flatten_stack(g)
    wd = _work_dtype(g.device)
    ge = _effective_g(gf.to(wd), r["r_access"])
    Ts, Ys = [], []
    per = max(1, (1 << 22) // ge[0].numel())  # arrays per batch: bounds memory for large stacks
    with _threads(1):
        for a in range(0, ge.shape[0], per):
            Sii, Sio, Soo = _port_dtn(ge[a : a + per], r, nt)
            with _threads(nt if g.shape[-1] + g.shape[-2] >= _BIG else 1):
                Soo, Soi, Sii = _series(Soo, Sio.mT, Sii, r["r_source"])  # source resistors on the inputs
                Sii, Sio, Soo = _series(Sii, Soi.mT, Soo, r["r_sense"])  # sense resistors on the outputs
            Ts.append((-Sio).to(g.dtype))
            Ys.append(Sii.to(g.dtype))
    T = torch.cat(Ts).reshape(*stack, *g.shape[-2:])
    Y = torch.cat(Ys).reshape(*stack, g.shape[-2], g.shape[-2])
    return T, Y


# ------------------------------------------------------------------------------------------------
# cell-current form: Z operator, conjugate gradients, Newton
# ------------------------------------------------------------------------------------------------
def _zop(c: Tensor, r: dict) -> Tensor:
    """Voltage lost on the wires, source, sense and access paths for cell currents ``c`` [..., M, N]."""
    z = torch.zeros_like(c)
    if r["r_source"] or r["r_wire_row"]:
        suf = c.flip(-1).cumsum(-1).flip(-1)  # current in row segment k (into node k): Σ_{l≥k} c
        tot = suf[..., :1]
        z = z + r["r_source"] * tot
        if r["r_wire_row"]:
            z = z + r["r_wire_row"] * (suf.cumsum(-1) - tot)
    if r["r_sense"] or r["r_wire_col"]:
        pre = c.cumsum(-2)  # current in column segment below node m: Σ_{k≤m} c
        tot = pre[..., -1:, :]
        z = z + r["r_sense"] * tot
        if r["r_wire_col"]:
            z = z + r["r_wire_col"] * (pre.flip(-2).cumsum(-2).flip(-2) - tot)
    if r["r_access"]:
        z = z + r["r_access"] * c
    return z


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum((-2, -1))


def _cg(apply, b: Tensor, y: Tensor, rtol: float, max_iter: int):
    """Conjugate gradients on ``apply(y) = b`` per sample (sum over the last two dims).

    Returns ``(y, relative residual ‖b − A y‖/‖b‖ per sample, iterations)``; stops when every
    sample's relative residual is ≤ ``rtol`` (samples with ``b = 0`` count as converged at y = 0).
    """
    bn = _dot(b, b).sqrt()
    zero = bn == 0
    y = torch.where(zero[..., None, None], torch.zeros_like(y), y)
    res = b - apply(y)
    p = res.clone()
    rr = _dot(res, res)
    tol2 = (rtol * bn) ** 2
    it = 0
    while it < max_iter:
        if bool((rr <= tol2).all()):
            break
        ap = apply(p)
        pap = _dot(p, ap)
        active = (rr > tol2) & (pap > 0)
        alpha = torch.where(active, rr / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rr))
        y = y + alpha[..., None, None] * p
        res = res - alpha[..., None, None] * ap
        rr_new = _dot(res, res)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = res + beta[..., None, None] * p
        rr = rr_new
        it += 1
        if it % 50 == 0:  # refresh the recursive residual against drift
            res = b - apply(y)
            rr = _dot(res, res)
    relres = torch.where(zero, torch.zeros_like(bn), rr.sqrt() / torch.where(zero, torch.ones_like(bn), bn))
    return y, relres, it


def _fail(msg: str, on_fail: str) -> None:
    if on_fail == "raise":
        raise SolverConvergenceError(msg)
    warnings.warn(msg, SolverConvergenceWarning, stacklevel=3)


def _broadcast(g: Tensor, v: Tensor):
    """g [..., M, N], v [..., B, M] -> flat g [S, M, N], v [S, B, M] (stacks broadcast) and the stack."""
    stack = torch.broadcast_shapes(tuple(g.shape[:-2]), tuple(v.shape[:-2]))
    M, N = g.shape[-2:]
    gb = g.expand(*stack, M, N).reshape(-1, M, N)
    vb = v.expand(*stack, v.shape[-2], M).reshape(-1, v.shape[-2], M)
    return gb, vb, stack


def _chunks(n_batch: int, per_sample: int, budget: int = 1 << 19):
    """Batch ranges of about ``budget`` elements: small tensors are reused by the allocator, while
    fresh multi-MB allocations cost page faults that dominate these memory-bound loops."""
    step = max(1, budget // max(per_sample, 1))
    return [(s, min(s + step, n_batch)) for s in range(0, n_batch, step)]


def _linear_cg(g: Tensor, v: Tensor, r: dict, x0: Tensor | None, rtol: float, max_iter: int):
    """Cell voltages x [S, B, M, N] of linear cells by CG on (I + sZs) y = s v1ᵀ, y = s x."""
    s = g.sqrt()[:, None]  # [S, 1, M, N]
    b = s * v[..., None]  # [S, B, M, N]
    y0 = b.clone() if x0 is None else s * x0
    y, relres, it = _cg(lambda y: y + s * _zop(s * y, r), b, y0, rtol, max_iter)
    x = v[..., None] - _zop(s * y, r)
    return x, relres, it


def _default_max_iter(M: int, N: int) -> int:
    return 10 * (M + N) + 200


def solve_crossbar_iterative(
    g,
    v,
    r_wire_row,
    r_wire_col,
    r_source=0.0,
    r_sense=0.0,
    r_access=0.0,
    x0=None,
    rtol=1e-9,
    max_iter=None,
    return_state=False,
    on_fail="raise",
):
    """Column currents by warm-started conjugate gradients (no factorisation; for changing ``g``).

    Solves ``(I + s Z s) y = s v·1ᵀ`` (``s = √g``, ``y = s x``, ``x`` the cell voltages; module
    docstring) for each input vector, starting from ``x0`` (cell voltages [..., batch, rows, cols] of
    a previous solve, e.g. before a learning update) or from the ideal-wire voltages. Stops when
    ``‖b − A y‖ ≤ rtol·‖b‖`` for every vector. Since every eigenvalue of ``A`` is ≥ 1, the error then
    obeys ``‖y − y*‖ ≤ rtol·‖b‖`` and ``|Δi_j| ≤ √(Σ_i g_ij)·‖y − y*‖`` — a verified bound, not
    an estimate. Each iteration costs ``O(batch·rows·cols)``; the count grows with the IR-drop
    figure ``g·r_wire·n²``. If some vector has not converged after ``max_iter`` iterations
    (default ``10·(rows + cols) + 200``) it raises :class:`SolverConvergenceError`
    (``on_fail="warn"``: warns :class:`SolverConvergenceWarning` and returns the iterate).

    Returns ``i`` [..., batch, cols] in ``g``'s dtype, and with ``return_state=True`` also the cell
    voltages ``x`` [..., batch, rows, cols] to pass as the next ``x0``.
    """
    r = check_resistances(
        r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_source=r_source, r_sense=r_sense, r_access=r_access
    )
    g = _check_g(g)
    if on_fail not in ("raise", "warn"):
        raise ValueError(f"on_fail: got {on_fail!r}; allowed: raise, warn")
    if not (float(rtol) > 0):
        raise ValueError(f"rtol: got {rtol!r}; must be > 0")
    v = _check_v(v, g)
    squeeze = v.ndim == 1
    if squeeze:
        v = v[None]
    M, N = g.shape[-2:]
    max_iter = _default_max_iter(M, N) if max_iter is None else int(max_iter)
    wd = _work_dtype(g.device)
    gb, vb, stack = _broadcast(g.to(wd), v.to(device=g.device, dtype=wd))
    nb = vb.shape[1]
    if x0 is not None:
        x0 = torch.as_tensor(x0, device=g.device)
        want = (*stack, nb, M, N)
        try:
            x0 = x0.to(wd).expand(want).reshape(-1, nb, M, N)
        except RuntimeError:
            raise ValueError(f"x0: got shape {tuple(x0.shape)}; expected cell voltages {want}") from None
    xs, worst, iters = [], 0.0, 0
    for a, b in _chunks(nb, gb.shape[0] * M * N):
        x, relres, it = _linear_cg(gb, vb[:, a:b], r, None if x0 is None else x0[:, a:b], float(rtol), max_iter)
        xs.append(x)
        worst, iters = max(worst, float(relres.max())), max(iters, it)
    if worst > rtol:
        _fail(
            f"solve_crossbar_iterative: relative residual {worst:.3g} > rtol={rtol:g} after {iters} "
            f"iterations (max_iter={max_iter}); raise max_iter or use solve_crossbar (direct)",
            on_fail,
        )
    x = torch.cat(xs, 1)
    i = (gb[:, None] * x).sum(-2)
    i = i.to(g.dtype).reshape(*stack, nb, N)
    if squeeze:
        i = i[..., 0, :]
    if return_state:
        return i, x.to(g.dtype).reshape(*stack, nb, M, N)
    return i


def _derivative(iv, g: Tensor, x: Tensor) -> Tensor:
    if hasattr(iv, "current_derivative"):
        return iv.current_derivative(g, x)
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        (d,) = torch.autograd.grad(iv.current(g, xx).sum(), xx)
    return d.detach()


def _newton(iv, g: Tensor, v: Tensor, r: dict, tol_v: float, max_newton: int, cg_max: int):
    """Cell voltages x [S, B, M, N] of nonlinear cells ``c = iv.current(g, x)`` by damped Newton."""
    g4 = g[:, None]
    vb = v[..., None]
    x, _, _ = _linear_cg(g, v, r, None, 1e-6, cg_max)  # small-signal (linear) start

    def residual(x):
        return x + _zop(iv.current(g4, x), r) - vb

    F = residual(x)
    fn = F.abs().amax((-2, -1))
    vmax = max(float(v.abs().max()), 1e-300)
    for _ in range(max_newton):
        sd = _derivative(iv, g4, x).clamp_min(0.0).sqrt()
        # inexact Newton (Eisenstat & Walker, SIAM J. Sci. Comput. 17, 16, 1996): the inner CG
        # tolerance follows |F|, which keeps the outer convergence quadratic without oversolving
        eta = min(1e-2, max(1e-13, float(fn.max()) / vmax))
        y, _, _ = _cg(lambda y, sd=sd: y + sd * _zop(sd * y, r), -sd * F, torch.zeros_like(F), eta, cg_max)
        delta = -F - _zop(sd * y, r)
        t = torch.ones_like(fn)
        for _ in range(40):  # halve the step for samples whose max|F| did not decrease
            x_try = x + t[..., None, None] * delta
            F_try = residual(x_try)
            fn_try = F_try.abs().amax((-2, -1))
            bad = ~(fn_try < fn) & (fn > tol_v)
            if not bool(bad.any()):
                break
            t = torch.where(bad, 0.5 * t, t)
        step = (t[..., None, None] * delta).abs().amax((-2, -1))
        x, F, fn = x_try, F_try, fn_try
        if bool(((step <= tol_v) & (t == 1)).all()) or bool((fn <= 0.1 * tol_v).all()):
            return x, True
    return x, False


def solve_crossbar(g, v, r_wire_row, r_wire_col, r_source=0.0, r_sense=0.0, r_access=0.0, iv=None):
    """Exact column currents ``i`` [..., batch, cols] [A] for row voltages ``v`` [..., batch, rows] [V].

    Linear cells (``iv`` None or a device with ``nonlinear_iv`` False): ``i = v @ T`` with ``T`` from
    :func:`transfer_matrix` (all resistances 0: ``i = v @ g`` exactly). Nonlinear cells: ``iv`` is a
    device whose ``current(g, v)`` gives the cell current for the voltage across it (e.g. RRAM
    ``a·sinh(b·v)``); Newton's method on the cell-current form (module docstring), batched over all
    vectors, converged to 1e-12·max|v| in every cell voltage, raising :class:`SolverConvergenceError`
    otherwise. Returned in ``g``'s dtype.
    """
    r = check_resistances(
        r_wire_row=r_wire_row, r_wire_col=r_wire_col, r_source=r_source, r_sense=r_sense, r_access=r_access
    )
    g = _check_g(g)
    v = _check_v(v, g)
    if iv is not None and not hasattr(iv, "current"):
        raise ValueError(f"iv: got {iv!r}; expected a device with current(g, v) (or None for linear cells)")
    squeeze = v.ndim == 1
    if squeeze:
        v = v[None]
    if iv is None or not getattr(iv, "nonlinear_iv", False):
        if not any(r.values()):
            i = v.to(g.dtype) @ g
        else:
            i = v.to(g.dtype) @ transfer_matrix(g, **r)[0]
        return i[..., 0, :] if squeeze else i
    M, N = g.shape[-2:]
    wd = _work_dtype(g.device)
    gb, vb, stack = _broadcast(g.to(wd), v.to(device=g.device, dtype=wd))
    nb = vb.shape[1]
    vmax = float(vb.abs().max()) if vb.numel() else 0.0
    tol_v = 1e-12 * max(vmax, 1e-30)
    outs = []
    for a, b in _chunks(nb, gb.shape[0] * M * N):
        x, ok = _newton(iv, gb, vb[:, a:b], r, tol_v, 100, 20 * _default_max_iter(M, N))
        if not ok:
            raise SolverConvergenceError(
                "solve_crossbar: Newton iteration for the nonlinear cell I–V did not converge in 100 steps"
            )
        outs.append(iv.current(gb[:, None], x).sum(-2))
    i = torch.cat(outs, 1).to(g.dtype).reshape(*stack, nb, N)
    return i[..., 0, :] if squeeze else i
