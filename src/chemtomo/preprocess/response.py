"""HEBT's response ratios fitted on a filtered tilt series, corrected for the EDS noise (errors in variables).

:func:`~chemtomo.reconstruct.estimate_response_ratios` is the estimator; this module
prepares its inputs as the pipeline filters the series: the HAADF filtered as the EDS
were, and each line's noise energy propagated through the filter
(:func:`~chemtomo.preprocess.gaussian_filter_variance`). Used by
:func:`chemtomo.pipeline.reconstruct_series`, the experimental path and the studies, so
that all of them fit ``r_A`` the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from ..reconstruct import ResponseRatios, estimate_response_ratios
from ..reconstruct.autoparam import estimate_noise_factor
from .filters import gaussian_filter_stack, gaussian_filter_variance

log = logging.getLogger("chemtomo.preprocess")


def fit_response_ratios(haadf: np.ndarray, eds: Mapping[str, np.ndarray], unfiltered: Mapping | None,
                        filter_sigma: float | None, filter_axes: str = "image",
                        noise_factor: float | str = 1.0) -> ResponseRatios:
    """HEBT's ``r_A`` on a shared tilt set: the HAADF filtered as the EDS were, corrected for their noise.

    The fit (:func:`~chemtomo.reconstruct.estimate_response_ratios`) regresses the HAADF
    on the filtered EDS stacks ``eds``. The HAADF gets the same filter, so that both
    sides of ``I^H = sum_A r_A I_A`` hold the same detail. The EDS noise in the regressors is
    removed from the normal equations (errors in variables) with each line's noise energy:
    the unfiltered stacks' variance (``noise_factor`` times their non-negative values)
    through the filter's squared weights
    (:func:`~chemtomo.preprocess.gaussian_filter_variance`). Over the specimen suite's 27
    line ratios this takes the median departure from the theory that made the data from 14 %
    to 3 % (``scripts/response_ratio_check.py``; docs/solvers.md, "The response ratios' fit").

    Parameters
    ----------
    haadf : ndarray
        The unfiltered HAADF stack.
    eds : mapping line -> ndarray
        The EDS stacks as HEBT sees them (filtered with ``filter_sigma``, ``filter_axes``).
    unfiltered : mapping line -> ndarray, or None
        The same stacks before the filter; None: no noise correction (least squares).
    filter_sigma : float or None
        The filter of ``eds`` (pixels); None or 0: unfiltered.
    filter_axes : {"image", "sinogram"}
    noise_factor : float or "estimate"
        Variance over mean of ``unfiltered`` (1 for raw Poisson counts; ``"estimate"``:
        :func:`~chemtomo.reconstruct.autoparam.estimate_noise_factor`; when it cannot be
        estimated, the fit is left uncorrected and says so in the log).

    Returns
    -------
    ResponseRatios
    """
    h = gaussian_filter_stack(haadf, filter_sigma, filter_axes) if filter_sigma else haadf
    noise = None
    if unfiltered is not None:
        nf = noise_factor
        if nf == "estimate":
            try:
                nf = estimate_noise_factor([np.asarray(unfiltered[ln]) for ln in eds])
            except ValueError as exc:
                log.info("response ratios: no noise correction (%s)", exc)
                nf = None
        if nf is not None:
            var = {ln: float(nf) * np.clip(np.asarray(unfiltered[ln], np.float64), 0, None) for ln in eds}
            noise = [float(np.sum(gaussian_filter_variance(var[ln], filter_sigma, filter_axes) if filter_sigma
                                  else var[ln])) for ln in eds]
    return estimate_response_ratios(h, dict(eds), noise_energy=noise)
