"""EDS detector facts from a file's metadata: elevation, azimuth, solid angle, number of detectors.

Where each vendor keeps them (checked on RosettaSciIO's test files in ``../shared/data/vendor-samples``):

- Velox ``.emd``: ``original_metadata.Detectors.Detector-N`` of ``DetectorType``
  ``AnalyticalDetector`` (enabled): ``ElevationAngle`` and ``AzimuthAngle`` in
  radians, ``CollectionAngle`` in sr, one entry per detector (Super-X: four,
  each 0.7 sr, the system's total repeated; taken as the total). HyperSpy's
  own ``Detector.EDS`` keys of that file hold exSpy's defaults (35 and 0
  degrees), not the instrument's 18 degrees.
- Bruker ``.bcf``: ``original_metadata.Analysis.ElevationAngle`` and
  ``AzimutAngle`` (degrees), ``Hardware.DetectorCount`` when present (the v2
  file: 1; the TEM file, ``Detector.Type`` SuperX, has none); no solid angle.
- JEOL ``.pts``/``.ASW``: ``PTTD Param...ElevAng`` and ``DirAng`` (degrees),
  mapped by RosettaSciIO to HyperSpy's keys; no solid angle, no count.
- Any other file: HyperSpy's ``Acquisition_instrument.{TEM,SEM}.Detector.EDS.
  elevation_angle`` / ``azimuth_angle``; HyperSpy has no key for the solid angle.
  exSpy writes its preference defaults (35 and 0 degrees) into every EDS signal
  lacking them, so these exact values from a file without vendor metadata are
  treated as not stated.

Azimuths are read in the files' convention (HyperSpy's: 0 is perpendicular to
the tilt axis) and converted to :class:`chemtomo.physics.DetectorGeometry`'s
(0 along the tilt axis, 90 across it): ``azimuth_deg = 90 - azimuth``. The
vendors do not document the handedness, so a single detector off the axes may
be mirrored along the tilt axis; symmetric sets (Super-X) are not affected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..physics.absorption import DetectorGeometry

#: exSpy's preference defaults it writes into EDS signals without them (degrees): not facts of the file.
EXSPY_DEFAULT_ELEVATION_DEG, EXSPY_DEFAULT_AZIMUTH_DEG = 35.0, 0.0

FLAGS = {"elevation": "--eds-elevation-deg", "azimuth": "--eds-azimuth-deg", "solid_angle": "--solid-angle-sr"}


@dataclass(frozen=True)
class DetectorFacts:
    """What a file states about its EDS detector(s); None where it states nothing.

    Attributes
    ----------
    elevation_deg, azimuth_deg : tuple of float or None
        One value per detector (or one for all), degrees; azimuths in the
        file's (HyperSpy's) convention, 0 perpendicular to the tilt axis.
    solid_angle_sr : float or None
        Total solid angle of the detectors (sr).
    n_detectors : int or None
    detector_type : str or None
    sources : dict
        ``fact -> metadata key`` it was read from.
    """

    elevation_deg: tuple[float, ...] | None = None
    azimuth_deg: tuple[float, ...] | None = None
    solid_angle_sr: float | None = None
    n_detectors: int | None = None
    detector_type: str | None = None
    sources: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready dict of the facts and their sources."""
        return {"elevation_deg": list(self.elevation_deg) if self.elevation_deg else None,
                "azimuth_deg": list(self.azimuth_deg) if self.azimuth_deg else None,
                "solid_angle_sr": self.solid_angle_sr, "n_detectors": self.n_detectors,
                "detector_type": self.detector_type, "sources": dict(self.sources)}

    @classmethod
    def from_dict(cls, d: dict | None) -> DetectorFacts:
        """The facts of :meth:`as_dict` (an empty set for None)."""
        if not d:
            return cls()
        return cls(_tuple(d.get("elevation_deg")), _tuple(d.get("azimuth_deg")), d.get("solid_angle_sr"),
                   d.get("n_detectors"), d.get("detector_type"), dict(d.get("sources") or {}))

    @property
    def any(self) -> bool:
        """Whether the file states any detector fact."""
        return any(v is not None for v in (self.elevation_deg, self.azimuth_deg, self.solid_angle_sr,
                                           self.n_detectors))

    def require_solid_angle_sr(self, given: float | None = None, where: str = "the file") -> float:
        """The total solid angle (sr): ``given`` if not None, else the file's; ValueError naming key and flag.

        Parameters
        ----------
        given : float, optional
            The user's value (``--solid-angle-sr``).
        where : str
            The file, for the message.

        Returns
        -------
        float
        """
        v = given if given is not None else self.solid_angle_sr
        if v is None:
            raise ValueError(f"{where} does not state the EDS detectors' solid angle (Velox: Detectors/Detector-N/"
                             f"CollectionAngle; Bruker, JEOL and HyperSpy metadata have no key for it): give it "
                             f"with {FLAGS['solid_angle']}")
        if not (math.isfinite(v) and 0 < v <= 4 * math.pi):
            raise ValueError(f"the solid angle must be in (0, 4 pi] sr, got {v!r}")
        return float(v)

    def geometry(self, *, elevation_deg=None, azimuth_deg=None, solid_angle_sr: float | None = None,
                 where: str = "the file") -> DetectorGeometry:
        """The :class:`DetectorGeometry` of these facts, a given value replacing the file's.

        Parameters
        ----------
        elevation_deg, azimuth_deg : float or sequence of float, optional
            One per detector (or one for all); azimuths in the files' convention.
        solid_angle_sr : float, optional
            Total solid angle (sr), shared equally by the detectors.
        where : str
            The file, for messages.

        Returns
        -------
        DetectorGeometry

        Raises
        ------
        ValueError
            A fact neither in the file nor given (naming the metadata key and
            the flag), or a number of azimuths that does not match the
            detectors the file counts.
        """
        el = _tuple(elevation_deg) or self.elevation_deg
        az = _tuple(azimuth_deg) or self.azimuth_deg
        if el is None:
            raise ValueError(f"{where} does not state the EDS detector elevation (take-off) angle "
                             f"(Acquisition_instrument.TEM.Detector.EDS.elevation_angle): give it with "
                             f"{FLAGS['elevation']}")
        if az is None:
            raise ValueError(f"{where} does not state the EDS detector azimuth "
                             f"(Acquisition_instrument.TEM.Detector.EDS.azimuth_angle): give it with "
                             f"{FLAGS['azimuth']}")
        n = max(len(el), len(az))
        if self.n_detectors is not None and self.n_detectors > 1 and n == 1 and azimuth_deg is None:
            raise ValueError(f"{where} counts {self.n_detectors} EDS detectors but states one azimuth; give one per "
                             f"detector with {FLAGS['azimuth']}")
        if self.n_detectors is None and self.detector_type and "super" in self.detector_type.lower() and n == 1 \
                and azimuth_deg is None:
            raise ValueError(f"{where}: detector type {self.detector_type!r} (several detectors) with one azimuth "
                             f"and no count (Hardware.DetectorCount): give one azimuth per detector with "
                             f"{FLAGS['azimuth']}")
        total = self.require_solid_angle_sr(solid_angle_sr, where)
        el = el * n if len(el) == 1 else el
        az = az * n if len(az) == 1 else az
        return DetectorGeometry(el, tuple(90.0 - a for a in az), (total / n,) * n, name=f"from {where}")


