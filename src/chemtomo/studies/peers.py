"""Peers in the specimen-suite benchmark (issue 13): svmbir beside chemtomo's methods, in the same run.

A peer is a reconstruction program a user could pick instead of chemtomo. Here it
reconstructs each EDS line of the benchmark's series (the same specimen, dose, noise
seed, tilts and slices), and the benchmark quantifies and scores its maps exactly as
it does chemtomo's (the same factors ``f_A``, the same particle mask, the same truth):
:func:`chemtomo.studies.benchmark.run_peer_case`.

- ``svmbir`` (Purdue's CPU MBIR, a qGGMRF prior that couples neighbouring slices as
  well as pixels): one 3-D reconstruction per line of the whole block of slices, at
  every point of a grid over its regularisation (``sharpness`` x ``snr_db``: the
  oracle-best is the lowest inside MSE) and at its own automatic setting (its defaults
  ``sharpness 0``, ``snr_db 30``: sigma_x and sigma_y from the data). Its input is what
  chemtomo's EDS methods see: each line's counts with the pipeline's image-plane
  Gaussian filter (measured while writing this, on the quick suite's diffuse alloy at
  1/10 dose: its best inside MSE over 11 points of this grid 2.6e-3 filtered, 6.8e-3 on the raw
  counts, unweighted; ``filter_sigma=None`` gives the raw counts).

The peers are an optional extra (``pip install -e ".[bench-peers]"``), imported only when
asked for; :func:`require_peers` refuses a peer that is not installed, before any work.
Only the adapter (axis order, units, the call) lives here; ``bench/peers.py`` times the
same program for time to equal quality (issue 17).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import time
import warnings
from collections.abc import Iterable

import numpy as np

from ..preprocess import FILTER_SIGMA_PX, gaussian_filter_stack

#: Peers the benchmark knows.
PEERS = ("svmbir",)
#: How to install them.
INSTALL_HINT = 'pip install -e ".[bench-peers]"'
#: svmbir's oracle grid: its relative regularisation, applied alike to every line
#: (sigma_x proportional to 2^sharpness x a typical image value; sigma_y from snr_db against the data).
#: Sharpness -4..0: the quick run's best points were at -2 and -3 (-4 was worse, 1 never best).
SVMBIR_GRID = {"sharpness": (-4.0, -3.0, -2.0, -1.0, 0.0), "snr_db": (10.0, 20.0, 30.0, 40.0)}
#: svmbir's automatic setting (its defaults): what a user gets without tuning.
SVMBIR_AUTO = {"sharpness": 0.0, "snr_db": 30.0}


def check_peer_names(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple; ValueError naming an unknown peer and the known ones.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    tuple of str
    """
    names = tuple(names)
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        raise ValueError(f"peers must be among {list(PEERS)}, got {unknown}")
    return names


def require_peers(names: Iterable[str]) -> None:
    """Import each peer of ``names``; ValueError, naming the install command, for one that is missing.

    Parameters
    ----------
    names : iterable of str
        Peers of :data:`PEERS`.

    Raises
    ------
    ValueError
        An unknown peer, or one that cannot be imported (the message names
        ``pip install -e ".[bench-peers]"``).
    """
    for name in check_peer_names(names):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"peer {name!r} is not installed ({exc}); install the benchmark's peers with "
                             f"{INSTALL_HINT}") from None


