"""HAADF-EDS bimodal tomography (HEBT; Zhong et al. 2017, Yuan et al. 2020 eqs 15-17).

The HAADF signal is a weighted sum of the EDS line signals, ``I^H = sum_A r_A I_A``
(eq 15). With the response ratios ``r_A`` estimated from the data, one stacked
system is solved for ``X^b_A = r_A X_A`` (EDS data brought to HAADF units):

    [(1-alpha) r_1 I_1]     [(1-alpha) W              ]
    [      ...        ]  =  [            ...           ]  X^b       (eq 17)
    [(1-alpha) r_k I_k]     [              (1-alpha) W ]
    [   alpha I^H     ]     [ alpha W  ...   alpha W   ]

The operator is ``ChannelMix(W, [(1-alpha) I_k; alpha 1^T])``: one projection per
channel, whatever ``k``.

A HAADF at tilts of its own (``W.modality("haadf")`` is not ``W``: see
:mod:`chemtomo.projector.modality`) makes the HAADF rows ``c alpha W_H sum_A X^b_A``
(:class:`~chemtomo.projector.modality.ChannelSum`) under the EDS rows
``(1-alpha) W_E X^b_A``, with ``c = n_EDS tilts / n_HAADF tilts``
(:func:`haadf_row_weight`): SIRT's pixel weights sum the rows, so without ``c`` a
HAADF at 31 tilts beside EDS at 7 would weigh 31/7 times what ``alpha`` says (on
the core-shell phantom, EDS at 7 of 31 tilts, the default ``alpha = 0.8`` then did
worse inside the particle than with the HAADF at the 7 EDS tilts alone); with ``c``,
``alpha`` is the balance of the two modalities whatever their numbers of tilts, and
equal tilt counts give the paper's system. SIRT adds the HAADF's residual to every
channel alike, so the denser HAADF sharpens HEBT's total, not its split between
lines: the weight fractions gain little (``tests/test_per_modality_series.py`` checks they do
not get worse); the fused model (:mod:`.fused`) gains more. The batched engine's fused SIRT takes one projector, so
that system runs SIRT's generic loop: per iteration one forward and one adjoint
pass of ``W_E`` over the ``k`` channels and one of ``W_H`` over their sum (plus
numpy's temporaries of the residual and the update), against one fused pass of
``W^T`` of the shared system on the batched engine. The
response ratios are then fitted on the tilts both modalities share, or, when
they share none, through an EDS-only reconstruction
(:func:`estimate_response_ratios_tilts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from ..geometry import SHARED_TILT_TOL_DEG, match_tilts, sinogram_to_columns
from ..projector.base import DTYPE, Operator
from ..projector.compose import ChannelMix, VStack
from ..projector.modality import ChannelSum
from .result import SolverResult
from .sirt import sirt

log = logging.getLogger("chemtomo.reconstruct")

#: Below this coefficient of determination the fit ``I^H = sum_A r_A I_A`` is reported
#: (a warning with the number and the likely causes): the lines explain less than half of
#: the HAADF's variance.
R2_FLOOR = 0.5
#: The response-ratio fit through the reconstruction (no tilt shared): EDS-only SIRT
#: iterations, and at most this many slices, evenly spaced, of the series.
RR_SIRT_ITERATIONS = 100
RR_FIT_MAX_SLICES = 32
#: The errors-in-variables correction of the response-ratio fit (``noise_energy``) is phased in by
#: the eigenvalue ``lam`` of each direction of the lines' noise-whitened normal matrix (signal plus
#: noise energy over noise energy): none at or below ``EIV_RAMP[0]``, all of it (``lam - 1``) at or above
#: ``EIV_RAMP[1]``, in proportion between. So the fit is continuous in the data, and the correction
#: multiplies least squares' estimate in a direction by at most ``2 / (2 - 1) = 2``. Weak directions
#: (a fixed stoichiometry such as the alumina support's Al and O, eigenvalue 0.96-1.07 on the
#: suite's oxide-supported particle) keep least squares' normal matrix: corrected there, their split is noise
#: amplified without bound (a hard threshold at 1.5 set the absorbed oxide's O to 0 at eigenvalue
#: 1.51). Chosen after looking at the suite (docs/solvers.md, "The response ratios' fit").
EIV_RAMP = (1.5, 2.0)
#: Appended to ``ResponseRatios.basis`` when the errors-in-variables correction was made.
EIV_NOTE = "; corrected for the EDS noise (errors in variables)"
#: ``ResponseRatios.basis`` of a fit on every tilt's measured data (one tilt set).
BASIS_ALL_TILTS = "measured sinograms, every tilt"


@dataclass(frozen=True)
class ResponseRatios:
    """Fitted ``r_A`` of ``I^H = sum_A r_A I_A`` with the fit's coefficient of determination.

    Attributes
    ----------
    lines : tuple of str
    r : ndarray, (k,)
    r2 : float
        ``1 - SS_res / SS_tot`` (SS_tot about the mean of ``I^H``).
    n_samples : int
    basis : str
        What the fit was made on: every tilt's measured data (:data:`BASIS_ALL_TILTS`),
        the tilts both modalities share, or an EDS-only reconstruction projected at the
        HAADF's tilts (:func:`estimate_response_ratios_tilts`).
    """

    lines: tuple[str, ...]
    r: np.ndarray
    r2: float
    n_samples: int
    basis: str = BASIS_ALL_TILTS

    def as_dict(self) -> dict:
        """The fit as a JSON-ready dict (``basis`` only when it is not every tilt's data)."""
        out = {"lines": list(self.lines), "r": [float(v) for v in self.r],
               "r2": float(self.r2), "n_samples": int(self.n_samples)}
        if self.basis != BASIS_ALL_TILTS:
            out["basis"] = self.basis
        return out

    def against_theory(self, factors, reference: str | None = None) -> dict:
        """The fitted ``r_A`` against the thin-film theory's, each relative to one line.

        Eq 16 gives ``r_A = D_e^H N_A z_A / (n f_A)``: the doses, ``N_A`` and the
        detector's solid angle are common to every line of one detector, so the ratio
        ``r_A / r_ref = (z_A / f_A) / (z_ref / f_ref)`` is free of every quantity a
        tilt series does not state. ``fitted_over_theory`` near 1 for every line says the
        HAADF is the linear sum the model assumes and ``z_A`` (the elastic model) and
        ``f_A`` are right for this microscope; a line far from 1 points at that line's
        map (background, overlap, absorption) or at the HAADF (saturation,
        non-linearity), and a spread between lines is what HEBT's fitted ratios absorb.

        Parameters
        ----------
        factors : chemtomo.physics.Factors
            The factors the quantification uses (``z`` and ``f`` of every fitted line).
        reference : str, optional
            The line every ratio is relative to; default: the line of the largest fitted
            ``r_A`` (the best-determined one).

        Returns
        -------
        dict
            ``reference``, ``lines``, ``fitted_relative``, ``theory_relative`` and
            ``fitted_over_theory`` (lists in the order of ``lines``), ``r2``.

        Raises
        ------
        ValueError
            ``reference`` not a fitted line, or its fitted ``r_A`` is 0.
        """
        lines = list(self.lines)
        r = np.asarray(self.r, dtype=np.float64)
        ref = lines[int(np.argmax(r))] if reference is None else reference
        if ref not in lines:
            raise ValueError(f"reference must be one of the fitted lines {lines}, got {reference!r}")
        i = lines.index(ref)
        if not r[i] > 0:
            raise ValueError(f"the fitted r_A of the reference line {ref} is {r[i]:g}: choose a line with r_A > 0")
        theory = np.asarray(factors.z(lines), np.float64) / np.asarray(factors.f(lines), np.float64)
        fitted_rel, theory_rel = r / r[i], theory / theory[i]
        return {"reference": ref, "lines": lines, "fitted_relative": fitted_rel.tolist(),
                "theory_relative": theory_rel.tolist(), "fitted_over_theory": (fitted_rel / theory_rel).tolist(),
                "r2": float(self.r2)}


def estimate_response_ratios(
    haadf: np.ndarray, eds: dict[str, np.ndarray], *, nonneg: bool = True, noise_energy=None,
    ramp: tuple[float, float] = EIV_RAMP,
) -> ResponseRatios:
    """Estimate ``r_A`` by (non-negative) least squares on the measured data.

    The EDS signals are regressors with noise of their own, so least squares shrinks
    ``r_A`` towards 0 (errors in variables; by 10-40 % at 1/10 of the paper's dose on
    the specimen suite, most for nearly collinear lines). Given each line's
    ``noise_energy``, the sum over samples of its noise variance, the fit solves the
    moment-corrected normal equations ``(A^T A - diag(noise_energy)) r = A^T I^H``
    instead (``E[A^T A]`` of noisy regressors is the signal's plus the noise's energy),
    in the directions reliable enough (``ramp``).

    Parameters
    ----------
    haadf : ndarray
        HAADF signal, any shape (a sinogram stack).
    eds : dict line -> ndarray
        EDS line signals of the same shape as ``haadf``.
    nonneg : bool
        Constrain ``r_A >= 0`` (NNLS, Lawson-Hanson); else ordinary least squares.
    noise_energy : sequence of float, optional
        Per line (in ``eds``' order): ``sum_i Var(I_A,i)`` over the fitted samples, e.g.
        from :func:`~chemtomo.preprocess.gaussian_filter_variance` of the counts. None: no
        correction (least squares).
    ramp : (float, float)
        In each eigen-direction of ``N^-1/2 A^T A N^-1/2`` (``N = diag(noise_energy)``), of
        eigenvalue ``lam``, the fraction ``clip((lam - ramp[0]) / (ramp[1] - ramp[0]), 0, 1)``
        of the noise energy is removed (``1 < ramp[0] <= ramp[1]``; equal: a hard threshold);
        :data:`EIV_RAMP`.

    Returns
    -------
    ResponseRatios

    Raises
    ------
    ValueError
        No EDS line, sizes that differ, no finite sample, or a constant HAADF
        (the fit's R^2 is then undefined).

    Notes
    -----
    An R^2 below :data:`R2_FLOOR`, and a line whose fitted ``r_A`` is 0 (it does
    not explain the HAADF), are logged as warnings (logger ``chemtomo.reconstruct``)
    with the number and the likely causes.
    """
    if not eds:
        raise ValueError("estimate_response_ratios needs at least one EDS line")
    h = np.asarray(haadf, dtype=np.float64).ravel()
    cols = []
    for line, m in eds.items():
        m = np.asarray(m, dtype=np.float64)
        if m.size != h.size:
            raise ValueError(
                f"EDS map {line!r} has {m.size} values but the HAADF has {h.size}: "
                "register and bin them to the same grid first"
            )
        cols.append(m.ravel())
    A = np.stack(cols, axis=1)
    ok = np.isfinite(h) & np.all(np.isfinite(A), axis=1)
    A, h = A[ok], h[ok]
    if h.size == 0:
        raise ValueError("the response-ratio fit has no sample where the HAADF and every EDS line are finite")
    if float(np.ptp(h)) == 0:
        raise ValueError(
            f"the response-ratio fit I^H = sum_A r_A I_A is undefined (R^2 has no meaning): the HAADF is "
            f"{'all zero' if h[0] == 0 else 'constant'} ({float(h[0]):g} at all {h.size} samples); check the "
            "HAADF images (empty, saturated, the wrong detector) or use an EDS-only method"
        )
    # scale columns for conditioning; undo afterwards
    s = np.sqrt(np.sum(A * A, axis=0))
    s[s == 0] = 1.0
    corrected = None if noise_energy is None else _corrected_normal_matrix(A, noise_energy, ramp)
    if corrected is not None:
        G = corrected / np.outer(s, s)
        L = np.linalg.cholesky(G)  # positive definite: each eigenvalue keeps at least min(lam, ramp[0], ramp[1] - 1)
        rhs = np.linalg.solve(L, (A.T @ h) / s)
        coef = nnls(L.T, rhs)[0] if nonneg else np.linalg.solve(L.T, rhs)
    elif nonneg:
        coef, _ = nnls(A / s, h)
    else:
        coef, *_ = np.linalg.lstsq(A / s, h, rcond=None)
    r = coef / s
    res = h - A @ r
    ss_tot = float(np.sum((h - h.mean()) ** 2))
    r2 = 1.0 - float(res @ res) / ss_tot if ss_tot > 0 else float("nan")
    lines = tuple(eds)
    if r2 < R2_FLOOR:
        log.warning(
            "the response-ratio fit I^H = sum_A r_A I_A is poor: R^2 = %.3f (below %.2g) over %d samples, "
            "r = %s; likely causes: a HAADF misregistered against the EDS maps, a line of the specimen missing "
            "from the lines, or the wrong detector's image given as HAADF", r2, R2_FLOOR, h.size,
            dict(zip(lines, np.round(r, 6).tolist(), strict=True)),
        )
    # a line whose fitted contribution (coef: r_A times the column's norm) is nil next to the HAADF
    zero = [ln for ln, c in zip(lines, coef, strict=True) if c <= 1e-8 * float(np.linalg.norm(h))]
    if zero:
        log.warning(
            "the response-ratio fit gives r_A = 0 for %s: %s not explain the HAADF (an empty or misassigned "
            "line map, or a HAADF misregistered against it); HEBT scales a line's counts by r_A, so its map "
            "will not reflect them: check the line or use an EDS-only method",
            zero, "this line does" if len(zero) == 1 else "these lines do",
        )
    return ResponseRatios(lines, r, r2, int(h.size),
                          basis=BASIS_ALL_TILTS if corrected is None else BASIS_ALL_TILTS + EIV_NOTE)


def _corrected_normal_matrix(A: np.ndarray, noise_energy, ramp: tuple[float, float]) -> np.ndarray | None:
    """``A^T A`` less the noise energy, phased in over its directions by ``ramp``.

    None (least squares' own) when a line has no noise energy or the matrix is singular.
    """
    n = np.asarray(noise_energy, np.float64).ravel()
    if n.size != A.shape[1] or not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError(f"noise_energy must be {A.shape[1]} finite non-negative numbers (one per line), "
                         f"got {noise_energy!r}")
    lo, hi = (float(v) for v in ramp)
    if not (np.isfinite(hi) and 1 < lo <= hi):
        raise ValueError(f"ramp must be two eigenvalues 1 < lo <= hi, got {ramp!r}")
    if np.any(n <= 0):
        return None
    sq = np.sqrt(n)
    lam, V = np.linalg.eigh((A.T @ A) / np.outer(sq, sq))
    if lam[0] <= 1e-12 * max(float(lam[-1]), 1e-300):
        return None
    share = (lam >= hi).astype(np.float64) if hi == lo else np.clip((lam - lo) / (hi - lo), 0.0, 1.0)
    return np.outer(sq, sq) * ((V * (lam - share)) @ V.T)


def estimate_response_ratios_tilts(
    haadf: np.ndarray, eds: dict[str, np.ndarray], eds_angles_deg, haadf_angles_deg, *, W: Operator | None = None,
    n_iter: int = RR_SIRT_ITERATIONS, max_slices: int = RR_FIT_MAX_SLICES, tol_deg: float = SHARED_TILT_TOL_DEG,
    nonneg: bool = True,
) -> ResponseRatios:
    """``r_A`` of a series whose HAADF has tilts of its own.

    On the tilts both modalities share (angles within ``tol_deg``,
    :func:`~chemtomo.geometry.match_tilts`), the measured images are fitted as
    :func:`estimate_response_ratios` fits a shared series. When they share none, the
    fit goes through the reconstruction: each EDS line of up to ``max_slices``
    evenly spaced slices is reconstructed alone (SIRT, non-negative, ``n_iter``
    iterations, on ``W.modality("eds")``) and projected at the HAADF's tilts
    (``W.modality("haadf")``), and the HAADF is fitted as ``sum_A r_A`` times those
    projections. ``basis`` of the result says which was used; it is logged too.

    Parameters
    ----------
    haadf : ndarray, (n_haadf_tilts, n_slices, n_pixels)
    eds : dict line -> ndarray, (n_tilts, n_slices, n_pixels)
    eds_angles_deg, haadf_angles_deg : array_like
        The two tilt sets (degrees).
    W : Operator, optional
        The series' projector pair (:class:`~chemtomo.projector.modality.PerModality`);
        needed only when no tilt is shared.
    n_iter, max_slices : int
        The reconstruction route's SIRT iterations and slices.
    tol_deg : float
        Largest difference of one shared tilt (degrees).
    nonneg : bool
        As :func:`estimate_response_ratios`.

    Returns
    -------
    ResponseRatios

    Raises
    ------
    ValueError
        No shared tilt and no ``W`` to reconstruct with; see :func:`estimate_response_ratios`.
    """
    e_ang = np.asarray(eds_angles_deg, np.float64).ravel()
    h_ang = np.asarray(haadf_angles_deg, np.float64).ravel()
    ie, ih = match_tilts(e_ang, h_ang, tol_deg)
    h = np.asarray(haadf)
    if ie.size:
        fit = estimate_response_ratios(h[ih], {ln: np.asarray(v)[ie] for ln, v in eds.items()}, nonneg=nonneg)
        basis = (f"measured images at the {ie.size} tilt(s) both modalities share (within {tol_deg:g} deg): "
                 f"{np.round(e_ang[ie], 3).tolist()}")
    else:
        if W is None:
            raise ValueError(
                f"the HAADF tilts ({h_ang.size}, {h_ang.min():.3g}..{h_ang.max():.3g} deg) share none with the EDS "
                f"tilts ({np.round(e_ang, 3).tolist()}): the response ratios are then fitted through the "
                "reconstruction, which needs the series' projectors (W)"
            )
        n_slices = h.shape[1]
        sl = np.unique(np.round(np.linspace(0, n_slices - 1, min(int(max_slices), n_slices))).astype(int))
        lines = list(eds)
        s = sl.size
        b = np.concatenate([sinogram_to_columns(np.asarray(eds[ln])[:, sl]) for ln in lines], axis=1)
        x = sirt(W.modality("eds"), b, int(n_iter)).x  # (n_vox, k s), line-major columns
        proj = W.modality("haadf").forward(x)  # (n_rays_H, k s)
        cols = {ln: proj[:, a * s:(a + 1) * s] for a, ln in enumerate(lines)}
        fit = estimate_response_ratios(sinogram_to_columns(h[:, sl]), cols, nonneg=nonneg)
        basis = (f"EDS-only SIRT ({int(n_iter)} iterations) of {s} slice(s) projected at the {h_ang.size} HAADF "
                 "tilts: no tilt shared")
    log.info("response ratios r_A = %s (R^2 = %.3f) fitted on %s", dict(zip(fit.lines, np.round(fit.r, 6).tolist(),
             strict=True)), fit.r2, basis)
    return ResponseRatios(fit.lines, fit.r, fit.r2, fit.n_samples, basis)


def check_alpha(alpha: float) -> float:
    """The HAADF weight ``alpha`` as a float, checked to lie in [0, 1).

    Raises
    ------
    ValueError
        If ``alpha`` is outside [0, 1) (or NaN).
    """
    alpha = float(alpha)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha (the HAADF weight) must lie in [0, 1), got {alpha}")
    return alpha


def haadf_row_weight(n_eds_rays: int, n_haadf_rays: int) -> float:
    """``c = n_eds_rays / n_haadf_rays``: the HAADF rows' factor that keeps ``alpha`` the modalities' balance.

    1 for one tilt set (the paper's system). See the module docstring.
    """
    return float(n_eds_rays) / float(n_haadf_rays)


def hebt_operator(W: Operator, n_channels: int, alpha: float) -> Operator:
    """The stacked operator ``W^b`` of eq 17 for ``n_channels`` EDS lines.

    ``ChannelMix(W, [(1-alpha) I_k; alpha 1^T])`` when ``W`` serves both modalities;
    with a HAADF projector of its own (``W.modality("haadf")``),
    ``[ChannelMix(W_E, (1-alpha) I_k); ChannelSum(W_H, c alpha 1)]`` with
    ``c`` = :func:`haadf_row_weight`, which SIRT runs by its generic loop (module
    docstring for the cost).
    """
    alpha = check_alpha(alpha)
    k = int(n_channels)
    WE, WH = W.modality("eds"), W.modality("haadf")
    if WH is WE:
        mix = np.vstack([(1 - alpha) * np.eye(k), alpha * np.ones((1, k))]).astype(DTYPE)
        return ChannelMix(W, mix)
    c = haadf_row_weight(WE.shape[0], WH.shape[0])
    return VStack([ChannelMix(WE, ((1 - alpha) * np.eye(k)).astype(DTYPE)), ChannelSum(WH, np.full(k, c * alpha))])


def hebt_data(haadf: np.ndarray, eds: list[np.ndarray], r: np.ndarray, alpha: float) -> np.ndarray:
    """Stacked data ``I^b`` of eq 17: ``[(1-alpha) r_A I_A ...; alpha I^H]``, each ``(n_rays, s)``.

    A HAADF with other rays than the EDS (tilts of its own) gets ``c alpha I^H``,
    ``c`` = :func:`haadf_row_weight` (as :func:`hebt_operator`).
    """
    alpha = check_alpha(alpha)
    blocks = [(1 - alpha) * float(ra) * np.asarray(e, DTYPE) for ra, e in zip(r, eds, strict=True)]
    h = np.asarray(haadf, DTYPE)
    n_e = np.asarray(eds[0]).shape[0] if len(eds) else h.shape[0]
    if h.shape[0] == n_e:
        blocks.append(alpha * h)
    else:
        blocks.append((haadf_row_weight(n_e, h.shape[0]) * alpha) * h)
    return np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype=DTYPE)


