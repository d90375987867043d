"""The benchmark's report: the specimen suite's table and inside-MSE figure, the tilt-sets study's section, the files.

Pure functions of ``metrics`` (:func:`chemtomo.studies.benchmark.run_benchmark`): the
table is markdown text, the figure a :class:`matplotlib.figure.Figure` built without
pyplot (no backend is switched or touched); :func:`write_benchmark` writes
``metrics.json``, ``report.md`` and the figure, each atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..io.atomic import atomic_path
from ..io.provenance import json_default
from ..studies.solvers import label
from .absorption import absorption_figure, absorption_section
from .tilt_sets import tilt_sets_figure, tilt_sets_section, tilt_sets_slices_figure


def _params(p: dict) -> str:
    keys = [k for k in ("n", "alpha", "mu", "sharpness", "snr_db") if k in p]
    return ", ".join(f"{k}={p[k]:.3g}" if isinstance(p[k], float) else f"{k}={p[k]}" for k in keys)


def _heavy(elements: list[str]) -> str:
    """The element whose fraction the table shows (the last one: Au, Cu, Pt in the suite)."""
    return elements[-1]


def _regions(e: dict, el: str) -> str:
    return " / ".join(f"{r} {v[el]:.3f}" for r, v in e["region_means"].items() if np.isfinite(v[el]))


def benchmark_table(metrics: dict) -> str:
    """Every specimen, dose and method at its oracle-best and automatic parameters, as a markdown table.

    Columns: the inside-particle weight-fraction MSE (and, for auto, its ratio to the
    best), the region means of one element against the truth's, the SSIM structure
    term per line (mean), the parameters and the wall time.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    str
    """
    out = ["| specimen | dose | method | which | frac. MSE inside | auto/best | x EDS-SIRT auto | element | "
           "region means (truth) | SSIM | params | time (s) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, doses in metrics["suite"].items():
        els = metrics["specimens"][spec]["elements"]
        el = _heavy(els)
        for dose, entry in doses.items():
            ms = entry["methods"]
            ref = ms.get("eds_sirt", {}).get("auto", {}).get("mse_fraction_inside")
            rows = {label(n): m for n, m in ms.items()}
            case = metrics.get("summary", {}).get("cases", {}).get(spec, {}).get(dose, {})
            masked = {label(n): r for n, r in case.get("auto_over_best_on_mask", {}).items()}
            rows.update({f"{n} (peer)": m for n, m in entry.get("peers", {}).items()})
            for name, m in rows.items():
                for which in ("best", "auto"):
                    e = m[which]
                    v = e["mse_fraction_inside"]
                    ratio = f"{v / m['best']['mse_fraction_inside']:.2f}" if which == "auto" else ""
                    on_mask = masked.get(name)
                    if which == "auto" and on_mask is not None:
                        ratio += f" ({on_mask:.2f})"
                    rel = f"{v / ref:.2f}" if ref else ""
                    truth = " / ".join(f"{tv[el]:.3f}" for tv in e["truth_region_means"].values()
                                       if np.isfinite(tv[el]))
                    ssim = np.mean(list(e["ssim"].values()))
                    t = e.get("sweep_seconds", e.get("seconds", float("nan")))
                    out.append(f"| {spec} | x{dose} | {name} | {which} | {v:.2e} | {ratio} | {rel} | {el} | "
                               f"{_regions(e, el)} ({truth}) | {ssim:.3f} | {_params(e['params'])} | {t:.1f} |")
    out += ["", "frac. MSE inside: weight-fraction MSE inside the particle (mean over elements); auto/best: "
            "the automatic choice's MSE over the oracle-best's (in brackets: the same on the particle voxels the "
            "ESF mask keeps, `auto_over_best_on_mask`: a voxel the mask misses costs its whole fraction squared, "
            "which depends on the parameter through the mask rather than the reconstruction); x EDS-SIRT auto: "
            "over EDS-SIRT's automatic MSE at that specimen and dose. Time: the whole grid sweep (best) or the "
            "automatic run (choice and reconstruction)."]
    return "\n".join(out)


def peers_table(metrics: dict) -> str:
    """The best chemtomo method with automatic parameters against each peer's oracle-best, per specimen and dose.

    Parameters
    ----------
    metrics : dict
        With ``summary.peers`` (:func:`chemtomo.studies.peers.compare_with_peers`).

    Returns
    -------
    str
        A markdown table per peer, one row per specimen and dose, with PASS where chemtomo's
        best-auto inside MSE is at most the peer's best (and, where the metrics hold it, the
        same comparison on the particle-or-mask score); empty without peers.
    """
    peers = metrics.get("summary", {}).get("peers")
    if not peers:
        return ""
    out = []
    union = any("particle_or_mask" in c for specs in peers.values() for d in specs.values() for c in d.values())
    for peer, specs in peers.items():
        out += [f"| specimen | dose | chemtomo best-auto (method) | {peer} best (params) | {peer} auto | "
                f"chemtomo best-auto vs {peer} best |" + (" particle-or-mask: chemtomo / peer best |" if union else ""),
                "|---|---|---|---|---|---|" + ("---|" if union else "")]
        for spec, doses in specs.items():
            for dose, c in doses.items():
                edge = f"; at the grid edge: {', '.join(c['peer_at_grid_edge'])}" if c.get("peer_at_grid_edge") else ""
                u = c.get("particle_or_mask")
                tail = (f" {u['chemtomo_best_auto']:.2e} / {u['peer_best']:.2e}, {u['ratio']:.2f}x "
                        f"{'PASS' if u['pass'] else 'FAIL'} |" if u else " - |") if union else ""
                out.append(f"| {spec} | x{dose} | {c['chemtomo_best_auto']:.2e} ({label(c['chemtomo_method'])}) | "
                           f"{c['peer_best']:.2e} ({_params(c.get('peer_best_params') or {})}{edge}) | "
                           f"{c['peer_auto']:.2e} | {c['ratio']:.2f}x {'PASS' if c['pass'] else 'FAIL'} |" + tail)
        out.append("")
    out += ["Inside-particle weight-fraction MSE. chemtomo best-auto: the lowest automatic-parameter MSE over "
            "chemtomo's methods; the peer's best: its lowest over its grid (oracle); its auto: its own automatic "
            "setting. The last column: chemtomo's best-auto over the peer's best, PASS at most 1."]
    if union:
        out += ["", "Particle-or-mask: the same comparison on the MSE over the particle's voxels and the mask's "
                "together (a mask voxel in vacuum costs its fractions squared, as a missed particle voxel does; "
                "the inside MSE charges only the missed ones)."]
    return "\n".join(out)


def benchmark_figure(metrics: dict) -> Figure:
    """Inside-particle weight-fraction MSE per specimen and method: best (filled) and auto (open), one panel per dose.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot: save it with ``fig.savefig``.
    """
    suite = metrics["suite"]
    specs = list(suite)
    doses = list(next(iter(suite.values())))
    methods = list(next(iter(next(iter(suite.values())).values()))["methods"])
    fig = Figure(figsize=(max(6.4, 1.6 * len(specs) * len(doses)), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(doses), sharey=True))
    width = 0.8 / len(methods)
    x = np.arange(len(specs))
    for ax, dose in zip(axes, doses, strict=True):
        for i, name in enumerate(methods):
            best = [suite[s][dose]["methods"][name]["best"]["mse_fraction_inside"] for s in specs]
            auto = [suite[s][dose]["methods"][name]["auto"]["mse_fraction_inside"] for s in specs]
            xi = x - 0.4 + (i + 0.5) * width
            ax.bar(xi, best, width * 0.9, color=f"C{i}", label=f"{label(name)} best")
            ax.plot(xi, auto, "o", mfc="none", mec="k", ms=5, label="auto" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_xticks(x)
        ax.set_xticklabels(specs, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"EDS dose x{dose}", fontsize=9)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("weight-fraction MSE inside the particle")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def response_ratio_table(metrics: dict) -> str:
    """HEBT's fitted response ratios over the theory's, per specimen and dose (each relative to one line).

    Parameters
    ----------
    metrics : dict
        With ``suite.<specimen>.<dose>.series.response_ratios``
        (:meth:`chemtomo.reconstruct.ResponseRatios.against_theory`).

    Returns
    -------
    str
        A markdown table, empty when no case has a HAADF.
    """
    rows = []
    for spec, doses in metrics["suite"].items():
        for dose, e in doses.items():
            rr = e.get("series", {}).get("response_ratios")
            if not rr:
                continue
            u, f = rr["unfiltered"], rr["filtered"]
            ratios = [", ".join(f"{ln} {v:.3f}" for ln, v in zip(c["lines"], c["fitted_over_theory"], strict=True))
                      for c in (u, f)]
            rows.append(f"| {spec} | x{dose} | {u['reference']} | {ratios[0]} ({u['r2']:.4f}) | "
                        f"{ratios[1]} ({f['r2']:.4f}) |")
    if not rows:
        return ""
    return "\n".join(["| specimen | dose | relative to | fitted / theory, raw counts (R^2) | "
                      "fitted / theory, filtered as HEBT fits (R^2) |", "|---|---|---|---|---|", *rows,
                      "", "Non-negative least squares of the HAADF sinogram on the EDS sinograms; the theory is eq 16 "
                      "with the factors that made the data, so 1 is a fit without error. Noise in the EDS counts "
                      "(the regressors) biases the fit: the image-plane filter reduces it."])


def _suite_section(metrics: dict, figures: list[str]) -> list[str]:
    """The specimen suite's part of ``report.md``."""
    cfg = metrics["config"]
    sl = metrics["slices"]
    L = [f"Suite run in {metrics['seconds']:.0f} s. Every number is in `metrics.json` beside this file "
         "(`suite.<specimen>.<dose>.methods.<method>.best` / `.auto`).", "",
         "## Set-up", "",
         f"- Specimens {', '.join(cfg['specimens'])}: n = {cfg['n']} voxels across, projected on a "
         f"{cfg['oversampling']}x finer grid; {len(cfg['angles_deg'])} tilts "
         f"{cfg['angles_deg'][0]:g}..{cfg['angles_deg'][-1]:g} deg; {cfg['beam_kev']:g} keV; "
         f"EDS doses x{', x'.join(f'{d:g}' for d in cfg['doses'])} of the paper's (HAADF dose fixed).",
         f"- Slices {sl['range'][0]}:{sl['range'][1]} of {sl['of']}: {sl['note']}.",
         "- best: the lowest inside MSE over the grid (oracle); auto: `reconstruct_series(auto=True)` on the "
         "same grid, or the rule's own where it differs. Grids: " + "; ".join(
             f"{m}: " + ", ".join(f"{k} {v}" for k, v in g.items()) for m, g in cfg["grids"].items()) + "."
         + "".join(f" Rule grid of {m}: " + ", ".join(f"{k} {v}" for k, v in g.items()) + "."
                   for m, g in (cfg.get("rule_grids") or {}).items() if g != cfg["grids"].get(m)), "",
         "## Table", "", benchmark_table(metrics), ""]
    if metrics["summary"].get("peers"):
        inputs = {p: r["input"] for doses in metrics["suite"].values() for e in doses.values()
                  for p, r in e.get("peers", {}).items()}
        g = cfg.get("peer_grids") or {}
        L += ["## chemtomo best-auto vs the peers' best", "",
              "Each peer reconstructs every line of the same series (same specimen, dose, noise seed, tilts and "
              "slices) and is quantified with the same factors and mask. "
              + "; ".join(f"{p}: {v}" for p, v in inputs.items()) + "."
              + "".join(f" {p}'s grid: " + ", ".join(f"{k} {v}" for k, v in pg.items()) + "." for p, pg in g.items()),
              "", peers_table(metrics), ""]
    rr = response_ratio_table(metrics)
    if rr:
        L += ["## HEBT's response ratios against the theory", "", rr, ""]
    L += ["## Issue 13's targets on these numbers", ""]
    for k, v in metrics["summary"]["acceptance"].items():
        L.append(f"- {'PASS' if v else 'FAIL'} {k}")
    if metrics.get("uncertainty"):
        L += ["", "## Uncertainty calibration (issue 15)", "", uncertainty_table(metrics)]
    L += ["", "## Figures", ""]
    L += [f"![{f}]({f})" for f in figures]
    return L


