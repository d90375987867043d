#!/usr/bin/env python
"""Region compositions fitted to the projections, and their bootstrap coverage (issue 15, research).

A region estimate that is nearly unbiased for piecewise-constant regions: the user's labelled
regions (here the specimen's own labels; the particle's voxels outside every label form one more
region, ``rest``) are projected through the reconstruction's operator ``W``, and each EDS line's
counts are fitted by one constant per region (weighted least squares, weights ``1 / max(mu, 1)``
from an unweighted first fit: two passes of iteratively reweighted least squares). A region's
weight fractions are its constants over the lines' ``f`` factors, normalised (eq 12 on region
constants). The bootstrap refits ``replicas`` Poisson replicas of the measured counts with the
measured fit's weights (a linear estimator of the counts) and gives the SE and the 5-95 % percentile
interval. Coverage: the share of ``seeds`` noise realisations (drawn as the calibration study's,
``studies.calibration._draw``) whose interval holds the truth's region mean (the mean over the
region's voxels of the true weight fraction, as ``scripts/uncertainty_interval_dump.py``'s), and,
beside it, the region's mass-weighted truth (its partial densities summed, normalised).

The set-up is the calibration study's (the benchmark's quick configuration: n = 24, the 8 middle
slices, 29 tilts, the paper's dose). No reconstruction is made: the fit needs the projections of the
labels only.

Usage::

    python scripts/uncertainty_region_fit.py core_shell,hollow 50 200 1000 [--labels truth|dilate|erode]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np


def region_design(W, masks: list[np.ndarray], n_tilts: int, n_pixels: int) -> np.ndarray:
    """The labels' projections as the columns of a design matrix, rays x slices flattened (sinogram order)."""
    from chemtomo.geometry import columns_to_sinogram, sinogram_to_columns, volume_to_columns

    cols = []
    for m in masks:
        p = W.forward(volume_to_columns(np.asarray(m, np.float32)))
        cols.append(sinogram_to_columns(columns_to_sinogram(p, n_tilts, n_pixels)).ravel().astype(np.float64))
    return np.stack(cols, axis=1)


def system_matrix(W, n_grid: int, n_tilts: int, n_pixels: int) -> np.ndarray:
    """The one-slice operator as a dense matrix (rays ``n_tilts * n_pixels`` x voxels ``n_grid**2``)."""
    eye = np.eye(n_grid * n_grid, dtype=np.float32)  # each column a one-voxel slice
    return np.asarray(W.forward(eye), np.float64)


BAND_STRUCTURE = "cube"  # set by --band: "cube" (3x3x3 neighbourhoods) or "cross" (6 face neighbours)


def band_of(labels: dict[str, np.ndarray], particle: np.ndarray, width: int = 1) -> np.ndarray:
    """Voxels within ``width`` steps of :data:`BAND_STRUCTURE` of a boundary between two labels, in the particle."""
    from scipy.ndimage import binary_dilation, generate_binary_structure

    st = np.ones((3, 3, 3), bool) if BAND_STRUCTURE == "cube" else generate_binary_structure(3, 1)
    band = np.zeros_like(particle, bool)
    for r, m in labels.items():
        others = np.zeros_like(particle, bool)
        for q, o in labels.items():
            if q != r:
                others |= o
        band |= m & binary_dilation(others, st, iterations=width)
    return band & particle


def band_design(M: np.ndarray, masks: list[np.ndarray], band: np.ndarray) -> np.ndarray:
    """Design of constants on ``masks`` minus ``band`` and one free unknown per ``band`` voxel (sinogram order).

    Rows: rays x slices as :func:`chemtomo.geometry.sinogram_to_columns` flattened (ray-major, slice-minor).
    """
    n_s = band.shape[0]
    n_r = M.shape[0]
    cols = []
    for m in masks:
        mm = (m & ~band).reshape(n_s, -1).astype(np.float64)  # (slices, voxels)
        cols.append((M @ mm.T).ravel())  # (rays, slices) ravelled
    idx = np.argwhere(band.reshape(n_s, -1))
    for s_, v in idx:
        c = np.zeros((n_r, n_s))
        c[:, s_] = M[:, v]
        cols.append(c.ravel())
    return np.stack(cols, axis=1)


