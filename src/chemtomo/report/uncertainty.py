"""Figures and tables of a result's uncertainty (issue 15): error maps, region error bars, value +- se.

- :func:`fig_error_maps`: each element's weight-fraction map beside its bootstrap
  standard error on one xz slice, both in wt % and masked outside the particle;
- :func:`fig_region_compositions`: each region's composition with its central
  interval as an error bar (the truth marked when given);
- :func:`composition_table_markdown`: the region compositions as a markdown table,
  ``value ± se (low–high)``;
- :func:`draw_uncertainty_figures`: all of them for a result that holds an uncertainty
  (``chemtomo show``).

The figure functions return :class:`matplotlib.figure.Figure` objects on their own Agg
canvas (:func:`chemtomo.report.plots.figure`): pyplot and the process's backend are
never touched. An uncertainty is a :class:`chemtomo.pipeline.uncertainty.Uncertainty`
or the ``"uncertainty"`` dict of :func:`chemtomo.io.read_result`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path
from ..io.uncertainty import region_rows, uncertainty_dict
from .plots import save, subplots

__all__ = ["composition_table_markdown", "draw_uncertainty_figures", "fig_error_maps", "fig_region_compositions"]


def _middle_slice(mask: np.ndarray) -> int:
    occupied = np.flatnonzero(np.asarray(mask).reshape(mask.shape[0], -1).any(axis=1))
    return int(occupied[occupied.size // 2]) if occupied.size else mask.shape[0] // 2


def fig_error_maps(weight: dict, se: dict, mask: np.ndarray, *, slice_index: int | None = None,
                   pixel_nm: float | None = None, interval: float | None = None, title: str = ""):
    """Each element's weight fraction beside its standard error on one xz slice, in wt %.

    Parameters
    ----------
    weight, se : dict element -> ndarray (y, z, x)
        Weight fractions and their standard errors (fractions of 1; shown times 100).
    mask : ndarray (y, z, x) of bool
        The particle: voxels outside are blank.
    slice_index : int, optional
        The slice along the tilt axis (default: the middle slice of the particle).
    pixel_nm : float, optional
        Voxel size: axes in nm when given.
    interval : float, optional
        The interval's probability, named in the title when given.
    title : str
        The title's start (the slice and the interval are appended).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        No element, an element without a standard error, or a slice outside the volume.
    """
    import matplotlib

    els = [el for el in weight if el in se]
    if not els:
        raise ValueError(f"no element has both a weight fraction and a standard error: weight {list(weight)}, "
                         f"se {list(se)}")
    mask = np.asarray(mask, bool)
    s = _middle_slice(mask) if slice_index is None else int(slice_index)
    if not 0 <= s < mask.shape[0]:
        raise ValueError(f"slice_index {s} is outside 0..{mask.shape[0] - 1} (slices along the tilt axis)")
    fig, axes = subplots(len(els), 2, figsize=(6.4, 2.4 * len(els) + 0.6), squeeze=False, layout="constrained")
    extent = None
    if pixel_nm:
        h, w = mask.shape[1:]
        extent = (0, w * pixel_nm, h * pixel_nm, 0)
    outside = ~mask[s]
    for i, el in enumerate(els):
        for j, (vol, label, cmap) in enumerate(((weight[el], "weight fraction", "viridis"),
                                                (se[el], "standard error", "magma"))):
            ax = axes[i, j]
            im_data = np.ma.masked_where(outside, 100.0 * np.asarray(vol, np.float64)[s])
            cm = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
            hi = float(im_data.max()) if im_data.count() else 1.0
            im = ax.imshow(im_data, cmap=cm, vmin=0.0, vmax=hi if hi > 0 else 1.0, extent=extent,
                           interpolation="nearest")
            cb = fig.colorbar(im, ax=ax, shrink=0.9, pad=0.02)
            cb.set_label("wt %", fontsize=8)
            cb.ax.tick_params(labelsize=7)
            ax.set_title(f"{el} {label}", fontsize=8)
            ax.tick_params(labelsize=6)
            if pixel_nm:
                ax.set_xlabel("x (nm)", fontsize=7)
                ax.set_ylabel("z, beam (nm)", fontsize=7)
    p = f"; {100 * interval:g} % intervals in the file" if interval else ""
    fig.suptitle(f"{title or 'Weight fractions and their bootstrap standard errors'}, xz slice {s}{p} "
                 "(grey: outside the particle)", fontsize=9)
    return fig


def fig_region_compositions(rows: list[dict], *, truth: dict | None = None, quantity: str = "weight",
                            title: str = ""):
    """Region compositions with their central intervals as error bars.

    Parameters
    ----------
    rows : list of dict
        :func:`chemtomo.io.uncertainty.region_rows` (region, element, value, low,
        high, interval).
    truth : dict region -> element -> float, optional
        True fractions (of 1), drawn as black crosses.
    quantity : {"weight", "atomic", "maps"}
        Fractions are shown in % (``wt %``, ``at %``), maps as they are.
    title : str

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        No rows.
    """
    if not rows:
        raise ValueError("no region rows to draw (the uncertainty has no regions)")
    regions = list(dict.fromkeys(r["region"] for r in rows))
    els = list(dict.fromkeys(r["element"] for r in rows))
    scale = 1.0 if quantity == "maps" else 100.0
    unit = {"weight": "wt %", "atomic": "at %"}.get(quantity, "map value")
    fig, axes = subplots(1, 1, figsize=(1.2 + 1.1 * len(regions) * max(1, len(els)) ** 0.5, 3.6),
                         layout="constrained")
    ax = axes
    width = 0.8 / max(1, len(els))
    for k, el in enumerate(els):
        sel = [r for r in rows if r["element"] == el]
        x = np.array([regions.index(r["region"]) for r in sel], float) - 0.4 + width * (k + 0.5)
        v = scale * np.array([r["value"] for r in sel])
        lo = scale * np.array([r["low"] for r in sel])
        hi = scale * np.array([r["high"] for r in sel])
        # the percentile interval need not contain the value: bars from the interval, the value a marker
        ax.errorbar(x, (lo + hi) / 2, yerr=(hi - lo) / 2, fmt="none", capsize=4, color=f"C{k}")
        ax.plot(x, v, "o", color=f"C{k}", label=el)
        if truth:
            tx = [xi for xi, r in zip(x, sel, strict=True) if el in truth.get(r["region"], {})]
            ty = [scale * truth[r["region"]][el] for r in sel if el in truth.get(r["region"], {})]
            if tx:
                ax.plot(tx, ty, "x", color="k", ms=8, label="truth" if k == 0 else None)
    ax.set_xticks(range(len(regions)))
    ax.set_xticklabels(regions, fontsize=8)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    p = 100 * float(rows[0].get("interval", 0.9))
    ax.set_title(title or f"Region compositions ({quantity}): estimate and {p:g} % bootstrap interval", fontsize=9)
    return fig


def composition_table_markdown(rows: list[dict], *, quantity: str = "weight", digits: int = 1) -> str:
    """Region compositions as a markdown table: one row per region, ``value ± se (low–high)`` per element.

    Parameters
    ----------
    rows : list of dict
        :func:`chemtomo.io.uncertainty.region_rows`.
    quantity : {"weight", "atomic", "maps"}
        Fractions in % (``wt %``/``at %``), maps as they are (4 significant digits).
    digits : int
        Decimals of the percentages, at least (more, up to 4, where the standard
        error needs them for two significant digits).

    Returns
    -------
    str
        The table (header, separator, rows) with a trailing newline; ``""`` for no rows.
    """
    if not rows:
        return ""
    regions = list(dict.fromkeys(r["region"] for r in rows))
    els = list(dict.fromkeys(r["element"] for r in rows))
    p = 100 * float(rows[0].get("interval", 0.9))
    unit = {"weight": "wt %", "atomic": "at %"}.get(quantity, "")

    def cell(r: dict) -> str:
        if quantity == "maps":
            v, se, lo, hi = (f"{r[k]:.4g}" for k in ("value", "se", "low", "high"))
            return f"{v} ± {se} ({lo}–{hi})"
        se = 100 * r["se"]
        # enough decimals for two significant digits of a small standard error (at most 4)
        d = digits if not (np.isfinite(se) and se > 0) else max(digits, min(4, 1 - int(np.floor(np.log10(se)))))
        v, s, lo, hi = (f"{100 * r[k]:.{d}f}" for k in ("value", "se", "low", "high"))
        return f"{v} ± {s} ({lo}–{hi})"

    cells = {(r["region"], r["element"]): cell(r) for r in rows}
    head = "| region | " + " | ".join(f"{el} {unit}".strip() for el in els) + " |"
    lines = [head, "|" + "---|" * (len(els) + 1)]
    for reg in regions:
        lines.append(f"| {reg} | " + " | ".join(cells.get((reg, el), "") for el in els) + " |")
    lines.append("")
    lines.append(f"value ± bootstrap standard error ({p:g} % interval)")
    return "\n".join(lines) + "\n"


def draw_uncertainty_figures(res: dict, folder, *, slice_index: int | None = None, truth: dict | None = None,
                             method: str | None = None) -> list[Path]:
    """The error maps, the region error bars and the markdown table of a result with an uncertainty.

    Parameters
    ----------
    res : dict
        :func:`chemtomo.io.read_result` (``weight``, ``mask``, ``pixel_nm``,
        ``uncertainty``).
    folder : path
        Where the files go (created if needed).
    slice_index : int, optional
        The slice of the error maps (default: the middle of the particle).
    truth : dict region -> element -> float, optional
        True weight fractions to mark.
    method : str, optional
        Named in the titles.

    Returns
    -------
    list of Path
        ``uncertainty_error_maps.png``, ``uncertainty_regions.png`` (when the
        uncertainty has regions) and ``uncertainty_table.md``; empty when ``res``
        holds no uncertainty.
    """
    unc = res.get("uncertainty")
    if not unc:
        return []
    ud = uncertainty_dict(unc)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by = f" ({method})" if method else ""
    se = {el: d["se"] for el, d in ud["bootstrap"]["weight"].items()}
    out = []
    if res.get("mask") is not None and se:
        fig = fig_error_maps(res["weight"], se, res["mask"], slice_index=slice_index, pixel_nm=res.get("pixel_nm"),
                             interval=ud["interval"],
                             title=f"Weight fractions and their bootstrap standard errors{by}")
        out.append(save(fig, folder / "uncertainty_error_maps.png"))
    rows = region_rows(ud, "weight")
    if rows:
        out.append(save(fig_region_compositions(rows, truth=truth), folder / "uncertainty_regions.png"))
    table = f"# Region compositions{by}\n\n" + (composition_table_markdown(rows) or "no regions\n")
    notes = "".join(f"\n- {n}" for n in ud.get("notes", []))
    text = table + (f"\nNotes:{notes}\n" if notes else "") + \
        f"\n{ud['replicas']} replicas (seed {ud['seed']}, EDS replicas of the {ud['source']}).\n"
    path = folder / "uncertainty_table.md"
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    out.append(path)
    return out
