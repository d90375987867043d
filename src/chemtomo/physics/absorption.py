r"""X-ray absorption in the specimen: detector geometry and attenuation coefficients.

The thin-film model assumes every generated X-ray leaves the specimen. A photon
of a line's energy ``E`` generated at a point is transmitted to a detector with
probability ``exp(-integral mu(s) ds)`` along the straight path to it, with the
linear attenuation coefficient

.. math::

    \mu(\mathbf r) = \rho(\mathbf r) \sum_e w_e(\mathbf r) (\mu/\rho)_e(E),

``rho`` the density (g/cm^3), ``w_e`` the mass fractions and ``(mu/rho)_e`` the
total mass attenuation coefficients (cm^2/g, with coherent scattering) from
xraylib (``CS_Total``, the same data as the detector model's
:mod:`chemtomo.physics.detector`). This module gives the coefficients and the
detector geometry; the path integrals through a volume are the projector's
(:mod:`chemtomo.projector.attenuated`).

Detector geometry, in the frame of the beam (fixed to the microscope, not to
the tilting specimen): each detector is a direction from the specimen, given
by its elevation ``epsilon`` (the take-off angle above the untilted specimen
plane, towards the electron source) and its azimuth ``phi`` measured in that
plane from the tilt axis. Its unit vector has components

- along the tilt axis: ``cos(epsilon) cos(phi)``;
- across it, in the untilted specimen plane (the detector-bin direction):
  ``cos(epsilon) sin(phi)``;
- towards the electron source (against the beam): ``sin(epsilon)``.

Which way positive azimuth points in a real microscope depends on the tilt-sign
convention of the series; the symmetric Super-X preset does not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .detector import _mac_cm2_g
from .elements import atomic_number, symbol
from .transitions import line_info

__all__ = [
    "DETECTOR_GEOMETRIES",
    "DetectorGeometry",
    "MAC_SOURCE",
    "composition_mass_attenuation_cm2_g",
    "line_energy_kev",
    "linear_attenuation_per_nm",
    "mass_attenuation_cm2_g",
]

MAC_SOURCE = "xraylib CS_Total mass attenuation coefficients (total, with coherent scattering)"

#: cm per nm: mu (1/nm) = rho (g/cm^3) * mu/rho (cm^2/g) * 1e-7
CM_PER_NM = 1e-7


def _check_finite(name: str, values, low: float, high: float, *, open_low: bool = False) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty: give one value per detector")
    bad = ~np.isfinite(arr) | (arr > high) | ((arr <= low) if open_low else (arr < low))
    if np.any(bad):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be finite and in {interval}, got {arr[bad].tolist()}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class DetectorGeometry:
    """One or several EDS detectors: elevation, azimuth and solid angle of each.

    Parameters
    ----------
    elevation_deg : float or sequence of float
        Take-off (elevation) angle above the untilted specimen plane, towards
        the electron source, degrees in [-90, 90] (negative: below the plane).
    azimuth_deg : float or sequence of float
        Azimuth in the untilted specimen plane, degrees from the tilt axis
        (0: the detector looks along the tilt axis; 90: across it, towards the
        detector bins' increasing index). Any finite value (taken modulo 360).
    solid_angle_sr : float or sequence of float
        Solid angle of each detector (sr), in (0, 4 pi]. The transmissions of
        several detectors are averaged with these weights.
    name : str, optional
        A label (the preset's name).

    Raises
    ------
    ValueError
        If a value is outside its interval or the three lengths differ (a scalar
        is repeated for every detector).
    """

    elevation_deg: tuple[float, ...]
    azimuth_deg: tuple[float, ...]
    solid_angle_sr: tuple[float, ...]
    name: str = "custom"

    def __post_init__(self):
        el = _check_finite("elevation_deg", self.elevation_deg, -90.0, 90.0)
        az = _check_finite("azimuth_deg", self.azimuth_deg, -math.inf, math.inf)
        sa = _check_finite("solid_angle_sr", self.solid_angle_sr, 0.0, 4 * math.pi, open_low=True)
        n = max(len(el), len(az), len(sa))
        values = []
        for label, v in (("elevation_deg", el), ("azimuth_deg", az), ("solid_angle_sr", sa)):
            if len(v) not in (1, n):
                raise ValueError(
                    f"{label} has {len(v)} values but another parameter has {n}: give one value per "
                    "detector, or a scalar for all"
                )
            values.append(v * n if len(v) == 1 else v)
        if sum(values[2]) > 4 * math.pi:
            raise ValueError(f"the detectors' total solid angle {sum(values[2]):g} sr exceeds 4 pi")
        for label, v in zip(("elevation_deg", "azimuth_deg", "solid_angle_sr"), values, strict=True):
            object.__setattr__(self, label, v)

    @property
    def n_detectors(self) -> int:
        """Number of detectors."""
        return len(self.elevation_deg)

    @property
    def total_solid_angle_sr(self) -> float:
        """Sum of the detectors' solid angles (sr)."""
        return float(sum(self.solid_angle_sr))

    @property
    def weights(self) -> np.ndarray:
        """Each detector's share of the total solid angle, ``(n_detectors,)``, summing to 1."""
        sa = np.asarray(self.solid_angle_sr, dtype=np.float64)
        return sa / sa.sum()

    def directions_beam_frame(self) -> np.ndarray:
        """Unit vectors to the detectors in the beam frame, ``(n_detectors, 3)``.

        Components: (along the tilt axis, across it in the untilted specimen
        plane, towards the electron source); see the module docstring.
        """
        el = np.deg2rad(np.asarray(self.elevation_deg))
        az = np.deg2rad(np.asarray(self.azimuth_deg))
        return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)

    def single(self, index: int) -> DetectorGeometry:
        """Detector ``index`` alone, as a geometry of its own."""
        if not 0 <= int(index) < self.n_detectors:
            raise ValueError(f"detector index must be in [0, {self.n_detectors}), got {index}")
        i = int(index)
        return DetectorGeometry(self.elevation_deg[i], self.azimuth_deg[i], self.solid_angle_sr[i],
                                name=f"{self.name}[{i}]")

    @classmethod
    def preset(cls, name: str) -> DetectorGeometry:
        """A named geometry from :data:`DETECTOR_GEOMETRIES` (``"single"``, ``"super-x"``).

        Raises
        ------
        ValueError
            If ``name`` is not a preset.
        """
        try:
            el, az, sa = DETECTOR_GEOMETRIES[name]
        except KeyError:
            raise ValueError(f"unknown detector geometry {name!r}; presets: {sorted(DETECTOR_GEOMETRIES)}") from None
        return cls(el, az, sa, name=name)

    def key(self) -> dict:
        """JSON-friendly description (for provenance)."""
        return {"name": self.name, "elevation_deg": list(self.elevation_deg),
                "azimuth_deg": list(self.azimuth_deg), "solid_angle_sr": list(self.solid_angle_sr)}


#: Nominal detector geometries: name -> (elevation_deg, azimuth_deg, solid_angle_sr).
#: "super-x": four SDDs at 45/135/225/315 degrees azimuth around the optic axis,
#: 18 degrees take-off, 0.7 sr in total (0.175 sr each) -- nominal values as
#: commonly quoted for the FEI/Thermo Fisher Super-X (the design figure in
#: Schlossmacher et al., Microscopy Today 18(4), 2010, is larger, measured
#: effective values smaller); replace them by the instrument's own.
#: "single": one detector across the tilt axis (azimuth 90 degrees) at 20
#: degrees take-off, 0.13 sr -- nominal, for a conventional single SDD.
DETECTOR_GEOMETRIES: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "super-x": ((18.0,) * 4, (45.0, 135.0, 225.0, 315.0), (0.175,) * 4),
    "single": ((20.0,), (90.0,), (0.13,)),
}


