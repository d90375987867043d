"""Figures of a reconstructed volume, as the paper's Figs 14-17 (headless, files only).

- :func:`fig_tiltseries`: HAADF and line maps at three tilts after preprocessing (Fig. 14);
- :func:`fig_orthoslices`: xz orthoslices (the cross-section across the tilt
  axis) of the reconstructed maps of each method at three slices, and an xy
  section at mid-depth (Fig. 15); the same for weight fractions (Fig. 16);
- :func:`fig_render3d`: isosurfaces of each element's rich domains inside the
  particle mask, by scikit-image marching cubes drawn with matplotlib (Fig. 17);
- :func:`fig_alignment`: shifts per tilt (and a tomviz comparison), HAADF
  registration and shadowing factors;
- for a result with an ``/uncertainty`` group, the error maps, region error bars
  and composition table of :mod:`chemtomo.report.uncertainty`;
- for a result with an ``/absorption`` group, the fractions before and after the
  correction and its table (:func:`chemtomo.report.absorption.draw_absorption_figures`).

:func:`draw_result_figures` draws all that a result file allows (a phantom
result has no tilt series or alignment). Maps keep their units: one colour
scale per row (a line of one method), fractions on 0..1 for all.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .plots import figure, save, subplots

#: Colours of elements in the 3-D rendering, in order.
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_FACES = 60_000

log = logging.getLogger("chemtomo.report")


def pick_slices(mask_or_volume: np.ndarray, n: int = 3) -> list[int]:
    """``n`` slice indices spread over the slices that hold the particle (25%, 50%, 75% of them)."""
    v = np.asarray(mask_or_volume)
    occupied = np.flatnonzero(v.reshape(v.shape[0], -1).any(axis=1))
    if occupied.size == 0:
        occupied = np.arange(v.shape[0])
    qs = np.linspace(0, 1, n + 2)[1:-1]
    return [int(occupied[int(round(q * (occupied.size - 1)))]) for q in qs]


def _grid(rows: list[list[np.ndarray]], row_titles, col_titles, path, suptitle, *, shared_row=True, vmin=None,
          vmax=None, cmap="inferno", pixel_nm=None, cbar_label=""):
    nr, nc = len(rows), max(len(r) for r in rows)
    widths = [r.shape[1] for r in rows[0]]
    fig, axes = subplots(nr, nc, figsize=(2.3 * nc + 1.2, 2.0 * nr + 0.6), squeeze=False,
                           gridspec_kw={"width_ratios": widths}, layout="constrained")
    for i, r in enumerate(rows):
        vals = np.concatenate([np.ravel(im) for im in r])
        lo = vmin if vmin is not None else float(np.min(vals))
        hi = vmax if vmax is not None else float(np.percentile(vals, 99.8))
        hi = hi if hi > lo else lo + 1e-12
        im = None
        for j in range(nc):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(r):
                ax.axis("off")
                continue
            extent = None
            if pixel_nm:
                h, w = r[j].shape
                extent = (0, w * pixel_nm, h * pixel_nm, 0)
            im = ax.imshow(r[j], cmap=cmap, vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=8)
        if shared_row:
            cb = fig.colorbar(im, ax=list(axes[i, : len(r)]), shrink=0.85, pad=0.01)
            cb.ax.tick_params(labelsize=7)
    if not shared_row:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=min(0.6, 6.0 / nr), pad=0.01, aspect=30)
        cb.ax.tick_params(labelsize=7)
        if cbar_label:
            cb.set_label(cbar_label, fontsize=8)
    fig.suptitle(suptitle, fontsize=9)
    return save(fig, path)


def fig_orthoslices(volumes: dict[str, dict[str, np.ndarray]], path, *, slices: Sequence[int] | None = None,
                    kind: str = "maps", pixel_nm: float | None = None, title: str = "") -> Path:
    """Xz orthoslices at ``slices`` plus an xy section at mid-depth, one row per (method, channel).

    Parameters
    ----------
    volumes : dict method -> dict channel -> ndarray (slices, z, x)
    kind : {"maps", "weight", "atomic"}
        Fractions share the 0..1 scale; maps get one scale per row.
    """
    methods = list(volumes)
    first = next(iter(volumes[methods[0]].values()))
    slices = pick_slices(first) if slices is None else list(slices)
    rows, titles = [], []
    for m in methods:
        for ch, vol in volumes[m].items():
            mid = vol.shape[1] // 2
            rows.append([vol[s] for s in slices] + [vol[:, mid, :]])
            titles.append(f"{m}\n{ch}")
    cols = [f"xz, slice {s}" for s in slices] + ["xy, mid-depth"]
    frac = kind in ("weight", "atomic")
    return _grid(rows, titles, cols, path, title or kind, shared_row=not frac, vmin=0.0 if frac else None,
                 vmax=1.0 if frac else None, cmap="viridis" if frac else "inferno", pixel_nm=pixel_nm,
                 cbar_label=f"{kind} fraction" if frac else "")


def fig_tiltseries(haadf: np.ndarray | None, eds: dict[str, np.ndarray], angles_deg, path,
                   pixel_nm: float | None = None) -> Path:
    """HAADF (inverted, as the paper shows ADF) and line maps at the lowest, middle and highest tilts."""
    ang = np.asarray(angles_deg, dtype=float)
    idx = [0, int(np.argmin(np.abs(ang))), ang.size - 1]
    rows, titles = [], []
    if haadf is not None:
        rows.append([haadf[i] for i in idx])
        titles.append("HAADF")
    for ln, v in eds.items():
        rows.append([v[i] for i in idx])
        titles.append(ln)
    return _grid(rows, titles, [f"{ang[i]:g} deg" for i in idx], path,
                 "Preprocessed tilt series (registered, aligned, binned, shadowing-normalised)",
                 cmap="gray", pixel_nm=pixel_nm)


def _decimated_surface(vol: np.ndarray, level: float, spacing):
    from skimage.measure import marching_cubes

    step = 1
    while True:
        verts, faces, _, _ = marching_cubes(vol, level, spacing=spacing, step_size=step)
        if len(faces) <= MAX_FACES or step >= 8:
            return verts, faces
        step += 1


def _draw_surfaces(ax, items, mask_surface, shape, pixel_nm, title):
    from matplotlib.patches import Patch
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    legend = []
    if mask_surface is not None:
        v, f = mask_surface
        ax.add_collection3d(Poly3DCollection(v[f][:, :, [2, 0, 1]], facecolor="0.6", alpha=0.07, linewidth=0))
        legend.append(("particle (mask)", "0.6"))
    for (v, f), col, label in items:
        ax.add_collection3d(Poly3DCollection(v[f][:, :, [2, 0, 1]], facecolor=col, alpha=0.4, linewidth=0))
        legend.append((label, col))
    n0, n1, n2 = (s * pixel_nm for s in shape)
    ax.set_xlim(0, n2)
    ax.set_ylim(0, n0)
    ax.set_zlim(0, n1)
    ax.set_box_aspect((n2, n0, n1))
    ax.set_xlabel("x (nm)", fontsize=7)
    ax.set_ylabel("y, tilt axis (nm)", fontsize=7)
    ax.set_zlabel("z, beam (nm)", fontsize=7)
    ax.tick_params(labelsize=5)
    ax.view_init(elev=25, azim=-60)
    ax.legend(handles=[Patch(color=c, label=lab, alpha=0.6) for lab, c in legend], fontsize=6, loc="upper left")
    ax.set_title(title, fontsize=8)


def fig_render3d(weight: dict[str, np.ndarray], mask: np.ndarray, path, *, pixel_nm: float = 1.0,
                 rich_quantile: float = 0.75, smooth_px: float = 1.0, title: str = "") -> Path:
    """Isosurfaces of each element's rich domains (weight fraction above its ``rich_quantile`` in the mask).

    The particle's outline (the mask) is drawn translucent grey, each
    element's surface in its own colour: one panel for two elements (as the
    paper's Fig. 17, Co red and Zn blue), one panel per element for more.
    Volumes are (slices, z, x); drawn with x, slices (y) and z as axes.
    """
    from scipy.ndimage import gaussian_filter

    m = np.asarray(mask, dtype=bool)
    shape = m.shape
    mask_surface = None
    if m.any() and not m.all():
        mask_surface = _decimated_surface(gaussian_filter(m.astype(np.float32), smooth_px), 0.5,
                                          (pixel_nm,) * 3)
    items = []
    for k, (el, w) in enumerate(weight.items()):
        inside = w[m] if m.any() else np.ravel(w)
        if inside.size == 0 or float(inside.max()) <= 0:
            continue
        level = float(np.quantile(inside, rich_quantile))
        vol = gaussian_filter(np.where(m, w, 0.0).astype(np.float32), smooth_px)
        if not (vol.min() < level < vol.max()):
            continue
        surf = _decimated_surface(vol, level, (pixel_nm,) * 3)
        items.append((surf, PALETTE[k % len(PALETTE)], f"{el} > {level:.2f} wt. fr."))
    title = title or "Quantified volume: rich domains of each element"
    if len(items) <= 2:
        fig = figure(figsize=(7.5, 6.5))
        _draw_surfaces(fig.add_subplot(111, projection="3d"), items, mask_surface, shape, pixel_nm, title)
    else:
        nc = 3 if len(items) > 4 else 2
        nr = int(np.ceil(len(items) / nc))
        fig = figure(figsize=(4.6 * nc, 4.3 * nr))
        for i, it in enumerate(items):
            ax = fig.add_subplot(nr, nc, i + 1, projection="3d")
            _draw_surfaces(ax, [it], mask_surface, shape, pixel_nm, it[2])
        fig.suptitle(title, fontsize=9)
    return save(fig, path)


def fig_alignment(alignment: dict, preprocess: dict, path) -> Path:
    """Shifts per tilt (with a tomviz comparison if present), HAADF registration and shadowing factors."""
    ang = np.asarray(alignment["angles_deg"], dtype=float)
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    sh = np.asarray(alignment["shifts_px"], dtype=float)
    ref = int(alignment.get("reference_index", np.argmin(np.abs(ang))))
    sh = sh - sh[ref]
    ax = axes[0]
    ax.plot(ang, sh[:, 1], "o-", label="dx (across axis), chemtomo")
    ax.plot(ang, sh[:, 0], "s-", label="dy (along axis), chemtomo")
    tv = alignment.get("tomviz")
    if tv is not None:
        t = np.asarray(tv["tomviz_px"], dtype=float)
        ax.plot(ang, t[:, 1], "o--", color="C0", alpha=0.5, label="dx, tomviz")
        ax.plot(ang, t[:, 0], "s--", color="C1", alpha=0.5, label="dy, tomviz")
        ax.set_title(f"shifts (raw px); vs tomviz RMS {float(tv['rms_px']):.2f} px", fontsize=9)
    else:
        ax.set_title("shifts (raw px), 0 at the reference tilt", fontsize=9)
    ax.set_xlabel("tilt (deg)")
    ax.legend(fontsize=7)
    ax = axes[1]
    reg = alignment.get("haadf_registration_px")
    if reg is not None:
        reg = np.asarray(reg)
        ax.plot(ang, reg[:, 1], "o-", label="dx")
        ax.plot(ang, reg[:, 0], "s-", label="dy")
        ax.legend(fontsize=7)
    ax.set_title(f"HAADF-to-EDS registration (px); axis rotation {float(alignment.get('rotation_deg', 0)):.2f} "
                 f"deg, offset {float(alignment.get('axis_offset_px', 0)):.1f} px", fontsize=8)
    ax.set_xlabel("tilt (deg)")
    ax = axes[2]
    for ln, f in (preprocess.get("shadowing_factors") or {}).items():
        ax.plot(ang, f, "o-", label=ln)
    ax.axhline(1, color="k", lw=0.5)
    ax.set_title("shadowing normalisation factors", fontsize=9)
    ax.set_xlabel("tilt (deg)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, path)


#: The figures of a result, costliest first: a helper process takes them from the front, the caller from the back.
FIGURE_TASKS = ("render3d", "maps", "weight", "tiltseries", "uncertainty", "absorption", "alignment")

#: Volumes of at least this many voxels have their figures drawn on two processes by default
#: (``processes=None``): the real NCEM example's 128^3 voxels (3 methods) take 8.2 s on one core, 6.5 s on two
#: (bench/figures.py). A helper's start-up (interpreter, imports, its own read of the file) is about 2.5 s, so
#: figures that take a few seconds gain nothing; the threshold follows from these two numbers and was not
#: measured at sizes in between.
PARALLEL_FIGURES_MIN_VOXELS = 1_000_000


def _figure_context(res: dict, slices: Sequence[int] | None) -> dict:
    """What every figure of ``res`` shares: the methods, the primary one, the orthoslices' slices."""
    methods = res["methods"] or {
        res["parameters"].get("method", "result"): {"maps": res["maps"], "weight": res["weight"],
                                                     "atomic": res["atomic"], "mask": res["mask"]}}
    primary = res.get("primary_method") or next(iter(methods))
    primary = primary if primary in methods else next(iter(methods))
    first = next(iter(methods[primary]["maps"].values()))
    if slices is None:
        sl = pick_slices(methods[primary]["mask"] if methods[primary]["mask"].any() else first)
    else:
        sl = [int(s) for s in slices]
        bad = [s for s in sl if not 0 <= s < first.shape[0]]
        if bad:
            raise ValueError(f"slices {bad} are outside 0..{first.shape[0] - 1} (slices along the tilt axis)")
    th = methods[primary].get("threshold") or (res["parameters"].get("threshold") or {})
    return {"methods": methods, "primary": primary, "slices": sl, "mask_kind": f"{th.get('method', 'esf')} threshold"}


