r"""EDS detector efficiency: a flat value, or a physical model of the detector's layers.

The physical model (:class:`DetectorModel`) is the usual one for Si detectors:
an X-ray of energy E reaches the active crystal through the window (with its
support grid), the electrical contact and the Si dead layer, and is detected
if it is absorbed in the crystal:

.. math::

    \varepsilon(E) = g \prod_{\mathrm{layers}} e^{-(\mu/\rho)_i(E)\,\rho_i t_i}
        \left(1 - e^{-(\mu/\rho)_{Si}(E)\,\rho_{Si} t_{crystal}}\right),

g the open fraction of the window's support grid (treated as opaque).
Mass attenuation coefficients (mu/rho, total with coherent scattering) come
from xraylib (``CS_Total_CP``). Escape peaks, incomplete charge collection
and Compton scattering out of the crystal are neglected; they matter below
~0.5 keV and above ~20 keV respectively.

The solid angle is a separate parameter (:attr:`DetectorModel.solid_angle_sr`
or ``compute_factors(..., solid_angle_sr=...)``); it does not enter f_A.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DETECTOR_EFFICIENCY",
    "DETECTOR_PRESETS",
    "DetectorModel",
    "Efficiency",
    "FlatEfficiency",
    "Layer",
    "MATERIALS",
    "resolve_detector",
]

MAC_SOURCE = "xraylib CS_Total_CP mass attenuation coefficients"

#: Named materials: name -> (xraylib formula, density g/cm^3). Elements need no entry.
MATERIALS: dict[str, tuple[str, float]] = {
    "Si3N4": ("Si3N4", 3.17),  # LPCVD silicon nitride membranes
    "polyimide": ("C22H10N2O5", 1.42),  # Kapton-type polyimide
    "parylene": ("C8H8", 1.11),  # parylene N
    "ice": ("H2O", 0.92),
}


def _mac_cm2_g(formula: str, energy_kev: float) -> float:
    import xraylib

    return float(xraylib.CS_Total_CP(formula, float(energy_kev)))


def _check_energy(energy_kev) -> np.ndarray:
    e = np.asarray(energy_kev, dtype=float)
    if not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"energy_kev must be finite and > 0, got {energy_kev!r}")
    return e


@dataclass(frozen=True)
class Layer:
    """One absorbing layer in front of the crystal.

    Parameters
    ----------
    material : str
        An element symbol (``"Be"``, ``"Al"``), a name in :data:`MATERIALS`
        (``"Si3N4"``, ``"polyimide"``), or any chemical formula xraylib parses
        (then ``density_g_cm3`` is required).
    thickness_um : float
        Thickness (micrometres), >= 0.
    density_g_cm3 : float, optional
        Density (g/cm^3); default: xraylib's element density or the
        :data:`MATERIALS` value.
    """

    material: str
    thickness_um: float
    density_g_cm3: float | None = None
    formula: str = field(init=False, repr=False)

    def __post_init__(self):
        import xraylib

        t = self.thickness_um
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t < 0:
            raise ValueError(
                f"thickness_um of layer {self.material!r} must be a finite number >= 0, got {t!r}"
            )
        formula, density = self.material, self.density_g_cm3
        if self.material in MATERIALS:
            formula, default_density = MATERIALS[self.material]
            density = default_density if density is None else density
        else:
            try:
                z = xraylib.SymbolToAtomicNumber(self.material)
            except ValueError:
                z = 0
            if density is None:
                if not z:
                    raise ValueError(
                        f"layer material {self.material!r} is not an element or one of "
                        f"{sorted(MATERIALS)}: give density_g_cm3"
                    )
                density = float(xraylib.ElementDensity(z))
        try:
            _mac_cm2_g(formula, 5.0)
        except ValueError:
            raise ValueError(
                f"layer material {self.material!r} is not a chemical formula xraylib knows; "
                f"use an element symbol, one of {sorted(MATERIALS)}, or a formula like 'Si3N4'"
            ) from None
        if not (isinstance(density, (int, float)) and math.isfinite(density) and density > 0):
            raise ValueError(f"density_g_cm3 of layer {self.material!r} must be > 0, got {density!r}")
        object.__setattr__(self, "formula", formula)
        object.__setattr__(self, "density_g_cm3", float(density))

    def transmission(self, energy_kev) -> np.ndarray | float:
        """exp(-mu/rho rho t) at ``energy_kev``."""
        e = _check_energy(energy_kev)
        mu_t = np.vectorize(lambda x: _mac_cm2_g(self.formula, x))(e) * self.density_g_cm3 * self.thickness_um * 1e-4
        out = np.exp(-mu_t)
        return float(out) if out.ndim == 0 else out

    def describe(self) -> str:
        """The layer as text: material, thickness (um) and density (g/cm3)."""
        return f"{self.material} {self.thickness_um:g} um ({self.density_g_cm3:g} g/cm3)"


@runtime_checkable
class Efficiency(Protocol):
    """What :func:`chemtomo.physics.compute_factors` needs of a detector."""

    def efficiency(self, energy_kev):
        """Detection efficiency in [0, 1] at ``energy_kev`` (keV; float or array)."""
        ...

    def describe(self) -> str:
        """The detector as one line of text for reports."""
        ...


#: The flat detector efficiency used when none is given: the value the paper's f_Co and
#: f_Zn imply (Yuan et al. 2020, Table 2; see PHYSICS-NOTES).
DETECTOR_EFFICIENCY = 0.96


@dataclass(frozen=True)
class FlatEfficiency:
    """The same efficiency at every energy (e.g. the paper's implied 0.96).

    Parameters
    ----------
    value : float
        In (0, 1].
    solid_angle_sr : float, optional
        Collection solid angle (sr), if known.
    """

    value: float
    solid_angle_sr: float | None = None

    def __post_init__(self):
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"flat detector efficiency must be a number in (0, 1], got {v!r}")
        _check_solid_angle(self.solid_angle_sr)

    def efficiency(self, energy_kev):
        """``value`` at every ``energy_kev``: a float for a scalar energy, else an array of its shape."""
        e = _check_energy(energy_kev)
        out = np.full(e.shape, float(self.value))
        return float(out) if out.ndim == 0 else out

    def describe(self) -> str:
        """The efficiency as text: ``"flat value <value> (parameter)"``."""
        return f"flat value {self.value:g} (parameter)"


def _check_solid_angle(solid_angle_sr):
    if solid_angle_sr is None:
        return
    if isinstance(solid_angle_sr, bool) or not isinstance(solid_angle_sr, (int, float)) \
            or not 0 < solid_angle_sr <= 4 * math.pi:
        raise ValueError(f"solid_angle_sr must be in (0, 4 pi], got {solid_angle_sr!r}")


@dataclass(frozen=True)
class DetectorModel:
    """Physical model of a Si EDS detector.

    Parameters
    ----------
    name : str
    window : tuple of Layer
        Window layers (empty for a windowless detector).
    contact : tuple of Layer
        Electrical contact / light-blocking layers on the crystal.
    dead_layer_um : float
        Inactive Si at the crystal's entrance (micrometres).
    crystal_thickness_um : float
        Active Si thickness (micrometres), > 0.
    grid_open_fraction : float
        Open fraction of the window's support grid, in (0, 1]; 1 for none.
    solid_angle_sr : float, optional
        Collection solid angle (sr).
    description : str
        Where the numbers come from.
    """

    name: str
    window: tuple[Layer, ...] = ()
    contact: tuple[Layer, ...] = ()
    dead_layer_um: float = 0.0
    crystal_thickness_um: float = 450.0
    grid_open_fraction: float = 1.0
    solid_angle_sr: float | None = None
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "window", tuple(self.window))
        object.__setattr__(self, "contact", tuple(self.contact))
        for x in self.window + self.contact:
            if not isinstance(x, Layer):
                raise ValueError(f"window and contact must hold Layer objects, got {x!r}")
        for name in ("dead_layer_um", "crystal_thickness_um"):
            t = getattr(self, name)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {t!r}")
        if self.crystal_thickness_um <= 0:
            raise ValueError(f"crystal_thickness_um must be > 0, got {self.crystal_thickness_um!r}")
        g = self.grid_open_fraction
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 < g <= 1:
            raise ValueError(f"grid_open_fraction must be in (0, 1], got {g!r}")
        _check_solid_angle(self.solid_angle_sr)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every absorbing layer in front of the active crystal, dead layer last."""
        dead = (Layer("Si", self.dead_layer_um),) if self.dead_layer_um > 0 else ()
        return self.window + self.contact + dead

    def efficiency(self, energy_kev):
        """Detection efficiency at ``energy_kev`` (float or array), in [0, 1]."""
        e = _check_energy(energy_kev)
        out = np.full(e.shape, float(self.grid_open_fraction))
        for layer in self.layers:
            out = out * layer.transmission(e)
        crystal = Layer("Si", self.crystal_thickness_um)
        out = out * (1.0 - crystal.transmission(e))
        return float(out) if out.ndim == 0 else out

    def describe(self) -> str:
        """The model as one line of text: name, every layer with its thickness, and the attenuation-data source."""
        parts = [f"physical model {self.name!r}"]
        parts.append("window " + (" + ".join(x.describe() for x in self.window) or "none"))
        if self.grid_open_fraction < 1:
            parts.append(f"grid open fraction {self.grid_open_fraction:g}")
        parts.append("contact " + (" + ".join(x.describe() for x in self.contact) or "none"))
        parts.append(f"Si dead layer {self.dead_layer_um:g} um, Si crystal {self.crystal_thickness_um:g} um")
        return ", ".join(parts) + f"; {MAC_SOURCE}"


_NOMINAL = (
    "nominal generic values, not a vendor's data sheet: replace them with your detector's "
    "(chemtomo.physics.DetectorModel)"
)

#: Named detector models. Their layer thicknesses are typical published orders of
#: magnitude for each detector type, not any one product's specification.
DETECTOR_PRESETS: dict[str, DetectorModel] = {
    "windowless-sdd": DetectorModel(
        name="windowless-sdd",
        contact=(Layer("Al", 0.03),),
        dead_layer_um=0.03,
        crystal_thickness_um=450.0,
        description="windowless silicon drift detector, Al light shield; " + _NOMINAL,
    ),
    "si3n4-window-sdd": DetectorModel(
        name="si3n4-window-sdd",
        window=(Layer("Si3N4", 0.04), Layer("Al", 0.03)),
        grid_open_fraction=0.8,
        dead_layer_um=0.03,
        crystal_thickness_um=450.0,
        description="SDD behind a 40 nm silicon nitride window on a Si grid; " + _NOMINAL,
    ),
    "polymer-window-sdd": DetectorModel(
        name="polymer-window-sdd",
        window=(Layer("polyimide", 0.3), Layer("Al", 0.04)),
        grid_open_fraction=0.77,
        dead_layer_um=0.03,
        crystal_thickness_um=450.0,
        description="SDD behind a 0.3 um polymer window with Al coating on a Si grid; " + _NOMINAL,
    ),
    "be-window-sili": DetectorModel(
        name="be-window-sili",
        window=(Layer("Be", 8.0),),
        contact=(Layer("Au", 0.02),),
        dead_layer_um=0.1,
        crystal_thickness_um=3000.0,
        description="Si(Li) detector behind an 8 um Be window, Au contact; " + _NOMINAL,
    ),
}


def resolve_detector(detector) -> Efficiency:
    """Turn ``detector`` into an object with ``efficiency(energy_kev)``.

    Parameters
    ----------
    detector : float, str, FlatEfficiency, DetectorModel or Efficiency
        A number in (0, 1] is a flat efficiency; a string names a preset of
        :data:`DETECTOR_PRESETS`; an object with ``efficiency`` and
        ``describe`` methods is used as is.
    """
    if isinstance(detector, bool):
        raise ValueError(f"detector must be a flat efficiency, a preset name or a model, got {detector!r}")
    if isinstance(detector, (int, float)):
        return FlatEfficiency(float(detector))
    if isinstance(detector, str):
        try:
            return DETECTOR_PRESETS[detector]
        except KeyError:
            raise KeyError(
                f"unknown detector preset {detector!r}; presets: {', '.join(DETECTOR_PRESETS)} "
                "(or give a flat efficiency in (0, 1])"
            ) from None
    if isinstance(detector, Efficiency):
        return detector
    raise ValueError(
        f"detector must be a flat efficiency in (0, 1], a preset name ({', '.join(DETECTOR_PRESETS)}) "
        f"or a DetectorModel, got {detector!r}"
    )
