"""Compiled kernels of the batched engine (numba, multithreaded over column blocks).

One module on purpose (over 500 lines): the kernels share inlined helpers and one
numba on-disk cache, and are read together when checking their summation order.

Internal layout (see :mod:`chemtomo.projector.batched`): a block of ``kb`` columns
is one C-contiguous ``(n_rows, kb)`` slab of a ``(n_blocks, n_rows, kb)`` array;
pixel rows are ordered in *slots* (groups of ``G`` neighbouring pixels, groups in
Morton order). The system matrix is held once, as W^T in a grouped CSR: group
``g`` (slots ``g*G .. g*G+G-1``) owns entries ``gptr[g]:gptr[g+1]``, each a ray
index ``rays[p]`` and ``G`` weights ``wts[p, :]`` (zero where a pixel of the group
misses the ray). One pass over a group serves ``G`` pixels: the ray rows it reads
and writes are loaded once instead of ``G`` times.

Entries of rays that fewer than ``min_shared`` of a group's pixels meet are kept
per pixel instead (``sptr``/``srays``/``swts``), so the multiply-adds spent on zero
weights stay few where the group shares little.

Determinism: every lane (column) sees the same sequence of float32 operations
whatever ``kb``, the thread count or the other columns: a back-projection sums
the group's shared entries in ascending ray order (a zero weight adds an exact
0), then the pixel's own entries; a forward projection adds contributions group
by group in slot order. Results are therefore bitwise independent of how columns
are blocked, threaded or chunked (the grouping ``G`` changes the summation order,
hence the last bits).

``G`` and ``kb`` are compile-time constants passed as :class:`~._simd.Lanes`
(``gt``, ``kt``): each pair used is compiled once and cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._simd import nlanes, sload, vfma, vload, vmax0, vstore, vzero

_JIT = dict(cache=True, nogil=True)


# --------------------------------------------------------------------------- layout

@njit(parallel=True, **_JIT)
def pack_plain(src, row_map, out):
    """``out[b, s, l] = src[row_map[s], b*kb + l]`` (0 for ``row_map < 0`` or past the last column)."""
    nblk, nslot, kb = out.shape
    ncol = src.shape[1]
    for b in prange(nblk):
        c0 = b * kb
        w = min(kb, ncol - c0)
        for s in range(nslot):
            r = row_map[s]
            if r < 0:
                for l in range(kb):
                    out[b, s, l] = 0.0
            else:
                for l in range(w):
                    out[b, s, l] = src[r, c0 + l]
                for l in range(w, kb):
                    out[b, s, l] = 0.0


@njit(parallel=True, **_JIT)
def pack_channels(src, row_map, out):
    """:func:`pack_plain` of the ``(n_rows, k * S)`` matrix whose column ``c * S + j`` is ``src[c, :, j]``.

    ``src`` is ``(k, n_rows, S)``: channel blocks stacked as an operator input, read in
    place of their transposed copy (the same lanes, so the same bits).
    """
    nblk, nslot, kb = out.shape
    S = src.shape[2]
    ncol = src.shape[0] * S
    for b in prange(nblk):
        c0 = b * kb
        w = min(kb, ncol - c0)
        ch = np.empty(kb, np.int64)
        jj = np.empty(kb, np.int64)
        for l in range(w):
            ch[l] = (c0 + l) // S
            jj[l] = (c0 + l) % S
        for s in range(nslot):
            r = row_map[s]
            if r < 0:
                for l in range(kb):
                    out[b, s, l] = 0.0
            else:
                for l in range(w):
                    out[b, s, l] = src[ch[l], r, jj[l]]
                for l in range(w, kb):
                    out[b, s, l] = 0.0


@njit(parallel=True, **_JIT)
def unpack_channels(xi, row_map, out):
    """Inverse of :func:`pack_channels` into ``out`` ``(k, n_rows, S)``."""
    nblk, nslot, kb = xi.shape
    S = out.shape[2]
    ncol = out.shape[0] * S
    for b in prange(nblk):
        c0 = b * kb
        w = min(kb, ncol - c0)
        ch = np.empty(kb, np.int64)
        jj = np.empty(kb, np.int64)
        for l in range(w):
            ch[l] = (c0 + l) // S
            jj[l] = (c0 + l) % S
        for s in range(nslot):
            r = row_map[s]
            if r >= 0:
                for l in range(w):
                    out[ch[l], r, jj[l]] = xi[b, s, l]


@njit(parallel=True, **_JIT)
def unpack_plain(xi, row_map, out):
    """Inverse of :func:`pack_plain` into ``out`` ``(n_rows, n_cols)``."""
    nblk, nslot, kb = xi.shape
    ncol = out.shape[1]
    for b in prange(nblk):
        c0 = b * kb
        w = min(kb, ncol - c0)
        for s in range(nslot):
            r = row_map[s]
            if r >= 0:
                for l in range(w):
                    out[r, c0 + l] = xi[b, s, l]


@njit(parallel=True, **_JIT)
def pack_mapped(src, row_map, col_row0, col_src, out):
    """``out[b, s, l] = src[col_row0[q] + row_map[s], col_src[q]]`` with ``q = b*kb + l``."""
    nblk, nslot, kb = out.shape
    nq = col_src.size
    for b in prange(nblk):
        for s in range(nslot):
            r = row_map[s]
            for l in range(kb):
                q = b * kb + l
                if r >= 0 and q < nq:
                    out[b, s, l] = src[col_row0[q] + r, col_src[q]]
                else:
                    out[b, s, l] = 0.0


@njit(parallel=True, **_JIT)
def unpack_mapped(xi, row_map, col_row0, col_src, out):
    """Inverse of :func:`pack_mapped`."""
    nblk, nslot, kb = xi.shape
    nq = col_src.size
    for b in prange(nblk):
        for s in range(nslot):
            r = row_map[s]
            if r >= 0:
                for l in range(kb):
                    q = b * kb + l
                    if q < nq:
                        out[col_row0[q] + r, col_src[q]] = xi[b, s, l]


# --------------------------------------------------------------------------- matrix

@njit(parallel=True, **_JIT)
def _union_counts(indptr, indices, slot_rows, G, counts):
    ngrp = slot_rows.size // G
    for g in prange(ngrp):
        tot = 0
        for u in range(G):
            r = slot_rows[g * G + u]
            if r >= 0:
                tot += indptr[r + 1] - indptr[r]
        keys = np.empty(tot, np.int64)
        t = 0
        for u in range(G):
            r = slot_rows[g * G + u]
            if r >= 0:
                for p in range(indptr[r], indptr[r + 1]):
                    keys[t] = indices[p]
                    t += 1
        keys.sort()
        n = 0
        for t in range(tot):
            if t == 0 or keys[t] != keys[t - 1]:
                n += 1
        counts[g] = n


@njit(parallel=True, **_JIT)
def _union_fill(indptr, indices, data, slot_rows, G, gptr, rays, wts):
    ngrp = slot_rows.size // G
    for g in prange(ngrp):
        tot = 0
        for u in range(G):
            r = slot_rows[g * G + u]
            if r >= 0:
                tot += indptr[r + 1] - indptr[r]
        keys = np.empty(tot, np.int64)
        t = 0
        for u in range(G):
            r = slot_rows[g * G + u]
            if r >= 0:
                for p in range(indptr[r], indptr[r + 1]):
                    keys[t] = np.int64(indices[p]) * G + u
                    t += 1
        keys.sort()
        # value lookup: position of (ray, u) within row r (indices sorted per row)
        e = gptr[g] - 1
        last = -1
        for t in range(tot):
            ray = keys[t] // G
            u = keys[t] - ray * G
            if ray != last:
                e += 1
                rays[e] = ray
                for v in range(G):
                    wts[e, v] = 0.0
                last = ray
            r = slot_rows[g * G + u]
            lo = indptr[r]
            hi = indptr[r + 1]
            while lo < hi:  # binary search of ray in row r
                mid = (lo + hi) // 2
                if indices[mid] < ray:
                    lo = mid + 1
                else:
                    hi = mid
            wts[e, u] += data[lo]


def group_rows(indptr, indices, data, slot_rows, G):
    """Grouped CSR ``(gptr int64, rays int32, wts float32 (n_entries, G))`` of a CSR with sorted indices."""
    ngrp = slot_rows.size // G
    counts = np.zeros(ngrp, np.int64)
    _union_counts(indptr, indices, slot_rows, G, counts)
    gptr = np.zeros(ngrp + 1, np.int64)
    np.cumsum(counts, out=gptr[1:])
    rays = np.empty(int(gptr[-1]), np.int32)
    wts = np.empty((int(gptr[-1]), G), np.float32)
    _union_fill(indptr, indices, data, slot_rows, G, gptr, rays, wts)
    return gptr, rays, wts


def split_shared(gptr, rays, wts, min_shared):
    """Move entries with fewer than ``min_shared`` nonzero weights out of the groups.

    Returns ``(gptr, rays, wts, sptr, srays, swts)``: the kept shared entries, and
    per slot the removed nonzeros in ascending ray order (``sptr`` has
    ``n_groups * G + 1`` offsets).
    """
    ngrp = gptr.size - 1
    G = wts.shape[1]
    grp = np.repeat(np.arange(ngrp, dtype=np.int64), np.diff(gptr))
    keep = (wts != 0).sum(axis=1) >= min_shared
    gptr2 = np.zeros(ngrp + 1, np.int64)
    np.cumsum(np.bincount(grp[keep], minlength=ngrp), out=gptr2[1:])
    drop = ~keep
    e, u = np.nonzero(wts[drop])
    srays = rays[drop][e]
    swts = wts[drop][e, u]
    slot = grp[drop][e] * G + u
    order = np.lexsort((srays, slot))
    sptr = np.zeros(ngrp * G + 1, np.int64)
    np.cumsum(np.bincount(slot, minlength=ngrp * G), out=sptr[1:])
    return (gptr2, np.ascontiguousarray(rays[keep]), np.ascontiguousarray(wts[keep]),
            sptr, np.ascontiguousarray(srays[order], dtype=np.int32),
            np.ascontiguousarray(swts[order], dtype=np.float32))


# --------------------------------------------------------------------------- W and W^T
#
# ``mat`` = (gptr, rays, wts, sptr, srays, swts): shared entries of each group
# (``gptr``/``rays``/``wts``) and, per slot, the entries of rays that only one or
# two of the group's pixels meet (``sptr``/``srays``/``swts``): those cost one
# multiply-add per nonzero instead of ``G``.


@njit(inline="always", **_JIT)
def _gather1(sptr, srays, swts, rb, slot, acc, kt):
    kb = nlanes(kt)
    for p in range(sload(sptr, slot), sload(sptr, slot + 1)):
        acc = vfma(sload(swts, p), vload(rb, sload(srays, p) * kb, kt), acc)
    return acc


@njit(inline="always", **_JIT)
def _scatter1(sptr, srays, swts, yb, slot, xv, kt):
    kb = nlanes(kt)
    for p in range(sload(sptr, slot), sload(sptr, slot + 1)):
        off = sload(srays, p) * kb
        vstore(yb, off, vfma(sload(swts, p), xv, vload(yb, off, kt)))


# The entry loops below read the matrix with ``sload`` (flat offsets: ``wts`` is
# ``(n_entries, G)`` C-contiguous, so weight ``u`` of entry ``p`` is at ``p * G + u``):
# no negative-index wrapping and no runtime stride, the same values in the same order.


@njit(inline="always", **_JIT)
def _scatter_group(rays, wts, p0, p1, yb, x0, x1, x2, x3, gt, kt):
    """``yb[ray] += w_0 x_0 + ... + w_{G-1} x_{G-1}`` (in that order) for the entries ``p0:p1``."""
    G = nlanes(gt)
    kb = nlanes(kt)
    for p in range(p0, p1):
        off = sload(rays, p) * kb
        q = p * G
        if G == 1:
            vstore(yb, off, vfma(sload(wts, q), x0, vload(yb, off, kt)))
        elif G == 2:
            v = vfma(sload(wts, q), x0, vload(yb, off, kt))
            vstore(yb, off, vfma(sload(wts, q + 1), x1, v))
        else:
            v = vfma(sload(wts, q), x0, vload(yb, off, kt))
            v = vfma(sload(wts, q + 1), x1, v)
            v = vfma(sload(wts, q + 2), x2, v)
            vstore(yb, off, vfma(sload(wts, q + 3), x3, v))


@njit(inline="always", **_JIT)
def _gather_group(rays, wts, p0, p1, rb, gt, kt):
    """``a_u = sum_p w_u[p] rb[ray_p]`` (ascending ``p``, from 0) for ``u < G``; unused ``a_u`` are 0."""
    G = nlanes(gt)
    kb = nlanes(kt)
    a0 = vzero(kt)
    a1 = vzero(kt)
    a2 = vzero(kt)
    a3 = vzero(kt)
    for p in range(p0, p1):
        rv = vload(rb, sload(rays, p) * kb, kt)
        q = p * G
        a0 = vfma(sload(wts, q), rv, a0)
        if G >= 2:
            a1 = vfma(sload(wts, q + 1), rv, a1)
        if G == 4:
            a2 = vfma(sload(wts, q + 2), rv, a2)
            a3 = vfma(sload(wts, q + 3), rv, a3)
    return a0, a1, a2, a3


@njit(**_JIT)
def _forward_block(mat, xb, yb, gt, kt):
    gptr, rays, wts, sptr, srays, swts = mat
    G = nlanes(gt)
    kb = nlanes(kt)
    yb[:] = 0.0
    x1 = vzero(kt)
    x2 = vzero(kt)
    x3 = vzero(kt)
    for g in range(gptr.size - 1):
        j = g * G
        x0 = vload(xb, j * kb, kt)
        if G >= 2:
            x1 = vload(xb, (j + 1) * kb, kt)
        if G == 4:
            x2 = vload(xb, (j + 2) * kb, kt)
            x3 = vload(xb, (j + 3) * kb, kt)
        _scatter_group(rays, wts, sload(gptr, g), sload(gptr, g + 1), yb, x0, x1, x2, x3, gt, kt)
        _scatter1(sptr, srays, swts, yb, j, x0, kt)
        if G >= 2:
            _scatter1(sptr, srays, swts, yb, j + 1, x1, kt)
        if G == 4:
            _scatter1(sptr, srays, swts, yb, j + 2, x2, kt)
            _scatter1(sptr, srays, swts, yb, j + 3, x3, kt)


@njit(**_JIT)
def _adjoint_block(mat, yb, xb, gt, kt):
    gptr, rays, wts, sptr, srays, swts = mat
    G = nlanes(gt)
    kb = nlanes(kt)
    for g in range(gptr.size - 1):
        j = g * G
        a0, a1, a2, a3 = _gather_group(rays, wts, sload(gptr, g), sload(gptr, g + 1), yb, gt, kt)
        vstore(xb, j * kb, _gather1(sptr, srays, swts, yb, j, a0, kt))
        if G >= 2:
            vstore(xb, (j + 1) * kb, _gather1(sptr, srays, swts, yb, j + 1, a1, kt))
        if G == 4:
            vstore(xb, (j + 2) * kb, _gather1(sptr, srays, swts, yb, j + 2, a2, kt))
            vstore(xb, (j + 3) * kb, _gather1(sptr, srays, swts, yb, j + 3, a3, kt))


@njit(parallel=True, **_JIT)
def forward(mat, x, y, gt, kt):
    """``y[b] = W x[b]`` for every block (scatter over W^T rows, slots in order)."""
    for b in prange(x.shape[0]):
        _forward_block(mat, x[b], y[b], gt, kt)


@njit(parallel=True, **_JIT)
def adjoint(mat, y, x, gt, kt):
    """``x[b] = W^T y[b]`` for every block (gather over W^T rows)."""
    for b in prange(x.shape[0]):
        _adjoint_block(mat, y[b], x[b], gt, kt)


@njit(inline="always", **_JIT)
def _slot_vector(src, slots, j, base, S, kt):
    """Slot ``j``'s lanes read from the channel blocks ``src`` (``base`` + its pixel's row), 0 for a dummy slot."""
    r = sload(slots, j)
    if r < 0:
        return vzero(kt)
    return vload(src, base + r * S, kt)


@njit(**_JIT)
def _forward_block_direct(mat, src, slots, base, S, yb, gt, kt):
    """:func:`_forward_block` reading every slot's lanes from ``src`` instead of a packed block (the same bits)."""
    gptr, rays, wts, sptr, srays, swts = mat
    G = nlanes(gt)
    yb[:] = 0.0
    x1 = vzero(kt)
    x2 = vzero(kt)
    x3 = vzero(kt)
    for g in range(gptr.size - 1):
        j = g * G
        x0 = _slot_vector(src, slots, j, base, S, kt)
        if G >= 2:
            x1 = _slot_vector(src, slots, j + 1, base, S, kt)
        if G == 4:
            x2 = _slot_vector(src, slots, j + 2, base, S, kt)
            x3 = _slot_vector(src, slots, j + 3, base, S, kt)
        _scatter_group(rays, wts, sload(gptr, g), sload(gptr, g + 1), yb, x0, x1, x2, x3, gt, kt)
        _scatter1(sptr, srays, swts, yb, j, x0, kt)
        if G >= 2:
            _scatter1(sptr, srays, swts, yb, j + 1, x1, kt)
        if G == 4:
            _scatter1(sptr, srays, swts, yb, j + 2, x2, kt)
            _scatter1(sptr, srays, swts, yb, j + 3, x3, kt)


