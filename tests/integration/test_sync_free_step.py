"""One training step of each method inside solo-learn and Lightning, on a GPU, with every
device synchronisation an error (torch.cuda.set_sync_debug_mode("error")); skipped without
CUDA. The checked window is training_step (forward, losses, logging) and backward; the
optimiser step is solo-learn's LARS, which decides on tensor values per parameter (a sync
each, for the baselines too) and is left out. The baselines run as controls: a sync they
share comes from solo-learn or Lightning, not from cvr-solo."""

from __future__ import annotations

import pytest
import torch

from .helpers import compose_pretrain

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: the sync check needs a GPU")


class _Repeat:
    """``n`` times the same batch (a plain list would be read as n data loaders)."""

    def __init__(self, batch, n: int) -> None:
        self.batch, self.n = batch, n

    def __iter__(self):
        return iter([self.batch] * self.n)

    def __len__(self) -> int:
        return self.n


def _sync_window():
    from lightning.pytorch import Callback

    class SyncIsAnError(Callback):
        """From the start of batch 2 (after Lightning registered its metrics) to the end of
        its backward pass."""

        def __init__(self) -> None:
            self.checked = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 2:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            if torch.cuda.get_sync_debug_mode() != 0:
                torch.cuda.set_sync_debug_mode("default")
                self.checked = True

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("default")

    return SyncIsAnError()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("method", ["simclr", "byol", "c_simclr", "c_byol"])
def test_training_step_does_not_sync(tmp_path, method, precision):
    from lightning.pytorch import Trainer

    from cvr_solo.launch.pretrain import build_model

    for c in range(10):
        (tmp_path / f"class{c}").mkdir()
    cfg = compose_pretrain(method, [f"data.train_path={tmp_path}", "optimizer.batch_size=64"])
    cfg, model = build_model(cfg)
    g = torch.Generator().manual_seed(0)
    crop = int(cfg.augmentations[0].crop_size)
    batch = [torch.arange(64), [torch.randn(64, 3, crop, crop, generator=g) for _ in range(2)],
             torch.randint(0, 10, (64,), generator=g)]
    window = _sync_window()
    trainer = Trainer(accelerator="gpu", devices=1, precision=precision, max_steps=4,
                      max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, callbacks=[window])
    try:
        trainer.fit(model, train_dataloaders=_Repeat(batch, 4))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert window.checked
    assert trainer.global_step == 4
