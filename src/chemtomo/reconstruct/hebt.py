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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from ..projector.base import DTYPE, Operator
from ..projector.compose import ChannelMix
from .result import SolverResult
from .sirt import sirt

log = logging.getLogger("chemtomo.reconstruct")

#: Below this coefficient of determination the fit ``I^H = sum_A r_A I_A`` is reported
#: (a warning with the number and the likely causes): the lines explain less than half of
#: the HAADF's variance.
R2_FLOOR = 0.5


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
    """

    lines: tuple[str, ...]
    r: np.ndarray
    r2: float
    n_samples: int

    def as_dict(self) -> dict:
        """The fit as a JSON-ready dict."""
        return {"lines": list(self.lines), "r": [float(v) for v in self.r],
                "r2": float(self.r2), "n_samples": int(self.n_samples)}


def estimate_response_ratios(
    haadf: np.ndarray, eds: dict[str, np.ndarray], *, nonneg: bool = True,
) -> ResponseRatios:
    """Estimate ``r_A`` by (non-negative) least squares on the measured data.

    Parameters
    ----------
    haadf : ndarray
        HAADF signal, any shape (a sinogram stack).
    eds : dict line -> ndarray
        EDS line signals of the same shape as ``haadf``.
    nonneg : bool
        Constrain ``r_A >= 0`` (NNLS, Lawson-Hanson); else ordinary least squares.

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
    if nonneg:
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
    return ResponseRatios(lines, r, r2, int(h.size))


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


def hebt_operator(W: Operator, n_channels: int, alpha: float) -> ChannelMix:
    """The stacked operator ``W^b`` of eq 17 for ``n_channels`` EDS lines."""
    alpha = check_alpha(alpha)
    k = int(n_channels)
    mix = np.vstack([(1 - alpha) * np.eye(k), alpha * np.ones((1, k))]).astype(DTYPE)
    return ChannelMix(W, mix)


def hebt_data(haadf: np.ndarray, eds: list[np.ndarray], r: np.ndarray, alpha: float) -> np.ndarray:
    """Stacked data ``I^b`` of eq 17: ``[(1-alpha) r_A I_A ...; alpha I^H]``, each ``(n_rays, s)``."""
    alpha = check_alpha(alpha)
    blocks = [(1 - alpha) * float(ra) * np.asarray(e, DTYPE) for ra, e in zip(r, eds, strict=True)]
    blocks.append(alpha * np.asarray(haadf, DTYPE))
    return np.ascontiguousarray(np.concatenate(blocks, axis=0), dtype=DTYPE)


def hebt_sirt(
    W: Operator, haadf: np.ndarray, eds: list[np.ndarray], r: np.ndarray, alpha: float,
    n_iter: int, **kwargs,
) -> SolverResult:
    """HEBT by SIRT with non-negativity on the stacked system.

    Parameters
    ----------
    W : Operator
        Projector of one slice, ``(n_rays, n_vox)``.
    haadf : ndarray, (n_rays, s)
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