@njit(inline="always", **_JIT)
def _store_slot(out, slots, j, base, S, v):
    r = sload(slots, j)
    if r >= 0:
        vstore(out, base + r * S, v)


@njit(**_JIT)
def _adjoint_block_direct(mat, yb, slots, base, S, out, gt, kt):
    """:func:`_adjoint_block` storing every slot's lanes into ``out`` instead of a packed block (the same bits)."""
    gptr, rays, wts, sptr, srays, swts = mat
    G = nlanes(gt)
    for g in range(gptr.size - 1):
        j = g * G
        a0, a1, a2, a3 = _gather_group(rays, wts, sload(gptr, g), sload(gptr, g + 1), yb, gt, kt)
        _store_slot(out, slots, j, base, S, _gather1(sptr, srays, swts, yb, j, a0, kt))
        if G >= 2:
            _store_slot(out, slots, j + 1, base, S, _gather1(sptr, srays, swts, yb, j + 1, a1, kt))
        if G == 4:
            _store_slot(out, slots, j + 2, base, S, _gather1(sptr, srays, swts, yb, j + 2, a2, kt))
            _store_slot(out, slots, j + 3, base, S, _gather1(sptr, srays, swts, yb, j + 3, a3, kt))


@njit(parallel=True, **_JIT)
def forward_channels_direct(mat, src, slots, y, gt, kt):
    """:func:`forward` of ``pack_channels(src)`` without the packed copy.

    ``src`` is ``(k, n_vox, S)`` with ``S`` a multiple of ``kb``. Block ``b`` is columns
    ``j0 = (b kb) % S`` to ``j0 + kb`` of channel ``(b kb) // S``; its slots' lanes are read
    from ``src`` where :func:`pack_channels` would have copied them from (0 for dummy
    slots), so the projections are the same bits.
    """
    n_vox, S = src.shape[1], src.shape[2]
    kb = nlanes(kt)
    for b in prange(y.shape[0]):
        q0 = b * kb
        _forward_block_direct(mat, src, slots, (q0 // S) * n_vox * S + q0 % S, S, y[b], gt, kt)


@njit(parallel=True, **_JIT)
def adjoint_channels_direct(mat, y, slots, out, gt, kt):
    """:func:`adjoint` followed by :func:`unpack_channels` into ``out`` ``(k, n_vox, S)`` without the packed copy.

    ``S`` a multiple of ``kb`` (block layout as :func:`forward_channels_direct`); every pixel
    is one slot's, so every element of ``out`` is written. The same bits.
    """
    n_vox, S = out.shape[1], out.shape[2]
    kb = nlanes(kt)
    for b in prange(y.shape[0]):
        q0 = b * kb
        _adjoint_block_direct(mat, y[b], slots, (q0 // S) * n_vox * S + q0 % S, S, out, gt, kt)


# --------------------------------------------------------------------------- fused SIRT

@njit(parallel=True, **_JIT)
def mix_ray_pass(bm, y, Rm, mptr, mcol, mval, lane_t, lane_c, cscale, r, norms_part, rchunk):
    """Ray pass of SIRT on ``ChannelMix(W, M)``, ``M`` (m x k) given by its nonzeros per row.

    ``bm`` ``(m, n_rays, S)``: data; ``y`` ``(n_blk, n_rays, kb)``: ``W x``, internal
    column ``q = blk*kb + l`` holding slice ``lane_t[q]``, channel ``lane_c[q]`` (-1:
    padding). Writes ``r_q = cscale[c] sum_i M[i, c] Rm[i] (bm[i] - sum_c' M[i, c'] y_c')``
    and, per chunk of ``rchunk`` rays, ``norms_part[chunk, t] = sum (b_t - A x_t)^2``
    (float64; summed over chunks in order by the caller: deterministic). Each ray's
    columns are gathered into channel-major rows so that the mixing runs over
    contiguous slices (vectorised), then scattered back.
    """
    m, nray, S = bm.shape
    nblk, _, kb = y.shape
    k = cscale.size
    nch = (nray + rchunk - 1) // rchunk
    for ch in prange(nch):
        yt = np.zeros((k, S), np.float32)
        rt = np.empty((k, S), np.float32)
        pred = np.empty(S, np.float32)
        wv = np.empty(S, np.float32)
        acc = np.zeros(S, np.float64)
        for i in range(ch * rchunk, min(nray, (ch + 1) * rchunk)):
            for b in range(nblk):
                for l in range(kb):
                    c = lane_c[b * kb + l]
                    if c >= 0:
                        yt[c, lane_t[b * kb + l]] = y[b, i, l]
            rt[:, :] = 0.0
            for mi in range(m):
                pred[:] = 0.0
                for e in range(mptr[mi], mptr[mi + 1]):
                    v = mval[e]
                    yc = yt[mcol[e]]
                    for t in range(S):
                        pred[t] += v * yc[t]
                Ri = Rm[mi, i]
                bi = bm[mi, i]
                for t in range(S):
                    res = bi[t] - pred[t]
                    acc[t] += np.float64(res) * np.float64(res)
                    wv[t] = Ri * res
                for e in range(mptr[mi], mptr[mi + 1]):
                    v = mval[e]
                    rc = rt[mcol[e]]
                    for t in range(S):
                        rc[t] += v * wv[t]
            for b in range(nblk):
                for l in range(kb):
                    c = lane_c[b * kb + l]
                    if c >= 0:
                        r[b, i, l] = cscale[c] * rt[c, lane_t[b * kb + l]]
        norms_part[ch, :] = acc


@njit(inline="always", **_JIT)
def _update(C, xb, j, a, nonneg, kt):
    """``max(0, x_j + C_j a)`` (no clip unless ``nonneg``), stored into ``xb`` and returned."""
    kb = nlanes(kt)
    v = vfma(sload(C, j), a, vload(xb, j * kb, kt))
    if nonneg:
        v = vmax0(v)
    vstore(xb, j * kb, v)
    return v


@njit(**_JIT)
def _pixel_block(mat, C, rb, xb, yb, nonneg, gt, kt):
    """One block: ``yb = 0``; per group back-project ``rb``, update/clip ``xb``, scatter into ``yb``."""
    gptr, rays, wts, sptr, srays, swts = mat
    G = nlanes(gt)
    yb[:] = 0.0
    x1 = vzero(kt)
    x2 = vzero(kt)
    x3 = vzero(kt)
    for g in range(gptr.size - 1):
        j = g * G
        p0 = sload(gptr, g)
        p1 = sload(gptr, g + 1)
        a0, a1, a2, a3 = _gather_group(rays, wts, p0, p1, rb, gt, kt)
        x0 = _update(C, xb, j, _gather1(sptr, srays, swts, rb, j, a0, kt), nonneg, kt)
        if G >= 2:
            x1 = _update(C, xb, j + 1, _gather1(sptr, srays, swts, rb, j + 1, a1, kt), nonneg, kt)
        if G == 4:
            x2 = _update(C, xb, j + 2, _gather1(sptr, srays, swts, rb, j + 2, a2, kt), nonneg, kt)
            x3 = _update(C, xb, j + 3, _gather1(sptr, srays, swts, rb, j + 3, a3, kt), nonneg, kt)
        _scatter_group(rays, wts, p0, p1, yb, x0, x1, x2, x3, gt, kt)
        _scatter1(sptr, srays, swts, yb, j, x0, kt)
        if G >= 2:
            _scatter1(sptr, srays, swts, yb, j + 1, x1, kt)
        if G == 4:
            _scatter1(sptr, srays, swts, yb, j + 2, x2, kt)
            _scatter1(sptr, srays, swts, yb, j + 3, x3, kt)


@njit(parallel=True, **_JIT)
def sirt_pixel_pass(mat, C, r, x, y, nonneg, gt, kt):
    """Pixel pass of SIRT over every block: ``x <- max(0, x + C W^T r)``, then ``y <- W x``.

    One pass over W^T per block (no clip when ``nonneg`` is False); ``C`` per
    slot, relaxation included, 0 for dummy slots.
    """
    for b in prange(x.shape[0]):
        _pixel_block(mat, C, r[b], x[b], y[b], nonneg, gt, kt)


@njit(parallel=True, **_JIT)
def sirt_iteration(mat, C, R, bdata, r, x, y, norms, nonneg, gt, kt):
    """One SIRT iteration on every block, block by block in one parallel region.

    Ray phase ``r = R (b - y)`` with ``norms[blk, l] = ||b - y||^2`` (float64, before
    the update), then the pixel phase of :func:`sirt_pixel_pass`.
    """
    nblk, nray, kb = bdata.shape
    for blk in prange(nblk):
        bb = bdata[blk]
        yb = y[blk]
        rb = r[blk]
        for l in range(kb):
            norms[blk, l] = 0.0
        for i in range(nray):
            Ri = R[i]
            for l in range(kb):
                res = bb[i, l] - yb[i, l]
                norms[blk, l] += np.float64(res) * np.float64(res)
                rb[i, l] = Ri * res
        _pixel_block(mat, C, rb, x[blk], yb, nonneg, gt, kt)
