"""Absorption correction on the raw route (issue 14): options, detectors from the files, the cropped record.

:func:`chemtomo.pipeline.experimental.reconstruct_experimental` runs each method
through :func:`chemtomo.pipeline.absorption.reconstruct_absorption_corrected`
when :class:`~chemtomo.pipeline.options.ReconstructionOptions` has ``absorption``;
this module holds what is particular to the raw route:

- the options' check (:func:`check_absorption_options`) and their resolution
  into the correction's keyword arguments (:func:`correction_kwargs`): the
  detectors (a preset, or ``"file"``: the facts the tilt files' metadata state,
  :mod:`chemtomo.io.detector_meta`, completed by the user's values) and the density;
- the density assumption. Line maps from a microscope are not absolute (no dose
  or detector calibration), so the density cannot be estimated from the maps as
  for simulated series; the raw route uses one density inside the particle mask,
  given (``density_g_cm3``) or :data:`RAW_DENSITY_G_CM3` (3.0 g/cm^3, assumed:
  anhydrous silicates of a chondritic interplanetary dust particle, olivine and
  pyroxene 3.2-3.6, amorphous silicate 2.5-3, Fe sulfide 4.6 g/cm^3). The
  composition inside the mask, and so the attenuation coefficient of each
  voxel, comes from the maps' weight fractions at each outer iteration; a Pt
  cap is thus attenuating as Pt, but at the assumed density, not Pt's 21.4;
- :class:`RawAbsorption`: the corrected and uncorrected results cropped to the
  field of view and quantified as the route's results, and the ``/absorption``
  record (:func:`chemtomo.io.absorption.absorption_dict`) on the cropped grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..physics.absorption import DETECTOR_GEOMETRIES, DetectorGeometry
from .volume import VolumeResult

__all__ = ["DENSITY_ASSUMPTION", "RAW_DENSITY_G_CM3", "RawAbsorption", "absorption_record", "check_absorption_options",
           "correction_kwargs", "file_detector_facts"]

#: The density (g/cm^3) inside the particle mask when none is given (module docstring).
RAW_DENSITY_G_CM3 = 3.0
#: What the default density stands for, as recorded in the result.
DENSITY_ASSUMPTION = ("assumed {rho:g} g/cm^3 inside the particle mask (the raw route's default: anhydrous "
                      "silicates of an interplanetary dust particle; composition from the maps)")

#: the choice of ``detectors`` that takes them from the tilt files' metadata
FROM_FILE = "file"
_CORRECTION_KEYS = ("detectors", "density_g_cm3", "tol", "max_outer", "mode", "slice_nm")
_FACT_KEYS = ("elevation_deg", "azimuth_deg", "solid_angle_sr")


def check_absorption_options(absorption: dict) -> None:
    """Refuse absorption options the raw route cannot use, before any work.

    Parameters
    ----------
    absorption : dict
        :attr:`ReconstructionOptions.absorption <chemtomo.pipeline.options.ReconstructionOptions>`.

    Raises
    ------
    ValueError
        Not a dict, an unknown key, detectors that are neither a preset, ``"file"``
        nor a :class:`DetectorGeometry`, a density that is not a finite number >= 0,
        a tolerance that is not positive, ``max_outer`` below 1.
    """
    if not isinstance(absorption, dict):
        raise ValueError(f"absorption must be a dict of options, got {type(absorption).__name__}")
    bad = sorted(set(absorption) - set(_CORRECTION_KEYS) - set(_FACT_KEYS))
    if bad:
        raise ValueError(f"unknown absorption option(s) {bad}; allowed: {list(_CORRECTION_KEYS + _FACT_KEYS)}")
    det = absorption.get("detectors", "super-x")
    if not isinstance(det, DetectorGeometry) and det not in (FROM_FILE, *DETECTOR_GEOMETRIES):
        raise ValueError(f"absorption detectors must be one of {[FROM_FILE, *DETECTOR_GEOMETRIES]} or a "
                         f"DetectorGeometry, got {det!r}")
    rho = absorption.get("density_g_cm3")
    if rho is not None and not (np.ndim(rho) == 0 and math.isfinite(float(rho)) and float(rho) >= 0):
        raise ValueError(f"absorption density_g_cm3 must be a finite number >= 0 (g/cm^3) on the raw route, "
                         f"got {rho!r}")
    tol = absorption.get("tol")
    if tol is not None and not (math.isfinite(float(tol)) and float(tol) > 0):
        raise ValueError(f"absorption tol must be a positive number, got {tol!r}")
    mo = absorption.get("max_outer")
    if mo is not None and int(mo) < 1:
        raise ValueError(f"absorption max_outer must be an integer >= 1, got {mo!r}")
    if det != FROM_FILE and any(absorption.get(k) is not None for k in _FACT_KEYS):
        raise ValueError(f"{[k for k in _FACT_KEYS if absorption.get(k) is not None]} complete the files' detector "
                         f"facts: they apply to detectors='file' only, not {det!r}")


def file_detector_facts(inputs) -> dict:
    """The EDS detector facts the first tilt file's metadata states (:meth:`DetectorFacts.as_dict`).

    Parameters
    ----------
    inputs : folder, file or list of files
        As :func:`chemtomo.io.microscope.find_tilt_files` takes them.

    Returns
    -------
    dict
    """
    from ..io.detector_meta import detector_facts
    from ..io.microscope import find_tilt_files, read_tilt

    tilt = read_tilt(find_tilt_files(inputs)[0])
    return detector_facts(tilt.spectrum_image).as_dict()


def correction_kwargs(absorption: dict, facts: dict | None = None, where: str = "the tilt files") -> dict:
    """The keyword arguments of :func:`~chemtomo.pipeline.absorption.reconstruct_absorption_corrected`.

    Parameters
    ----------
    absorption : dict
        The raw route's absorption options (:func:`check_absorption_options`).
    facts : dict, optional
        The files' detector facts (:meth:`DetectorFacts.as_dict`), for ``detectors="file"``.
    where : str
        The files, for messages.

    Returns
    -------
    dict
        ``detectors`` (a preset name or :class:`DetectorGeometry`), ``density_g_cm3``
        (the given one, else :data:`RAW_DENSITY_G_CM3`) and the given ``tol``,
        ``max_outer``, ``mode``, ``slice_nm``.

    Raises
    ------
    ValueError
        ``"file"`` and a fact neither in the files nor given (naming the metadata key and the flag).
    """
    from ..io.detector_meta import DetectorFacts

    check_absorption_options(absorption)
    out = {k: absorption[k] for k in _CORRECTION_KEYS if absorption.get(k) is not None}
    out.setdefault("detectors", "super-x")
    if out["detectors"] == FROM_FILE:
        out["detectors"] = DetectorFacts.from_dict(facts).geometry(
            elevation_deg=absorption.get("elevation_deg"), azimuth_deg=absorption.get("azimuth_deg"),
            solid_angle_sr=absorption.get("solid_angle_sr"), where=where)
    out["density_g_cm3"] = float(out.get("density_g_cm3", RAW_DENSITY_G_CM3))
    return out


def density_note(absorption: dict) -> str:
    """How the density of the correction was chosen, for the result (``density_source``)."""
    rho = absorption.get("density_g_cm3")
    if rho is None:
        return DENSITY_ASSUMPTION.format(rho=RAW_DENSITY_G_CM3)
    return f"given: {float(rho):g} g/cm^3 inside the particle mask (composition from the maps)"


@dataclass
class RawAbsorption:
    """One method's absorption correction on the raw route, on the field of view.

    Attributes
    ----------
    corrected, uncorrected : VolumeResult
        Cropped and quantified as the route's results; the corrected one's mask
        uses the uncorrected one's threshold.
    record : dict
        The ``/absorption`` group's data (:func:`chemtomo.io.absorption.absorption_dict`),
        its volumes cropped as the results.
    seconds : float
        Wall time of the correction (the uncorrected start and the outer loop).
    """

    corrected: VolumeResult
    uncorrected: VolumeResult
    record: dict
    seconds: float = float("nan")

    @property
    def outer_iterations(self) -> int:
        """Corrected reconstructions made."""
        return int(self.record["outer_iterations"])

    def particle_means(self) -> dict:
        """Each element's mean weight fraction before and after, in the voxels inside both masks.

        Returns
        -------
        dict element -> (uncorrected, corrected)
        """
        mask = np.asarray(self.uncorrected.composition.mask) & np.asarray(self.corrected.composition.mask)
        out = {}
        for i, el in enumerate(self.corrected.elements):
            j = self.uncorrected.elements.index(el)
            if not mask.any():
                out[el] = (float("nan"), float("nan"))
                continue
            out[el] = (float(np.asarray(self.uncorrected.composition.weight[j])[mask].mean()),
                       float(np.asarray(self.corrected.composition.weight[i])[mask].mean()))
        return out


def _crop_volume(v: np.ndarray, c: int) -> np.ndarray:
    if not c:
        return np.asarray(v)
    n = v.shape[-1]
    return np.ascontiguousarray(np.asarray(v)[..., c:n - c, c:n - c])


def absorption_record(absorbed, uncorrected: VolumeResult, corrected: VolumeResult, crop_px: int,
                      density_source: str, seconds: float = float("nan")) -> RawAbsorption:
    """The raw route's view of an absorption correction: cropped volumes, the route's quantification.

    Parameters
    ----------
    absorbed : AbsorptionResult
        :func:`~chemtomo.pipeline.absorption.reconstruct_absorption_corrected` on the padded grid.
    uncorrected, corrected : VolumeResult
        Its two reconstructions cropped by ``crop_px`` and quantified as the route does.
    crop_px : int
        The padding removed from each side in (z, x).
    density_source : str
        How the density was chosen (:func:`density_note`).
    seconds : float
        Wall time of the correction (uncorrected start and outer loop).

    Returns
    -------
    RawAbsorption
    """
    from ..io.absorption import absorption_dict

    rec = absorption_dict(absorbed)
    rec["transmission"] = {ln: _crop_volume(t, crop_px) for ln, t in rec["transmission"].items()}
    rec["density_g_cm3"] = _crop_volume(rec["density_g_cm3"], crop_px)
    rec["uncorrected_weight"] = {el: np.asarray(uncorrected.composition.weight[i], dtype=np.float32)
                                 for i, el in enumerate(uncorrected.elements)}
    rec["density_source"] = density_source
    return RawAbsorption(corrected, uncorrected, rec, float(seconds))
