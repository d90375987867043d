"""Parallel-beam tilt geometry: tilt angles (degrees), detector pixels, pixel size (nm).

One tilt geometry serves every slice along the tilt axis and every channel.
The reconstruction grid of one slice is square, ``n_grid`` x ``n_grid`` pixels of
``pixel_nm``, centred on the tilt axis; the detector row has ``n_pixels`` bins of
``pixel_nm`` (the beam positions of one scan line).

Array conventions (used everywhere in chemtomo):

- a sinogram stack of one channel is ``(n_tilts, n_slices, n_pixels)``: the tilt
  series images, ``n_slices`` along the tilt axis;
- a reconstructed map of one channel is ``(n_slices, n_grid, n_grid)`` = (slices, z, x);
- operators act on columns: rays ``(n_tilts * n_pixels, k)``, pixels ``(n_grid**2, k)``.

The checks of a tilt series' angles live here too, below the readers of
:mod:`chemtomo.io` and :class:`chemtomo.tiltseries.TiltSeries`, so that both apply
the same rules: :func:`check_angles_deg` (finite, within +-90 degrees, not
radians, no repeat) and :func:`check_enough_tilts` (at least :data:`MIN_TILTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_TILTS = 3
"""Fewest tilts accepted as a tilt series: alignment compares neighbouring tilts and the
tilt-axis fit needs three projections; one or two views do not determine a volume."""


@dataclass(frozen=True)
class TiltGeometry:
    """Parallel-beam geometry of one slice, shared by all slices and channels.

    Parameters
    ----------
    angles_deg : array_like, shape (n_tilts,)
        Tilt angles in degrees, in the order of the tilt series.
    n_pixels : int
        Detector bins (beam positions) per tilt.
    pixel_nm : float
        Size of one detector bin and of one reconstruction pixel (nm).
    n_grid : int, optional
        Side of the square reconstruction grid (default ``n_pixels``).
    grid_pixel_nm : float, optional
        Size of one reconstruction pixel (default ``pixel_nm``); smaller for a
        simulation grid finer than the detector.
    """

    angles_deg: np.ndarray
    n_pixels: int
    pixel_nm: float = 1.0
    n_grid: int = field(default=0)
    grid_pixel_nm: float = field(default=0.0)

    def __post_init__(self):
        angles = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        if angles.size == 0:
            raise ValueError("angles_deg is empty: a tilt series needs at least one tilt angle")
        if not np.all(np.isfinite(angles)):
            raise ValueError(f"angles_deg must be finite, got {angles}")
        if np.any(np.abs(angles) > 90):
            raise ValueError(f"tilt angles must lie in [-90, 90] degrees, got {angles.min()}..{angles.max()}")
        if np.unique(np.round(angles, 6)).size != angles.size:
            raise ValueError(f"angles_deg has duplicated tilt angles: {angles}")
        if int(self.n_pixels) < 2:
            raise ValueError(f"n_pixels must be >= 2, got {self.n_pixels}")
        if not (np.isfinite(self.pixel_nm) and self.pixel_nm > 0):
            raise ValueError(f"pixel_nm must be a positive number, got {self.pixel_nm}")
        angles.setflags(write=False)
        object.__setattr__(self, "angles_deg", angles)
        object.__setattr__(self, "n_pixels", int(self.n_pixels))
        object.__setattr__(self, "pixel_nm", float(self.pixel_nm))
        object.__setattr__(self, "n_grid", int(self.n_grid) if self.n_grid else int(self.n_pixels))
        gp = float(self.grid_pixel_nm) if self.grid_pixel_nm else self.pixel_nm
        if not (np.isfinite(gp) and gp > 0):
            raise ValueError(f"grid_pixel_nm must be a positive number, got {self.grid_pixel_nm}")
        object.__setattr__(self, "grid_pixel_nm", gp)

    @property
    def n_tilts(self) -> int:
        """Number of tilt angles."""
        return int(self.angles_deg.size)

    @property
    def n_rays(self) -> int:
        """Rows of W: ``n_tilts * n_pixels``."""
        return self.n_tilts * self.n_pixels

    @property
    def n_voxels(self) -> int:
        """Columns of W: ``n_grid**2``."""
        return self.n_grid * self.n_grid

    def refined(self, factor: int) -> TiltGeometry:
        """The same detector with a reconstruction grid ``factor`` times finer (for simulation)."""
        if int(factor) < 1:
            raise ValueError(f"refinement factor must be >= 1, got {factor}")
        return TiltGeometry(self.angles_deg, self.n_pixels, self.pixel_nm,
                            self.n_grid * int(factor), grid_pixel_nm=self.grid_pixel_nm / int(factor))

    def key(self) -> dict:
        """JSON-friendly description (for provenance and caching)."""
        return {
            "angles_deg": [float(a) for a in self.angles_deg],
            "n_pixels": self.n_pixels,
            "pixel_nm": self.pixel_nm,
            "n_grid": self.n_grid,
            "grid_pixel_nm": self.grid_pixel_nm,
        }


def sinogram_to_columns(stack: np.ndarray) -> np.ndarray:
    """``(n_tilts, n_slices, n_pixels)`` -> rays x slices ``(n_tilts * n_pixels, n_slices)``."""
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[:, None, :]
    if stack.ndim != 3:
        raise ValueError(f"a sinogram stack must be (n_tilts, n_slices, n_pixels), got shape {stack.shape}")
    t, s, p = stack.shape
    return np.ascontiguousarray(stack.transpose(0, 2, 1).reshape(t * p, s))


def columns_to_sinogram(cols: np.ndarray, n_tilts: int, n_pixels: int) -> np.ndarray:
    """Inverse of :func:`sinogram_to_columns`."""
    cols = np.asarray(cols)
    if cols.ndim == 1:
        cols = cols[:, None]
    return np.ascontiguousarray(cols.reshape(n_tilts, n_pixels, -1).transpose(0, 2, 1))


def columns_to_volume(cols: np.ndarray, n_grid: int) -> np.ndarray:
    """Pixels x slices ``(n_grid**2, n_slices)`` -> ``(n_slices, n_grid, n_grid)`` (slices, z, x)."""
    cols = np.asarray(cols)
    if cols.ndim == 1:
        cols = cols[:, None]
    return np.ascontiguousarray(cols.T.reshape(-1, n_grid, n_grid))


def volume_to_columns(vol: np.ndarray) -> np.ndarray:
    """``(n_slices, n_grid, n_grid)`` -> ``(n_grid**2, n_slices)``."""
    vol = np.asarray(vol)
    if vol.ndim == 2:
        vol = vol[None]
    return np.ascontiguousarray(vol.reshape(vol.shape[0], -1).T)


# --------------------------------------------------------------------------- angles and tilts

def check_angles_deg(angles, where: str, *, allow_radians_look: bool = False) -> np.ndarray:
    """Check tilt angles in degrees: finite, within +-90, no repeat, not radians.

    Parameters
    ----------
    angles : array_like
    where : str
        Where they come from (file or option), for the messages.
    allow_radians_look : bool
        Accept a set that looks like radians (the caller asserted degrees).

    Returns
    -------
    ndarray of float

    Raises
    ------
    ValueError
        Non-finite, beyond +-90 degrees, repeated, or every ``|angle| <= 1.6``
        with more than 3 tilts spanning more than 0.5 (radians, not degrees).
    """
    a = np.asarray(angles, dtype=float).ravel()
    if a.size == 0:
        raise ValueError(f"{where}: no tilt angles")
    if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 90):
        raise ValueError(f"{where}: tilt angles must be finite and within [-90, 90] degrees, got "
                         f"{np.round(a, 4).tolist()}")
    if not allow_radians_look and looks_like_radians(a):
        raise ValueError(f"{where}: the tilt angles {np.round(a, 4).tolist()[:6]}... look like radians (all within "
                         "+-1.6); chemtomo takes degrees: convert them (np.degrees) or give them in degrees "
                         "(--angles)")
    r = np.round(a, 6)
    vals, counts = np.unique(r, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{where}: tilt angle(s) {vals[counts > 1].tolist()} repeat; each tilt must appear once")
    return a


def looks_like_radians(angles) -> bool:
    """True for more than 3 angles, all within +-1.6, spanning more than 0.5: radians, not degrees."""
    a = np.asarray(angles, dtype=float).ravel()
    return bool(a.size > 3 and np.all(np.abs(a) <= 1.6) and np.ptp(a) > 0.5)


def check_enough_tilts(n: int, where: str) -> None:
    """Refuse fewer than :data:`MIN_TILTS` tilts, saying how many were found and how many are needed."""
    if n < MIN_TILTS:
        what = "a single acquisition (one tilt)" if n == 1 else f"{n} tilts"
        raise ValueError(
            f"{where} is {what}, not a tilt series: a tilt series needs at least {MIN_TILTS} tilts at distinct "
            "angles (alignment compares neighbouring tilts and the tilt-axis fit needs three; useful series have "
            "20 or more); give the folder or the files of the whole series"
        )


# --------------------------------------------------------------------------- two tilt sets

SHARED_TILT_TOL_DEG = 0.05
"""Two tilt angles within this many degrees are one tilt of the stage (a HAADF image and an
EDS map recorded at one tilt, their angles read or rounded apart): stage readouts carry
0.01-0.1 degree, and a dense HAADF series steps by 0.5 degree or more."""


def match_tilts(angles_a, angles_b, tol_deg: float = SHARED_TILT_TOL_DEG) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(ia, ib)`` of the tilts two angle sets share (``|a - b| <= tol_deg``).

    Each angle of ``angles_a`` is paired with its nearest angle of ``angles_b`` when
    that lies within ``tol_deg``; a ``b`` angle claimed twice keeps its nearest ``a``.

    Parameters
    ----------
    angles_a, angles_b : array_like
        Tilt angles in degrees (distinct within each set).
    tol_deg : float
        Largest difference of one shared tilt (degrees), :data:`SHARED_TILT_TOL_DEG`.

    Returns
    -------
    ia, ib : ndarray of int
        ``angles_a[ia[j]]`` and ``angles_b[ib[j]]`` are one tilt, in the order of ``angles_a``.
    """
    a = np.asarray(angles_a, dtype=np.float64).ravel()
    b = np.asarray(angles_b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d = np.abs(a[:, None] - b[None, :])
    nearest = np.argmin(d, axis=1)
    dist = d[np.arange(a.size), nearest]
    pairs = {}
    for i in np.flatnonzero(dist <= tol_deg):
        j = int(nearest[i])
        if j not in pairs or dist[i] < dist[pairs[j]]:
            pairs[j] = int(i)
    ia = np.array(sorted(pairs.values()), dtype=int)
    ib = np.array([int(nearest[i]) for i in ia], dtype=int)
    return ia, ib
