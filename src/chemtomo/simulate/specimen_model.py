"""3-D specimens with known partial densities: the data model, materials and sampling.

A specimen is defined by a continuous model in nm (``partial(y, z, x)``: partial
densities per element, g/cm^3, and the volume fraction of matter), sampled on a
fine grid ``oversampling`` times finer than the reconstruction grid (each fine
voxel averaged over ``supersample**3`` points, so sharp interfaces are
partial-volume voxels, not staircases), then block-averaged onto the
reconstruction grid for the truth. Named regions are labelled at the
reconstruction voxel centres.

Units: lengths nm; densities g/cm^3. Axes of every volume: ``(y, z, x)`` =
(slices along the tilt axis, rows, columns), chemtomo's map convention.

Mixing rule (stated once): a material is a set of phases with mass fractions
``w_p`` and densities ``rho_p``; its density is the ideal volume-additive
``1 / rho = sum_p w_p / rho_p``. For a metallic alloy the phases are the pure
elements (:data:`chemtomo.simulate.phantom.DENSITY_G_CM3`, extended here); an
oxide is one phase of its own density (:data:`COMPOUNDS`). A voxel holding two
materials (an interface) holds each by volume fraction, so partial densities
add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..physics import atomic_weight
from .phantom import DENSITY_G_CM3 as _METALS

#: Densities of the pure elements (g/cm^3, room temperature, CRC Handbook).
ELEMENT_DENSITY_G_CM3 = {**_METALS, "Al": 2.70, "Mg": 1.74, "Ti": 4.51, "Fe": 7.87}

#: Compounds: name -> (formula {element: atoms}, density g/cm^3, CRC Handbook).
COMPOUNDS = {
    "Al2O3": ({"Al": 2, "O": 3}, 3.987),  # corundum
    "MgO": ({"Mg": 1, "O": 1}, 3.58),  # periclase
    "TiO2": ({"Ti": 1, "O": 2}, 4.23),  # rutile
}

#: The mixing rule, in words (kept in every specimen's description).
MIXING_RULE = (
    "ideal volume additivity of phases: 1/rho = sum_p w_p/rho_p (alloys: pure-element phases; "
    "oxides: one compound phase); voxels holding two materials add them by volume fraction"
)

#: Model of a specimen: (y, z, x) in nm (same shapes) -> (partial (k, ...) g/cm^3, occupancy (...)).
ModelFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Region labels at points (y, z, x) in nm -> int array (0: no region, i: regions[i - 1]).
LabelFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def compound_fractions(name: str) -> dict[str, float]:
    """Weight fractions of the elements of compound ``name`` (NIST atomic weights)."""
    if name not in COMPOUNDS:
        raise KeyError(f"unknown compound {name!r}; known: {sorted(COMPOUNDS)}")
    formula, _ = COMPOUNDS[name]
    m = {el: n * atomic_weight(el) for el, n in formula.items()}
    total = sum(m.values())
    return {el: v / total for el, v in m.items()}


def alloy_density(fractions: dict[str, np.ndarray | float]) -> np.ndarray:
    """Density (g/cm^3) of an alloy of weight ``fractions`` (arrays allowed) by the mixing rule."""
    inv = 0.0
    for el, c in fractions.items():
        if el not in ELEMENT_DENSITY_G_CM3:
            raise KeyError(f"no density for element {el!r}; known: {sorted(ELEMENT_DENSITY_G_CM3)}")
        inv = inv + np.asarray(c, dtype=np.float64) / ELEMENT_DENSITY_G_CM3[el]
    return 1.0 / inv


def material(elements: list[str], composition: dict[str, float] | str) -> np.ndarray:
    """Partial densities (g/cm^3) of a homogeneous material, ordered as ``elements``.

    Parameters
    ----------
    elements : list of str
        The specimen's elements (the output order).
    composition : dict or str
        Weight fractions of an alloy (summing to 1), or a compound name of
        :data:`COMPOUNDS`.

    Returns
    -------
    ndarray, (k,)
        ``C_A rho`` per element.
    """
    if isinstance(composition, str):
        rho = COMPOUNDS[composition][1] if composition in COMPOUNDS else None
        comp = compound_fractions(composition)
    else:
        comp = dict(composition)
        if abs(sum(comp.values()) - 1) > 1e-9 or min(comp.values()) < 0:
            raise ValueError(f"weight fractions must be non-negative and sum to 1, got {comp}")
        rho = float(alloy_density(comp))
    unknown = sorted(set(comp) - set(elements))
    if unknown:
        raise ValueError(f"composition holds {unknown}, not among the specimen's elements {elements}")
    return np.array([comp.get(el, 0.0) * rho for el in elements])


def alloy_partials(fractions: np.ndarray, elements: list[str]) -> np.ndarray:
    """Partial densities ``C_A rho(C)`` of alloy fields ``fractions`` (k, ...) by the mixing rule."""
    rho = alloy_density({el: fractions[i] for i, el in enumerate(elements)})
    return fractions * rho


@dataclass
class Specimen:
    """A 3-D specimen: fine-grid partial densities and the truth on the reconstruction grid.

    Attributes
    ----------
    name : str
    elements : list of str
    n : int
        Reconstruction voxels across the field (the detector has ``n`` pixels).
    oversampling : int
        Fine voxels per reconstruction voxel along each axis (>= 2).
    seed : int
    pixel_nm : float
        Reconstruction voxel (and detector pixel) size (nm).
    partial_fine : ndarray, (k, N, N, N) float32
        Partial densities (g/cm^3) on the fine grid, ``N = n * oversampling``, axes (y, z, x).
    partial : ndarray, (k, n, n, n)
        Partial densities (g/cm^3) block-averaged onto the reconstruction grid (mass-conserving).
    occupancy : ndarray, (n, n, n)
        Volume fraction of matter of each reconstruction voxel.
    regions : dict name -> bool ndarray (n, n, n)
        Disjoint named regions (core, shell, interface, ...) for region means.
    model : callable
        The continuous model ``(y, z, x) nm -> (partial (k, ...), occupancy)`` (for checks).
    description : str
    tests : str
        What the specimen probes.
    params : dict
        JSON-friendly parameters (sizes in nm, compositions).
    """

    name: str
    elements: list[str]
    n: int
    oversampling: int
    seed: int
    pixel_nm: float
    partial_fine: np.ndarray
    partial: np.ndarray
    occupancy: np.ndarray
    regions: dict
    model: ModelFn
    description: str = ""
    tests: str = ""
    params: dict = field(default_factory=dict)

    @property
    def fine_pixel_nm(self) -> float:
        """Fine voxel size (nm)."""
        return self.pixel_nm / self.oversampling

    @property
    def field_nm(self) -> float:
        """Width of the field (nm)."""
        return self.pixel_nm * self.n

    @property
    def density_g_cm3(self) -> np.ndarray:
        """Density (g/cm^3) on the reconstruction grid, (n, n, n)."""
        return self.partial.sum(axis=0)

    @property
    def weight(self) -> np.ndarray:
        """Truth weight fractions on the reconstruction grid, (k, n, n, n); 0 where no matter."""
        rho = self.density_g_cm3
        return np.divide(self.partial, rho, out=np.zeros_like(self.partial), where=rho > 0)

    @property
    def particle(self) -> np.ndarray:
        """Reconstruction voxels at least half filled with matter, (n, n, n) bool."""
        return self.occupancy >= 0.5

    def region_means(self, weight: np.ndarray | None = None) -> dict[str, dict[str, float]]:
        """Mean weight fraction per region and element: ``{region: {element: value}}``.

        Parameters
        ----------
        weight : ndarray (k, n, n, n), optional
            Weight fractions to average (a reconstruction's); default the truth.
        """
        w = self.weight if weight is None else np.asarray(weight)
        if w.shape != self.partial.shape:
            raise ValueError(f"weight must have shape {self.partial.shape}, got {w.shape}")
        return {r: {el: float(w[i][m].mean()) if m.any() else float("nan") for i, el in enumerate(self.elements)}
                for r, m in self.regions.items()}

    def mass_g(self) -> np.ndarray:
        """Mass (g) of each element in the volume, from the fine grid."""
        h_cm = self.fine_pixel_nm * 1e-7
        return self.partial_fine.astype(np.float64).sum(axis=(1, 2, 3)) * h_cm**3


def centres_nm(n: int, pixel_nm: float) -> np.ndarray:
    """Voxel-centre coordinates (nm) of ``n`` voxels of ``pixel_nm`` centred on 0."""
    return (np.arange(n) - (n - 1) / 2) * pixel_nm


def sample_fine(model: ModelFn, k: int, n_fine: int, h_nm: float, supersample: int = 2,
                max_points: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``model`` on an ``n_fine**3`` grid of ``h_nm`` voxels, each the mean of ``supersample**3`` points.

    Returns
    -------
    partial : ndarray (k, n_fine, n_fine, n_fine) float32
    occupancy : ndarray (n_fine, n_fine, n_fine) float32
    """
    s = int(supersample)
    if s < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    c = centres_nm(n_fine, h_nm)
    offs = ((np.arange(s) + 0.5) / s - 0.5) * h_nm
    partial = np.zeros((k, n_fine, n_fine, n_fine), np.float32)
    occ = np.zeros((n_fine, n_fine, n_fine), np.float32)
    step = max(1, max_points // (n_fine * n_fine))
    for y0 in range(0, n_fine, step):
        ys = c[y0:y0 + step]
        acc_p = np.zeros((k, ys.size, n_fine, n_fine))
        acc_o = np.zeros((ys.size, n_fine, n_fine))
        for oy in offs:
            for oz in offs:
                for ox in offs:
                    yy, zz, xx = np.meshgrid(ys + oy, c + oz, c + ox, indexing="ij")
                    p, o = model(yy, zz, xx)
                    acc_p += p
                    acc_o += o
        partial[:, y0:y0 + step] = acc_p / s**3
        occ[y0:y0 + step] = acc_o / s**3
    return partial, occ


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f x f x f`` blocks of the last three axes (float64)."""
    *lead, n1, n2, n3 = a.shape
    b = np.asarray(a, dtype=np.float64).reshape(*lead, n1 // f, f, n2 // f, f, n3 // f, f)
    return b.mean(axis=(-5, -3, -1))


def build_specimen(name: str, elements: list[str], model: ModelFn, labels: LabelFn, region_names: list[str],
                   n: int, oversampling: int, seed: int, field_nm: float, *, supersample: int = 2,
                   description: str = "", tests: str = "", params: dict | None = None) -> Specimen:
    """Sample a continuous model into a :class:`Specimen` (the builders' common tail)."""
    if isinstance(n, bool) or int(n) != n or not 8 <= int(n) <= 512:
        raise ValueError(f"n (voxels across) must be an integer in 8..512, got {n!r}")
    if isinstance(oversampling, bool) or int(oversampling) != oversampling or int(oversampling) < 2:
        raise ValueError(f"oversampling must be an integer >= 2 (the fine grid is at least 2x finer), "
                         f"got {oversampling!r}")
    if not (np.isfinite(field_nm) and field_nm > 0):
        raise ValueError(f"field_nm must be a positive number of nm, got {field_nm!r}")
    n, f = int(n), int(oversampling)
    pixel = field_nm / n
    fine, occ_fine = sample_fine(model, len(elements), n * f, pixel / f, supersample)
    c = centres_nm(n, pixel)
    yy, zz, xx = np.meshgrid(c, c, c, indexing="ij")
    lab = labels(yy, zz, xx)
    regions = {r: lab == i + 1 for i, r in enumerate(region_names)}
    return Specimen(
        name=name, elements=list(elements), n=n, oversampling=f, seed=int(seed), pixel_nm=pixel,
        partial_fine=fine, partial=block_mean(fine, f), occupancy=block_mean(occ_fine, f),
        regions=regions, model=model, description=f"{description} Mixing rule: {MIXING_RULE}.",
        tests=tests, params={"field_nm": field_nm, "supersample": int(supersample), **(params or {})},
    )
