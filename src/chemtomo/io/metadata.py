"""Facts read from microscope files: lengths in nm, beam energy, image roles, angles.

Every reader of :mod:`chemtomo.io` goes through these helpers, so a quantity
is converted (HyperSpy's axes convert units through pint) or refused with an
error naming the file and the option that supplies it, never assumed:

- :func:`length_nm` / :func:`axis_pixel_nm`: a pixel size in any length unit
  (``nm``, ``µm``, ``Å``, ``pm``, ``m`` ...) in nm; no unit, a pixel "unit" or
  an unknown unit is an error naming ``--pixel-nm``;
- :func:`beam_energy_kev`: ``Acquisition_instrument.TEM.beam_energy`` or the
  ``SEM`` key;
- :func:`image_role`: what an image is (HAADF, ADF, DF, BF, ABF, BSE, SE, an
  EDS map, or unknown) from its detector name (Velox ``BinaryResult.Detector``,
  Bruker channel names, JEOL file types) and title;
- :func:`check_angles_deg`: angles finite, within +-90 degrees, not radians;
- :func:`check_enough_tilts`: a tilt series has at least :data:`MIN_TILTS` tilts.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..geometry import MIN_TILTS as MIN_TILTS
from ..geometry import check_angles_deg as check_angles_deg
from ..geometry import check_enough_tilts as check_enough_tilts
from ..geometry import looks_like_radians as looks_like_radians

_NOT_LENGTHS = {"", "<undefined>", "undefined", "none", "px", "pix", "pixel", "pixels", "a.u.", "au"}
_ALIASES = {"a": "Å", "ang": "Å", "angstrom": "Å", "angstroms": "Å", "um": "µm", "μm": "µm",
            "micron": "µm", "microns": "µm", "nanometer": "nm", "nanometers": "nm"}


def length_nm(scale: float, units, where: str, flag: str = "--pixel-nm") -> float:
    """A length ``scale`` in ``units`` converted to nm (HyperSpy/pint conversion).

    Parameters
    ----------
    scale : float
        The length (an axis scale) in ``units``.
    units : str or None
        Its unit as the file states it (``nm``, ``µm``, ``um``, ``Å``, ``A``, ``pm``, ``m``).
    where : str
        The file (and axis) it comes from, for the error message.
    flag : str
        The option that supplies the value instead, named in the error.

    Returns
    -------
    float
        The length in nm.

    Raises
    ------
    ValueError
        No unit, a pixel unit, a unit that is not a length, or a non-positive
        or non-finite scale.
    """
    u = str(units if units is not None else "").strip()
    if u.lower() in _NOT_LENGTHS:
        raise ValueError(f"{where}: the pixel size has no length unit (scale {scale!r}, units {u or 'none'!r}); "
                         f"give the pixel size with {flag}")
    u = _ALIASES.get(u.lower(), u)
    try:
        finite = math.isfinite(float(scale))
    except (TypeError, ValueError):
        finite = False
    if not finite:  # before HyperSpy, which warns on a NaN or infinite axis scale
        raise ValueError(f"{where}: pixel size {scale!r} {u} is not a finite number; give it with {flag}")
    from hyperspy.axes import UniformDataAxis

    ax = UniformDataAxis(size=2, scale=float(scale), units=u)
    try:
        ax.convert_to_units("nm")
    except Exception as exc:  # noqa: BLE001 - pint raises several kinds
        raise ValueError(f"{where}: the pixel unit {u!r} is not a length ({type(exc).__name__}); "
                         f"give the pixel size with {flag}") from None
    if str(ax.units) != "nm":
        raise ValueError(f"{where}: unknown pixel unit {u!r}; give the pixel size with {flag}")
    value = float(ax.scale)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: pixel size {value!r} nm is not a positive number; give it with {flag}")
    return value


def axis_pixel_nm(axes, where: str, flag: str = "--pixel-nm", rtol: float = 1e-2) -> float:
    """The pixel size (nm) of two image axes (HyperSpy axes), which must be square.

    Parameters
    ----------
    axes : sequence of HyperSpy axes
        The image's x and y axes (signal axes of an image, navigation axes of a
        spectrum image).
    where : str
        The file, for error messages.
    flag : str
        The option that supplies the pixel size instead.
    rtol : float
        Tolerated relative difference between the x and y pixel sizes.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        See :func:`length_nm`; pixels that are not square.
    """
    sizes = [length_nm(ax.scale, ax.units, f"{where} (axis {ax.name!s})", flag) for ax in axes]
    if len(sizes) > 1 and not np.isclose(sizes[0], sizes[1], rtol=rtol):
        raise ValueError(f"{where}: pixels are not square ({sizes[0]:.6g} x {sizes[1]:.6g} nm); chemtomo needs "
                         f"one pixel size: resample the images or give it with {flag}")
    return sizes[0]


def beam_energy_kev(metadata) -> float | None:
    """The beam energy (keV) from HyperSpy metadata (TEM key, else SEM key), or None."""
    for key in ("Acquisition_instrument.TEM.beam_energy", "Acquisition_instrument.SEM.beam_energy"):
        v = metadata.get_item(key) if metadata is not None else None
        if v is None:
            continue
        try:
            kev = float(v)
        except (TypeError, ValueError):
            continue
        if np.isfinite(kev) and kev > 0:
            return kev
    return None


# --------------------------------------------------------------------------- image roles

IMAGE_ROLES = ("HAADF", "ADF", "DF", "ABF", "BF", "BSE", "SE", "EDS map", "unknown")

_ROLE_PATTERNS = (
    ("HAADF", r"^haadf"),
    ("ADF", r"^[lm]?a?adf"),
    ("DF", r"^df"),  # Velox DF-S, DF-I, DF-O, DF2, DF4; Bruker DF, DF4
    ("ABF", r"^abf"),
    ("BF", r"^bf"),
    ("BSE", r"bse|backscatter|^cbs|^bsd|^qbsd"),
    ("SE", r"^se\b|^sei|secondary|^etd|^tld|in-?lens|everhart|^se2|^se1"),
)


def role_from_name(name) -> str:
    """The image role a detector or channel name states (``unknown`` if it states none).

    >>> [role_from_name(n) for n in ("HAADF", "DF-S", "DF4", "BF", "ABF", "SE2", "BSE", "Ch 1")]
    ['HAADF', 'DF', 'DF', 'BF', 'ABF', 'SE', 'BSE', 'unknown']
    """
    s = str(name or "").strip().lower()
    for role, pat in _ROLE_PATTERNS:
        if re.search(pat, s):
            return role
    return "unknown"


def detector_name(sig) -> str | None:
    """The detector (or channel) name a signal's metadata states, or None.

    Velox: ``original_metadata.BinaryResult.Detector``; a HyperSpy key
    ``Acquisition_instrument.*.Detector.name`` / ``detector_type``; else None
    (Bruker and JEOL images carry the channel name as their title).
    """
    om = sig.original_metadata
    v = om.get_item("BinaryResult.Detector")
    if v:
        return str(v)
    for key in ("Acquisition_instrument.TEM.Detector.name", "Acquisition_instrument.SEM.Detector.name",
                "Acquisition_instrument.TEM.Detector.detector_type", "Acquisition_instrument.SEM.detector_type",
                "Acquisition_instrument.TEM.detector_type"):
        v = sig.metadata.get_item(key)
        if v:
            return str(v)
    return None


def _is_eds_map(sig, det: str | None) -> bool:
    om = sig.original_metadata
    if det:
        dets = om.get_item("Detectors")
        if dets is not None:
            for d in dets.as_dictionary().values():
                if isinstance(d, dict) and str(d.get("DetectorName", "")).startswith(det) \
                        and d.get("DetectorType") == "AnalyticalDetector":
                    return True
        if re.search(r"super-?x|eds|edx|sdd", det, flags=re.IGNORECASE):
            return True
    ftype = str(om.get_item("FileType", "") or "")
    if ftype.upper().startswith("JED") and "MAP" in ftype.upper():
        return True
    title = str(sig.metadata.get_item("General.title", "") or "")
    return bool(re.fullmatch(r"[A-Z][a-z]?(?:[ _](?:K|L|M)[a-z]?\d?)?", title)) and role_from_name(title) == "unknown"


def image_role(sig) -> tuple[str, str]:
    """What an image is and the name it was recognised by: ``(role, name)``.

    The role is one of :data:`IMAGE_ROLES`. The detector name is looked at
    first (Velox), then the title (Bruker channel names such as ``HAADF``,
    ``BF``, ``DF4``; JEOL titles). Elemental maps (Velox maps of an analytical
    detector, JEOL ``.map`` files, titles like ``Fe`` or ``C K``) are
    ``EDS map``.
    """
    det = detector_name(sig)
    title = str(sig.metadata.get_item("General.title", "") or "")
    if _is_eds_map(sig, det):
        return "EDS map", det or title
    for name in (det, title):
        role = role_from_name(name)
        if role != "unknown":
            return role, str(name)
    return "unknown", det or title


# --------------------------------------------------------------------------- angles and tilts
# MIN_TILTS, check_angles_deg, check_enough_tilts and looks_like_radians live in
# chemtomo.geometry (below io and tiltseries, so TiltSeries checks with the very same rules);
# they are re-exported here for the readers.
