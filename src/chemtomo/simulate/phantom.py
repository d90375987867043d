"""Phantoms: the paper's core-shell Ag-Au particle (Yuan 2020, section 3.1.1, Fig. 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Room-temperature densities of the pure metals (g/cm^3), CRC Handbook.
DENSITY_G_CM3 = {"Ag": 10.49, "Au": 19.30, "Co": 8.90, "Zn": 7.14, "Cu": 8.96, "Pt": 21.45, "Pd": 12.02, "Ni": 8.91}


def mixture_density(weight_fractions: dict[str, float]) -> float:
    """Density (g/cm^3) of an alloy by the weight-fraction mixing rule ``1/rho = sum C_A / rho_A``."""
    try:
        return 1.0 / sum(c / DENSITY_G_CM3[el] for el, c in weight_fractions.items())
    except KeyError as exc:
        raise KeyError(f"no density for element {exc.args[0]!r}; known: {sorted(DENSITY_G_CM3)}") from None


@dataclass
class Phantom:
    """A 2-D (or stacked) phantom on a square grid.

    Attributes
    ----------
    elements : list of str
    weight : ndarray, (k, n, n)
        Weight fractions (0 outside the particle).
    density_g_cm3 : ndarray, (n, n)
    pixel_nm : float
    regions : dict name -> bool mask (n, n)
    """

    elements: list[str]
    weight: np.ndarray
    density_g_cm3: np.ndarray
    pixel_nm: float
    regions: dict

    @property
    def mass(self) -> np.ndarray:
        """Partial densities ``C_A rho`` (g/cm^3), (k, n, n)."""
        return self.weight * self.density_g_cm3

    def downsample(self, factor: int) -> Phantom:
        """Block-average partial densities onto a grid ``factor`` times coarser."""
        f = int(factor)
        k, n, _ = self.weight.shape
        if n % f:
            raise ValueError(f"grid of {n} is not divisible by {f}")
        m = self.mass.reshape(k, n // f, f, n // f, f).mean(axis=(2, 4))
        rho = m.sum(axis=0)
        w = np.divide(m, rho, out=np.zeros_like(m), where=rho > 0)
        regions = {name: r.reshape(n // f, f, n // f, f).mean(axis=(1, 3)) >= 0.999
                   for name, r in self.regions.items()}
        return Phantom(self.elements, w, rho, self.pixel_nm * f, regions)


def core_shell_phantom(
    n_grid: int = 97,
    pixel_nm: float = 1.5,
    *,
    shell: dict[str, float] | None = None,
    core: dict[str, float] | None = None,
    outer_semi_axes_nm: tuple[float, float] = (54.0, 46.0),
    outer_rotation_deg: float = 20.0,
    core_radius_nm: float = 27.0,
    core_offset_nm: tuple[float, float] = (6.0, -5.0),
) -> Phantom:
    """The paper's core-shell particle: core 80 wt% Au / 20 wt% Ag, shell 20 / 80.

    An elliptical particle (semi-axes ``outer_semi_axes_nm``, rotated) holding an
    off-centre circular core, so that the test is not rotationally trivial. The
    paper gives the compositions, the 97 x 1.5 nm field and the shape only as a
    figure; the sizes here are chosen to fill the field similarly.

    Returns
    -------
    Phantom
        ``regions`` holds ``"core"``, ``"shell"`` and ``"particle"`` masks.
    """
    shell = shell or {"Ag": 0.8, "Au": 0.2}
    core = core or {"Ag": 0.2, "Au": 0.8}
    if set(shell) != set(core):
        raise ValueError(f"core and shell must list the same elements, got {sorted(core)} and {sorted(shell)}")
    for name, comp in (("core", core), ("shell", shell)):
        if abs(sum(comp.values()) - 1) > 1e-9 or min(comp.values()) < 0:
            raise ValueError(f"{name} weight fractions must be non-negative and sum to 1, got {comp}")
    elements = sorted(shell)
    c = (np.arange(n_grid) - (n_grid - 1) / 2) * pixel_nm
    zz, xx = np.meshgrid(c, c, indexing="ij")  # rows: z, cols: x
    th = np.deg2rad(outer_rotation_deg)
    u = xx * np.cos(th) + zz * np.sin(th)
    v = -xx * np.sin(th) + zz * np.cos(th)
    particle = (u / outer_semi_axes_nm[0]) ** 2 + (v / outer_semi_axes_nm[1]) ** 2 <= 1
    core_mask = (xx - core_offset_nm[0]) ** 2 + (zz - core_offset_nm[1]) ** 2 <= core_radius_nm**2
    core_mask &= particle
    shell_mask = particle & ~core_mask
    w = np.zeros((len(elements), n_grid, n_grid))
    for i, el in enumerate(elements):
        w[i][core_mask] = core[el]
        w[i][shell_mask] = shell[el]
    rho = np.zeros((n_grid, n_grid))
    rho[core_mask] = mixture_density(core)
    rho[shell_mask] = mixture_density(shell)
    return Phantom(elements, w, rho, pixel_nm, {"core": core_mask, "shell": shell_mask, "particle": particle})
