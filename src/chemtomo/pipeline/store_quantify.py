"""Quantification of a volume store, chunk by chunk: the mask threshold and the fractions.

The arithmetic of :func:`chemtomo.quantify.quantify` on a
:class:`~chemtomo.pipeline.store.VolumeStore` too large to load: per-voxel
quantities chunk by chunk, and the one whole-volume quantity (the threshold)
from exactly the values the in-memory path would see.
"""

from __future__ import annotations

import numpy as np

from ..quantify import ESF_EDGE_LEVEL
from .store import VolumeStore


def quantify_store(store: VolumeStore, factors, atomic_weights, elements: list[str],
                   mask_method: str = "esf", threshold: float | None = None,
                   edge_level: float = ESF_EDGE_LEVEL):
    """Mask and fractions of the maps in ``store``, reading and writing chunk by chunk.

    The same arithmetic as :func:`chemtomo.quantify.quantify` on the whole volume,
    voxel for voxel: the total signal, the fractions and the mask are per voxel;
    only the threshold needs the whole volume, and it is taken from exactly the
    values :func:`chemtomo.quantify.esf_threshold` (or the Otsu and three-class
    Otsu histogram) would see, gathered in chunks. Memory: one chunk of maps (and its float64
    fractions) plus the ESF's voxel sample (``max_voxels`` float64 values).

    ``edge_level`` places the ESF threshold on its step (:func:`chemtomo.quantify.esf_threshold`).
    Writes ``fractions/weight``, ``fractions/atomic`` (float32) and ``mask``
    (uint8) into the store and returns the :class:`~chemtomo.quantify.Threshold`.
    """
    from ..quantify import (
        ESF_MAX_VOXELS,
        ESF_SEED,
        Threshold,
        atomic_fractions,
        check_threshold,
        esf_threshold,
        total_signal,
        weight_fractions,
    )

    q = np.asarray(factors, dtype=np.float64)
    shape = (store.n_slices, store.n_grid, store.n_grid)
    size = int(np.prod(shape))
    per_slice = store.n_grid * store.n_grid

    def totals():
        for a, b, maps in store.iter_maps():
            yield a, b, maps, total_signal(maps, q)

    curve: dict = {}
    if threshold is not None:
        check_threshold(threshold)  # finite, before a pass over the store
        ranges = [(float(t.min()), float(t.max())) for _, _, _, t in totals()]
        lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
        value, method = check_threshold(threshold, (lo, hi)), "given"
    elif mask_method == "esf":
        max_voxels, seed = ESF_MAX_VOXELS, ESF_SEED  # esf_threshold's own sampling defaults
        if size <= max_voxels:
            sample = np.concatenate([t.ravel() for _, _, _, t in totals()])
        else:  # the very voxels esf_threshold's subsample picks: the indices do not depend on the values
            idx = np.sort(np.random.default_rng(seed).choice(size, max_voxels, replace=False))
            parts = []
            for a, b, _, t in totals():
                lo, hi = np.searchsorted(idx, [a * per_slice, b * per_slice])
                parts.append(t.ravel()[idx[lo:hi] - a * per_slice])
            sample = np.concatenate(parts)
        th = esf_threshold(sample, edge_level=edge_level)
        value, method, curve = th.value, th.method, th.curve
    elif mask_method == "otsu":
        value, method = _otsu_chunked(totals), "otsu"
    elif mask_method == "multiotsu":
        value, method = _multiotsu_chunked(totals)
    else:
        raise ValueError(f"mask method must be 'esf', 'otsu' or 'multiotsu', got {mask_method!r}")

    k = len(store.lines)
    w_out = store.create_output("fractions/weight", (k, *shape), "float32")
    a_out = store.create_output("fractions/atomic", (k, *shape), "float32")
    m_out = store.create_output("mask", shape, "uint8")
    counts = {0.9: 0, 1.0: 0, 1.1: 0}
    for a, b, maps, total in totals():
        mask = total > value
        for f in counts:
            counts[f] += int(np.count_nonzero(total > (f * value if f != 1.0 else value)))
        w = weight_fractions(maps, q, mask)
        w_out[:, a:b] = w.astype(np.float32)
        a_out[:, a:b] = atomic_fractions(w, atomic_weights).astype(np.float32)
        m_out[a:b] = mask.astype(np.uint8)
    # as quantify._volume / _stability, from whole-volume counts
    v = float(counts[1.0]) / size
    stability = (float(counts[0.9]) / size - float(counts[1.1]) / size) / v if v > 0 else float("inf")
    return Threshold(value, method, v, stability, curve)


def _range_chunked(totals) -> tuple[float, float, float | None]:
    """``(min, max, value)`` of the whole total signal; ``value`` is its one value if it is constant, else None."""
    first, lo, hi, same = None, np.inf, -np.inf, True
    for _, _, _, t in totals():
        flat = t.ravel()
        if first is None:
            first = flat[0]
        same = same and bool(np.all(flat == first))
        lo, hi = min(lo, float(flat.min())), max(hi, float(flat.max()))
    return lo, hi, (float(first) if same else None)


def _histogram_chunked(totals, lo: float, hi: float, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, centres)`` of ``np.histogram(total, bins)`` on the whole total signal, chunk by chunk."""
    # skimage bins a float image with np.histogram(image, bins=256, range=None): edges from min and max
    edges = np.histogram_bin_edges(np.array([lo, hi], dtype=np.float64), bins=bins)
    counts = np.zeros(bins, np.int64)
    for _, _, _, t in totals():
        counts += np.histogram(t.ravel(), bins=edges)[0]
    return counts, (edges[:-1] + edges[1:]) / 2.0


def _otsu_chunked(totals) -> float:
    """Otsu's threshold as ``skimage.filters.threshold_otsu`` on the whole total signal."""
    from skimage.filters import threshold_otsu

    lo, hi, constant = _range_chunked(totals)
    if constant is not None:
        return constant
    return float(threshold_otsu(hist=_histogram_chunked(totals, lo, hi)))


def _multiotsu_chunked(totals) -> tuple[float, str]:
    """``(value, method)`` as :func:`chemtomo.quantify.multiotsu` on the whole total signal.

    The lowest three-class Otsu threshold from the whole volume's histogram; where three
    classes cannot be formed (fewer than 3 occupied bins), two-class Otsu's, method ``"otsu"``.
    """
    from skimage.filters import threshold_otsu

    from ..quantify import MULTIOTSU_BINS, multiotsu_from_histogram

    lo, hi, constant = _range_chunked(totals)
    if constant is not None:  # one occupied bin: multiotsu falls back to Otsu, which returns the value
        return constant, "otsu"
    counts, centres = _histogram_chunked(totals, lo, hi, MULTIOTSU_BINS)
    value = multiotsu_from_histogram(counts, centres)
    if value is None:
        return float(threshold_otsu(hist=(counts, centres))), "otsu"
    return value, "multiotsu"
