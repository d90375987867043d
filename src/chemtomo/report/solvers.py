"""The regularised solvers' part of the phantom report: the dose-sweep table and figure.

Pure functions of ``metrics`` (:func:`chemtomo.studies.paper_phantom.run_study`): the
table is markdown text, the figure a :class:`matplotlib.figure.Figure` built without
pyplot, so drawing it never switches or touches a backend; the caller saves it.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from ..studies.solvers import label


def _row_params(entry: dict, which: str) -> str:
    if which == "best":
        keys = [k for k in ("n", "alpha", "mu") if k in entry]
        return ", ".join(f"{k}={entry[k]:g}" for k in keys)
    chosen = entry.get("chosen", [])
    parts = []
    for c in chosen:
        keys = [k for k in ("n", "alpha", "mu") if k in c]
        parts.append(", ".join(f"{k}={c[k]:.3g}" if isinstance(c[k], float) else f"{k}={c[k]}" for k in keys))
    return "; ".join(parts)


def _pair(d: dict, fmt: str) -> str:
    return "/".join(format(v, fmt) for v in d.values()) if isinstance(d, dict) else format(d, fmt)


def solver_table(metrics: dict) -> str:
    """The dose sweep as a markdown table: every method at its oracle-best and automatic parameters.

    Columns: SSIM-structure and scaled MSE of the maps (per element, ``Ag/Au``), the
    weight-fraction MSE inside the particle, the mean Au fraction in the (eroded) core
    and shell, and the parameters (auto: one choice per noise seed).
    """
    lines = ["| dose | method | params | SSIM (Ag/Au) | scaled MSE (Ag/Au) | frac. MSE inside | core Au | shell Au |"
             " params used |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dose, entry in metrics["dose_sweep"].items():
        ref = entry["methods"].get("eds_sirt", {}).get("best", {}).get("mse_fraction_inside")
        for name, m in entry["methods"].items():
            for which in ("best", "auto"):
                if which not in m:
                    continue
                e = m[which]
                rel = f" ({e['mse_fraction_inside'] / ref:.2f}x)" if ref else ""
                lines.append(
                    f"| {dose} | {label(name)} | {which} | {_pair(e['ssim'], '.3f')} | "
                    f"{_pair(e['mse_scaled'], '.3g')} | {e['mse_fraction_inside']:.2e}{rel} | "
                    f"{e['core_Au']:.3f} | {e['shell_Au']:.3f} | {_row_params(e, which)} |")
    lines.append("")
    lines.append("(x): inside-particle weight-fraction MSE relative to EDS-SIRT's oracle best at that dose. "
                 "Truth: core Au 0.800, shell Au 0.200.")
    return "\n".join(lines)


def solver_comparison_figure(metrics: dict) -> Figure:
    """Inside-particle fraction MSE versus EDS dose, every method, best (filled) and auto (open).

    Parameters
    ----------
    metrics : dict
        The study's metrics (``dose_sweep``).

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot: save it with ``fig.savefig``.
    """
    ds = metrics["dose_sweep"]
    doses = sorted(ds, key=float)
    x = [float(d) for d in doses]
    methods = list(ds[doses[0]]["methods"])
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for i, name in enumerate(methods):
        colour = f"C{i}"
        best = [ds[d]["methods"][name]["best"]["mse_fraction_inside"] for d in doses]
        ax.plot(x, best, "o-", color=colour, label=f"{label(name)} best")
        if all("auto" in ds[d]["methods"][name] for d in doses):
            auto = [ds[d]["methods"][name]["auto"]["mse_fraction_inside"] for d in doses]
            ax.plot(x, auto, "s--", color=colour, mfc="none", label=f"{label(name)} auto")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("EDS dose (x paper)")
    ax.set_ylabel("weight-fraction MSE inside the particle")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