def fit_weights(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-ray weights ``1 / max(mu, 1)``, ``mu`` the unweighted least-squares fit's prediction (clipped at 0)."""
    c, *_ = np.linalg.lstsq(A, y, rcond=None)
    return 1.0 / np.maximum(A @ c, 1.0)


def fit_constants(A: np.ndarray, w: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Weighted least-squares constants of the columns of ``Y`` (rays, n) with weights ``w``: (regions, n)."""
    Aw = A * w[:, None]
    return np.linalg.solve(A.T @ Aw, Aw.T @ Y)


def fractions(c: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Weight fractions of region constants ``c`` (lines, regions, ...) with line factors ``f``."""
    m = np.clip(c, 0, None) / f.reshape((-1,) + (1,) * (c.ndim - 1))
    s = m.sum(axis=0)
    return np.where(s > 0, m / np.where(s > 0, s, 1), np.nan)


def labels_for(truth, kind: str) -> dict[str, np.ndarray]:
    """The labels handed to the fit: the truth's, or each grown/shrunk by one voxel (a user's segmentation error)."""
    from scipy.ndimage import binary_dilation, binary_erosion

    regs = {r: np.asarray(m, bool) for r, m in truth.regions.items() if np.asarray(m).any()}
    if kind == "dilate":
        regs = {r: binary_dilation(m) & truth.particle for r, m in regs.items()}
    elif kind == "erode":
        regs = {r: binary_erosion(m) for r, m in regs.items()}
    # disjoint: earlier labels keep a contested voxel
    taken = np.zeros_like(truth.particle, bool)
    out = {}
    for r, m in regs.items():
        out[r] = m & ~taken
        taken |= out[r]
    rest = truth.particle & ~taken
    if rest.any():
        out["rest"] = rest
    return out


class RegionFit:
    """The region estimator: design, per-line weights and the map from unknowns to region sums.

    ``model="constant"``: one constant per label; ``"band"``: one constant per label's voxels off the
    band of label boundaries (:func:`band_of`) and one free unknown per band voxel.
    """

    def __init__(self, W, geom, labels: dict[str, np.ndarray], particle: np.ndarray, model: str, f: np.ndarray):
        self.names = list(labels)
        self.f = f
        masks = [labels[r] for r in self.names]
        if model == "constant":
            self.A = region_design(W, masks, geom.n_tilts, geom.n_pixels)
            self.band = np.zeros_like(particle, bool)
            self.const = list(range(len(masks)))
        else:
            self.band = band_of(labels, particle)
            M = system_matrix(W, geom.n_grid, geom.n_tilts, geom.n_pixels)
            keep = [k for k, m in enumerate(masks) if (m & ~self.band).any()]
            self.const = keep
            self.A = band_design(M, [masks[k] for k in keep], self.band)
        nc = len(self.const)
        bidx = np.argwhere(self.band)
        # S: unknowns -> region partial sums (regions x unknowns); V: per-voxel membership for voxel means
        self.S = np.zeros((len(masks), self.A.shape[1]))
        for col, k in enumerate(self.const):
            self.S[k, col] = (masks[k] & ~self.band).sum()
        self.n_const_vox = self.S[:, :nc].sum(axis=1)
        self.band_region = np.full(len(bidx), -1)
        for b_, (s_, z, x) in enumerate(bidx):
            for k, m in enumerate(masks):
                if m[s_, z, x]:
                    self.S[k, nc + b_] = 1.0
                    self.band_region[b_] = k
        self.nc = nc
        self.n_vox = np.array([m.sum() for m in masks], float)

    def _solve(self, w: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
        """Weighted least squares of ``Y`` (rays, n) with weights ``w`` (rays): unknowns and chi2 / dof of column 0."""
        from scipy import sparse
        from scipy.linalg import cho_factor, cho_solve

        if not hasattr(self, "_As"):
            self._As = sparse.csr_matrix(self.A)
        Aw = sparse.csr_matrix(self._As.multiply(w[:, None]))
        U = cho_solve(cho_factor((self._As.T @ Aw).toarray()), np.asarray(Aw.T @ Y))
        r = Y[:, 0] - self._As @ U[:, 0]
        return U, float(np.sum(w * r * r) / max(Y.shape[0] - U.shape[0], 1))

    def weights(self, y: np.ndarray) -> np.ndarray:
        """Per-ray weights of one line's counts: ``1 / max(mu, 1)``, ``mu`` the unweighted fit's prediction."""
        U, _ = self._solve(np.ones_like(y), y[:, None])
        return 1.0 / np.maximum(self._As @ U[:, 0], 1.0)

    def estimate(self, Y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Region fractions of counts ``Y`` (lines, rays, n) with weights ``w`` (lines, rays).

        Returns the mass-weighted fractions and the voxel-mean fractions, each (lines, regions, n).
        """
        U, chi2 = zip(*(self._solve(w[i], Y[i]) for i in range(Y.shape[0])), strict=True)
        U = np.stack(U)  # (lines, unknowns, n)
        self.chi2_dof = np.asarray(chi2)  # of the first column (the measured data): lack of fit, data only
        P = np.einsum("ku,lun->lkn", self.S, U)
        mass = fractions(P, self.f)
        consts = np.zeros((Y.shape[0], len(self.names), Y.shape[2]))
        for col, k in enumerate(self.const):
            consts[:, k] = U[:, col]
        wc = np.nan_to_num(fractions(consts, self.f))  # (lines, regions, n)
        total = wc * self.n_const_vox[None, :, None]
        if self.band.any():
            wb = fractions(U[:, self.nc:], self.f)  # (lines, band voxels, n): NaN where no signal
            wb = np.where(np.isnan(wb), 1.0 / Y.shape[0], wb)
            for k in range(len(self.names)):
                sel = self.band_region == k
                if sel.any():
                    total[:, k] += wb[:, sel].sum(axis=1)
        return mass, total / self.n_vox[None, :, None]


def run(spec: str, seeds: int, replicas: int, noise_seed: int, label_kind: str, model: str = "constant") -> dict:
    """One specimen: coverage of the fitted region fractions over ``seeds`` realisations."""
    from chemtomo.geometry import sinogram_to_columns
    from chemtomo.projector import make_operator
    from chemtomo.simulate.specimens import make_specimen, simulate_series
    from chemtomo.studies.benchmark import BenchmarkConfig, Truth, sub_series
    from chemtomo.studies.calibration import _draw

    cfg = dataclasses.replace(BenchmarkConfig.quick(), specimens=(spec,))
    a, b = cfg.slice_range()
    sp = make_specimen(spec, cfg.n, cfg.oversampling, cfg.specimen_seed)
    truth = Truth.of(sp, (a, b))
    sim = simulate_series(sp, np.asarray(cfg.angles_deg, float), dose_scale=1.0, beam_kev=cfg.beam_kev,
                          seed=cfg.noise_seed, elastic="auto")
    clean = sub_series(sim.noiseless, a, b)
    lines = list(clean.lines)
    f = np.asarray(sim.factors.f(lines), np.float64)
    geom = clean.geometry(cfg.n)
    W = make_operator(geom)
    labels = labels_for(truth, label_kind)
    names = list(labels)
    fit = RegionFit(W, geom, labels, np.asarray(truth.particle, bool), model, f)

    def counts(series):
        return np.stack([sinogram_to_columns(np.asarray(series.eds[ln], np.float64)).ravel() for ln in lines])

    truths = {"voxel": np.stack([truth.weight[:, labels[r]].mean(axis=1) for r in names], axis=1)}
    pm = np.stack([truth.partial[:, labels[r]].sum(axis=1) for r in names], axis=1)
    truths["mass"] = pm / pm.sum(axis=0)
    y0 = counts(clean)
    w0 = np.stack([fit.weights(y0[i]) for i in range(len(lines))])
    noiseless = dict(zip(("mass", "voxel"), fit.estimate(y0[..., None], w0), strict=True))
    hits = {k: [] for k in truths}
    hits_w: dict = {}
    phis: list = []
    ests = {k: [] for k in truths}
    ses = {k: [] for k in truths}
    for j in range(int(seeds)):
        ser = _draw(clean, noise_seed, j)
        y = counts(ser)
        rng = np.random.default_rng(np.random.SeedSequence([int(noise_seed), int(j), 7]))
        w = np.stack([fit.weights(y[i]) for i in range(len(lines))])
        Y = np.concatenate([y[..., None], rng.poisson(y[..., None], y.shape + (int(replicas),))], axis=2)
        for kind, v in zip(("mass", "voxel"), fit.estimate(Y, w), strict=True):
            boot = v[..., 1:]
            lo, hi = np.nanpercentile(boot, 5, axis=-1), np.nanpercentile(boot, 95, axis=-1)
            hits[kind].append((truths[kind] >= lo) & (truths[kind] <= hi))
            # quasi-likelihood widening: the interval's half-widths times sqrt(max(1, chi2 / dof)) (worst line)
            phi = float(np.sqrt(max(1.0, float(np.max(fit.chi2_dof)))))
            e0 = v[..., 0]
            lo2, hi2 = e0 - phi * (e0 - lo), e0 + phi * (hi - e0)
            hits_w.setdefault(kind, []).append((truths[kind] >= lo2) & (truths[kind] <= hi2))
            phis.append(phi)
            ests[kind].append(v[..., 0])
            ses[kind].append(np.nanstd(boot, axis=-1, ddof=1))
    out = {"specimen": spec, "labels": label_kind, "model": model, "seeds": int(seeds), "replicas": int(replicas),
           "band": BAND_STRUCTURE, "elements": list(truth.elements), "band_voxels": int(fit.band.sum()),
           "chi2_widening": [float(np.min(phis)), float(np.max(phis))], "regions": {}}
    for kind in truths:
        e, se = np.asarray(ests[kind]), np.asarray(ses[kind])
        for k, r in enumerate(names):
            g = out["regions"].setdefault(r, {"voxels": int(labels[r].sum()),
                                              "truth_std": truth.weight[:, labels[r]].std(axis=1).tolist()})
            g[kind] = {"truth": truths[kind][:, k].tolist(), "noiseless_fit": noiseless[kind][:, k, 0].tolist(),
                       "coverage_90": float(np.mean(np.asarray(hits[kind])[:, :, k])),
                       "coverage_90_chi2_widened": float(np.mean(np.asarray(hits_w[kind])[:, :, k])),
                       "se_over_seed_spread": (se[:, :, k].mean(axis=0) / e[:, :, k].std(axis=0, ddof=1)).tolist(),
                       "bias_over_se": ((e[:, :, k].mean(axis=0) - truths[kind][:, k])
                                        / se[:, :, k].mean(axis=0)).tolist()}
    return out


def main(argv=None) -> None:
    """Run ``specimens seeds replicas noise_seed [--labels ...] [--out json]``; print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specimens")
    ap.add_argument("seeds", type=int)
    ap.add_argument("replicas", type=int)
    ap.add_argument("noise_seed", type=int)
    ap.add_argument("--labels", choices=("truth", "dilate", "erode"), default="truth")
    ap.add_argument("--model", choices=("constant", "band"), default="constant")
    ap.add_argument("--band", choices=("cube", "cross"), default="cube",
                    help="the band's neighbourhood (model band): 3x3x3 cube or the 6 face neighbours")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    global BAND_STRUCTURE
    BAND_STRUCTURE = a.band
    res = [run(s, a.seeds, a.replicas, a.noise_seed, a.labels, a.model) for s in a.specimens.split(",")]
    print(f"model {a.model}, labels {a.labels}; {a.seeds} realisations x {a.replicas} replicas; noise seed "
          f"{a.noise_seed}; band {a.band}; first element; mass-weighted / voxel-mean")
    print("| specimen | region | voxels | coverage 90 | widened by chi2 | SE / seed spread | bias / SE | "
          "noiseless fit - truth |\n|---|---|---|---|---|---|---|---|")
    for r in res:
        for n, g in r["regions"].items():
            m, v = g["mass"], g["voxel"]
            print(f"| {r['specimen']} | {n} | {g['voxels']} | {m['coverage_90']:.2f} / {v['coverage_90']:.2f} | "
                  f"{m['coverage_90_chi2_widened']:.2f} / {v['coverage_90_chi2_widened']:.2f} | "
                  f"{m['se_over_seed_spread'][0]:.2f} / {v['se_over_seed_spread'][0]:.2f} | "
                  f"{m['bias_over_se'][0]:+.1f} / {v['bias_over_se'][0]:+.1f} | "
                  f"{m['noiseless_fit'][0] - m['truth'][0]:+.4f} / {v['noiseless_fit'][0] - v['truth'][0]:+.4f} |")
    print("std of the true fraction (first element) inside each label: " + "; ".join(
        f"{r['specimen']} " + ", ".join(f"{n} {g['truth_std'][0]:.4f}" for n, g in r["regions"].items()) for r in res))
    print("chi2 widening sqrt(max(1, chi2/dof)): " + "; ".join(
        f"{r['specimen']} {r['chi2_widening'][0]:.2f}-{r['chi2_widening'][1]:.2f}" for r in res))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
