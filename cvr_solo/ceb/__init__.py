"""The CEB core: vMF distribution, the losses (C-SimCLR, C-BYOL and, beyond the paper,
C-MoCo v3 and C-SimSiam), beta schedules and guard, diagnostics, heads.

Pure torch: nothing here imports solo-learn.
"""

from cvr_solo.ceb.diagnostics import (
    embedding_distance_from_kl,
    lipschitz_lower_bound,
    lipschitz_lower_bound_from_cos,
    pair_distances,
    residual_floor,
)
from cvr_solo.ceb.guard import full_beta_ratio, guarded_beta, held_back_beta, shrink_threshold
from cvr_solo.ceb.heads import (
    BackwardEncoder,
    StochasticPrediction,
    StochasticPredictor,
    drop_last_bias,
    release_mlp,
)
from cvr_solo.ceb.losses import (
    B_VIEWS,
    CBYOLLossOutput,
    CSimCLRLossOutput,
    c_byol_loss,
    c_simclr_loss,
    residual_information,
)
from cvr_solo.ceb.losses_beyond import (
    SIMSIAM_W,
    CMoCoV3LossOutput,
    CSimSiamLossOutput,
    c_mocov3_loss,
    c_simsiam_loss,
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
    "SIMSIAM_W",
    "BackwardEncoder",
    "CBYOLLossOutput",
    "CMoCoV3LossOutput",
    "CSimCLRLossOutput",
    "CSimSiamLossOutput",
    "StochasticPrediction",
    "StochasticPredictor",
    "VonMisesFisher",
    "beta_at",
    "c_byol_loss",
    "c_mocov3_loss",
    "c_simclr_loss",
    "c_simsiam_loss",
    "drop_last_bias",
    "embedding_distance_from_kl",
    "full_beta_ratio",
    "guarded_beta",
    "held_back_beta",
    "lipschitz_lower_bound",
    "lipschitz_lower_bound_from_cos",
    "log_bessel_iv",
    "log_normalizer",
    "mean_resultant_length",
    "pair_distances",
    "release_mlp",
    "residual_floor",
    "residual_information",
    "sampler_failures",
    "shrink_threshold",
    "vmf_kl",
    "vmf_rsample",
    "wood_acceptance",
    "wood_plan",
]
