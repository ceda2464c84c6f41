"""The one table of the methods cvr-solo knows: solo-learn's baselines and their C-variants.

Every other module (config checks, the benchmark, its report) reads method facts from
:data:`METHODS`; nothing here imports solo-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvr_solo.common.metric_names import (
    BARLOW_LOSS,
    CONTRASTIVE,
    CONTRASTIVE_LOSS,
    NCE_LOSS,
    NEG_COS_SIM,
    STEP,
)

__all__ = ["BASELINE_OF", "CEB_FAMILIES", "CEB_METHODS", "METHODS", "MethodInfo", "lookup"]

#: How a compressed variant's decoder reads z (:attr:`MethodInfo.family`).
CEB_FAMILIES = ("contrastive", "regression")


@dataclass(frozen=True)
class MethodInfo:
    """What the project knows of one method.

    Attributes:
        name: its key in solo-learn's ``solo.methods.METHODS``.
        config: the file name (no ``.yaml``) under ``scripts/pretrain/<dataset>/``.
        baseline: for a compressed variant, the solo-learn method it extends and is compared
            with (same optimiser, lr, loss scale, augmentations, backbone and stem); None for
            a baseline.
        base_kwargs: the solo-learn ``method_kwargs`` of the method's family (a C-variant
            takes its baseline's plus the CEB keys).
        loss_key: the logged per-step term comparable between a baseline and its variant
            (NT-Xent / C-SimCLR's contrastive cross-entropy; BYOL's / C-BYOL's unweighted
            regression; MoCo v3's InfoNCE x 2 tau / C-MoCo v3's at the sample z; SimSiam's /
            C-SimSiam's negative cosine; Barlow Twins' own loss).
        momentum: whether solo-learn builds a momentum (EMA) backbone for it.
        aliases: other names accepted on the command line (config file names).
        family: for a compressed variant, how its decoder reads z: ``contrastive`` (InfoNCE
            over the batch, kappa_b = 1/temperature, the beta guard) or ``regression`` (to a
            stop-gradient target, a stochastic predictor and a trained backward encoder).
    """

    name: str
    config: str
    baseline: str | None
    base_kwargs: tuple[str, ...]
    loss_key: str
    momentum: bool = False
    aliases: tuple[str, ...] = ()
    family: str | None = None


_SIMCLR_KW = ("proj_hidden_dim", "proj_output_dim", "temperature")
_BYOL_KW = ("proj_hidden_dim", "proj_output_dim", "pred_hidden_dim")
_MOCOV3_KW = (*_BYOL_KW, "temperature")

#: name -> MethodInfo, baselines first, each C-variant after its baseline.
METHODS: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo("simclr", "simclr", None, _SIMCLR_KW, NCE_LOSS + STEP),
    MethodInfo("c_simclr", "c_simclr", "simclr", _SIMCLR_KW, CONTRASTIVE + STEP,
               family="contrastive"),
    MethodInfo("byol", "byol", None, _BYOL_KW, NEG_COS_SIM + STEP, momentum=True),
    MethodInfo("c_byol", "c_byol", "byol", _BYOL_KW, NEG_COS_SIM + STEP, momentum=True,
               family="regression"),
    MethodInfo("mocov3", "mocov3", None, _MOCOV3_KW, CONTRASTIVE_LOSS + STEP, momentum=True),
    MethodInfo("c_mocov3", "c_mocov3", "mocov3", _MOCOV3_KW, CONTRASTIVE_LOSS + STEP,
               momentum=True, family="contrastive"),
    MethodInfo("simsiam", "simsiam", None, _BYOL_KW, NEG_COS_SIM + STEP),
    MethodInfo("c_simsiam", "c_simsiam", "simsiam", _BYOL_KW, NEG_COS_SIM + STEP,
               family="regression"),
    MethodInfo("barlow_twins", "barlow", None,
               ("proj_hidden_dim", "proj_output_dim", "lamb", "scale_loss"),
               BARLOW_LOSS + STEP, aliases=("barlow",)),
)}

#: compressed variant -> its baseline.
BASELINE_OF: dict[str, str] = {m.name: m.baseline for m in METHODS.values() if m.baseline}
#: the compressed variants cvr-solo adds to solo-learn.
CEB_METHODS: tuple[str, ...] = tuple(BASELINE_OF)


def lookup(name: str) -> MethodInfo:
    """The entry of ``name`` or one of its aliases.

    Raises:
        KeyError: naming the known methods, when ``name`` is none of them.

    Example:
        >>> lookup("barlow").name
        'barlow_twins'
    """
    for info in METHODS.values():
        if name == info.name or name in info.aliases:
            return info
    raise KeyError(f"unknown method {name!r}; one of {', '.join(METHODS)}")
