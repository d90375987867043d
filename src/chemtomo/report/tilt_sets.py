"""The tilt-sets study's report (issue 16): a table, inside MSE against EDS tilts, the reconstructions.

Pure functions of the metrics of :func:`chemtomo.studies.tilt_sets.run_tilt_sets`
(``tilt_sets``, ``tilt_sets_config``, ``tilt_sets_slices``, ``tilt_sets_summary``):
markdown text and figures on their own Agg canvases (:mod:`.plots`; pyplot and the
backend are not touched).
"""

from __future__ import annotations

import numpy as np

from ..studies.solvers import label
from .plots import subplots

#: Line style per HAADF tilt count (others: solid); cells with both at the same tilts: dash-dot.
_STYLES = {31: ":", 71: "-", 141: "--"}


def _cells(cells: dict) -> list[tuple[int, int, str]]:
    """``(n_eds, n_haadf, key)`` of the cell keys ``<n_eds>x<n_haadf>``."""
    out = []
    for k in cells:
        e, h = k.split("x")
        out.append((int(e), int(h), k))
    return out


def _params(p: dict) -> str:
    keys = [k for k in ("n", "alpha", "mu") if k in p]
    return ", ".join(f"{k}={p[k]:.3g}" if isinstance(p[k], float) else f"{k}={p[k]}" for k in keys)


