"""The entry point: every factor of the thin-film model, for any lines, from published models.

>>> from chemtomo.physics import compute_factors
>>> factors = compute_factors(["Co_Ka", "Zn_Ka"], beam_kev=80.0, detector=0.96)
>>> [round(float(x), 2) for x in factors.f()]
[2.25, 1.84]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Literal

from .detector import DETECTOR_EFFICIENCY, resolve_detector
from .elastic import (
    BROWNING_RANGE_KEV,
    MOTT_FIT,
    MOTT_RANGE_KEV,
    browning1991_barn,
    screened_rutherford_barn,
    screened_rutherford_mott_barn,
    validate_angles_mrad,
)
from .elements import atomic_weight, atomic_weight_source
from .factors import Factors, LineFactors
from .ionization import BOTE_SOURCE, CK_SOURCE, MAX_BEAM_KEV, ionization_energy_kev, vacancy_cross_section_barn
from .transitions import line_info

__all__ = ["ELASTIC_MODELS", "PAPER_HAADF_MRAD", "compute_factors"]

log = logging.getLogger("chemtomo.physics")

#: Elastic cross-section models of :func:`compute_factors`. ``auto``: Browning 1991 up to
#: 100 keV (its fitted range, the paper's), ``screened_rutherford_mott`` above.
ELASTIC_MODELS = ("auto", "browning1991", "screened_rutherford", "screened_rutherford_mott")

_MOTT_SOURCE = (
    "relativistic screened Rutherford (Wentzel, Thomas-Fermi radius) x Mott-type factor "
    "a Z^b (1 - K (alpha Z)^2/beta), (a, b, K) = ({:g}, {:g}, {:g}) fitted to ELSEPA / NIST SRD 64 "
    "Dirac partial-wave totals at 60-100 keV; total".format(*MOTT_FIT)
)

#: Inner and outer angles (mrad) of the HAADF detector the paper simulated (section 2.3).
PAPER_HAADF_MRAD = (94.0, 611.0)


def _check_beam_kev(beam_kev) -> float:
    if isinstance(beam_kev, bool) or not isinstance(beam_kev, (int, float)):
        raise ValueError(f"beam_kev must be a number (keV), got {beam_kev!r}")
    e = float(beam_kev)
    if not math.isfinite(e) or not 0 < e <= MAX_BEAM_KEV:
        raise ValueError(f"beam_kev must be in (0, {MAX_BEAM_KEV:g}] keV, got {beam_kev!r}")
    return e


def _check_model_range(beam_kev: float, elastic: str) -> None:
    """Refuse a beam energy beyond the elastic model's validity; log a warning where it is extrapolated."""
    lo, hi = MOTT_RANGE_KEV
    if elastic in ("auto", "screened_rutherford_mott") and beam_kev > hi:
        raise ValueError(
            f"beam_kev {beam_kev:g} keV is beyond the elastic model's validity: elastic={elastic!r} "
            f"uses {'Browning (1991) up to 100 keV and ' if elastic == 'auto' else ''}the Mott-corrected "
            f"screened Rutherford model, valid {lo:g}-{hi:g} keV; TEM beams are 60-300 keV: give the "
            "energy in keV (not eV)"
        )
    b_lo, b_hi = BROWNING_RANGE_KEV
    if elastic == "browning1991" and not b_lo <= beam_kev <= b_hi:
        log.warning("elastic='browning1991' at %g keV is extrapolated beyond the fit's %g-%g keV (at 300 keV it "
                    "falls 40-53%% below partial-wave totals); elastic='auto' uses the Mott-corrected screened "
                    "Rutherford model above %g keV", beam_kev, b_lo, b_hi, b_hi)


