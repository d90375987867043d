"""Small matplotlib helpers (Agg backend; files only, never a window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as _plt

    return _plt


def save(fig, path: Path) -> Path:
    """Save atomically (temporary name, then rename) and close."""
    from ..io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt().close(fig)
    return path


def image_grid(rows: list[list[np.ndarray]], row_titles: list[str], col_titles: list[str], path: Path,
               suptitle: str = "", shared: str = "row", cmap: str = "inferno", vmin=None, vmax=None,
               pixel_nm: float | None = None) -> Path:
    """A grid of images; ``shared="row"`` puts each row on one intensity scale, ``"all"`` all of them."""
    p = plt()
    nr, nc = len(rows), max(len(r) for r in rows)
    fig, axes = p.subplots(nr, nc, figsize=(2.6 * nc + 0.6, 2.5 * nr + 0.4), squeeze=False)
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
            im = ax.imshow(r[j], cmap=cmap, vmin=lo, vmax=hi, extent=extent, aspect="auto" if r[j].shape[0] != r[j].shape[1] else "equal")
            if i == 0 and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0 and i < len(row_titles):
                ax.set_ylabel(row_titles[i], fontsize=9)
        fig.colorbar(im, ax=list(axes[i, : len(r)]), shrink=0.8, pad=0.01)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save(fig, path)
