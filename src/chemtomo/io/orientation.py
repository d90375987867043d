"""Which image direction the tilt axis runs along, and putting stacks into chemtomo's layout.

chemtomo's stacks are ``(n_tilts, n_slices, n_pixels)``: the tilt axis runs
along the image's y axis, so each image row is one slice (``tilt_axis="rows"``;
IMOD's aligned stacks too). etspy puts the tilt axis along x: each image
column is one slice (its sinograms are ``stack[:, :, i]``;
``tilt_axis="columns"``), so its stacks are transposed on reading.

A check of the data backs the choice: in parallel projection the total signal
of one slice is the same at every tilt (the slice's mass), so the sums along
the right direction barely change with the tilt while the sums across it do
(:func:`layout_scores`). A layout the data contradict clearly is refused,
never reconstructed around the wrong axis.
"""

from __future__ import annotations

import numpy as np

TILT_AXES = ("rows", "columns")
_ALIASES = {"rows": "rows", "row": "rows", "y": "rows", "vertical": "rows", "chemtomo": "rows", "imod": "rows",
            "columns": "columns", "column": "columns", "cols": "columns", "x": "columns", "horizontal": "columns",
            "etspy": "columns"}
MIN_SIDE_PX = 8
CONTRADICTION_RATIO = 4.0
MIN_VARIATION = 0.1


def normalise_tilt_axis(tilt_axis) -> str | None:
    """``"rows"``, ``"columns"`` or None (``None``/``"auto"``: the file's convention).

    Raises
    ------
    ValueError
        A name that is neither.
    """
    if tilt_axis is None or str(tilt_axis).lower() == "auto":
        return None
    key = str(tilt_axis).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"tilt_axis must be 'rows' (tilt axis along the image's y: each row one slice, chemtomo "
                         f"and IMOD), 'columns' (along x: each column one slice, etspy) or 'auto', got {tilt_axis!r}")
    return _ALIASES[key]


def layout_scores(stack) -> tuple[float, float]:
    """How much the slice totals vary with tilt for each layout: ``(rows, columns)``; the smaller is right.

    Each score is the mean over slices of the relative spread (std / mean over
    tilts) of the slice's total signal.
    """
    d = np.asarray(stack, dtype=np.float64)

    def spread(sums):  # sums: (n_tilts, n_slices)
        m = np.abs(sums.mean(axis=0))
        keep = m > 1e-12 * max(float(m.max()), 1e-300)
        if not keep.any():
            return float("nan")
        return float(np.mean(sums[:, keep].std(axis=0) / m[keep]))

    return spread(d.sum(axis=2)), spread(d.sum(axis=1))


def check_layout(stack, layout: str, where: str, chosen_by: str) -> None:
    """Refuse ``layout`` when the data clearly say the tilt axis runs the other way.

    Parameters
    ----------
    stack : ndarray (n_tilts, ny, nx)
        As stored in the file.
    layout : {"rows", "columns"}
        The layout assumed.
    where : str
        The file, for the message.
    chosen_by : str
        Who chose the layout (``"tilt_axis='rows'"``, ``"etspy's convention"``).

    Raises
    ------
    ValueError
        The other layout's slice totals vary at least 4x less with tilt, and
        the assumed one's by more than 10 % (images at least 8 px each way,
        3 tilts or more).
    """
    d = np.asarray(stack)
    if d.ndim != 3 or d.shape[0] < 3 or min(d.shape[1:]) < MIN_SIDE_PX:
        return
    rows, cols = layout_scores(d)
    mine, other = (rows, cols) if layout == "rows" else (cols, rows)
    if not (np.isfinite(mine) and np.isfinite(other)):
        return
    if mine > MIN_VARIATION and mine > CONTRADICTION_RATIO * other:
        right = "columns" if layout == "rows" else "rows"
        raise ValueError(
            f"{where}: read with the tilt axis along {'y (rows)' if layout == 'rows' else 'x (columns)'} "
            f"({chosen_by}), but the data say it runs along {'x (columns)' if right == 'columns' else 'y (rows)'}: "
            f"the slice totals change by {mine:.0%} with tilt that way and by {other:.0%} the other way; give "
            f"tilt_axis='{right}' (--tilt-axis {right}) if that is right, or check the stack"
        )


def to_chemtomo_layout(stack: np.ndarray, layout: str) -> np.ndarray:
    """The stack as ``(n_tilts, n_slices, n_pixels)``: transposed when the tilt axis runs along x."""
    return np.ascontiguousarray(np.swapaxes(stack, 1, 2)) if layout == "columns" else stack
