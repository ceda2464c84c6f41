"""Our launcher trains as solo-learn's own does: ``cvr-solo pretrain`` and solo-learn's
unmodified ``main_pretrain.py``, on the same composed config and seed (fp32, CPU, a few
steps), give the same loss at every step, for every baseline and C-variant we ship; and
solo-learn's checkpoint loads as its main_knn.py / main_umap.py load it.

The losses are read by a test double loaded in both processes (a ``sitecustomize`` that adds
a callback writing each step's training loss, solo-learn's method loss plus its online
classifier's). Bit-equal losses mean the same data order, augmentations, initial weights,
lr schedule and optimiser steps: whatever cvr-solo adds around the run (start-up checks,
metrics, the collapse monitor, the progress bar) leaves training alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvr_solo.common.catalog import lookup

from .helpers import PRETRAIN, crop_overrides

RECORDER = """
import functools, json, os
import lightning.pytorch as pl

class _StepLoss(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with open(os.environ["CVR_SOLO_TEST_LOSSES"], "a") as f:
            f.write(json.dumps([trainer.global_step, float(loss)]) + "\\n")

_init = pl.Trainer.__init__

# the launchers pick the Trainer keys of a config by inspect.signature(Trainer.__init__)
@functools.wraps(_init)
def _with_recorder(self, *args, callbacks=None, **kwargs):
    _init(self, *args, callbacks=[*(callbacks or []), _StepLoss()], **kwargs)

pl.Trainer.__init__ = _with_recorder
"""

def _losses(argv: list[str], cwd: Path, site: Path, out: Path) -> list[list[float]]:
    env = {**os.environ, "PYTHONPATH": str(site), "CVR_SOLO_TEST_LOSSES": str(out),
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.skipif(not os.environ.get("CVR_SOLO_TEST_SOLO_SRC"),
                    reason="set CVR_SOLO_TEST_SOLO_SRC to a solo-learn checkout to run its own "
                           "unmodified main_pretrain.py beside cvr-solo pretrain")
@pytest.mark.parametrize("name", [  # the current Lightning (CI stage 3): C-SimCLR and C-BYOL,
    # one of each CEB family; C-MoCo v3 and C-SimSiam take their paths again on other base
    # classes (their one step: test_beyond_methods)
    pytest.param("simclr", marks=pytest.mark.pins_only), "c_simclr",
    pytest.param("byol", marks=pytest.mark.pins_only), "c_byol",
    pytest.param("barlow", marks=pytest.mark.pins_only),
    pytest.param("mocov3", marks=pytest.mark.pins_only),
    pytest.param("c_mocov3", marks=pytest.mark.pins_only),
    pytest.param("simsiam", marks=pytest.mark.pins_only),
    pytest.param("c_simsiam", marks=pytest.mark.pins_only)])
def test_cvr_solo_pretrain_and_solo_learns_main_pretrain_give_the_same_losses(
        tmp_path, fm_data, name):
    src = Path(os.environ["CVR_SOLO_TEST_SOLO_SRC"])
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RECORDER)
    over = [f"data.train_path={fm_data / 'train'}",
            # solo-learn's own loaders validate custom data at 224 px: no validation in either
            "data.val_path=null",
            "max_epochs=1", "optimizer.batch_size=20", "accelerator=cpu", "precision=32",
            # one loader worker in both: cvr-solo lowers a count above the machine's CPUs,
            # and another worker count deals the augmentations' random streams differently
            "data.num_workers=1",
            "++limit_train_batches=3",  # three steps of the real 1-epoch schedule
            *crop_overrides(name)]
    config = ["--config-path", str(PRETRAIN), "--config-name", f"{name}.yaml"]
    runs = {}
    for launcher, argv in (
            ("solo", [sys.executable, str(src / "main_pretrain.py")]),
            ("cvr", [sys.executable, "-m", "cvr_solo.cli", "pretrain"])):
        folder = tmp_path / launcher
        folder.mkdir()
        runs[launcher] = _losses([*argv, *config, *over, f"checkpoint.dir={folder / 'ck'}"],
                                 folder, site, folder / "losses.jsonl")
    assert [s for s, _ in runs["cvr"]] == [1, 2, 3]
    assert runs["cvr"] == runs["solo"]

    # solo-learn's own checkpoint: the small stem reached every backbone (online and
    # momentum), and main_knn.py / main_umap.py's loading takes it:
    # METHODS[method].load_from_checkpoint(ckpt, strict=False, cfg=args.json)
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    info = lookup(name)
    ckpt = next((tmp_path / "solo" / "ck" / info.name).rglob("*.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    for prefix in ("backbone", *(["momentum_backbone"] if info.momentum else [])):
        assert state[f"{prefix}.conv1.weight"].shape == (64, 3, 3, 3), prefix
    if info.name == "simsiam":
        return  # torch.load's weights_only default refuses it (usage.md, solo-learn quirks)
    args = OmegaConf.create(json.loads((ckpt.parent / "args.json").read_text()))
    model = METHODS[info.name].load_from_checkpoint(ckpt, strict=False, cfg=args)
    assert type(model) is METHODS[info.name]
    assert torch.equal(model.backbone.conv1.weight, state["backbone.conv1.weight"])
