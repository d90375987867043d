"""Tilt angles of raw tilt files: from the user, the files' metadata, or their names.

:func:`resolve_angles` chooses, in this order of preference (``angle_source="auto"``),
the user's list, the files' metadata (``tilt_alpha``, when not all equal), and
the file names (:func:`angle_from_filename`), and checks the result with
:func:`chemtomo.io.metadata.check_angles_deg` (finite, within +-90 degrees, not
radians, no repeat).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..geometry import convert_angles
from .metadata import looks_like_radians

HAADF_COMPANION = "_haadf"
AngleSource = Literal["auto", "user", "metadata", "filename"]
ANGLE_SOURCES = ("auto", "user", "metadata", "filename")
ANGLE_TOLERANCE_DEG = 0.05


def _natural_key(p: Path):
    parts = re.split(r"([+-]?\d+(?:\.\d+)?)", p.stem)
    return [(0, float(t), "") if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", t) else (1, 0.0, t.lower())
            for t in parts if t]


_NUM = r"[+-]?\d+(?:\.\d+)?"


def angle_from_filename(path) -> float | None:
    """The tilt angle (degrees) a file name states, or None.

    Accepted: a stem that is a number (``-10``, ``+35.5``); a number followed by
    ``deg``/``degree(s)``/``°`` (``map_-40deg``); a number after ``tilt``,
    ``angle`` or ``alpha`` with an optional ``_``, ``=`` or space
    (``tilt_+35``, ``TS alpha=-12.5``). Anything else (``map_012``) is not
    taken for an angle.

    >>> angle_from_filename("data/-10.bcf"), angle_from_filename("tilt_+35.5.emd"), angle_from_filename("scan_3.bcf")
    (-10.0, 35.5, None)
    """
    stem = Path(path).stem
    if stem.lower().endswith(HAADF_COMPANION):
        stem = stem[: -len(HAADF_COMPANION)]
    if re.fullmatch(_NUM, stem.strip()):
        return float(stem)
    m = re.search(rf"({_NUM})\s*(?:deg(?:rees?)?|°)(?![a-z])", stem, flags=re.IGNORECASE)
    if m:
        return float(m.group(1))
    m = re.search(rf"(?:tilt|angle|alpha)[\s_=]*({_NUM})", stem, flags=re.IGNORECASE)
    if m:
        return float(m.group(1))
    return None


def resolve_angles(paths: Sequence[Path], metadata_angles: Sequence[float | None],
                   angles_deg=None, angle_source: AngleSource = "auto",
                   angles_unit: str | None = None) -> tuple[np.ndarray, str]:
    """Tilt angles of ``paths`` and where they came from (``user``, ``metadata``, ``filename``).

    Parameters
    ----------
    paths : sequence of Path
        The tilt files, in the order of ``angles_deg``.
    metadata_angles : sequence of float or None
        The angle each file's metadata states (None: none).
    angles_deg : array_like, optional
        The user's angles (degrees), one per file in the order of ``paths``.
    angle_source : {"auto", "user", "metadata", "filename"}
    angles_unit : {"deg", "rad"}, optional
        The unit of the angles, whichever source they come from (CLI
        ``--angles-unit``): ``"rad"`` converts them to degrees; ``"deg"``
        accepts a set that looks like radians; None (default) refuses such a
        set (:func:`chemtomo.geometry.angles_to_deg`).

    Returns
    -------
    angles_deg : ndarray
    source : str

    Raises
    ------
    ValueError
        No source gives an angle for every file, the sources disagree, the
        user's list has the wrong length, an angle repeats, lies beyond +-90
        degrees or the set looks like radians.
    """
    if angle_source not in ANGLE_SOURCES:
        raise ValueError(f"angle_source must be one of {ANGLE_SOURCES}, got {angle_source!r}")
    n = len(paths)
    names = [Path(p).name for p in paths]
    from_names = [angle_from_filename(p) for p in paths]
    md = [None if a is None else float(a) for a in metadata_angles]
    md_ok = all(a is not None for a in md) and (n == 1 or len({round(a, 6) for a in md}) > 1)
    names_ok = all(a is not None for a in from_names)
    if angles_deg is not None:
        if angle_source not in ("auto", "user"):
            raise ValueError(f"angles were given, so angle_source must be 'auto' or 'user', not {angle_source!r}")
        angles = np.asarray(angles_deg, dtype=float).ravel()
        if angles.size != n:
            raise ValueError(
                f"{angles.size} tilt angles given for {n} files ({names}); give one angle per file, "
                "in the order of the files"
            )
        source = "user"
    elif angle_source == "user":
        raise ValueError("angle_source='user' but no angles were given (angles_deg= or --angles)")
    elif angle_source == "metadata" or (angle_source == "auto" and md_ok):
        if not md_ok:
            missing = [nm for nm, a in zip(names, md, strict=True) if a is None]
            why = (f"no tilt angle in the metadata of {missing}" if missing
                   else f"every file's metadata says {md[0]:g} degrees")
            raise ValueError(f"angle_source='metadata' but {why}; use the file names or give the angles")
        angles = np.array(md, dtype=float)
        source = "metadata"
        if angle_source == "auto" and names_ok and not np.allclose(angles, from_names, atol=ANGLE_TOLERANCE_DEG):
            bad = [f"{nm}: metadata {a:g}, name {b:g}" for nm, a, b in zip(names, angles, from_names, strict=True)
                   if abs(a - b) > ANGLE_TOLERANCE_DEG]
            raise ValueError(
                "the tilt angles in the metadata do not match those in the file names ("
                + "; ".join(bad[:4]) + (" ..." if len(bad) > 4 else "")
                + "); choose one with angle_source='metadata' or 'filename' (--angles-from), or give the angles"
            )
    elif angle_source == "filename" or (angle_source == "auto" and names_ok):
        if not names_ok:
            bad = [nm for nm, a in zip(names, from_names, strict=True) if a is None]
            raise ValueError(f"no tilt angle in the file name(s) {bad[:4]}; name files like '-10.bcf' "
                             "or 'tilt_-10.emd', or give the angles")
        angles = np.array(from_names, dtype=float)
        source = "filename"
    else:
        why = ("the files' metadata hold no tilt angle" if any(a is None for a in md)
               else f"the files' metadata say {md[0]:g} degrees for every tilt")
        raise ValueError(
            f"no tilt angles found: {why} and the file names carry none ({names[:3]}...); "
            "give them with angles_deg=[...] (CLI: --angles -40 -35 ...) in the order of the files"
        )
    angles = convert_angles(angles, angles_unit, f"the tilt angles ({source})")
    if not np.all(np.isfinite(angles)) or np.any(np.abs(angles) > 90):
        raise ValueError(f"tilt angles must be finite and within [-90, 90] degrees, got {angles.tolist()}")
    if angles_unit is None and looks_like_radians(angles):
        raise ValueError(
            f"the tilt angles ({source}) {np.round(angles, 4).tolist()[:6]}... look like radians (all within +-1.6); "
            "chemtomo takes degrees: if they are radians, say so (--angles-unit rad, angles_unit='rad') and they "
            "are converted; or give them in degrees (--angles -40 -35 ...)"
        )
    r = np.round(angles, 6)
    for a in np.unique(r):
        idx = np.flatnonzero(r == a)
        if idx.size > 1:
            raise ValueError(
                f"tilt angle {a:g} degrees ({source}) is duplicated: {[names[i] for i in idx]}; "
                "each tilt must appear once (remove the repeat or correct its angle)"
            )
    return angles, source