def benchmark_report(metrics: dict, figures: list[str], tilt_set_figures: list[str] = (),
                     absorption_figures: list[str] = ()) -> str:
    """``report.md``'s text: the suite's set-up, table, targets and figures, then the tilt-sets section.

    Parameters
    ----------
    metrics : dict
        The suite's metrics (``suite``, ...), the tilt-sets study's (``tilt_sets``, ...), or both.
    figures : list of str
        The suite's figure files.
    tilt_set_figures : list of str
        The tilt-sets study's figure files.
    absorption_figures : list of str
        The absorption study's figure files.

    Returns
    -------
    str
    """
    cfg = metrics.get("config") or metrics.get("tilt_sets_config") or metrics["absorption_config"]
    L = [f"# chemtomo specimen-suite benchmark ({cfg['label']})", ""]
    if "suite" in metrics:
        L += _suite_section(metrics, figures)
    if "tilt_sets" in metrics:
        L += ["", tilt_sets_section(metrics, list(tilt_set_figures))]
    if "absorption" in metrics:
        L += ["", absorption_section(metrics, list(absorption_figures))]
    return "\n".join(L) + "\n"


def uncertainty_table(metrics: dict) -> str:
    """The calibration study (``metrics["uncertainty"]``) as a markdown table.

    Columns: coverage of the truth by the nominal 90 % intervals of region means (as
    labelled; interiors) and voxels (all; uniform interiors; near interfaces), per
    interval definition; the bootstrap SE over the seed spread; the voxels' rms bias
    over the median SE.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    str
    """
    out = ["| specimen | method | definition | regions | region interiors | voxels | voxel interiors | "
           "voxels near interfaces | SE / seed spread | rms bias / SE |", "|---|---|---|---|---|---|---|---|---|---|"]
    for spec, methods in metrics.get("uncertainty", {}).items():
        for name, m in methods.items():
            for d, c in m["coverage"].items():
                out.append(f"| {spec} | {name} | {d} | {c['region']:.2f} | {c['region_interior']:.2f} | "
                           f"{c['voxel']:.2f} | {c['voxel_interior']:.2f} | {c['voxel_edge']:.2f} | "
                           f"{m['se_over_seed_spread']:.2f} | {m['bias']['voxel_rms_bias_over_median_se']:.1f} |")
    return "\n".join(out)


