"""Test helper (no tests here): a known 3-D two-element particle written as raw spectrum-image tilt files.

A Co-Zn core-shell sphere (core 80 wt% Co / 20 wt% Zn, shell 20 / 80) on a
cubic grid is projected about the vertical (y) axis with chemtomo's own
operator; each tilt's Co Ka and Zn Ka counts (thin-film model, f_A from the
physics) and HAADF (sum of z_A times mass thickness) are shifted by known
amounts, turned into Poisson spectrum images (Gaussian lines on a continuum)
and written as HyperSpy files ``tilt_<angle>.hspy`` with a companion
``tilt_<angle>_haadf.hspy``. Nothing here is used by the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chemtomo.geometry import TiltGeometry, columns_to_sinogram, volume_to_columns
from chemtomo.physics import paper_table2
from chemtomo.preprocess.linemaps import synthesize_spectrum_image
from chemtomo.preprocess.register import shift_stack
from chemtomo.projector import make_operator
from chemtomo.simulate.phantom import mixture_density

LINES = ["Co_Ka", "Zn_Ka"]
ENERGY_AXIS = (0.0, 0.02, 500)  # keV offset, keV per channel, channels: 0-10 keV
BEAM_KEV = 80.0
CORE = {"Co": 0.8, "Zn": 0.2}
SHELL = {"Co": 0.2, "Zn": 0.8}


@dataclass
class Synthetic:
    folder: Path
    angles_deg: np.ndarray
    shifts_px: np.ndarray  # (n, 2) applied to each tilt's images (what alignment must undo)
    axis_offset_px: float  # extra x shift of every tilt
    weight: dict  # element -> (ny, nz, nx) true weight fraction
    core: np.ndarray  # bool (ny, nz, nx)
    shell: np.ndarray
    pixel_nm: float


def phantom(n: int = 40, pixel_nm: float = 2.0):
    """(weight dict, density, core mask, shell mask) on (y, z, x) = (slices, z, x)."""
    c = (n - 1) / 2
    y, z, x = np.indices((n, n, n), dtype=float)
    r_out = 0.36 * n
    inside = (y - c) ** 2 + (z - c) ** 2 + (x - c) ** 2 <= r_out**2
    cy, cz, cx = c + 0.08 * n, c - 0.06 * n, c + 0.07 * n  # off-centre core
    core = ((y - cy) ** 2 + (z - cz) ** 2 + (x - cx) ** 2 <= (0.18 * n) ** 2) & inside
    shell = inside & ~core
    w = {el: np.where(core, CORE[el], np.where(shell, SHELL[el], 0.0)) for el in ("Co", "Zn")}
    rho = np.where(core, mixture_density(CORE), np.where(shell, mixture_density(SHELL), 0.0))
    return w, rho, core, shell


def make_series(folder, *, n: int = 40, pixel_nm: float = 2.0, angles_deg=None, shifts_px=None,
                axis_offset_px: float = 0.0, counts_max: float = 60.0, haadf_max: float = 5e4, seed: int = 0,
                write_haadf: bool = True) -> Synthetic:
    """Write the synthetic raw tilt series into ``folder``; return the truth."""
    from chemtomo.io.microscope import _hs

    hs = _hs()  # imports HyperSpy and exSpy without their deprecation chatter
    import exspy

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    angles = np.arange(-60, 61, 10.0) if angles_deg is None else np.asarray(angles_deg, float)
    nt = angles.size
    if shifts_px is None:
        shifts_px = np.round(rng.uniform(-3, 3, size=(nt, 2)), 2)
        shifts_px[np.argmin(np.abs(angles))] = 0.0
    shifts_px = np.asarray(shifts_px, float)
    w, rho, core, shell = phantom(n, pixel_nm)
    fac = paper_table2(LINES)
    f = dict(zip(LINES, fac.f(), strict=True))
    z = dict(zip(LINES, fac.z(), strict=True))
    W = make_operator(TiltGeometry(angles, n, pixel_nm), "sparse")
    proj = {}
    for line in LINES:
        el = line.split("_")[0]
        cols = volume_to_columns((w[el] * rho).astype(np.float32))
        proj[line] = columns_to_sinogram(W.forward(cols), nt, n)  # (nt, ny, nx): mass thickness
    eds_mean = {ln: f[ln] * proj[ln] for ln in LINES}
    scale = counts_max / max(float(v.max()) for v in eds_mean.values())
    eds_mean = {ln: v * scale for ln, v in eds_mean.items()}
    haadf = sum(z[ln] * proj[ln] for ln in LINES)
    haadf = haadf * (haadf_max / float(haadf.max())) + 200.0  # a detector offset
    total = shifts_px + np.array([0.0, axis_offset_px])
    eds_mean = {ln: np.clip(shift_stack(v, total), 0, None) for ln, v in eds_mean.items()}
    haadf = shift_stack(haadf, total)
    for i, a in enumerate(angles):
        maps = {ln: eds_mean[ln][i] for ln in LINES}
        si = synthesize_spectrum_image(maps, ENERGY_AXIS, rng=rng, background_per_channel=0.01)
        s = exspy.signals.EDSTEMSpectrum(si)
        for k, name in ((0, "x"), (1, "y")):
            ax = s.axes_manager.navigation_axes[k]
            ax.name, ax.units, ax.scale = name, "nm", pixel_nm
        e = s.axes_manager.signal_axes[0]
        e.name, e.units, e.offset, e.scale = "Energy", "keV", ENERGY_AXIS[0], ENERGY_AXIS[1]
        s.metadata.set_item("Acquisition_instrument.TEM.beam_energy", BEAM_KEV)
        s.metadata.set_item("Acquisition_instrument.TEM.Detector.EDS.energy_resolution_MnKa", 130.0)
        s.metadata.set_item("Sample.elements", ["Co", "Zn"])
        s.metadata.General.title = "EDS"
        stem = f"tilt_{a:+.0f}"
        s.save(folder / f"{stem}.hspy", overwrite=True)
        if write_haadf:
            h = hs.signals.Signal2D(rng.poisson(np.clip(haadf[i], 0, None)).astype(np.float32))
            for k in range(2):
                h.axes_manager.signal_axes[k].units = "nm"
                h.axes_manager.signal_axes[k].scale = pixel_nm
            h.metadata.General.title = "HAADF"
            h.save(folder / f"{stem}_haadf.hspy", overwrite=True)
    return Synthetic(folder, angles, shifts_px, axis_offset_px, w, core, shell, pixel_nm)