def _tuple(v) -> tuple[float, ...] | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return (float(v),)
    out = tuple(float(x) for x in v)
    return out or None


def _velox(om) -> DetectorFacts | None:
    dets = om.get("Detectors") if isinstance(om, dict) else None
    if not isinstance(dets, dict):
        return None
    eds = [d for d in dets.values() if isinstance(d, dict) and d.get("DetectorType") == "AnalyticalDetector"
           and str(d.get("Enabled", "true")).lower() == "true" and str(d.get("Inserted", "true")).lower() == "true"]
    if not eds:
        return None
    try:
        el = tuple(round(math.degrees(float(d["ElevationAngle"])), 6) for d in eds)
        az = tuple(round(math.degrees(float(d["AzimuthAngle"])), 6) for d in eds)
    except (KeyError, TypeError, ValueError):
        el = az = None
    omegas = {round(float(d["CollectionAngle"]), 9) for d in eds if d.get("CollectionAngle") not in (None, "")}
    omega = next(iter(omegas)) if len(omegas) == 1 else None
    key = "original_metadata.Detectors.Detector-N"
    return DetectorFacts(el, az, omega, len(eds), str(eds[0].get("DetectorName", "")) or None, {
        "elevation_deg": f"{key}.ElevationAngle (rad)", "azimuth_deg": f"{key}.AzimuthAngle (rad)",
        "solid_angle_sr": (f"{key}.CollectionAngle (sr; the same on every detector: the total)" if omega is not None
                           else "not stated consistently"),
        "n_detectors": "enabled AnalyticalDetector entries"})


