"""Tilt series with a tilt set per modality: dense HAADF, sparse EDS (issue 16).

>>> from chemtomo.simulate.specimens import make_specimen
>>> from chemtomo.simulate.tilt_sets import simulate_specimen_tilt_sets, tilt_set_angles
>>> spec = make_specimen("core_shell", n=24)                                # doctest: +SKIP
>>> eds_deg, haadf_deg = tilt_set_angles(70, n_eds=11, n_haadf=71)          # doctest: +SKIP
>>> sim = simulate_specimen_tilt_sets(spec, eds_deg, haadf_deg, dose_scale=0.1)     # doctest: +SKIP
>>> series = sim.series()                                                   # doctest: +SKIP

The specimen is projected once, at every angle of either set, by
:func:`chemtomo.simulate.specimen_series.simulate_series` without noise (its expected
counts: the same projector, factors and acquisition); each modality then draws its
Poisson counts at its own angles from one generator seeded by ``seed`` (the EDS
lines first, in element order, then the HAADF), so a simulation is a function of its
arguments. The EDS dose per tilt is the paper's times ``dose_scale`` at every EDS
tilt (fewer EDS tilts: less total EDS dose); the HAADF dose per tilt is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import check_angles_deg, check_enough_tilts
from ..physics import Factors
from ..tiltseries import TiltSeries
from .specimen_model import Specimen
from .specimen_series import simulate_series


def tilt_set_angles(range_deg: float, n_eds: int, n_haadf: int, *, eds_on_haadf: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced HAADF and EDS tilt angles over ``+-range_deg``.

    Parameters
    ----------
    range_deg : float
        Largest tilt (degrees), in (0, 90): both sets run from ``-range_deg`` to ``+range_deg``.
    n_eds, n_haadf : int
        Tilts of each modality (at least 3 each).
    eds_on_haadf : bool
        Place each EDS tilt on the HAADF tilt nearest to its even spacing (an acquisition
        that records EDS at some of the HAADF tilts; the sets then share every EDS tilt
        when ``n_eds <= n_haadf``). False: the EDS set is evenly spaced on its own.

    Returns
    -------
    eds_angles_deg, haadf_angles_deg : ndarray
        Increasing angles (degrees).

    Raises
    ------
    ValueError
        ``range_deg`` not in (0, 90), fewer than 3 tilts, or EDS tilts snapped onto
        fewer HAADF tilts than asked for (``n_eds > n_haadf``).
    """
    r = float(range_deg)
    if not (np.isfinite(r) and 0 < r < 90):
        raise ValueError(f"range_deg must be in (0, 90) degrees, got {range_deg!r}")
    for name, n in (("n_eds", n_eds), ("n_haadf", n_haadf)):
        if int(n) != n or n < 3:
            raise ValueError(f"{name} must be an integer of at least 3 tilts, got {n!r}")
    haadf = np.round(np.linspace(-r, r, int(n_haadf)), 9)
    eds = np.round(np.linspace(-r, r, int(n_eds)), 9)
    if eds_on_haadf:
        idx = np.unique(np.abs(eds[:, None] - haadf[None]).argmin(axis=1))
        if idx.size != int(n_eds):
            raise ValueError(f"cannot place {n_eds} EDS tilts on {n_haadf} HAADF tilts (only {idx.size} distinct); "
                             "use n_eds <= n_haadf or eds_on_haadf=False")
        eds = haadf[idx]
    return eds, haadf