def draw_figure(res: dict, name: str, folder, ctx: dict | None = None) -> list[Path]:
    """One of the figures of :data:`FIGURE_TASKS` for a result read by ``read_experimental``.

    Parameters
    ----------
    res : dict
        :func:`chemtomo.io.experimental_result.read_experimental` of a result file.
    name : str
        One of :data:`FIGURE_TASKS`.
    folder : path
        Where the PNGs go (an existing folder).
    ctx : dict, optional
        :func:`_figure_context` of ``res`` (computed when not given).

    Returns
    -------
    list of Path
        The files drawn: none when the result does not hold what the figure shows
        (no tilt series, alignment, uncertainty or absorption; no 3-D rendering
        for a volume with fewer than 2 voxels along an axis).

    Raises
    ------
    ValueError
        An unknown ``name``.
    """
    if name not in FIGURE_TASKS:
        raise ValueError(f"unknown figure {name!r}; choose from {', '.join(FIGURE_TASKS)}")
    ctx = ctx or _figure_context(res, None)
    folder = Path(folder)
    methods, primary, sl, px = ctx["methods"], ctx["primary"], ctx["slices"], res["pixel_nm"]
    ts = res.get("tiltseries") or {}
    if name == "tiltseries" and ts.get("eds"):
        return [fig_tiltseries(ts.get("haadf"), ts["eds"], ts["angles_deg"], folder / "fig14_tiltseries.png",
                               ts.get("pixel_nm"))]
    if name == "maps":
        return [fig_orthoslices({m: d["maps"] for m, d in methods.items()}, folder / "fig15_orthoslices_maps.png",
                                slices=sl, kind="maps", pixel_nm=px,
                                title="Reconstructed maps (EDS-SIRT: X_A = n f_A C rho; HEBT: X^b_A = z_A C rho)")]
    if name == "weight":
        return [fig_orthoslices({m: d["weight"] for m, d in methods.items()},
                                folder / "fig16_orthoslices_weight.png", slices=sl, kind="weight", pixel_nm=px,
                                title=f"Weight fractions inside the particle mask ({ctx['mask_kind']}; 0 outside)")]
    d = methods[primary]
    if name == "render3d" and min(np.shape(d["mask"])) >= 2:  # a surface needs 2 voxels along every axis
        return [fig_render3d(d["weight"], d["mask"], folder / "fig17_render3d.png", pixel_nm=px,
                             title=f"{primary}: domains rich in each element (weight fraction above its 75th "
                                   "percentile in the particle)")]
    if name == "alignment" and res.get("alignment"):
        return [fig_alignment(res["alignment"], res.get("preprocess") or {}, folder / "alignment.png")]
    if name == "uncertainty" and res.get("uncertainty"):  # of the top-level (primary) result
        from .uncertainty import draw_uncertainty_figures

        return list(draw_uncertainty_figures(res, folder, slice_index=sl[len(sl) // 2],
                                             method=res["parameters"].get("method")))
    if name == "absorption" and res.get("absorption"):  # before/after, difference, transmission
        from .absorption import draw_absorption_figures

        return list(draw_absorption_figures(res, folder))
    return []


def figure_processes(result_path, processes: int | None = None) -> int:
    """How many processes draw a result's figures: ``processes``, or by default 2 for a large volume.

    Parameters
    ----------
    result_path : path
        A chemtomo result file.
    processes : int, optional
        Given: used as it is. None: 2 when this process may use at least 2 cores and
        the result's mask holds at least :data:`PARALLEL_FIGURES_MIN_VOXELS` voxels, else 1.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``processes`` below 1.
    """
    if processes is not None:
        if int(processes) < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        return int(processes)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if cores < 2:
        return 1
    import h5py

    with h5py.File(result_path, "r") as f:
        n = int(np.prod(f["mask"].shape)) if "mask" in f else 0
    return 2 if n >= PARALLEL_FIGURES_MIN_VOXELS else 1


def claim(claims, name: str) -> bool:
    """Take figure ``name`` for this process: True for the first process that asks (an exclusive file create).

    Parameters
    ----------
    claims : path
        A folder the drawing processes share.
    name : str

    Returns
    -------
    bool
    """
    try:
        os.close(os.open(Path(claims) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _start_helper(result_path, folder, claims, slices):
    import subprocess
    import sys

    import chemtomo

    env = dict(os.environ)
    src = str(Path(chemtomo.__file__).resolve().parents[1])  # the helper imports this same chemtomo
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "chemtomo.report._figure_helper", str(result_path), str(folder), str(claims)]
    if slices is not None:
        cmd += ["--slices", *[str(int(s)) for s in slices]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def draw_result_figures(result_path, folder, *, slices: Sequence[int] | None = None,
                        processes: int | None = 1) -> list[Path]:
    """Every figure a result file allows, into ``folder``.

    Parameters
    ----------
    result_path : path
        A chemtomo result file (:func:`chemtomo.io.experimental_result.read_experimental`).
    folder : path
        Where the PNGs go (created if needed).
    slices : sequence of int, optional
        Slices of the orthoslice figures (default: spread over the particle).
    processes : int or None
        Processes that draw (default 1; None: :func:`figure_processes`' choice). With
        more than one, helper processes (``python -m chemtomo.report._figure_helper``,
        a fresh interpreter each) read the file and take figures from the front of
        :data:`FIGURE_TASKS` while this process takes them from the back; each figure
        is drawn once (:func:`claim`). The files are the same whatever the count. A
        helper that fails leaves its figures to this process, which then raises any
        error drawing them raises.

    Returns
    -------
    list of Path
        The figures drawn, in the order of :data:`FIGURE_TASKS`; no 3-D rendering
        (``fig17``) for a volume with fewer than 2 voxels along an axis (a one-slice result).
    """
    import tempfile

    from ..io.experimental_result import read_experimental

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_proc = figure_processes(result_path, processes)
    drawn: dict[str, list[Path]] = {}
    with tempfile.TemporaryDirectory(prefix="chemtomo-figures-") as claims:
        helpers = [_start_helper(result_path, folder, claims, slices) for _ in range(n_proc - 1)]
        try:
            res = read_experimental(result_path)
            ctx = _figure_context(res, slices)
            for name in (reversed(FIGURE_TASKS) if helpers else FIGURE_TASKS):
                if claim(claims, name):
                    drawn[name] = draw_figure(res, name, folder, ctx)
            for h in helpers:
                out, err = h.communicate()
                for line in out.splitlines():  # one JSON line per figure the helper finished
                    rec = json.loads(line)
                    drawn[rec["name"]] = [Path(p) for p in rec["paths"]]
                if h.returncode != 0:
                    log.warning("a figure helper process failed (exit %s); drawing its figures here: %s",
                                h.returncode, err.strip().splitlines()[-1:] or "")
            for name in FIGURE_TASKS:  # claimed by a helper that did not finish them
                if name not in drawn:
                    drawn[name] = draw_figure(res, name, folder, ctx)
        finally:
            for h in helpers:
                if h.poll() is None:
                    h.kill()
                    h.communicate()
    return [p for name in FIGURE_TASKS for p in drawn[name]]
