"""The absorption study's report (issue 14): a table, issue 14's targets, the fraction maps side by side.

Pure functions of the metrics of :func:`chemtomo.studies.absorption.run_absorption_study`
(``absorption``, ``absorption_config``, ``absorption_slices``, ``absorption_summary``):
markdown text and a figure on its own Agg canvas (:mod:`.plots`). And for a result file
with an ``/absorption`` group (real data, no truth): :func:`draw_absorption_figures`, the
light elements' fractions before and after, their difference, the lines' transmission and
a table of the particle means (:func:`result_absorption_table`).
"""

from __future__ import annotations

import numpy as np

from .plots import subplots


def absorption_table(metrics: dict) -> str:
    """Every specimen and method: inside MSE, light-element region means, outer iterations, seconds.

    Runs: uncorrected, corrected and, when measured, ``no_absorption`` (the same specimen
    simulated without absorption: the floor of the correction).

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    str
        A markdown table.
    """
    out = ["| specimen | method | light line absorbed | run | inside MSE | light element: region mean (truth) | "
           "outer iterations | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name, e in metrics.get("absorption", {}).items():
        el, ln = e["light_element"], e["light_line"]
        for method, r in e["methods"].items():
            for which in [w for w in ("uncorrected", "corrected", "no_absorption") if w in r]:
                c = r[which]
                means = "; ".join(f"{reg} {v[el]:.3f} ({c['truth_region_means'][reg][el]:.3f})"
                                  for reg, v in c["region_means"].items()
                                  if np.isfinite(c["truth_region_means"][reg][el])
                                  and c["truth_region_means"][reg][el] > 0)
                out.append(f"| {name} | {method} | {ln} {e['absorbed_fraction'][ln]:.1%} | {which} | "
                           f"{c['mse_fraction_inside']:.2e} | {el}: {means} | {c['outer_iterations']} | "
                           f"{c['seconds']:.1f} |")
    return "\n".join(out)


def absorption_figure(metrics: dict):
    """The light element's weight fraction on the middle slice: truth, uncorrected, corrected; a row per specimen.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    matplotlib.figure.Figure
    """
    sl = metrics["absorption_slices"]
    rows = list(sl)
    fig, axes = subplots(len(rows), 3, figsize=(7.8, 2.5 * len(rows) + 0.4), squeeze=False)
    for i, name in enumerate(rows):
        e = sl[name]
        truth = np.asarray(e["truth"], float)
        vmax = max(float(truth.max()), 1e-6) * 1.25
        for j, which in enumerate(("truth", "uncorrected", "corrected")):
            ax = axes[i, j]
            shown = ax.imshow(np.asarray(e[which], float), cmap="viridis", vmin=0.0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(which, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{name}\nslice {e['slice']}", fontsize=8)
        fig.colorbar(shown, ax=list(axes[i]), shrink=0.8, pad=0.01, label=f"{e['element']} weight fraction")
    fig.suptitle("absorption: the light element's fraction, slice across the tilt axis (z down)", fontsize=9)
    return fig


def absorption_section(metrics: dict, figures: list[str]) -> str:
    """The report's absorption section: set-up, issue 14's targets, the table, the figures.

    Parameters
    ----------
    metrics : dict
    figures : list of str
        The study's figure files.

    Returns
    -------
    str
    """
    cfg = metrics["absorption_config"]
    a = cfg["angles_deg"]
    L = ["## Absorption (issue 14)", "",
         f"Run in {metrics['absorption_seconds']:.0f} s. Specimens {', '.join(cfg['specimens'])} in a "
         f"{cfg['field_nm']:g} nm field, n = {cfg['n']} (every slice), simulated with absorption by ray marching "
         f"on a {cfg['oversampling']}x finer grid; {len(a)} tilts {a[0]:g}..{a[-1]:g} deg; detectors "
         f"{cfg['detectors']}; EDS dose x{cfg['dose']:g}; {'Poisson noise' if cfg['noise'] else 'noiseless'}. "
         "Uncorrected: `reconstruct_series`; corrected: `reconstruct_absorption_corrected` "
         f"(tol {cfg['tol']:g}, at most {cfg['max_outer']} outer iterations). Numbers in `metrics.json` "
         "(`absorption.<specimen>.uncorrected` / `.corrected`).", "",
         absorption_table(metrics), "", "Issue 14's targets on these numbers:", ""]
    for k, v in metrics.get("absorption_summary", {}).get("acceptance", {}).items():
        L.append(f"- {'PASS' if v else 'FAIL'} {k}")
    for name, c in metrics.get("absorption_summary", {}).get("cases", {}).items():
        floor = ""
        if "mse_ratio_no_absorption" in c:
            floor = (f" (without absorption: {c['mse_ratio_no_absorption']:.2f}, the floor of a perfect correction; "
                     "see docs/absorption.md)")
        L.append(f"- {name}: corrected / uncorrected inside MSE {c['mse_ratio']:.2f}{floor}; light element's region "
                 f"error {c['light_region_error_uncorrected']:.3f} -> {c['light_region_error_corrected']:.3f}; "
                 f"cost x{c['cost_ratio']:.2f} (one run; bench/absorption_cost.py measures it)")
    if figures:
        L += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(L)


# --------------------------------------------------------------------------- a result file's correction (real data)

def _both_masks(res: dict) -> np.ndarray:
    """Voxels inside the corrected mask and the uncorrected one (its weight fractions are 0 outside it)."""
    unc = res["absorption"]["uncorrected_weight"]
    inside_unc = np.sum([np.asarray(w, float) for w in unc.values()], axis=0) > 0
    mask = res.get("mask")
    return inside_unc if mask is None else inside_unc & np.asarray(mask, bool)


def _line_of(element: str, lines) -> str | None:
    return next((ln for ln in lines if ln.split("_")[0] == element), None)


def result_absorption_means(res: dict) -> dict:
    """Each element's mean weight fraction before and after the correction, and each line's transmission.

    Parameters
    ----------
    res : dict
        A result file with an ``/absorption`` group, as :func:`chemtomo.io.result.read_result` reads it.

    Returns
    -------
    dict
        ``voxels`` (inside both masks), ``fractions`` (element -> (uncorrected,
        corrected) mean in those voxels), ``transmission`` (line -> mean
        transmission towards the detectors over those voxels and the tilts).
    """
    a = res["absorption"]
    both = _both_masks(res)
    n = int(both.sum())

    def mean(v):
        return float(np.asarray(v, float)[both].mean()) if n else float("nan")

    fr = {el: (mean(a["uncorrected_weight"][el]), mean(res["weight"][el]))
          for el in res["weight"] if el in a["uncorrected_weight"]}
    return {"voxels": n, "fractions": fr, "transmission": {ln: mean(t) for ln, t in a["transmission"].items()}}


def result_absorption_table(res: dict) -> str:
    """A markdown table of the correction in a result file: fractions before and after, count loss, iterations.

    Parameters
    ----------
    res : dict
        See :func:`result_absorption_means`.

    Returns
    -------
    str
    """
    a, m = res["absorption"], result_absorption_means(res)
    det = a["detectors"]
    lines = list(m["transmission"])
    out = [f"Absorption correction ({a.get('method', '')}; detectors {det.get('name')}: elevation "
           f"{', '.join(f'{e:g}' for e in det.get('elevation_deg', []))} deg, azimuth "
           f"{', '.join(f'{z:g}' for z in det.get('azimuth_deg', []))} deg; density {a['density_source']}): "
           f"{a['outer_iterations']} outer iteration(s), converged {a['converged']}, fraction changes "
           f"{', '.join(f'{c:.4f}' for c in a['changes'])} (tol {a['tol']:g}). Means over the {m['voxels']} voxels "
           "inside both particle masks.", "",
           "| element | line | weight fraction uncorrected | corrected | change | relative change | "
           "counts lost to absorption (1 - mean transmission) |", "|---|---|---|---|---|---|---|"]
    for el, (b, c) in m["fractions"].items():
        ln = _line_of(el, lines)
        loss = f"{1 - m['transmission'][ln]:.1%}" if ln is not None else "-"
        rel = f"{(c - b) / b:+.1%}" if b > 0 else "-"
        out.append(f"| {el} | {ln or '-'} | {b:.4f} | {c:.4f} | {c - b:+.4f} | {rel} | {loss} |")
    return "\n".join(out)


def fig_absorption_maps(res: dict, path, *, elements=("O", "Mg", "Si"), slice_index: int | None = None):
    """Weight-fraction slices before and after the correction, their difference and the line's transmission.

    Parameters
    ----------
    res : dict
        See :func:`result_absorption_means`.
    path : path
        The PNG to write.
    elements : sequence of str
        One row each (those the result holds).
    slice_index : int, optional
        The slice across the tilt axis (default: the middle of the particle mask's slices).

    Returns
    -------
    Path
    """
    from .plots import save

    a = res["absorption"]
    els = [el for el in elements if el in res["weight"] and el in a["uncorrected_weight"]] or list(res["weight"])[:3]
    both = _both_masks(res)
    if slice_index is None:
        occupied = np.flatnonzero(both.reshape(both.shape[0], -1).any(axis=1))
        slice_index = int(occupied[occupied.size // 2]) if occupied.size else both.shape[0] // 2
    s = int(slice_index)
    fig, axes = subplots(len(els), 4, figsize=(10.5, 2.6 * len(els) + 0.6), squeeze=False)
    for i, el in enumerate(els):
        before = np.asarray(a["uncorrected_weight"][el][s], float)
        after = np.asarray(res["weight"][el][s], float)
        vmax = max(float(np.percentile(np.r_[before[both[s]], after[both[s]]], 99)) if both[s].any() else 0, 1e-3)
        diff = np.where(both[s], after - before, 0.0)
        dmax = max(float(np.abs(diff).max()), 1e-4)
        ln = _line_of(el, a["transmission"])
        panels = [(before, "viridis", 0, vmax, f"{el} uncorrected"), (after, "viridis", 0, vmax, f"{el} corrected"),
                  (diff, "RdBu_r", -dmax, dmax, f"{el} corrected - uncorrected")]
        if ln is not None:
            panels.append((np.asarray(a["transmission"][ln][s], float), "magma", 0, 1,
                           f"{ln} transmission (mean over tilts)"))
        for j in range(4):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.set_axis_off()
                continue
            img, cmap, lo, hi, title = panels[j]
            shown = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(title, fontsize=8)
            fig.colorbar(shown, ax=ax, shrink=0.8, pad=0.02)
    fig.suptitle(f"absorption correction: weight fractions on slice {s} across the tilt axis (z down; "
                 f"{a['outer_iterations']} outer iteration(s); density {a['density_source'].split(' (')[0]})",
                 fontsize=9)
    return save(fig, path)


def draw_absorption_figures(res: dict, folder, *, slice_index: int | None = None) -> list:
    """The correction's figure and table of a result file with ``/absorption``, into ``folder``.

    Parameters
    ----------
    res : dict
        See :func:`result_absorption_means`.
    folder : path
    slice_index : int, optional
        See :func:`fig_absorption_maps`.

    Returns
    -------
    list of Path
        ``fig_absorption_fractions.png`` and ``absorption_fractions.md``.
    """
    from pathlib import Path

    folder = Path(folder)
    fig = fig_absorption_maps(res, folder / "fig_absorption_fractions.png", slice_index=slice_index)
    table = folder / "absorption_fractions.md"
    tmp = table.with_name(table.name + ".tmp")
    tmp.write_text(result_absorption_table(res) + "\n")
    tmp.replace(table)
    return [fig, table]
