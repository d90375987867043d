"""The tilt series: HAADF and per-line EDS stacks with their tilt angles.

The object every stage passes on (io -> preprocess -> reconstruct). Stacks are
``(n_tilts, n_slices, n_pixels)``: one image per tilt, ``n_slices`` rows along
the tilt axis, ``n_pixels`` beam positions across it.

One tilt set, or one per modality
---------------------------------
By default every stack is at ``angles_deg``. A HAADF image takes seconds and an EDS
map minutes, so acquisitions record the HAADF at many tilts and the EDS at a few:
``haadf_angles_deg`` gives the HAADF its own tilt set (and ``haadf_pixel_nm`` its
own, finer, pixel grid, binned here by an integer factor to the EDS grid). The EDS
lines always share ``angles_deg``. What is refused, and why (:meth:`TiltSeries.validate`,
:meth:`TiltSeries.check_for_reconstruction`):

- a HAADF set with repeats, radians or angles beyond +-90 degrees (as any set);
- a HAADF set equal to the EDS set within :data:`~chemtomo.geometry.SHARED_TILT_TOL_DEG`
  at every tilt but not exactly: one tilt set read twice (from two files' metadata,
  rounded apart); give ``haadf_angles_deg=None`` so the HAADF is at the EDS angles;
- ``haadf_angles_deg`` without a HAADF stack, or without any EDS line (a HAADF-only
  series has one tilt set: give it as ``angles_deg``);
- for a method that fits the HAADF: a HAADF with fewer than
  :data:`~chemtomo.geometry.MIN_TILTS` tilts, or EDS tilts beyond the HAADF's range
  (by more than the tolerance): the bimodal methods fill in what the sparse EDS set
  lacks from the HAADF, which holds nothing beyond its own range.

A HAADF set that brackets the EDS set, shares some of its tilts or none is accepted.
Exactly equal sets are one set (``haadf_angles_deg`` becomes None): every result of
such a series is the same bits as one built without it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np

from .geometry import (
    MIN_TILTS,
    SHARED_TILT_TOL_DEG,
    TiltGeometry,
    check_angles_deg,
    check_enough_tilts,
    match_tilts,
)

log = logging.getLogger("chemtomo.tiltseries")

#: Negative values of a stack down to this fraction of its largest magnitude are float
#: rounding (of a background subtraction, a registration shift, a type conversion) and
#: are set to 0; deeper ones are refused.
ROUNDING_NEGATIVE_REL = 1e-5



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
        Tilt angles in degrees of the EDS lines (and of the HAADF unless
        ``haadf_angles_deg`` is given): distinct, within +-90 (and at least
        :data:`~chemtomo.geometry.MIN_TILTS` to be reconstructed). A set that looks like radians is refused:
        convert it with ``np.degrees``.
    pixel_nm : float
        Pixel size (nm) of every image: positive and finite.
    eds : dict line -> ndarray (n_tilts, n_slices, n_pixels)
        Background-subtracted X-ray line intensities (counts), keyed ``Ag_La``.
    haadf : ndarray (n_haadf_tilts, n_slices, n_pixels), optional
    metadata : dict
        Acquisition facts in stated units (``beam_kev``, ``eds_dose``,
        ``haadf_dose`` electrons per beam position, ``solid_angle_sr``, ...).
    haadf_angles_deg : array_like, (n_haadf_tilts,), optional
        The HAADF's own tilt angles (degrees; same rules as ``angles_deg``); None:
        the HAADF is at ``angles_deg`` (module docstring for what is refused).
    haadf_pixel_nm : float, optional
        The HAADF's own pixel size (nm) when it is finer than ``pixel_nm`` by an
        integer factor ``n``: its images are binned ``n x n`` (mean) to the EDS grid on
        construction (``metadata["haadf_binning"] = n``), after which this is None.
        Any other ratio is refused: resample the HAADF to the EDS grid first.

    Attributes
    ----------
    haadf_angles : ndarray
        The HAADF's angles, always an array (``angles_deg`` when shared).
    """

    angles_deg: np.ndarray
    pixel_nm: float
    eds: dict[str, np.ndarray] = field(default_factory=dict)
    haadf: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    haadf_angles_deg: np.ndarray | None = None
    haadf_pixel_nm: float | None = None

    def __post_init__(self):
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        if self.haadf_angles_deg is not None:
            self.haadf_angles_deg = np.asarray(self.haadf_angles_deg, dtype=np.float64).ravel()
        self.eds = {k: _clip_rounding(_as_stack(v, f"EDS line {k!r}"), f"EDS line {k!r}")
                    for k, v in self.eds.items()}
        if self.haadf is not None:
            self.haadf = _as_stack(self.haadf, "HAADF")
        if self.haadf_pixel_nm is not None:
            self._bin_haadf()
        self.validate()
        order = np.argsort(self.angles_deg, kind="stable")
        own = self.haadf_angles_deg is not None
        if np.any(order != np.arange(order.size)):
            log.info("tilt angles not in increasing order (%s ...): the series is sorted by angle, "
                     "every stack with it", np.round(self.angles_deg[:6], 3).tolist())
            self.angles_deg = self.angles_deg[order]
            self.eds = {k: np.ascontiguousarray(v[order]) for k, v in self.eds.items()}
            if self.haadf is not None and not own:
                self.haadf = np.ascontiguousarray(self.haadf[order])
        if own:
            h_order = np.argsort(self.haadf_angles_deg, kind="stable")
            if np.any(h_order != np.arange(h_order.size)):
                log.info("HAADF tilt angles not in increasing order (%s ...): the HAADF is sorted by angle",
                         np.round(self.haadf_angles_deg[:6], 3).tolist())
                self.haadf_angles_deg = self.haadf_angles_deg[h_order]
                self.haadf = np.ascontiguousarray(self.haadf[h_order])
            if np.array_equal(self.haadf_angles_deg, self.angles_deg):
                self.haadf_angles_deg = None  # one tilt set: the shared series, bit for bit

    def _bin_haadf(self) -> None:
        """Bin a HAADF finer than the EDS grid by the integer ratio of the pixel sizes (mean of n x n)."""
        hp = self.haadf_pixel_nm
        try:
            h_nm = float("nan") if isinstance(hp, (bool, str)) else float(hp)
        except (TypeError, ValueError):
            h_nm = float("nan")
        if not (math.isfinite(h_nm) and h_nm > 0):
            raise ValueError(f"haadf_pixel_nm must be a positive, finite pixel size in nm or None, got {hp!r}")
        if self.haadf is None:
            raise ValueError("haadf_pixel_nm is given but the series has no HAADF stack; leave it out")
        px = float(self.pixel_nm)
        ratio = px / h_nm
        n = int(round(ratio))
        if abs(ratio - 1.0) <= 1e-6:
            self.haadf_pixel_nm = None
            return
        if n < 2 or abs(ratio - n) > 1e-3 * ratio:
            raise ValueError(
                f"the HAADF's pixels ({h_nm:.6g} nm) and the EDS maps' ({px:.6g} nm) differ by a factor {ratio:.4g}, "
                "not an integer >= 2: chemtomo bins a finer HAADF by an integer factor only; resample or bin the "
                "HAADF (or the EDS maps) to one pixel size first"
            )
        t, s, p = self.haadf.shape
        ref = next(iter(self.eds.values()), None)
        if ref is not None and (s // n, p // n) != tuple(ref.shape[1:]):
            raise ValueError(
                f"the HAADF ({s} x {p} pixels of {h_nm:.6g} nm) binned {n} x {n} gives {s // n} x {p // n} pixels, "
                f"but the EDS maps are {ref.shape[1]} x {ref.shape[2]} pixels of {px:.6g} nm: the two grids do not "
                "cover one field of view; crop or register them to one field first"
            )
        h = self.haadf[:, : (s // n) * n, : (p // n) * n].astype(np.float64)
        self.haadf = h.reshape(t, s // n, n, p // n, n).mean(axis=(2, 4)).astype(np.float32)
        log.info("the HAADF (%.6g nm pixels) is binned %d x %d to the EDS grid (%.6g nm)", h_nm, n, n, px)
        self.metadata = {**self.metadata, "haadf_binning": n}
        self.haadf_pixel_nm = None

    @property
    def lines(self) -> list[str]:
        """EDS line names, in the order of ``eds``."""
        return list(self.eds)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_tilts, n_slices, n_pixels)`` of the EDS stacks (of the HAADF in a HAADF-only series).

        With a HAADF at its own tilts, ``n_tilts`` is the EDS's (``len(angles_deg)``).
        """
        ref = next(iter(self.eds.values())) if self.eds else self.haadf
        return tuple(ref.shape)

    @property
    def shares_angles(self) -> bool:
        """Whether every stack is at ``angles_deg`` (no HAADF tilt set of its own)."""
        return self.haadf_angles_deg is None

    @property
    def eds_angles(self) -> np.ndarray:
        """The EDS lines' tilt angles (degrees): ``angles_deg``."""
        return self.angles_deg

    @property
    def haadf_angles(self) -> np.ndarray:
        """The HAADF's tilt angles (degrees), always an array: its own set, else ``angles_deg``."""
        return self.angles_deg if self.haadf_angles_deg is None else self.haadf_angles_deg

    @property
    def n_eds_tilts(self) -> int:
        """Images per EDS line."""
        return int(self.angles_deg.size)

    @property
    def n_haadf_tilts(self) -> int:
        """HAADF images (0 without a HAADF)."""
        return 0 if self.haadf is None else int(self.haadf.shape[0])

    def shared_tilts(self, tol_deg: float = SHARED_TILT_TOL_DEG) -> tuple[np.ndarray, np.ndarray]:
        """``(eds_index, haadf_index)`` of the tilts both modalities were recorded at.

        Angles within ``tol_deg`` (:data:`~chemtomo.geometry.SHARED_TILT_TOL_DEG`) are one
        tilt (:func:`~chemtomo.geometry.match_tilts`); with one tilt set, every tilt.
        """
        if self.haadf_angles_deg is None:
            i = np.arange(self.angles_deg.size)
            return i, i.copy()
        return match_tilts(self.angles_deg, self.haadf_angles_deg, tol_deg)

    @property
    def n_slices(self) -> int:
        """Rows along the tilt axis: the number of 2-D slices reconstructed."""
        return self.shape[1]

    def validate(self) -> None:
        """Raise ValueError naming the problem, the value and the fix if the series is inconsistent.

        Checks: a HAADF or an EDS line is present; ``pixel_nm`` positive and
        finite; one image per angle in every stack (the HAADF's per its own angles
        when it has them); every stack on one grid (slices along the axis, pixels
        across it); each angle set (finite, within +-90 degrees, distinct, not
        radians: :func:`~chemtomo.geometry.check_angles_deg`); a HAADF set that is
        not the EDS set read twice (module docstring); no NaN or infinite value; no
        negative EDS count.
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
        own = self.haadf_angles_deg is not None
        if own and self.haadf is None:
            raise ValueError("haadf_angles_deg is given but the series has no HAADF stack: give the HAADF images "
                             "or leave haadf_angles_deg out")
        if own and not self.eds:
            raise ValueError("haadf_angles_deg is given but the series has no EDS line: a HAADF-only series has one "
                             "tilt set; give the HAADF's angles as angles_deg")
        stacks = dict(self.eds)
        if self.haadf is not None:
            stacks["HAADF"] = self.haadf
        for name, v in stacks.items():
            want, which = ((self.haadf_angles_deg.size, "HAADF tilt angles (haadf_angles_deg)")
                           if own and name == "HAADF" else (n, "tilt angles" + (" (the EDS's, angles_deg)" if own
                                                                                  else "")))
            if v.shape[0] != want:
                hint = "give one angle per image" + (
                    "; a HAADF at tilts of its own takes them as haadf_angles_deg" if name == "HAADF" and not own
                    else "")
                raise ValueError(f"{name} has {v.shape[0]} images but there are {want} {which}: {hint}")
        ref_name, ref = next(iter(stacks.items()))
        for name, v in stacks.items():
            if v.shape[1:] != ref.shape[1:]:
                raise ValueError(
                    f"{name} images are {v.shape[1]} x {v.shape[2]} pixels (slices x pixels) but {ref_name}'s are "
                    f"{ref.shape[1]} x {ref.shape[2]}: every channel must be on one grid; bin, crop or "
                    f"register them to the same grid first (all stacks: "
                    f"{ {k: tuple(s.shape) for k, s in stacks.items()} })"
                )
        check_angles_deg(self.angles_deg, "TiltSeries angles_deg" + (" (the EDS tilts)" if own else ""))
        if own:
            self._check_haadf_angles()
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
        if own:
            TiltGeometry(self.haadf_angles_deg, self.shape[2], self.pixel_nm)

    def _check_haadf_angles(self) -> None:
        """The HAADF's own tilt set: a valid set, and not the EDS set read twice."""
        h = check_angles_deg(self.haadf_angles_deg, "TiltSeries haadf_angles_deg (the HAADF tilts)")
        e = self.angles_deg
        if h.size == e.size:
            diff = np.abs(np.sort(h) - np.sort(e))
            if 0 < float(diff.max()) <= SHARED_TILT_TOL_DEG:  # exactly equal: one set, made None on construction
                raise ValueError(
                    f"the HAADF tilt angles {np.round(np.sort(h), 4).tolist()[:6]}... equal the EDS's "
                    f"{np.round(np.sort(e), 4).tolist()[:6]}... to within {float(diff.max()):.3g} degrees at every "
                    f"tilt (tolerance {SHARED_TILT_TOL_DEG} degrees) but not exactly: this is one tilt set recorded "
                    "twice, not a HAADF series of its own; give haadf_angles_deg=None (the HAADF at the EDS angles, "
                    "CLI: leave out --haadf-angles) or correct the offset"
                )

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
            Fewer than :data:`~chemtomo.geometry.MIN_TILTS` tilts (a series of
            projections may be simulated or stored, but one or two views do not
            determine a volume); an EDS line with no counts (all zero) or the same value everywhere:
            a line with no counts cannot be quantified. For ``needs_haadf``: no
            HAADF, a HAADF that is all zero or constant, or a tilt whose HAADF
            image sums to zero or less (an empty tilt, an over-subtracted dark
            level, an inverted image); for a HAADF at tilts of its own, fewer than
            :data:`~chemtomo.geometry.MIN_TILTS` of them, or EDS tilts beyond the
            HAADF's range (module docstring). Negative pixels of noise are accepted.
        """
        check_enough_tilts(self.angles_deg.size, f"the tilt series (angles {np.round(self.angles_deg, 3).tolist()})")
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
        if self.haadf_angles_deg is not None:
            self._check_haadf_range()
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
                f"the HAADF of tilt(s) {bad[:8].tolist()} (angles {np.round(self.haadf_angles[bad[:8]], 3).tolist()}"
                f" degrees) sums to zero or less (min value {lo:.4g}, max {hi:.4g}): an image's HAADF total is the "
                "specimen's projected scattering, positive at every tilt; check for an empty tilt, an "
                "over-subtracted dark level, an inverted or a bright-field image, or use an EDS-only method"
            )

    def _check_haadf_range(self) -> None:
        """For the bimodal methods: enough HAADF tilts, and a HAADF range that covers the EDS tilts."""
        h, e = self.haadf_angles, self.angles_deg
        if h.size < MIN_TILTS:
            check_enough_tilts(h.size, f"the HAADF (angles {np.round(h, 3).tolist()})")
        lo, hi = float(h.min()) - SHARED_TILT_TOL_DEG, float(h.max()) + SHARED_TILT_TOL_DEG
        out = e[(e < lo) | (e > hi)]
        if out.size:
            raise ValueError(
                f"EDS tilt(s) {np.round(out, 3).tolist()} lie beyond the HAADF's range "
                f"[{float(h.min()):.3g}, {float(h.max()):.3g}] degrees: the bimodal methods fill in what the sparse "
                "EDS tilts lack from the HAADF, which holds nothing beyond its own range; give the HAADF over the "
                "whole EDS range, leave those EDS tilts out, or use an EDS-only method"
            )

    def geometry(self, n_grid: int | None = None) -> TiltGeometry:
        """The tilt geometry of one slice of the EDS lines (of every stack when the angles are shared)."""
        return TiltGeometry(self.angles_deg, self.shape[2], self.pixel_nm, n_grid or 0)

    def haadf_geometry(self, n_grid: int | None = None) -> TiltGeometry:
        """The tilt geometry of one slice of the HAADF (:meth:`geometry` when the angles are shared)."""
        return TiltGeometry(self.haadf_angles, self.shape[2], self.pixel_nm, n_grid or 0)

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