def line_energy_kev(line: str) -> float:
    """Energy (keV) of ``line`` (``"Si_Ka"``), as :func:`~chemtomo.physics.line_info` gives it."""
    return float(line_info(line).energy_kev)


def _energy(line_or_energy) -> float:
    if isinstance(line_or_energy, str):
        return line_energy_kev(line_or_energy)
    e = float(line_or_energy)
    if not (math.isfinite(e) and e > 0):
        raise ValueError(f"energy must be a line name like 'Si_Ka' or a finite energy > 0 keV, got {line_or_energy!r}")
    return e


def mass_attenuation_cm2_g(element: str | int, line_or_energy) -> float:
    """Total mass attenuation coefficient mu/rho (cm^2/g) of ``element`` for a line's photons.

    Parameters
    ----------
    element : str or int
        Absorbing element (symbol or Z).
    line_or_energy : str or float
        The emitted line (``"O_Ka"``; its energy from :func:`line_energy_kev`) or
        a photon energy in keV.

    Returns
    -------
    float
        xraylib ``CS_Total(Z, E)`` (cm^2/g).
    """
    return _mac_cm2_g(symbol(atomic_number(element)), _energy(line_or_energy))


def composition_mass_attenuation_cm2_g(fractions: Mapping[str, object], line_or_energy):
    """mu/rho (cm^2/g) of a mixture: ``sum_e w_e (mu/rho)_e`` (the mixture rule).

    Parameters
    ----------
    fractions : mapping element -> float or ndarray
        Mass fractions (arrays of one shape for a map); used as given, not
        renormalised (they should sum to 1 where there is matter).
    line_or_energy : str or float
        Line name or photon energy (keV).

    Returns
    -------
    float or ndarray
    """
    if not fractions:
        raise ValueError("fractions is empty: give at least one element's mass fraction")
    e = _energy(line_or_energy)
    total = None
    for element, w in fractions.items():
        w = np.asarray(w, dtype=np.float64)
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"mass fractions of {element!r} must be finite and >= 0")
        term = w * mass_attenuation_cm2_g(element, e)
        total = term if total is None else total + term
    return float(total) if np.ndim(total) == 0 else total


def linear_attenuation_per_nm(density_g_cm3, fractions: Mapping[str, object], line_or_energy):
    """Linear attenuation coefficient mu (1/nm) = rho (mu/rho)_mix * 1e-7.

    Parameters
    ----------
    density_g_cm3 : float or ndarray
        Density (g/cm^3), >= 0 (a map: per voxel).
    fractions : mapping element -> float or ndarray
        Mass fractions (broadcastable with the density).
    line_or_energy : str or float
        Line name or photon energy (keV).

    Returns
    -------
    float or ndarray
        mu in 1/nm.
    """
    rho = np.asarray(density_g_cm3, dtype=np.float64)
    if np.any(rho < 0) or not np.all(np.isfinite(rho)):
        raise ValueError("density_g_cm3 must be finite and >= 0")
    mu = rho * composition_mass_attenuation_cm2_g(fractions, line_or_energy) * CM_PER_NM
    return float(mu) if np.ndim(mu) == 0 else mu
