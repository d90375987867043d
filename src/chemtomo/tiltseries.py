"""The tilt series: HAADF and per-line EDS stacks with their tilt angles.

The object every stage passes on (io -> preprocess -> reconstruct). Stacks are
``(n_tilts, n_slices, n_pixels)``: one image per tilt, ``n_slices`` rows along
the tilt axis, ``n_pixels`` beam positions across it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .geometry import TiltGeometry


@dataclass
class TiltSeries:
    """HAADF and EDS line stacks of one tilt series.

    Parameters
    ----------
    angles_deg : array_like, (n_tilts,)
    pixel_nm : float
        Pixel size (nm) of every image.
    eds : dict line -> ndarray (n_tilts, n_slices, n_pixels)
        Background-subtracted X-ray line intensities (counts), keyed ``Ag_La``.
    haadf : ndarray (n_tilts, n_slices, n_pixels), optional
    metadata : dict
        Acquisition facts in stated units (``beam_kev``, ``eds_dose``,
        ``haadf_dose`` electrons per beam position, ``solid_angle_sr``, ...).
    """

    angles_deg: np.ndarray
    pixel_nm: float
    eds: dict[str, np.ndarray] = field(default_factory=dict)
    haadf: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.eds = {k: _as_stack(v, f"EDS line {k!r}") for k, v in self.eds.items()}
        if self.haadf is not None:
            self.haadf = _as_stack(self.haadf, "HAADF")
        self.validate()

    @property
    def lines(self) -> list[str]:
        """EDS line names, in the order of ``eds``."""
        return list(self.eds)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_tilts, n_slices, n_pixels)`` of the stacks (the HAADF if present, else the first EDS line)."""
        ref = self.haadf if self.haadf is not None else next(iter(self.eds.values()))
        return tuple(ref.shape)

    @property
    def n_slices(self) -> int:
        """Rows along the tilt axis: the number of 2-D slices reconstructed."""
        return self.shape[1]

    def validate(self) -> None:
        """Raise ValueError naming the problem if the series is inconsistent."""
        if not self.eds and self.haadf is None:
            raise ValueError("a tilt series needs HAADF images or at least one EDS line")
        n = self.angles_deg.size
        stacks = dict(self.eds)
        if self.haadf is not None:
            stacks["HAADF"] = self.haadf
        shapes = {k: v.shape for k, v in stacks.items()}
        for name, s in shapes.items():
            if s[0] != n:
                raise ValueError(
                    f"{name} has {s[0]} images but there are {n} tilt angles: "
                    "give one angle per image"
                )
        if len({s for s in shapes.values()}) != 1:
            raise ValueError(f"all stacks must have the same shape (tilts, slices, pixels), got {shapes}")
        for name, v in stacks.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{name} contains NaN or infinite values; remove or interpolate them")
        for name, v in self.eds.items():
            if np.any(v < 0):
                raise ValueError(
                    f"EDS line {name!r} has negative counts (min {float(v.min()):.3g}); "
                    "X-ray counts are non-negative: clip the background subtraction at 0"
                )
        TiltGeometry(self.angles_deg, self.shape[2], self.pixel_nm)  # validates angles and pixel size

    def geometry(self, n_grid: int | None = None) -> TiltGeometry:
        """The tilt geometry of one slice."""
        return TiltGeometry(self.angles_deg, self.shape[2], self.pixel_nm, n_grid or 0)

    def select_slices(self, start: int, stop: int) -> TiltSeries:
        """The sub-series of slices ``start:stop`` along the tilt axis."""
        return replace(
            self,
            eds={k: v[:, start:stop] for k, v in self.eds.items()},
            haadf=None if self.haadf is None else self.haadf[:, start:stop],
        )


def _as_stack(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:  # (n_tilts, n_pixels): a single-slice sinogram
        a = a[:, None, :]
    if a.ndim != 3:
        raise ValueError(f"{name} must be (n_tilts, n_slices, n_pixels) or (n_tilts, n_pixels), got {a.shape}")
    return a
