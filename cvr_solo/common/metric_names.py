"""The names of the metrics cvr-solo logs (metrics.csv columns, the progress bar, the bench),
defined once. Lightning adds ``_step`` / ``_epoch`` (:data:`STEP`, :data:`EPOCH`) to the
metrics logged per step and per epoch. No imports: anything may read these.
"""

from __future__ import annotations

STEP, EPOCH = "_step", "_epoch"

# --- solo-learn's --------------------------------------------------------------------------
TRAIN_LOSS = "train_loss"  #: a linear probe's loss
TRAIN_ACC1 = "train_acc1"
VAL_ACC1 = "val_acc1"
NCE_LOSS = "train_nce_loss"  #: SimCLR's NT-Xent
#: BYOL's and SimSiam's regression (C-BYOL and C-SimSiam log their own under this name)
NEG_COS_SIM = "train_neg_cos_sim"
BARLOW_LOSS = "train_barlow_loss"
#: MoCo v3's InfoNCE x 2 tau, both directions (C-MoCo v3 logs its own under this name)
CONTRASTIVE_LOSS = "train_contrastive_loss"

# --- the C-variants (cvr_solo.methods) -----------------------------------------------------


def ceb_loss(method: str) -> str:
    """The total loss of ``method`` (``c_simclr``, ``c_byol``, ``c_mocov3``, ``c_simsiam``)."""
    return f"train_{method}_loss"


RESIDUAL = "train_residual"  #: R, the residual information (nats)
RESIDUAL_ABOVE_FLOOR = "train_residual_above_floor"
BETA = "train_beta"
KAPPA_E = "train_kappa_e"
KAPPA_B = "train_kappa_b"
Z_STD = "train_z_std"  #: :func:`cvr_solo.common.representation.z_std` of the projections
VMF_FAILURES = "train_vmf_failures"
CONTRASTIVE = "train_contrastive"  #: C-SimCLR's cross-entropy term
I_YZ = "train_i_yz"
ALIGN_RATIO = "train_align_ratio"
LIPSCHITZ_LOWER_BOUND = "train_lipschitz_lower_bound"

# --- callbacks (cvr_solo.launch) -----------------------------------------------------------
STEP_TIME = "train_step_time"
IMAGES_PER_SEC = "train_images_per_sec"
PEAK_RSS_MIB = "peak_rss_mib"
PEAK_GPU_MEM_MIB = "peak_gpu_mem_mib"
PROJ_STD = "train_proj_std"  #: the collapse monitor's z_std
PROJ_ALIGN_RATIO = "train_proj_align_ratio"
COLLAPSED = "train_collapsed"

#: The keys of :func:`cvr_solo.common.representation.summary`, logged with :data:`DIAG_PREFIX`.
DIAGNOSTICS = ("rankme_feats", "rankme_z", "alignment", "uniformity", "z_std", "z_std_ref")
DIAG_PREFIX = "diag_"
DIAG_KEYS = tuple(DIAG_PREFIX + k for k in DIAGNOSTICS)