def tilt_sets_table(metrics: dict) -> str:
    """Every range, dose, cell and method: oracle and automatic inside MSE, as a markdown table.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    str
    """
    out = ["| range | dose | EDS x HAADF tilts | method | oracle MSE | auto MSE | auto/oracle | x EDS-SIRT auto | "
           "auto params | oracle params |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for rk, doses in metrics["tilt_sets"].items():
        for dk, cells in doses.items():
            for _, _, ck in _cells(cells):
                ms = cells[ck]["methods"]
                ref = ms.get("eds_sirt", {}).get("auto", {}).get("mse_fraction_inside")
                for name, m in ms.items():
                    o, a = m["oracle"]["mse_fraction_inside"], m["auto"]["mse_fraction_inside"]
                    rel = f"{a / ref:.2f}" if ref else ""
                    out.append(f"| +-{rk} | x{dk} | {ck} | {label(name)} | {o:.2e} | {a:.2e} | {a / o:.2f} | {rel} | "
                               f"{_params(m['auto']['params'])} | {_params(m['oracle']['params'])} |")
    out += ["", "MSE: weight-fraction MSE inside the particle (mean over elements). x EDS-SIRT auto: the "
            "automatic MSE over EDS-SIRT's automatic MSE in that cell (EDS-SIRT ignores the HAADF)."]
    return "\n".join(out)


def _log_axes(ax, xticks: list[int]) -> None:
    """Log-log axes with the EDS tilt counts as x ticks and 1-2-5 y ticks (3 digits), no minor labels."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, LogLocator, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(FixedLocator(xticks))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", alpha=0.3)


def tilt_sets_figure(metrics: dict):
    """Inside MSE (automatic parameters) against the number of EDS tilts: a row per method, a column per range and dose.

    In each panel a line per HAADF tilt count (solid 71, dotted 31, dashed 141), the
    cells with both modalities at the same tilts as a dash-dot line (squares), the
    oracle as open markers.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    matplotlib.figure.Figure
    """
    study = metrics["tilt_sets"]
    cols = [(rk, dk) for rk, doses in study.items() for dk in doses]
    methods = list(dict.fromkeys(m for rk, dk in cols for c in study[rk][dk].values() for m in c["methods"]))
    fig, axes = subplots(len(methods), len(cols), figsize=(3.2 * len(cols) + 0.8, 2.4 * len(methods) + 0.8),
                         squeeze=False)
    for j, (rk, dk) in enumerate(cols):
        cells = _cells(study[rk][dk])
        groups = {h: sorted((e, k) for e, hh, k in cells if hh == h) for h in sorted({h for _, h, _ in cells})}
        groups = {**{f"HAADF {h}": v for h, v in groups.items() if any(e != h for e, _ in v)},
                  "both at n": sorted((e, k) for e, h, k in cells if e == h)}
        for i, name in enumerate(methods):
            ax = axes[i, j]
            for g, (gname, pts) in enumerate(groups.items()):
                pts = [(e, k) for e, k in pts if name in study[rk][dk][k]["methods"]]
                if not pts:
                    continue
                x = [e for e, _ in pts]
                auto = [study[rk][dk][k]["methods"][name]["auto"]["mse_fraction_inside"] for _, k in pts]
                orac = [study[rk][dk][k]["methods"][name]["oracle"]["mse_fraction_inside"] for _, k in pts]
                same = gname == "both at n"
                style = "-." if same else _STYLES.get(int(gname.split()[1]), "-")
                ax.plot(x, auto, style, marker="s" if same else "o", color=f"C{g}", ms=4, label=gname)
                ax.plot(x, orac, linestyle="none", marker="s" if same else "o", mfc="none", mec=f"C{g}", ms=6)
            _log_axes(ax, sorted({e for e, _, _ in cells}))
            if i == 0:
                ax.set_title(f"+-{rk} deg, EDS dose x{dk}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{label(name)}\ninside MSE", fontsize=8)
            if i == len(methods) - 1:
                ax.set_xlabel("EDS tilts", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(handles)), fontsize=7, frameon=False,
               title="filled: automatic; open: oracle", title_fontsize=7)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def tilt_sets_slices_figure(metrics: dict):
    """A slice through the truth and each method's automatic fraction map, a row per tilt range.

    The slice is perpendicular to the tilt axis (z down, x across), so a limited tilt
    range's missing wedge shows as elongation and streaks along z.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    matplotlib.figure.Figure
    """
    sl = metrics["tilt_sets_slices"]
    rows = list(sl)
    methods = list(dict.fromkeys(m for r in rows for m in sl[r]["methods"]))
    nc = 1 + len(methods)
    fig, axes = subplots(len(rows), nc, figsize=(2.3 * nc + 0.8, 2.4 * len(rows) + 0.4), squeeze=False)
    for i, rk in enumerate(rows):
        e = sl[rk]
        ims = [("truth", e["truth"])] + [(label(m), e["methods"][m]) for m in methods if m in e["methods"]]
        for j, (title, im) in enumerate(ims):
            ax = axes[i, j]
            shown = ax.imshow(np.asarray(im, float), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"+-{rk} deg, {e['cell']}\nEDS dose x{e['dose']}", fontsize=8)
        for j in range(len(ims), nc):
            axes[i, j].axis("off")
        fig.colorbar(shown, ax=list(axes[i]), shrink=0.8, pad=0.01, label=f"{e['element']} weight fraction")
    fig.suptitle("slice across the tilt axis (z down): automatic parameters; EDS x HAADF tilts", fontsize=9)
    return fig


def tilt_sets_section(metrics: dict, figures: list[str]) -> str:
    """The report's tilt-sets section: set-up, issue 16's claim, the table, the figures.

    Parameters
    ----------
    metrics : dict
    figures : list of str
        Figure file names (relative to the report).

    Returns
    -------
    str
    """
    cfg = metrics["tilt_sets_config"]
    summ = metrics["tilt_sets_summary"]
    a, b = cfg["slices"]
    L = ["## Tilt sets: dense HAADF, sparse EDS (issue 16)", "",
         f"Run in {metrics.get('tilt_sets_seconds', float('nan')):.0f} s. Keys in `metrics.json`: "
         "`tilt_sets.<range_deg>.<dose>.<n_eds>x<n_haadf>.methods.<method>.<oracle|auto>.mse_fraction_inside`.", "",
         f"- Specimen {cfg['specimen']}: n = {cfg['n']}, slices {a}:{b}; ranges "
         f"{', '.join(f'+-{r:g}' for r in cfg['ranges_deg'])} deg; EDS doses per tilt "
         f"x{', x'.join(f'{d:g}' for d in cfg['doses'])} of the paper's (HAADF dose per tilt fixed); cells "
         f"(EDS x HAADF tilts, evenly spaced, the EDS on the nearest HAADF tilts): {', '.join(cfg['cells'])}.",
         "- oracle: the lowest inside MSE over the method's grid; auto: `reconstruct_series(auto=True)` on the same "
         "grid. EDS-SIRT reconstructs the EDS alone.", "",
         "### Issue 16's claim on these numbers", ""]
    if not summ["claim"]:
        L.append("- not measured: the run lacks one of the cells 11x71, 71x71, 11x11 or fused-TV.")
    for rk, doses in summ["claim"].items():
        for dk, c in doses.items():
            L.append(f"- +-{rk} deg, dose x{dk}: fused-TV auto 11x71 / 71x71 = "
                     f"{c['fused_tv_auto_11x71_over_71x71']:.2f} (<= 1.5), 11x71 / 11x11 = "
                     f"{c['fused_tv_auto_11x71_over_11x11']:.2f} (<= 0.5): {'HOLDS' if c['holds'] else 'FAILS'}; "
                     f"oracle {c['fused_tv_oracle_11x71_over_71x71']:.2f} and "
                     f"{c['fused_tv_oracle_11x71_over_11x11']:.2f}")
    L += ["", "### Table", "", tilt_sets_table(metrics), "", "### Figures", ""]
    L += [f"![{f}]({f})" for f in figures]
    return "\n".join(L) + "\n"
