"""cvr-solo: C-SimCLR and C-BYOL (Lee et al., "Compressive Visual Representations",
NeurIPS 2021), and C-MoCo v3 and C-SimSiam built the same way, for solo-learn.

The CEB core (``cvr_solo.ceb``) is plain torch; the solo-learn methods live in
``cvr_solo.methods`` and need solo-learn installed from GitHub (see README).

The package's names are imported on first use (PEP 562), so that ``cvr-solo --help`` and
``--version`` do not pay torch's import (several seconds).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: ``cvr_solo.ceb.__all__``, spelt out so that ``import cvr_solo`` imports no torch (a unit
#: test keeps the two equal).
_CEB_NAMES = (
    "BETA_SCHEDULES", "B_VIEWS", "BackwardEncoder", "CBYOLLossOutput", "CMoCoV3LossOutput",
    "CSimCLRLossOutput", "CSimSiamLossOutput", "FAILURE_BOUND", "SIMSIAM_W",
    "StochasticPrediction", "StochasticPredictor", "VonMisesFisher", "beta_at", "c_byol_loss",
    "c_mocov3_loss", "c_simclr_loss", "c_simsiam_loss", "drop_last_bias",
    "embedding_distance_from_kl",
    "full_beta_ratio", "guarded_beta", "held_back_beta", "lipschitz_lower_bound",
    "lipschitz_lower_bound_from_cos", "log_bessel_iv", "log_normalizer",
    "mean_resultant_length", "pair_distances", "release_mlp", "residual_floor",
    "residual_information", "sampler_failures", "shrink_threshold", "vmf_kl", "vmf_rsample",
    "wood_acceptance", "wood_plan",
)
__all__ = [*_CEB_NAMES, "__version__", "register"]


def __getattr__(name: str) -> Any:
    if name in _CEB_NAMES:
        value = getattr(importlib.import_module("cvr_solo.ceb"), name)
    elif name == "register":
        value = importlib.import_module("cvr_solo.solo.registry").register
    else:  # a sub-module, e.g. cvr_solo.ceb after a plain ``import cvr_solo``
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
