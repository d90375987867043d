"""Warm starts of the regularised solvers: an earlier solve's duals in a form that survives new data.

:func:`~chemtomo.reconstruct.fused.tv_solve` hands back its final duals (``return_dual``)
in the solver's units: the data term's rows are whitened (``d K x``, ``d`` one over the
noise std of each row, from the counts) and the prior's field is the scaled gradient
``c D x`` with the weight ``lam / c`` (``c`` the constants' ``tv_operator_scale``). A
nearby problem (the absorption correction's corrected counts) has other counts, hence
another ``d``, and other volume constants, hence another ``lam`` and ``c``: the raw
duals would start it off its saddle point. So they travel in unscaled form:

- data term: ``q = d p``, the dual of the unwhitened term ``F(K x)`` (for the Poisson
  rows ``1 - b / (K x)`` at the solution, for the Gaussian rows ``w (K x - b)``);
- prior: ``u = p c / lam``, the dual of ``lam TV`` divided by ``lam`` (a field of
  vectors of length at most 1, the unit normals of the edges);

and are converted back with the new data's ``d``, ``lam`` and ``c``
(:func:`portable_duals`, :func:`solver_duals`). Both are columns (one per slice), as the
maps, so a volume's state is cut into chunks like its slices
(:class:`~chemtomo.reconstruct.registry.WarmStart`).
"""

from __future__ import annotations

import numpy as np

from ..projector.base import DTYPE, Operator
from .fused import TVConstants, data_row_scales, tv_weight

__all__ = ["portable_duals", "solver_duals", "tv_lam"]


def tv_lam(W: Operator, constants: TVConstants, m: int, mu=None, lam=None) -> np.ndarray:
    """The absolute TV weight per column ``(m,)`` that :func:`~chemtomo.reconstruct.fused.tv_solve` uses."""
    value = tv_weight(mu, W, constants) if lam is None else np.asarray(lam, np.float64)
    return np.broadcast_to(value, (m,)).astype(np.float64)


def _row_scales(counts: np.ndarray, model: str, constants: TVConstants, haadf, model_options: dict) -> np.ndarray:
    """``d`` of :func:`~chemtomo.reconstruct.fused.data_row_scales` with the model options as a dict."""
    return data_row_scales(counts, model, constants, haadf, model_options.get("haadf_model_error", 0.01),
                           model_options.get("haadf_gain", 0.0))


def _check(dual, n_rows: int, m: int) -> None:
    if len(dual) != 2:
        raise ValueError(f"a regularised solve's duals are two arrays (data term, prior), got {len(dual)}")
    if dual[0].shape != (n_rows, m) or dual[1].ndim != 2 or dual[1].shape[1] != m:
        raise ValueError(f"the duals {[d.shape for d in dual]} do not fit {m} columns of {n_rows} data rows")


def portable_duals(dual, counts: np.ndarray, model: str, constants: TVConstants, lam: np.ndarray, haadf=None,
                   model_options: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A solve's final duals (``info["dual"]``) in unscaled form ``(q, u)``, float32.

    Parameters
    ----------
    dual : list of two ndarray
        The data term's ``(n_rows, m)`` and the prior's ``(n_grad, m)`` duals, as the solve returned them.
    counts : ndarray, (k, n_rays, m)
        The counts the solve was given.
    model : {"ls", "poisson", "fused"}
    constants : TVConstants
        The constants the solve used.
    lam : ndarray, (m,)
        Its absolute TV weights (:func:`tv_lam`).
    haadf : ndarray (n_rays_H, m), optional
        Its HAADF data (model "fused").
    model_options : dict, optional
        ``haadf_model_error``, ``haadf_gain`` (model "fused").

    Returns
    -------
    tuple of ndarray
        ``q = d p`` (data term) and ``u = p c / lam`` (prior; 0 where ``lam`` is 0).
    """
    d = _row_scales(np.asarray(counts, DTYPE), model, constants, haadf, model_options or {})
    m = counts.shape[2]
    _check(dual, d.shape[0], m)
    c = constants.tv_operator_scale
    per = np.where(lam > 0, c / np.where(lam > 0, lam, 1.0), 0.0).astype(DTYPE)
    return (np.asarray(dual[0], DTYPE) * d).astype(DTYPE), (np.asarray(dual[1], DTYPE) * per).astype(DTYPE)


def solver_duals(state, counts: np.ndarray, model: str, constants: TVConstants, lam: np.ndarray, haadf=None,
                 model_options: dict | None = None) -> list[np.ndarray]:
    """The unscaled duals ``(q, u)`` of :func:`portable_duals` in the units of a solve of ``counts`` (its ``dual0``).

    Parameters are those of :func:`portable_duals`, for the new solve: ``p = q / d``,
    ``p = u lam / c``.

    Returns
    -------
    list of ndarray
    """
    d = _row_scales(np.asarray(counts, DTYPE), model, constants, haadf, model_options or {})
    m = counts.shape[2]
    _check(list(state), d.shape[0], m)
    c = constants.tv_operator_scale
    return [(np.asarray(state[0], DTYPE) / d).astype(DTYPE),
            (np.asarray(state[1], DTYPE) * (np.asarray(lam) / c).astype(DTYPE)).astype(DTYPE)]