def _bruker(om) -> DetectorFacts | None:
    ana = om.get("Analysis") if isinstance(om, dict) else None
    if not isinstance(ana, dict) or "ElevationAngle" not in ana:
        return None
    hw, det = om.get("Hardware") or {}, om.get("Detector") or {}
    n = hw.get("DetectorCount")
    az = ana.get("AzimutAngle")
    count_key = "original_metadata.Hardware.DetectorCount" if n is not None else "not stated"
    return DetectorFacts((float(ana["ElevationAngle"]),), (float(az),) if az is not None else None, None,
                         int(n) if n is not None else None, str(det.get("Type")) if det.get("Type") else None, {
                             "elevation_deg": "original_metadata.Analysis.ElevationAngle",
                             "azimuth_deg": "original_metadata.Analysis.AzimutAngle",
                             "n_detectors": count_key})


def _hyperspy(md, vendor: bool) -> DetectorFacts:
    for mode in ("TEM", "SEM"):
        d = md.get_item(f"Acquisition_instrument.{mode}.Detector.EDS")
        if d is None:
            continue
        el, az = d.get_item("elevation_angle"), d.get_item("azimuth_angle")
        if not vendor and el is not None and az is not None and float(el) == EXSPY_DEFAULT_ELEVATION_DEG \
                and float(az) == EXSPY_DEFAULT_AZIMUTH_DEG:
            el = az = None  # exSpy's defaults, not the file's
        key = f"Acquisition_instrument.{mode}.Detector.EDS"
        return DetectorFacts(_tuple(float(el)) if el is not None else None,
                             _tuple(float(az)) if az is not None else None, None, None,
                             str(d.get_item("detector_type")) if d.get_item("detector_type") else None,
                             {"elevation_deg": f"{key}.elevation_angle", "azimuth_deg": f"{key}.azimuth_angle"})
    return DetectorFacts()


def detector_facts(signal) -> DetectorFacts:
    """The EDS detector facts a signal's file states (module docstring for where each vendor keeps them).

    Parameters
    ----------
    signal : hyperspy signal
        As loaded from the file (its ``original_metadata`` is read).

    Returns
    -------
    DetectorFacts
        Facts not stated are None.
    """
    om = signal.original_metadata.as_dictionary() if hasattr(signal, "original_metadata") else {}
    for vendor in (_velox, _bruker):
        facts = vendor(om)
        if facts is not None:
            return facts
    jeol = isinstance(om, dict) and "PTTD Param" in om
    # exSpy writes its defaults into EDS spectra only; an image stack's keys are the file's own
    spectrum = str(signal.metadata.get_item("Signal.signal_type", "") or "").upper().startswith("EDS")
    return _hyperspy(signal.metadata, vendor=jeol or not spectrum)


__all__ = ["EXSPY_DEFAULT_AZIMUTH_DEG", "EXSPY_DEFAULT_ELEVATION_DEG", "FLAGS", "DetectorFacts", "detector_facts"]
