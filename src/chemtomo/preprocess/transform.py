"""The alignment record of a tilt series and its application to every channel.

An :class:`Alignment` (shifts, tilt-axis rotation and offset, in raw pixels)
is estimated once by :func:`chemtomo.preprocess.align.align_tilt_series` and
applied to every channel by :func:`apply_alignment`, so HAADF and EDS stay
registered. The transform of each image: rotate the content by
``rotation_deg`` (counter-clockwise as displayed, rows downwards, about the
image centre) so that the tilt axis becomes vertical, then shift it by
``shifts_px[i] + (0, axis_offset_px)`` (``(dy, dx)`` applied to the content,
see :mod:`chemtomo.preprocess.register`). One interpolation (linear) does both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..io.provenance import json_default as _json_default
from ._signals import unwrap


@dataclass
class Alignment:
    """One alignment of a tilt series, for every channel.

    Attributes
    ----------
    angles_deg : ndarray (n_tilts,)
    shifts_px : ndarray (n_tilts, 2)
        ``(dy, dx)`` applied to each image after the rotation (pixels).
    rotation_deg : float
        Rotation of the image content (counter-clockwise as displayed) that
        makes the tilt axis vertical.
    axis_offset_px : float
        Shift across the axis (x) common to all tilts that puts the tilt axis
        on the image's centre column.
    reference_index : int
        The tilt the shifts are relative to (shift 0 before the axis offset).
    image_shape : (ny, nx)
        Image size the pixels refer to.
    pixel_nm : float or None
    method : str
    diagnostics : dict
        Costs and search grids of the estimators (JSON-friendly).
    """

    angles_deg: np.ndarray
    shifts_px: np.ndarray
    rotation_deg: float = 0.0
    axis_offset_px: float = 0.0
    reference_index: int = 0
    image_shape: tuple[int, int] = (0, 0)
    pixel_nm: float | None = None
    method: str = ""
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.angles_deg = np.asarray(self.angles_deg, dtype=np.float64).ravel()
        self.shifts_px = np.asarray(self.shifts_px, dtype=np.float64).reshape(-1, 2)
        if self.shifts_px.shape[0] != self.angles_deg.size:
            raise ValueError(f"{self.shifts_px.shape[0]} shifts for {self.angles_deg.size} tilt angles")
        self.image_shape = tuple(int(v) for v in self.image_shape)

    @classmethod
    def identity(cls, angles_deg, image_shape, pixel_nm=None) -> Alignment:
        """No shifts, rotation or axis offset; the reference is the tilt nearest 0 degrees (method "none")."""
        a = np.asarray(angles_deg, dtype=float)
        return cls(a, np.zeros((a.size, 2)), 0.0, 0.0, int(np.argmin(np.abs(a))), image_shape, pixel_nm, "none")

    @property
    def total_shifts_px(self) -> np.ndarray:
        """``shifts_px`` with the axis offset added to dx: what is applied to each image."""
        return self.shifts_px + np.array([0.0, self.axis_offset_px])

    def binned(self, factor: int) -> Alignment:
        """The same alignment in pixels of a stack binned by ``factor``."""
        f = int(factor)
        ny, nx = self.image_shape
        return replace(self, shifts_px=self.shifts_px / f, axis_offset_px=self.axis_offset_px / f,
                       image_shape=(ny // f, nx // f),
                       pixel_nm=None if self.pixel_nm is None else self.pixel_nm * f)

    def as_dict(self) -> dict:
        """A JSON-friendly dict of every field, ``total_shifts_px`` and the shift convention."""
        return {
            "angles_deg": self.angles_deg.tolist(), "shifts_px": self.shifts_px.tolist(),
            "total_shifts_px": self.total_shifts_px.tolist(), "rotation_deg": float(self.rotation_deg),
            "axis_offset_px": float(self.axis_offset_px), "reference_index": int(self.reference_index),
            "image_shape": list(self.image_shape), "pixel_nm": self.pixel_nm, "method": self.method,
            "convention": "shifts (dy, dx) in pixels applied to the image content after rotating it by "
                          "rotation_deg (counter-clockwise as displayed) about the image centre; y along the "
                          "tilt axis (rows), x across it",
            "diagnostics": self.diagnostics,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Alignment:
        """The alignment stored by :meth:`as_dict` (missing optional keys take their defaults)."""
        return cls(d["angles_deg"], d["shifts_px"], d.get("rotation_deg", 0.0), d.get("axis_offset_px", 0.0),
                   d.get("reference_index", 0), tuple(d.get("image_shape", (0, 0))), d.get("pixel_nm"),
                   d.get("method", ""), d.get("diagnostics", {}))

    def save(self, path) -> Path:
        """Write as JSON (atomically)."""
        from ..io.atomic import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.as_dict(), indent=1, default=_json_default))
        return path

    @classmethod
    def load(cls, path) -> Alignment:
        """The alignment saved as JSON at ``path`` by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- applying

def _affine(shape, rotation_deg: float, shift) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, offset) for ndimage.affine_transform: rotate content about the centre, then shift."""
    c = (np.asarray(shape, dtype=float) - 1) / 2
    t = np.deg2rad(rotation_deg)
    rinv = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])  # inverse of a CCW content rotation
    offset = c - rinv @ (c + np.asarray(shift, dtype=float))
    return rinv, offset


def transform_image(image: np.ndarray, rotation_deg: float = 0.0, shift=(0.0, 0.0), *, order: int = 1,
                    mode: str = "nearest") -> np.ndarray:
    """One image rotated by ``rotation_deg`` about its centre, then shifted by ``shift`` (dy, dx)."""
    im = np.asarray(image, dtype=np.float64)
    if rotation_deg == 0:
        if np.allclose(shift, 0):
            return im.copy()
        return ndimage.shift(im, shift, order=order, mode=mode)
    m, off = _affine(im.shape, rotation_deg, shift)
    return ndimage.affine_transform(im, m, offset=off, order=order, mode=mode)


def apply_alignment(stacks, alignment: Alignment, *, order: int = 1, mode: str = "nearest"):
    """Apply one alignment to a stack or to every stack of a dict (HAADF and each EDS line).

    Parameters
    ----------
    stacks : ndarray / Signal2D (n_tilts, ny, nx), or dict name -> such
    alignment : Alignment
        In the pixels of ``stacks`` (see :meth:`Alignment.binned`).
    order : int
        Interpolation order; 1 (linear) keeps counts non-negative.
    mode : str
        Fill beyond the field (``"nearest"`` repeats the edge).

    Returns
    -------
    The same kind as ``stacks``.
    """
    if isinstance(stacks, dict):
        return {k: apply_alignment(v, alignment, order=order, mode=mode) for k, v in stacks.items()}
    data, rewrap = unwrap(stacks, "stack to align")
    if data.shape[0] != alignment.angles_deg.size:
        raise ValueError(f"the stack has {data.shape[0]} images, the alignment {alignment.angles_deg.size}")
    if alignment.image_shape not in ((0, 0), tuple(data.shape[1:])):
        raise ValueError(
            f"the alignment is for {alignment.image_shape} images but the stack holds {data.shape[1:]}; "
            "use Alignment.binned(factor) for binned stacks"
        )
    shifts = alignment.total_shifts_px
    out = np.empty(data.shape, dtype=np.float32)
    for i in range(data.shape[0]):
        out[i] = transform_image(data[i], alignment.rotation_deg, shifts[i], order=order, mode=mode)
    return rewrap(out)



__all__ = ["Alignment", "apply_alignment", "transform_image"]