@dataclass
class TiltSetSimulation:
    """A simulated tilt series whose HAADF and EDS have their own tilt angles.

    Attributes
    ----------
    eds_angles_deg, haadf_angles_deg : ndarray
        The tilts of each modality (degrees, increasing).
    eds : dict line -> ndarray (n_eds, n, n)
        EDS counts (Poisson, or the expected counts without noise).
    haadf : ndarray, (n_haadf, n, n)
        HAADF counts.
    specimen : Specimen
    lines : list of str
        EDS line of each element, in ``specimen.elements`` order.
    factors : Factors
    metadata : dict
        The acquisition (doses per beam position and per nm^2, beam, seed, noise), and
        both angle sets.
    """

    eds_angles_deg: np.ndarray
    haadf_angles_deg: np.ndarray
    eds: dict
    haadf: np.ndarray
    specimen: Specimen
    lines: list
    factors: Factors
    metadata: dict

    @property
    def shared(self) -> bool:
        """True when both modalities have the same tilts."""
        return self.eds_angles_deg.shape == self.haadf_angles_deg.shape and bool(
            np.all(self.eds_angles_deg == self.haadf_angles_deg))

    def series(self, slices: tuple[int, int] | None = None) -> TiltSeries:
        """The tilt series, optionally only slices ``a:b`` along the tilt axis.

        Both modalities at the same tilts: a series with one angle set. Otherwise the
        HAADF's own angles go in ``haadf_angles_deg`` (the tilt series of issue 16).

        Parameters
        ----------
        slices : (int, int), optional
            ``(a, b)``: rows ``a:b`` of every stack (default all).

        Returns
        -------
        TiltSeries
        """
        a, b = (0, self.specimen.n) if slices is None else (int(slices[0]), int(slices[1]))
        if not 0 <= a < b <= self.specimen.n:
            raise ValueError(f"slices must be (a, b) with 0 <= a < b <= {self.specimen.n}, got {slices!r}")
        eds = {k: np.ascontiguousarray(v[:, a:b]) for k, v in self.eds.items()}
        haadf = np.ascontiguousarray(self.haadf[:, a:b])
        meta = dict(self.metadata) if slices is None else {**self.metadata, "slices": [a, b]}
        if self.shared:
            return TiltSeries(self.eds_angles_deg, self.specimen.pixel_nm, eds, haadf, meta)
        return TiltSeries(self.eds_angles_deg, self.specimen.pixel_nm, eds, haadf, meta,
                          haadf_angles_deg=self.haadf_angles_deg)


def simulate_specimen_tilt_sets(
    specimen: Specimen,
    eds_angles_deg,
    haadf_angles_deg,
    dose_scale: float = 1.0,
    beam_kev: float = 200.0,
    seed: int | None = 0,
    *,
    noise: bool = True,
    **kw,
) -> TiltSetSimulation:
    """Simulate HAADF at ``haadf_angles_deg`` and EDS at ``eds_angles_deg`` of ``specimen``.

    Parameters
    ----------
    specimen : Specimen
    eds_angles_deg, haadf_angles_deg : array_like
        Each modality's tilts (degrees; at least 3, distinct, within +-90). They may
        share some, all or none.
    dose_scale : float
        EDS dose per tilt relative to the paper's (HAADF dose per tilt fixed).
    beam_kev : float
        Beam energy (keV) of the factors.
    seed : int or None
        Seed of the Poisson noise (one generator: the EDS lines, then the HAADF).
    noise : bool
        False: the expected counts.
    **kw
        Passed to :func:`~chemtomo.simulate.specimen_series.simulate_series` (``lines``,
        ``factors``, ``acquisition``, ``detector``, ``elastic``, ``haadf_mrad``,
        ``scale_haadf``).

    Returns
    -------
    TiltSetSimulation
    """
    # rounded to 1e-9 degree: an angle of both sets computed two ways is one tilt
    eds_deg = np.sort(np.round(check_angles_deg(eds_angles_deg, "EDS angles_deg"), 9))
    haadf_deg = np.sort(np.round(check_angles_deg(haadf_angles_deg, "HAADF angles_deg"), 9))
    check_enough_tilts(eds_deg.size, "the EDS tilt set")
    check_enough_tilts(haadf_deg.size, "the HAADF tilt set")
    union = np.union1d(eds_deg, haadf_deg)  # exact after rounding: each shared tilt projected once
    mean = simulate_series(specimen, union, dose_scale, beam_kev, None, noise=False, **kw)
    ie = np.searchsorted(union, eds_deg)
    ih = np.searchsorted(union, haadf_deg)
    ser = mean.noiseless
    rng = np.random.default_rng(seed)

    def draw(m):
        m = np.asarray(m, np.float64)
        return rng.poisson(m).astype(np.float32) if noise else m.astype(np.float32)

    eds = {ln: draw(ser.eds[ln][ie]) for ln in mean.lines}
    haadf = draw(ser.haadf[ih])
    meta = {**ser.metadata, "seed": seed, "noise": "poisson" if noise else "none",
            "eds_angles_deg": eds_deg.tolist(), "haadf_angles_deg": haadf_deg.tolist()}
    return TiltSetSimulation(eds_deg, haadf_deg, eds, haadf, specimen, list(mean.lines), mean.factors, meta)
