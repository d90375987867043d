"""Per-line quantification factors: the result object every consumer of the physics reads.

The thin-film model (Yuan et al. 2020, eqs 4-7, 13-16) needs, per X-ray line A:

    f_A = sigma_ion,A * omega_A * p_A * eps_A / M_A        (eq 7)
    z_A = sigma_ela,A / M_A                                 (eq 14)

in barn mol/g. :class:`LineFactors` holds every ingredient with its source;
:class:`Factors` is an ordered collection of them with the derived quantities
(partial cross-sections, theoretical response ratios).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

AVOGADRO = 6.02214076e23  # 1/mol, exact (SI 2019)
BARN_CM2 = 1e-24  # cm^2


def _number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class LineFactors:
    """Every ingredient of f_A and z_A for one X-ray line, with its source.

    Checked on construction: the weight and cross-sections positive and finite;
    the fluorescence yield, relative intensity and detector efficiency fractions
    in (0, 1]; ``beam_kev`` positive or NaN (ValueError naming the line).

    Attributes
    ----------
    line : str
        Line name, ``<Element>_<line>`` (``"Ag_La"``, ``"Co_Ka"``).
    element : str
        Element symbol.
    atomic_weight : float
        g/mol.
    sigma_elastic_barn : float
        Elastic scattering cross-section per atom (barn).
    sigma_ionization_barn : float
        Ionization cross-section of the vacancy's subshell (barn).
    fluorescence_yield : float
        Radiative fraction of that vacancy's decays.
    relative_intensity : float
        Fraction of the radiative decays that fall into the line.
    detector_efficiency : float
        Detector efficiency at the line energy.
    beam_kev : float
        Incident beam energy (keV) the cross-sections were computed for.
    energy_kev : float
        Line energy (keV); NaN where unknown.
    sources : dict
        ``ingredient -> "model (data source)"``.
    solid_angle_sr : float or None
        EDS collection solid angle (sr) the partial cross-section refers to,
        when known; :meth:`partial_cross_section_barn` and :meth:`as_dict`
        use it when not given one.
    """

    line: str
    element: str
    atomic_weight: float
    sigma_elastic_barn: float
    sigma_ionization_barn: float
    fluorescence_yield: float
    relative_intensity: float
    detector_efficiency: float
    beam_kev: float
    energy_kev: float = float("nan")
    sources: Mapping[str, str] = field(default_factory=dict)
    solid_angle_sr: float | None = None

    def __post_init__(self):
        for name in ("atomic_weight", "sigma_elastic_barn", "sigma_ionization_barn"):
            v = getattr(self, name)
            if not _number(v) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"line {self.line!r}: {name} must be a positive, finite number, got {v!r}")
        for name in ("fluorescence_yield", "relative_intensity", "detector_efficiency"):
            v = getattr(self, name)
            if not _number(v) or not 0 < v <= 1:
                raise ValueError(f"line {self.line!r}: {name} is a fraction and must be in (0, 1], got {v!r}")
        if not _number(self.beam_kev) or not (math.isnan(self.beam_kev) or 0 < self.beam_kev < math.inf):
            raise ValueError(f"line {self.line!r}: beam_kev must be a positive number (keV) or NaN (not known), "
                             f"got {self.beam_kev!r}")

    @property
    def f_barn_mol_per_g(self) -> float:
        """EDS factor f_A = sigma_ion omega p eps / M (barn mol/g), eq 7."""
        return (
            self.sigma_ionization_barn
            * self.fluorescence_yield
            * self.relative_intensity
            * self.detector_efficiency
            / self.atomic_weight
        )

    @property
    def z_barn_mol_per_g(self) -> float:
        """HAADF factor z_A = sigma_ela / M (barn mol/g), eq 14."""
        return self.sigma_elastic_barn / self.atomic_weight

    def partial_cross_section_barn(self, solid_angle_sr: float | None = None) -> float:
        """sigma_par = f_A (Omega / 4 pi) M_A (barn), section 2.1 of the paper.

        Parameters
        ----------
        solid_angle_sr : float, optional
            Detector solid angle Omega (sr); default: this line's
            :attr:`solid_angle_sr`.
        """
        if solid_angle_sr is None:
            solid_angle_sr = self.solid_angle_sr
        if solid_angle_sr is None:
            raise ValueError(
                f"{self.line}: the partial cross-section needs a solid angle (sr); give solid_angle_sr"
            )
        if not 0 < solid_angle_sr <= 4 * np.pi:
            raise ValueError(f"solid_angle_sr must be in (0, 4 pi], got {solid_angle_sr!r}")
        return self.f_barn_mol_per_g * solid_angle_sr / (4 * np.pi) * self.atomic_weight

    def as_dict(self, solid_angle_sr: float | None = None) -> dict:
        """Every ingredient and factor, JSON-ready (NaN energies become None)."""
        d = asdict(self)
        d["sources"] = dict(self.sources)
        if d["energy_kev"] != d["energy_kev"]:
            d["energy_kev"] = None
        d["f_barn_mol_per_g"] = self.f_barn_mol_per_g
        d["z_barn_mol_per_g"] = self.z_barn_mol_per_g
        omega = self.solid_angle_sr if solid_angle_sr is None else solid_angle_sr
        if omega is not None:
            d["solid_angle_sr"] = float(omega)
            d["partial_cross_section_barn"] = self.partial_cross_section_barn(omega)
        return d


class Factors(Mapping[str, LineFactors]):
    """An ordered set of :class:`LineFactors`, keyed by line name."""

    def __init__(self, lines: Iterable[LineFactors]):
        self._lines = {lf.line: lf for lf in lines}
        if not self._lines:
            raise ValueError("Factors needs at least one line")

    def __getitem__(self, line: str) -> LineFactors:
        try:
            return self._lines[line]
        except KeyError:
            raise KeyError(
                f"line {line!r} is not in these factors; available: {list(self._lines)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def __repr__(self) -> str:
        return f"Factors({list(self._lines)})"

    @property
    def lines(self) -> list[str]:
        """Line names, in order."""
        return list(self._lines)

    @property
    def elements(self) -> list[str]:
        """Element symbol of every line, in line order (repeated for two lines of one element)."""
        return [lf.element for lf in self._lines.values()]

    def subset(self, lines: Iterable[str]) -> Factors:
        """The factors of ``lines`` only, in the order given (KeyError for a line not held here)."""
        return Factors(self[line] for line in lines)

    def f(self, lines: Iterable[str] | None = None) -> np.ndarray:
        """f_A (barn mol/g) for ``lines`` (default: all, in order)."""
        lines = self.lines if lines is None else list(lines)
        return np.array([self[x].f_barn_mol_per_g for x in lines])

    def z(self, lines: Iterable[str] | None = None) -> np.ndarray:
        """z_A (barn mol/g) for ``lines`` (default: all, in order)."""
        lines = self.lines if lines is None else list(lines)
        return np.array([self[x].z_barn_mol_per_g for x in lines])

    def atomic_weights(self, lines: Iterable[str] | None = None) -> np.ndarray:
        """Atomic weights (g/mol) for ``lines`` (default: all, in order)."""
        lines = self.lines if lines is None else list(lines)
        return np.array([self[x].atomic_weight for x in lines])

    def response_ratios(
        self, *, haadf_dose: float, eds_dose: float, solid_angle_sr: float | None = None,
        lines: Iterable[str] | None = None,
    ) -> np.ndarray:
        """Theoretical response ratios r_A = D_e^H N_A z_A / (n f_A), eq 16.

        With n = N_A D_e Omega/(4 pi) (eq 6), N_A cancels:
        r_A = D_e^H z_A / (D_e (Omega/4 pi) f_A).

        Parameters
        ----------
        haadf_dose, eds_dose : float
            Electrons per beam position for the HAADF and the EDS acquisitions.
        solid_angle_sr : float, optional
            EDS detector solid angle (sr); default: each line's own.
        """
        lines = self.lines if lines is None else list(lines)
        omega = np.array([
            solid_angle_sr if solid_angle_sr is not None else self[x].solid_angle_sr for x in lines
        ], dtype=float)
        if np.any(~np.isfinite(omega)) or np.any(omega <= 0) or np.any(omega > 4 * np.pi):
            raise ValueError(f"response ratios need a solid angle in (0, 4 pi] sr; got {omega.tolist()}")
        return haadf_dose * self.z(lines) / (eds_dose * omega / (4 * np.pi) * self.f(lines))

    def as_dict(self, solid_angle_sr: float | None = None) -> dict:
        """``line -> LineFactors.as_dict(solid_angle_sr)`` for every line, JSON-ready."""
        return {k: v.as_dict(solid_angle_sr) for k, v in self._lines.items()}