@contextlib.contextmanager
def _quiet():
    """Silence a peer's own printing and warnings while it runs."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def svmbir_reconstruct(sinogram: np.ndarray, angles_deg: np.ndarray, pixel_nm: float, *, sharpness: float = 0.0,
                       snr_db: float = 30.0, b_interslice: float = 1.0, max_iterations: int = 100,
                       stop_threshold: float = 0.02, num_threads: int | None = None) -> np.ndarray:
    """One line's block of slices reconstructed by svmbir, in chemtomo's layout and units.

    Parameters
    ----------
    sinogram : ndarray, (n_tilts, n_slices, n_pixels)
        One line's stack (a :class:`~chemtomo.tiltseries.TiltSeries` ``eds`` entry),
        the layout svmbir takes (views, slices, channels).
    angles_deg : ndarray
        Tilt angles (degrees), chemtomo's convention.
    pixel_nm : float
        Pixel size (nm): the data are divided by it, so that the map is in chemtomo's
        units (its projector's rows are path lengths in nm; svmbir's in pixels).
    sharpness, snr_db : float
        svmbir's relative regularisation (its defaults 0 and 30 are its automatic setting).
    b_interslice : float
        Weight of the prior's coupling between neighbouring slices (svmbir's default 1; 0:
        slice by slice).
    max_iterations, stop_threshold : int, float
        svmbir's stopping rule (its defaults: 100, 0.02 %).
    num_threads : int, optional
        Default: svmbir's (every core).

    Returns
    -------
    ndarray, (n_slices, n_pixels, n_pixels), float32
        The map per slice as chemtomo's ``(slices, z, x)`` (svmbir's ``(slice, row, col)``
        is ``(slice, x, z)``: each slice transposed).
    """
    import svmbir  # the optional peer: imported only here

    sino = np.asarray(sinogram, np.float32) / np.float32(pixel_nm)
    with _quiet():
        rec = svmbir.recon(np.ascontiguousarray(sino), np.deg2rad(np.asarray(angles_deg, float)),
                           sharpness=float(sharpness), snr_db=float(snr_db), b_interslice=float(b_interslice),
                           max_iterations=int(max_iterations), stop_threshold=float(stop_threshold),
                           positivity=True, num_threads=num_threads, verbose=0)
    return np.ascontiguousarray(np.asarray(rec, np.float32).transpose(0, 2, 1))


def svmbir_grid(grid: dict | None = None) -> dict:
    """The grid of svmbir here: :data:`SVMBIR_GRID` with the entries of ``grid`` replaced.

    Parameters
    ----------
    grid : dict, optional
        ``{"sharpness": values, "snr_db": values}`` (either or both).

    Returns
    -------
    dict
        Parameter -> tuple of float.

    Raises
    ------
    ValueError
        A parameter svmbir's grid does not take.
    """
    bad = sorted(set(grid or {}) - set(SVMBIR_GRID))
    if bad:
        raise ValueError(f"svmbir's grid takes {sorted(SVMBIR_GRID)}, got {bad}")
    return {k: tuple(float(x) for x in (grid or {}).get(k, v)) for k, v in SVMBIR_GRID.items()}


def svmbir_points(grid: dict | None = None) -> list[dict]:
    """The oracle grid of svmbir as a list of points (``SVMBIR_GRID`` by default; its automatic setting included).

    Parameters
    ----------
    grid : dict, optional
        ``{"sharpness": values, "snr_db": values}`` replacing entries of :data:`SVMBIR_GRID`.

    Returns
    -------
    list of dict
    """
    g = svmbir_grid(grid)
    pts = [dict(zip(g, v, strict=True)) for v in itertools.product(*g.values())]
    if SVMBIR_AUTO not in pts:
        pts.append(dict(SVMBIR_AUTO))
    return pts


def svmbir_sweep(series, points: list[dict], filter_sigma: float | None = FILTER_SIGMA_PX, **kw) -> list[dict]:
    """Every line of ``series`` reconstructed by svmbir at each point (the whole block of slices at once).

    Parameters
    ----------
    series : TiltSeries
        Its EDS lines (counts).
    points : list of dict
        ``{"sharpness": ..., "snr_db": ...}`` per point (:func:`svmbir_points`).
    filter_sigma : float or None
        The image-plane Gaussian filter (pixels) of each line before svmbir, as the
        pipeline's for chemtomo's EDS methods; None or 0: the raw counts.
    **kw
        Passed to :func:`svmbir_reconstruct` (``b_interslice``, ``num_threads``, ...).

    Returns
    -------
    list of dict
        ``{"params": point, "maps": (k, s, n, n), "seconds": float}`` per point, lines in
        ``series.lines`` order.
    """
    eds = {ln: gaussian_filter_stack(v, filter_sigma, "image") if filter_sigma else v for ln, v in series.eds.items()}
    out = []
    for p in points:
        t0 = time.perf_counter()
        maps = np.stack([svmbir_reconstruct(eds[ln], series.angles_deg, series.pixel_nm, **p, **kw)
                         for ln in series.lines])
        out.append({"params": dict(p), "maps": maps, "seconds": time.perf_counter() - t0})
    return out


def compare_with_peers(suite: dict) -> dict:
    """The best chemtomo method with automatic parameters against each peer's oracle-best, per specimen and dose.

    Parameters
    ----------
    suite : dict
        ``{specimen: {dose: {"methods": {name: {"auto": ...}}, "peers": {peer: {"best": ..., "auto": ...}}}}}``
        (``mse_fraction_inside`` in each).

    Returns
    -------
    dict
        ``{peer: {specimen: {dose: {chemtomo_method, chemtomo_best_auto, peer_best, peer_auto, ratio,
        pass}}}}``
        (``ratio``: chemtomo's best-auto MSE over the peer's best; ``pass``: at most 1) and
        ``acceptance`` ``{"best_auto_at_least_as_good_as_<peer>_best_every_case": bool}``.
        Where the metrics hold ``mse_fraction_particle_or_mask`` (the auto results and the
        peer's sweep), each case also holds ``particle_or_mask``: the same comparison on that
        score (the peer's best the lowest of its sweep by it), and ``acceptance`` the key
        ``..._every_case_particle_or_mask``. The inside MSE does not charge mask voxels outside
        the particle, so a peer point whose mask fit failed towards the background can be its
        oracle-best by it (measured: svmbir on the diffuse alloy at 1/10 dose, docs/solvers.md).
    """
    out: dict = {}
    acc: dict = {}
    for spec, doses in suite.items():
        for dose, entry in doses.items():
            ms = entry["methods"]
            wa = min(ms, key=lambda n: ms[n]["auto"]["mse_fraction_inside"])
            ca = ms[wa]["auto"]["mse_fraction_inside"]
            for peer, r in entry.get("peers", {}).items():
                pb = r["best"]["mse_fraction_inside"]
                c = {"chemtomo_method": wa, "chemtomo_best_auto": ca, "peer_best": pb,
                     "peer_best_params": r["best"].get("params"), "peer_at_grid_edge": r["best"].get("at_grid_edge"),
                     "peer_auto": r["auto"]["mse_fraction_inside"],
                     "ratio": ca / pb, "pass": bool(ca <= pb)}
                out.setdefault(peer, {}).setdefault(spec, {})[dose] = c
                key = f"best_auto_at_least_as_good_as_{peer}_best_every_case"
                acc[key] = acc.get(key, True) and c["pass"]
                sym = "mse_fraction_particle_or_mask"
                if r.get("sweep") and all(sym in e for e in r["sweep"]) and all(sym in v["auto"] for v in ms.values()):
                    wa2 = min(ms, key=lambda n: ms[n]["auto"][sym])
                    ca2, pb2 = ms[wa2]["auto"][sym], min(e[sym] for e in r["sweep"])
                    c["particle_or_mask"] = {"chemtomo_method": wa2, "chemtomo_best_auto": ca2, "peer_best": pb2,
                                             "ratio": ca2 / pb2, "pass": bool(ca2 <= pb2)}
                    key2 = f"{key}_particle_or_mask"
                    acc[key2] = acc.get(key2, True) and c["particle_or_mask"]["pass"]
    return {"cases": out, "acceptance": acc}
