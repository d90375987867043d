"""The tilt series: HAADF and per-line EDS stacks with their tilt angles.

The object every stage passes on (io -> preprocess -> reconstruct). Stacks are
``(n_tilts, n_slices, n_pixels)``: one image per tilt, ``n_slices`` rows along
the tilt axis, ``n_pixels`` beam positions across it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from .geometry import TiltGeometry, angles_to_deg, check_angles_deg, check_enough_tilts

log = logging.getLogger("chemtomo.tiltseries")

#: Negative values of a stack down to this fraction of its largest magnitude are float
#: rounding (of a background subtraction, a registration shift, a type conversion) and
#: are set to 0; deeper ones are refused.
ROUNDING_NEGATIVE_REL = 1e-5

#: Fewest pixels across the tilt axis of a series to be reconstructed (a slice of
#: MIN_PIXELS^2 voxels is the least the particle mask's edge fit works on).
MIN_PIXELS = 4



@dataclass
class TiltSeries:
    """HAADF and EDS line stacks of one tilt series.

    Every check is made here, once, on construction (:meth:`validate`), and the
    channels' content before a reconstruction (:meth:`check_for_reconstruction`).
    Angles not in increasing order (a dose-symmetric acquisition, a descending
    series) are sorted, with every stack, and the original order is logged.
    Negative values of rounding size (:data:`ROUNDING_NEGATIVE_REL`) are set to 0.

    Parameters
    ----------
    angles_deg : array_like, (n_tilts,)
        Tilt angles in degrees: distinct, within +-90 (and at least
        :data:`~chemtomo.geometry.MIN_TILTS` to be reconstructed). A set that looks like radians is refused
        unless ``metadata["angles_unit"] == "deg"`` (the degrees were asserted). Angles in radians: build the
        series with :meth:`from_angles` (``angles_unit="rad"``), which converts them with
        :func:`~chemtomo.geometry.angles_to_deg`.
    pixel_nm : float
        Pixel size (nm) of every image: positive and finite.
    eds : dict line -> ndarray (n_tilts, n_slices, n_pixels)
        Background-subtracted X-ray line intensities (counts), keyed ``Ag_La``.
    haadf : ndarray (n_tilts, n_slices, n_pixels), optional
    metadata : dict
        Acquisition facts in stated units (``beam_kev``, ``eds_dose``,
        ``haadf_dose`` electrons per beam position, ``solid_angle_sr``, ...);
        ``angles_unit="deg"``: the angles are known to be degrees (asserted, or
        converted from radians), so the radian check is not made.
    """

    angles_deg: np.ndarray
    pixel_nm: float
    eds: dict[str, np.ndarray] = field(default_factory=dict)
    haadf: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.eds = {k: _clip_rounding(_as_stack(v, f"EDS line {k!r}"), f"EDS line {k!r}")
                    for k, v in self.eds.items()}
        if self.haadf is not None:
            self.haadf = _as_stack(self.haadf, "HAADF")
        self.validate()
        order = np.argsort(self.angles_deg, kind="stable")
        if np.any(order != np.arange(order.size)):
            log.info("tilt angles not in increasing order (%s ...): the series is sorted by angle, "
                     "every stack with it", np.round(self.angles_deg[:6], 3).tolist())
            self.angles_deg = self.angles_deg[order]
            self.eds = {k: np.ascontiguousarray(v[order]) for k, v in self.eds.items()}
            if self.haadf is not None:
                self.haadf = np.ascontiguousarray(self.haadf[order])

    @classmethod
    def from_angles(cls, angles, angles_unit: str | None, pixel_nm: float, eds: dict | None = None,
                    haadf=None, metadata: dict | None = None) -> TiltSeries:
        """A series whose angles are given in a stated unit: converted to degrees and checked.

        Parameters
        ----------
        angles : array_like, (n_tilts,)
        angles_unit : {"deg", "rad"} or None
            ``"rad"``: converted (``np.degrees``; they must lie within +-pi/2);
            ``"deg"``: degrees even if they look like radians; None: as the
            constructor (degrees; a radian-looking set refused). See
            :func:`~chemtomo.geometry.angles_to_deg`.
        pixel_nm, eds, haadf, metadata
            As for the constructor.

        Returns
        -------
        TiltSeries
            With ``angles_deg`` in degrees and, for a stated unit,
            ``metadata["angles_unit"] = "deg"``.

        Raises
        ------
        ValueError
            An unknown unit, radians beyond +-pi/2, or any check of the constructor.
        """
        deg = angles_to_deg(angles, angles_unit, f"TiltSeries angles ({angles_unit or 'deg'})")
        md = dict(metadata or {})
        if angles_unit is not None:
            md["angles_unit"] = "deg"
        return cls(deg, pixel_nm, dict(eds or {}), haadf, md)

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
        """Raise ValueError naming the problem, the value and the fix if the series is inconsistent.

        Checks: a HAADF or an EDS line is present; ``pixel_nm`` positive and
        finite; one image per angle in every stack; every stack of one shape
        (tilts, slices along the axis, pixels across it); the angles (finite, within
        +-90 degrees, distinct, not radians: :func:`~chemtomo.geometry.check_angles_deg`);
        no NaN or infinite value; no negative EDS count.
        """
        if not self.eds and self.haadf is None:
            raise ValueError("a tilt series needs HAADF images or at least one EDS line")
        px = self.pixel_nm
        try:
            px_nm = float("nan") if isinstance(px, (bool, str)) else float(px)
        except (TypeError, ValueError):
            px_nm = float("nan")
        if not (math.isfinite(px_nm) and px_nm > 0):
            raise ValueError(f"pixel_nm must be a positive, finite pixel size in nm, got {px!r}; give the "
                             "images' pixel size in nm (CLI --pixel-nm)")
        n = self.angles_deg.size
        stacks = dict(self.eds)
        if self.haadf is not None:
            stacks["HAADF"] = self.haadf
        for name, v in stacks.items():
            if v.shape[0] != n:
                raise ValueError(
                    f"{name} has {v.shape[0]} images but there are {n} tilt angles: "
                    "give one angle per image"
                )
        ref_name, ref = next(iter(stacks.items()))
        for name, v in stacks.items():
            if v.shape[1:] != ref.shape[1:]:
                raise ValueError(
                    f"{name} images are {v.shape[1]} x {v.shape[2]} pixels (slices x pixels) but {ref_name}'s are "
                    f"{ref.shape[1]} x {ref.shape[2]}: every channel must be on one grid; bin, crop or "
                    f"register them to the same grid first (all stacks: "
                    f"{ {k: tuple(s.shape) for k, s in stacks.items()} })"
                )
        check_angles_deg(self.angles_deg, "TiltSeries angles_deg",
                         allow_radians_look=self.metadata.get("angles_unit") == "deg")
        for name, v in stacks.items():
            bad = ~np.isfinite(v)
            if np.any(bad):
                tilts = np.unique(np.nonzero(bad)[0])
                raise ValueError(
                    f"{name} contains {int(bad.sum())} NaN or infinite value(s) (tilt index(es) "
                    f"{tilts[:8].tolist()}); remove those tilts or interpolate the values"
                )
        for name, v in self.eds.items():
            if np.any(v < 0):
                raise ValueError(
                    f"EDS line {name!r} has negative counts ({int(np.count_nonzero(v < 0))} value(s), min "
                    f"{float(v.min()):.3g}, beyond rounding); X-ray counts are non-negative: clip the "
                    "background subtraction at 0 (the raw-file route does so itself)"
                )
        TiltGeometry(self.angles_deg, self.shape[2], self.pixel_nm)  # validates angles and pixel size

    def check_for_reconstruction(self, needs_haadf: bool, lines=None) -> None:
        """Refuse channels that cannot be reconstructed, naming them, before any solve.

        Parameters
        ----------
        needs_haadf : bool
            The method fits the HAADF (HEBT and its relatives): check it too.
        lines : sequence of str, optional
            The EDS lines to reconstruct (default: all).

        Raises
        ------
        ValueError
            Images fewer than :data:`MIN_PIXELS` pixels across the tilt axis;
            fewer than :data:`~chemtomo.geometry.MIN_TILTS` tilts (a series of
            projections may be simulated or stored, but one or two views do not
            determine a volume); an EDS line with no counts (all zero) or the same value everywhere:
            a line with no counts cannot be quantified. For ``needs_haadf``: no
            HAADF, a HAADF that is all zero or constant, or a tilt whose HAADF
            image sums to zero or less (an empty tilt, an over-subtracted dark
            level, an inverted image). Negative pixels of noise are accepted.
        """
        check_enough_tilts(self.angles_deg.size, f"the tilt series (angles {np.round(self.angles_deg, 3).tolist()})")
        if self.shape[2] < MIN_PIXELS:
            raise ValueError(f"the images are {self.shape[2]} pixels across the tilt axis: too few to reconstruct "
                             f"a slice (at least {MIN_PIXELS}; the particle mask needs background around the "
                             "particle); crop or bin the images less")
        for name in self.lines if lines is None else lines:
            v = self.eds[name]
            hi, lo = float(v.max()), float(v.min())
            if hi == 0:
                raise ValueError(
                    f"EDS line {name!r} has no counts (every value is 0): a line with no counts cannot be "
                    "quantified; leave it out of the lines, or check its energy window and that the element "
                    "is in the specimen"
                )
            if hi == lo:
                raise ValueError(
                    f"EDS line {name!r} is constant ({hi:g} in every pixel of every tilt): it holds no image "
                    "of the specimen; check how the map was extracted (window, background) or leave it out"
                )
        if not needs_haadf:
            return
        if self.haadf is None:
            raise ValueError("the method needs HAADF images; this series has none (use an EDS-only method)")
        h = self.haadf
        hi, lo = float(h.max()), float(h.min())
        if hi == lo:
            raise ValueError(
                f"the HAADF is {'all zero' if hi == 0 else 'constant'} ({hi:g} in every pixel of every tilt): "
                "it cannot be fitted to the EDS lines; check the HAADF images (empty, saturated, the wrong "
                "detector) or use an EDS-only method"
            )
        per_tilt = h.sum(axis=(1, 2), dtype=np.float64)
        bad = np.flatnonzero(per_tilt <= 0)
        if bad.size:
            raise ValueError(
                f"the HAADF of tilt(s) {bad[:8].tolist()} (angles {np.round(self.angles_deg[bad[:8]], 3).tolist()}"
                f" degrees) sums to zero or less (min value {lo:.4g}, max {hi:.4g}): an image's HAADF total is the "
                "specimen's projected scattering, positive at every tilt; check for an empty tilt, an "
                "over-subtracted dark level, an inverted or a bright-field image, or use an EDS-only method"
            )

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


def _clip_rounding(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` with negatives of rounding size (:data:`ROUNDING_NEGATIVE_REL`) set to 0; deeper ones left to refuse."""
    if a.size == 0 or not np.all(np.isfinite(a)):
        return a  # validate() names the problem
    lo = float(a.min())
    if lo >= 0:
        return a
    scale = float(np.max(np.abs(a)))
    if -lo > ROUNDING_NEGATIVE_REL * scale:
        return a
    log.debug("%s: %d negative value(s) of rounding size (min %.3g) set to 0", name,
              int(np.count_nonzero(a < 0)), lo)
    return np.maximum(a, 0, dtype=a.dtype)