def _elastic(element: str, beam_kev: float, elastic: str, haadf_mrad) -> tuple[float, str]:
    """sigma_ela (barn) and its source string for one element under model ``elastic``."""
    if elastic == "auto":
        if haadf_mrad is not None:
            raise ValueError(
                "elastic='auto' gives the total elastic cross-section only; for a HAADF angular "
                "range use elastic='screened_rutherford' with haadf_mrad=(inner, outer)"
            )
        if beam_kev <= BROWNING_RANGE_KEV[1]:
            return _elastic(element, beam_kev, "browning1991", None)
        sigma, source = _elastic(element, beam_kev, "screened_rutherford_mott", None)
        return sigma, source + f" (elastic='auto': above Browning's {BROWNING_RANGE_KEV[1]:g} keV)"
    if elastic == "screened_rutherford_mott":
        if haadf_mrad is not None:
            raise ValueError(
                "screened_rutherford_mott gives the total elastic cross-section only; for a HAADF "
                "angular range use elastic='screened_rutherford' with haadf_mrad=(inner, outer)"
            )
        return screened_rutherford_mott_barn(element, beam_kev), "screened_rutherford_mott: " + _MOTT_SOURCE
    if elastic == "browning1991":
        if haadf_mrad is not None:
            raise ValueError(
                "Browning (1991) gives the total elastic cross-section only; for a HAADF angular "
                "range use elastic='screened_rutherford' with haadf_mrad=(inner, outer)"
            )
        lo, hi = BROWNING_RANGE_KEV
        note = "" if lo <= beam_kev <= hi else f"; extrapolated beyond the fit's {lo:g}-{hi:g} keV"
        return browning1991_barn(element, beam_kev), (
            "Browning 1991 fit of Mott total elastic cross-sections (Appl. Phys. Lett. 58, 2845)" + note
        )
    if elastic == "screened_rutherford":
        if haadf_mrad is None:
            return screened_rutherford_barn(element, beam_kev), (
                "screened Rutherford (Wentzel, Thomas-Fermi radius, relativistic), total"
            )
        inner, outer = validate_angles_mrad(*haadf_mrad)
        return screened_rutherford_barn(element, beam_kev, inner, outer), (
            f"screened Rutherford (Wentzel, Thomas-Fermi radius, relativistic) into the HAADF "
            f"detector, {inner:g}-{outer:g} mrad"
        )
    raise ValueError(f"elastic must be one of {ELASTIC_MODELS}, got {elastic!r}")


