"""Which branch of solo-learn's LARS (clip_lr=True) moves each weight tensor at initialisation.

With clip_lr the step of a LARS-adapted tensor is min(eta*|p|, lr*|g|) along g, so where
eta*|p| < lr*|g| the step is eta*|p| whatever the lr and its warm-up. One batch of 128 images
of the seed-5 subset, the given config with the cpu budget's overrides (ImageNet stem unless
the third argument is 'small').

    python trust.py CONFIG_DIR barlow.yaml [small]
"""

import sys

import torch
from solo.losses.barlow import barlow_loss_func
from solo.losses.byol import byol_loss_func
from solo.losses.simclr import simclr_loss_func

from cvr_solo.config.compose import compose_and_validate
from cvr_solo.launch.pretrain import _pretrain_loaders, build_model

SHOWN = ("backbone.conv1", "backbone.layer1.0.conv1", "backbone.layer4.1.conv2",
         "projector.0", "projector.3", "projector.6")
cfgdir, name = sys.argv[1], sys.argv[2]
small = len(sys.argv) > 3 and sys.argv[3] == "small"
over = {"data.train_path": "/work/exp23/runs/ctl_barlow/data/seed-5", "data.val_path": "null",
        "data.num_workers": 0, "optimizer.batch_size": 128, "accelerator": "cpu",
        "max_epochs": 2, "++backbone.kwargs.small_stem": small,
        "++diagnostics.enabled": False, "augmentations": "asymmetric.yaml", "seed": 5}
cfg, model = build_model(compose_and_validate(cfgdir, name, over))
loader, _ = _pretrain_loaders(cfg)
torch.manual_seed(0)
idx, xs, _y = next(iter(loader))
model.train()
feats = [model.backbone(x) for x in xs]
if cfg.method == "barlow_twins":
    z = [model.projector(f) for f in feats]
    loss = barlow_loss_func(z[0], z[1], lamb=model.lamb, scale_loss=model.scale_loss)
elif cfg.method == "simclr":
    z = torch.cat([model.projector(f) for f in feats])
    loss = simclr_loss_func(z, torch.cat([idx, idx]), temperature=model.temperature)
else:
    p = [model.predictor(model.projector(f)) for f in feats]
    with torch.no_grad():
        zt = [model.momentum_projector(model.momentum_backbone(x)) for x in xs]
    loss = byol_loss_func(p[0], zt[1]) + byol_loss_func(p[1], zt[0])
loss.backward()
lr, eta, wd = cfg.optimizer.lr, cfg.optimizer.kwargs.eta, cfg.optimizer.weight_decay
rows = []
for n, prm in model.named_parameters():
    if prm.grad is None or prm.ndim == 1 or n.startswith("classifier"):
        continue
    pn, gn = prm.norm().item(), prm.grad.norm().item()
    rows.append((n, eta * pn / (gn + wd * pn) / lr))  # < 1: the trust ratio binds (eta*|p|)
ratios = sorted(r for _, r in rows)
print(f"{name}: loss {loss.item():.3f} lr(scaled) {lr} eta {eta}: "
      f"{sum(r < 1 for r in ratios)}/{len(rows)} LARS tensors step eta*|p| (lr-independent); "
      f"eta|p|/(lr|g|) median {ratios[len(ratios) // 2]:.3g}, min {ratios[0]:.3g}")
for n, r in rows:
    if n.startswith(SHOWN):
        print(f"   {n:40s} eta|p|/(lr|g|) = {r:.3g}")
