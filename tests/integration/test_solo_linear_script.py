"""solo-learn's own, unmodified main_linear.py on checkpoints of the shipped Fashion-MNIST
configs (small-image stem) with the shipped linear config, which does not name the stem; and
the model loading of its main_knn.py / main_umap.py (the scripts move data to CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.integration.helpers import LINEAR


@pytest.mark.skipif(not os.environ.get("CVR_SOLO_TEST_SOLO_SRC"),
                    reason="set CVR_SOLO_TEST_SOLO_SRC to a solo-learn checkout to run its own "
                           "unmodified main_linear.py")
# main_linear reads every method's checkpoint the same way (backbone.* weights): C-BYOL's
# (a momentum method) stands for C-SimCLR's and C-MoCo v3's; C-SimSiam's is the one whose
# checkpoint loads with torch.load's weights_only default (CSimSiam.on_save_checkpoint), so on
# the current Lightning (CI stage 3) it runs alone
@pytest.mark.parametrize("method", [pytest.param("c_byol", marks=pytest.mark.pins_only),
                                    "c_simsiam"])
def test_solo_learns_own_main_linear_evaluates_a_small_stem_checkpoint(tmp_path, fm_data,
                                                                      tiny_runs, method):
    src = Path(os.environ["CVR_SOLO_TEST_SOLO_SRC"])
    pre = tiny_runs({"c_byol": "c_byol-same"}.get(method, method))  # shared, read only
    assert pre.returncode == 0, pre.stderr[-3000:]
    ckpt = next((pre.models / method).rglob("*.ckpt"))
    trained = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert trained["backbone.conv1.weight"].shape == (64, 3, 3, 3)
    # solo-learn's loaders read custom data at 224 px: one step each way keeps it short
    proc = subprocess.run(
        [sys.executable, str(src / "main_linear.py"), "--config-path", str(LINEAR),
         "--config-name", "linear.yaml", f"pretrained_feature_extractor='{ckpt}'",
         f"pretrain_method={method}", f"data.train_path={fm_data / 'train'}",
         f"data.val_path={fm_data / 'val'}", f"checkpoint.dir={tmp_path / 'lin'}",
         "max_epochs=1", "optimizer.batch_size=10", "data.num_workers=0", "accelerator=cpu",
         "++limit_train_batches=1", "++limit_val_batches=1", "++num_sanity_val_steps=0",
         "++enable_progress_bar=False"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "have the small-image (3x3 stride-1 conv1, no max-pool) stem" in proc.stderr
    probe = next((tmp_path / "lin" / "linear").rglob("*.ckpt"))
    state = torch.load(probe, map_location="cpu", weights_only=False)["state_dict"]
    # the probe's frozen backbone holds the pretrained weights, stem included
    for key in ("conv1.weight", "layer4.1.conv2.weight"):
        assert torch.equal(state[f"backbone.{key}"], trained[f"backbone.{key}"]), key
    # main_knn.py / main_umap.py: METHODS[method].load_from_checkpoint(ckpt, strict=False,
    # cfg=args.json) in a fresh process
    load = subprocess.run(
        [sys.executable, "-W", "ignore", "-c",
         "import json, sys, torch; from omegaconf import OmegaConf; "
         "from solo.methods import METHODS; a = json.load(open(sys.argv[2])); "
         "m = METHODS[a['method']].load_from_checkpoint(sys.argv[1], strict=False, "
         "cfg=OmegaConf.create(a)); "
         "w = torch.load(sys.argv[1], weights_only=False)['state_dict']; "
         "print(type(m).__name__, torch.equal(m.backbone.conv1.weight, "
         "w['backbone.conv1.weight']))", str(ckpt), str(ckpt.parent / "args.json")],
        capture_output=True, text=True, timeout=300)
    name = {"c_byol": "CBYOL", "c_simclr": "CSimCLR", "c_simsiam": "CSimSiam",
            "c_mocov3": "CMoCoV3"}[method]
    assert load.stdout.strip().splitlines()[-1] == f"{name} True", load.stderr[-2000:]