def write_uncertainty_study(metrics: dict, out: str | Path) -> list[Path]:
    """Write the calibration study alone (``benchmark --uncertainty-only``): ``metrics.json`` and ``report.md``.

    Parameters
    ----------
    metrics : dict
        ``config``, ``uncertainty`` and ``uncertainty_config``.
    out : path

    Returns
    -------
    list of Path
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mpath, rpath = out / "metrics.json", out / "report.md"
    with atomic_path(mpath) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1, default=json_default))
    u = metrics.get("uncertainty_config", {})
    text = (f"# chemtomo uncertainty calibration ({metrics['config']['label']})\n\n"
            f"{u.get('seeds')} noise realisations x {u.get('replicas')} replicas at EDS dose x{u.get('dose')}; "
            f"n = {metrics['config']['n']}, slices {metrics['config']['n_slices']}. Numbers in `metrics.json` "
            "(`uncertainty.<specimen>.<method>`).\n\n" + uncertainty_table(metrics) + "\n")
    with atomic_path(rpath) as tmp:
        tmp.write_text(text)
    return [mpath, rpath]


def write_benchmark(metrics: dict, out: str | Path) -> list[Path]:
    """Write ``metrics.json``, ``report.md`` and the figures into ``out``, each atomically.

    The suite's figure ``inside_mse.png`` when the metrics hold the suite; the tilt-sets
    study's ``tilt_sets_mse.png`` and ``tilt_sets_slices.png`` when they hold it; the
    absorption study's ``absorption_fractions.png``.

    Parameters
    ----------
    metrics : dict
    out : path

    Returns
    -------
    list of Path
        The files written (``metrics.json`` first).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figs = []
    if "suite" in metrics:
        fig_path = out / "inside_mse.png"
        with atomic_path(fig_path) as tmp:
            benchmark_figure(metrics).savefig(tmp, dpi=120)
        figs.append(fig_path)
    tilt_figs = []
    if "tilt_sets" in metrics:
        made = [("tilt_sets_mse.png", tilt_sets_figure)]
        if metrics.get("tilt_sets_slices"):
            made.append(("tilt_sets_slices.png", tilt_sets_slices_figure))
        for name, make in made:
            path = out / name
            with atomic_path(path) as tmp:
                make(metrics).savefig(tmp, dpi=120)
            tilt_figs.append(path)
    abs_figs = []
    if metrics.get("absorption_slices"):
        path = out / "absorption_fractions.png"
        with atomic_path(path) as tmp:
            absorption_figure(metrics).savefig(tmp, dpi=120)
        abs_figs.append(path)
    mpath = out / "metrics.json"
    with atomic_path(mpath) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1, default=json_default))
    rpath = out / "report.md"
    with atomic_path(rpath) as tmp:
        tmp.write_text(benchmark_report(metrics, [f.name for f in figs], [f.name for f in tilt_figs],
                                        [f.name for f in abs_figs]))
    return [mpath, rpath, *figs, *tilt_figs, *abs_figs]
