"""Small matplotlib helpers: figures on their own :class:`matplotlib.figure.Figure` objects.

Figures are never made through :mod:`matplotlib.pyplot` and the process's
backend is never switched: each figure gets its own Agg canvas
(:class:`matplotlib.backends.backend_agg.FigureCanvasAgg`) and is written to a
file, so drawing a report inside a notebook leaves the user's figures and
backend alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def figure(**kwargs):
    """A new :class:`matplotlib.figure.Figure` with its own Agg canvas (not known to pyplot).

    Parameters
    ----------
    **kwargs
        Passed to :class:`matplotlib.figure.Figure` (``figsize`` in inches, ``layout``, ...).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, squeeze: bool = True, gridspec_kw: dict | None = None,
             subplot_kw: dict | None = None, **fig_kw):
    """``pyplot.subplots`` without pyplot: a :func:`figure` and its grid of axes.

    Parameters
    ----------
    nrows, ncols : int
        The grid of axes.
    squeeze : bool
        As :meth:`matplotlib.figure.Figure.subplots`.
    gridspec_kw, subplot_kw : dict, optional
        As :meth:`matplotlib.figure.Figure.subplots`.
    **fig_kw
        Passed to :func:`figure` (``figsize``, ``layout``).

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : Axes or ndarray of Axes
    """
    fig = figure(**fig_kw)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, gridspec_kw=gridspec_kw, subplot_kw=subplot_kw)
    return fig, axes


def color_cycle() -> list[str]:
    """The colours of matplotlib's current property cycle."""
    import matplotlib

    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def save(fig, path: Path) -> Path:
    """Save ``fig`` atomically (temporary name, then rename) as PNG at 110 dpi.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path
        The file to write.

    Returns
    -------
    Path
        ``path``.
    """
    from ..io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def image_grid(rows: list[list[np.ndarray]], row_titles: list[str], col_titles: list[str], path: Path,
               suptitle: str = "", shared: str = "row", cmap: str = "inferno", vmin=None, vmax=None,
               pixel_nm: float | None = None) -> Path:
    """A grid of images written to ``path``.

    Parameters
    ----------
    rows : list of list of ndarray (2-D)
        The images, row by row.
    row_titles, col_titles : list of str
    path : path
        The PNG to write.
    suptitle : str
    shared : {"row", "all"}
        ``"row"`` puts each row on one intensity scale, ``"all"`` all of them.
    cmap : str
    vmin, vmax : float, optional
        Fixed intensity range (default: from the images).
    pixel_nm : float, optional
        Pixel size: axes in nm.

    Returns
    -------
    Path
    """
    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = subplots(nr, nc, figsize=(2.6 * nc + 0.6, 2.5 * nr + 0.4), squeeze=False)
    allv = np.concatenate([np.ravel(im) for r in rows for im in r])
    for i, r in enumerate(rows):
        rv = np.concatenate([np.ravel(im) for im in r])
        lo = vmin if vmin is not None else (np.min(allv) if shared == "all" else np.min(rv))
        hi = vmax if vmax is not None else (np.max(allv) if shared == "all" else np.max(rv))
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
            im = ax.imshow(r[j], cmap=cmap, vmin=lo, vmax=hi, extent=extent,
                           aspect="auto" if r[j].shape[0] != r[j].shape[1] else "equal")
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0 and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=9)
        fig.colorbar(im, ax=list(axes[i, : len(r)]), shrink=0.8, pad=0.01)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save(fig, path)
