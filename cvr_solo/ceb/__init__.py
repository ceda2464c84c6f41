"""The CEB core: vMF distribution, C-SimCLR / C-BYOL losses, beta schedules, diagnostics.

Pure torch: nothing here imports solo-learn.
"""

from cvr_solo.ceb.diagnostics import (
    embedding_distance_from_kl,
    held_back_beta,
    lipschitz_lower_bound,
    lipschitz_lower_bound_from_cos,
    pair_distances,
    residual_floor,
    shrink_threshold,
)
from cvr_solo.ceb.losses import (
    B_VIEWS,
    CBYOLLossOutput,
    CSimCLRLossOutput,
    c_byol_loss,
    c_simclr_loss,
    residual_information,
)
from cvr_solo.ceb.schedules import BETA_SCHEDULES, beta_at
from cvr_solo.ceb.vmf import (
    VonMisesFisher,
    log_bessel_iv,
    log_normalizer,
    mean_resultant_length,
    sampler_failures,
    vmf_kl,
    vmf_rsample,
)
from cvr_solo.ceb.wood import FAILURE_BOUND, wood_acceptance, wood_plan

__all__ = [
    "BETA_SCHEDULES",
    "B_VIEWS",
    "FAILURE_BOUND",
    "CBYOLLossOutput",
    "CSimCLRLossOutput",
    "VonMisesFisher",
    "beta_at",
    "c_byol_loss",
    "c_simclr_loss",
    "embedding_distance_from_kl",
    "held_back_beta",
    "lipschitz_lower_bound",
    "lipschitz_lower_bound_from_cos",
    "log_bessel_iv",
    "log_normalizer",
    "mean_resultant_length",
    "pair_distances",
    "residual_floor",
    "residual_information",
    "sampler_failures",
    "shrink_threshold",
    "vmf_kl",
    "vmf_rsample",
    "wood_acceptance",
    "wood_plan",
]
