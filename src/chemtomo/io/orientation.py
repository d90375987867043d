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


# --------------------------------------------------------------------------- any in-plane angle

#: Rotations (degrees) within this of 0 or 90 are not interpolated: the stack is kept or transposed.
SNAP_DEG = 1.0
#: The estimate is trusted when the best direction's profile spread is at most this fraction of the median
#: direction's and no other direction (more than 10 degrees away) comes within 2x of it.
CONFIDENT_RATIO = 0.25
_EST_MAX_SIDE = 96


def rotate_stack(stack: np.ndarray, rotation_deg: float) -> np.ndarray:
    """Every image rotated by ``rotation_deg`` about its centre (linear, same size, edges repeated).

    The rotation that :func:`estimate_axis_rotation` returns brings the tilt
    axis along the image's y axis (``tilt_axis="rows"``).
    """
    from scipy import ndimage

    d = np.asarray(stack, dtype=np.float32)
    return np.stack([ndimage.rotate(im, rotation_deg, reshape=False, order=1, mode="nearest") for im in d])


def _profile_spread(d: np.ndarray, rotation_deg: float) -> float:
    """Spread over tilts of the profile along y of the images rotated by ``rotation_deg`` (projection invariance)."""
    from scipy import ndimage

    ny, nx = d.shape[1:]
    r = 0.5 * min(ny, nx)
    yy, xx = np.mgrid[:ny, :nx]
    disc = ((yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2) <= (r - 1) ** 2
    prof = np.stack([ndimage.rotate(np.where(disc, im, 0.0), rotation_deg, reshape=False, order=1).sum(axis=1)
                     for im in d])
    m = prof.mean(axis=0)
    keep = m > 1e-3 * max(float(m.max()), 1e-300)
    if not keep.any():
        return float("nan")
    return float(np.mean(prof[:, keep].std(axis=0)) / np.mean(m[keep]))


def estimate_axis_rotation(stack, coarse_deg: float = 3.0, fine_deg: float = 0.25) -> tuple[float, dict]:
    """The in-plane rotation (degrees, in [-90, 90)) that brings the tilt axis along the image's y axis.

    In parallel projection every slice across the tilt axis keeps its mass at
    every tilt, so the profile along the axis (each image summed across it) is
    the same at every tilt. The images (inside their inscribed disc, binned to
    at most 96 px) are rotated over a coarse grid of directions, then a fine
    one around the best; the rotation whose profiles spread least wins. The
    specimen must lie wholly inside that disc at every tilt.

    Parameters
    ----------
    stack : ndarray (n_tilts, ny, nx)
    coarse_deg, fine_deg : float
        Grid steps (degrees).

    Returns
    -------
    rotation_deg : float
    info : dict
        ``confident`` (bool), ``spread`` (best), ``median_spread``,
        ``runner_up_ratio`` (best other direction more than 10 degrees away,
        over the best), ``reason`` when not confident.
    """
    d = np.asarray(stack, dtype=np.float64)
    if d.ndim != 3 or d.shape[0] < 3 or min(d.shape[1:]) < MIN_SIDE_PX:
        return 0.0, {"confident": False, "reason": "too few tilts or too small images to estimate the rotation"}
    f = int(np.ceil(max(d.shape[1:]) / _EST_MAX_SIDE))
    if f > 1:
        ny, nx = d.shape[1] // f, d.shape[2] // f
        d = d[:, : ny * f, : nx * f].reshape(d.shape[0], ny, f, nx, f).mean(axis=(2, 4))
    d = d - np.median(d[:, [0, -1], :])  # background (image edges) to zero
    coarse = np.arange(-90.0, 90.0, coarse_deg)
    cost = np.array([_profile_spread(d, a) for a in coarse])
    if not np.all(np.isfinite(cost)):
        return 0.0, {"confident": False, "reason": "no signal to estimate the rotation from"}
    best = float(coarse[int(np.argmin(cost))])
    fine = best + np.arange(-coarse_deg, coarse_deg + fine_deg / 2, fine_deg)
    fcost = np.array([_profile_spread(d, a) for a in fine])
    i = int(np.argmin(fcost))
    rot = float(fine[i])
    if 0 < i < len(fine) - 1:  # parabola through the three lowest
        y0, y1, y2 = fcost[i - 1: i + 2]
        den = y0 - 2 * y1 + y2
        if den > 0:
            rot += 0.5 * fine_deg * (y0 - y2) / den
    rot = float((rot + 90.0) % 180.0 - 90.0)
    spread = float(fcost[i])
    far = np.abs((coarse - rot + 90.0) % 180.0 - 90.0) > 10.0
    runner = float(cost[far].min() / max(spread, 1e-300)) if far.any() else float("inf")
    median = float(np.median(cost))
    confident = spread <= CONFIDENT_RATIO * median and runner >= 2.0
    info = {"confident": bool(confident), "spread": spread, "median_spread": median, "runner_up_ratio": runner}
    if not confident:
        info["reason"] = (f"the best direction's profile spread ({spread:.3g}) is not clearly below the others' "
                          f"(median {median:.3g}, next best {runner:.2f}x)")
    return rot, info


def parse_tilt_axis(tilt_axis) -> str | float | None:
    """``"rows"``, ``"columns"``, ``"auto"``, None (the file's convention) or a rotation in degrees.

    A number (or numeric text) is the in-plane rotation (degrees) that brings
    the tilt axis along the image's y axis, as :func:`estimate_axis_rotation`
    returns it (0 is ``"rows"``).

    Raises
    ------
    ValueError
        Neither a layout name, ``auto`` nor a finite number.
    """
    if tilt_axis is None:
        return None
    if isinstance(tilt_axis, (int, float, np.integer, np.floating)) and not isinstance(tilt_axis, bool):
        v = float(tilt_axis)
    else:
        key = str(tilt_axis).strip().lower()
        if key == "auto":
            return "auto"
        try:
            v = float(key)
        except ValueError:
            return normalise_tilt_axis(tilt_axis)
    if not np.isfinite(v):
        raise ValueError(f"a tilt-axis rotation must be a finite number of degrees, got {tilt_axis!r}")
    return v