def compute_factors(
    lines: Iterable[str],
    beam_kev: float,
    detector=DETECTOR_EFFICIENCY,
    *,
    elastic: Literal["auto", "browning1991", "screened_rutherford", "screened_rutherford_mott"] = "auto",
    haadf_mrad: tuple[float, float] | None = None,
    coster_kronig: bool = False,
    solid_angle_sr: float | None = None,
) -> Factors:
    """Quantification factors f_A, z_A and every ingredient, for any X-ray lines.

    Parameters
    ----------
    lines : iterable of str
        Line names ``<Element>_<Line>``: ``"Co_Ka"``, ``"Ag_La"``, ``"Au_Ma"``
        (groups listed in :mod:`chemtomo.physics.transitions`).
    beam_kev : float
        Incident electron energy (keV).
    detector : float, str or detector model
        EDS detector efficiency: a flat value in (0, 1] (the paper implies
        0.96), a preset name (:data:`chemtomo.physics.DETECTOR_PRESETS`), or a
        :class:`~chemtomo.physics.DetectorModel`.
    elastic : {"auto", "browning1991", "screened_rutherford", "screened_rutherford_mott"}
        Elastic cross-section model for z_A. ``auto`` (default): Browning
        1991 (the paper's total cross-section) up to 100 keV, the fit's
        range, and ``screened_rutherford_mott`` (relativistic screened
        Rutherford with a Mott-type factor fitted to ELSEPA / NIST SRD 64,
        valid 50-1000 keV) above; the two differ by +6% (Au) to +26% (Cu)
        at 100 keV, Browning being the lower. ``browning1991`` forces
        Browning (extrapolated above 100 keV, 40-53% below partial-wave
        totals at 300 keV). ``screened_rutherford`` is the uncorrected Born
        model and can be restricted to a HAADF detector with ``haadf_mrad``.
        Each line's ``sources["sigma_elastic"]`` names the model used.
    haadf_mrad : (float, float), optional
        HAADF inner and outer angles (mrad), e.g. :data:`PAPER_HAADF_MRAD`;
        only with ``elastic="screened_rutherford"``.
    coster_kronig : bool
        Add Coster-Kronig vacancy transfer to L and M lines' ionization
        cross-sections (default False: direct ionization, as in Table 2).
    solid_angle_sr : float, optional
        EDS solid angle (sr) for partial cross-sections and response ratios;
        default: the detector model's, if it has one.

    Returns
    -------
    Factors
        One :class:`LineFactors` per line, in order, each with its sources.

    Raises
    ------
    ValueError
        Malformed line name, unknown element, a line the element lacks, beam
        energy at or below the vacancy's ionization energy or beyond the
        elastic model's validity (above 1000 keV for ``auto`` and
        ``screened_rutherford_mott``), a bad detector or model option.
        ``browning1991`` outside its fitted 1-100 keV is logged as a warning
        (logger ``chemtomo.physics``) and noted in the line's sources.
    KeyError
        Unknown line name or detector preset.

    Notes
    -----
    Per line A (Yuan et al. 2020, eqs 7 and 14):
    f_A = sigma_ion omega p eps / M_A and z_A = sigma_ela / M_A (barn mol/g);
    sigma_par = f_A (Omega/4 pi) M_A. Models: elastic, Browning (1991) up to
    100 keV and the Mott-corrected screened Rutherford above;
    ionization of the line's vacancy subshell, Bote et al. (2009) with Bote's
    ionization energies; omega and p, EADL (Perkins et al. 1991); M_A, NIST
    atomic weights; line energies, xraylib; eps, the detector.

    Examples
    --------
    >>> fac = compute_factors(["Ag_La", "Au_Ma"], beam_kev=100.0, detector=0.96)
    >>> round(fac["Ag_La"].sigma_ionization_barn)
    2444
    """
    if isinstance(lines, str):
        raise ValueError(f"lines must be a list of line names, got the string {lines!r}; use [{lines!r}]")
    lines = list(lines)
    if not lines:
        raise ValueError("lines is empty; give at least one line such as 'Co_Ka'")
    duplicates = sorted({x for x in lines if lines.count(x) > 1})
    if duplicates:
        raise ValueError(f"lines repeat {duplicates}; give each line once")
    e0 = _check_beam_kev(beam_kev)
    if elastic not in ELASTIC_MODELS:
        raise ValueError(f"elastic must be one of {ELASTIC_MODELS}, got {elastic!r}")
    _check_model_range(e0, elastic)
    det = resolve_detector(detector)
    omega_sr = solid_angle_sr if solid_angle_sr is not None else getattr(det, "solid_angle_sr", None)
    if omega_sr is not None and (isinstance(omega_sr, bool) or not isinstance(omega_sr, (int, float))
                                 or not 0 < omega_sr <= 4 * math.pi):
        raise ValueError(f"solid_angle_sr must be in (0, 4 pi] sr, got {omega_sr!r}")

    out = []
    for name in lines:
        info = line_info(name)
        vacancy = info.vacancy
        edge_kev = ionization_energy_kev(info.z, vacancy)
        if e0 <= edge_kev:
            raise ValueError(
                f"{name}: beam energy {e0:g} keV is at or below the {info.element} {vacancy} "
                f"ionization energy {edge_kev:.4g} keV (Bote et al. 2009); the line is not excited"
            )
        sigma_ion = vacancy_cross_section_barn(info.z, vacancy, e0, coster_kronig=coster_kronig)
        ion_source = (
            f"{BOTE_SOURCE}; {vacancy} subshell, U_i = {edge_kev:.5g} keV (Bote); "
            + ("with Coster-Kronig transfer within the shell (" + CK_SOURCE + ")"
               if coster_kronig and vacancy != "K" else "direct ionization")
        )
        sigma_ela, ela_source = _elastic(info.element, e0, elastic, haadf_mrad)
        eps = float(det.efficiency(info.energy_kev))
        sources = {
            "atomic_weight": atomic_weight_source(info.element),
            "sigma_elastic": ela_source,
            "sigma_ionization": ion_source,
            "fluorescence_yield": info.sources["fluorescence_yield"],
            "relative_intensity": info.sources["relative_intensity"],
            "detector_efficiency": det.describe() + f", at {info.energy_kev:.4g} keV",
            "energy": info.sources["energy"],
            "solid_angle": (
                "not given" if omega_sr is None
                else f"{omega_sr:g} sr ({'parameter' if solid_angle_sr is not None else 'detector model'})"
            ),
        }
        out.append(LineFactors(
            line=info.line,
            element=info.element,
            atomic_weight=atomic_weight(info.element),
            sigma_elastic_barn=float(sigma_ela),
            sigma_ionization_barn=float(sigma_ion),
            fluorescence_yield=info.fluorescence_yield,
            relative_intensity=info.relative_intensity,
            detector_efficiency=eps,
            beam_kev=e0,
            energy_kev=info.energy_kev,
            sources=sources,
            solid_angle_sr=None if omega_sr is None else float(omega_sr),
        ))
    return Factors(out)