def hebt_sirt(
    W: Operator, haadf: np.ndarray, eds: list[np.ndarray], r: np.ndarray, alpha: float,
    n_iter: int, **kwargs,
) -> SolverResult:
    """HEBT by SIRT with non-negativity on the stacked system.

    Parameters
    ----------
    W : Operator
        Projector of one slice, ``(n_rays, n_vox)`` (the EDS's; a HAADF at tilts of its
        own has ``W.modality("haadf")``).
    haadf : ndarray, (n_rays, s) (the HAADF's rays)
    eds : list of ndarray, each (n_rays, s)
    r : ndarray, (k,)
        Response ratios.
    alpha : float
        HAADF weight in [0, 1).
    n_iter : int
    **kwargs
        Passed to :func:`sirt` (snapshots, callback, ...).

    Returns
    -------
    SolverResult
        ``x`` is ``(k * n_vox, s)``: the channel blocks ``X^b_A = r_A X_A``.
    """
    if len(eds) != len(r):
        raise ValueError(f"got {len(eds)} EDS lines but {len(r)} response ratios")
    op = hebt_operator(W, len(eds), alpha)
    b = hebt_data(haadf, eds, r, alpha)
    result = sirt(op, b, n_iter, **kwargs)
    result.info.update({"method": "hebt_sirt", "alpha": alpha, "r": [float(v) for v in r]})
    return result
