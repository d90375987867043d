"""The absorption study's report (issue 14): a table, issue 14's targets, the fraction maps side by side.

Pure functions of the metrics of :func:`chemtomo.studies.absorption.run_absorption_study`
(``absorption``, ``absorption_config``, ``absorption_slices``, ``absorption_summary``):
markdown text and a figure on its own Agg canvas (:mod:`.plots`).
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
