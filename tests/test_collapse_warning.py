"""The collapse warning on a toy Lightning model (needs Lightning, which comes with
solo-learn: skipped in the stage without it)."""

from __future__ import annotations

import math

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="Lightning comes with solo-learn "
                         "(cvr-solo install-solo); the callback needs it")

from cvr_solo.launch.collapse import DOCS, CollapseMonitor  # noqa: E402
from cvr_solo.launch.progress import run_summary  # noqa: E402

D = 16


class _Toy(pl.LightningModule):
    """Two views through ``projector``, as solo-learn's methods call it. ``collapsed``: the
    projector maps every input to (almost) one point."""

    def __init__(self, collapsed: bool) -> None:
        super().__init__()
        self.projector = torch.nn.Linear(8, D)
        if collapsed:
            with torch.no_grad():
                self.projector.weight.mul_(1e-6)
                self.projector.bias.fill_(1.0)
        self.calls = 0

    def training_step(self, batch, batch_idx):
        x1, x2 = batch
        z1, z2 = self.projector(x1), self.projector(x2)
        self.calls += 2
        return 0 * (z1.sum() + z2.sum())  # no update: the state stays as built

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(collapsed: bool, steps: int, every: int, mon: CollapseMonitor) -> pl.Trainer:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 8, 8, generator=g)
    data = torch.utils.data.TensorDataset(x, x + 0.1 * torch.randn(x.shape, generator=g))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=every, callbacks=[mon])
    trainer.fit(_Toy(collapsed), torch.utils.data.DataLoader(data, batch_size=8))
    return trainer


def test_fires_once_on_a_collapse_with_the_step_and_the_docs(capsys):
    mon = CollapseMonitor(patience=3)
    trainer = _fit(collapsed=True, steps=8, every=2, mon=mon)
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "collapsed" in ln]
    assert len(lines) == 1, out
    # logged steps are 2, 4, 6, 8 (global_step after the step): the third in a row is step 6
    assert mon.collapsed_at == 6
    assert lines[0].startswith("cvr-solo pretrain: warning: projections collapsed at step 6:")
    assert DOCS in lines[0] and f"< {0.05 / math.sqrt(D):.4f}" in lines[0]
    assert trainer.callback_metrics["train_collapsed"].item() == 1.0
    assert trainer.callback_metrics["train_proj_std"].item() < 1e-4
    summary = run_summary("pretrain", trainer, None, None, None)
    assert f"warning: {mon.message}" in summary


def test_quiet_on_a_spread_projection(capsys):
    mon = CollapseMonitor(patience=1)
    trainer = _fit(collapsed=False, steps=6, every=1, mon=mon)
    assert mon.collapsed_at is None and mon.message is None
    assert "collapsed" not in capsys.readouterr().out
    assert trainer.callback_metrics["train_collapsed"].item() == 0.0
    assert trainer.callback_metrics["train_proj_std"].item() > 0.05 / math.sqrt(D)
    ratio = trainer.callback_metrics["train_proj_align_ratio"].item()
    assert 0 < ratio < 0.2  # the toy's views are close, its images apart
    assert "warning" not in run_summary("pretrain", trainer, None, None, None)


def test_streak_resets_and_a_custom_threshold_counts():
    # the threshold above every std: each logged step counts; patience 4 > 3 logged steps
    mon = CollapseMonitor(patience=4, threshold=10.0)
    _fit(collapsed=False, steps=6, every=2, mon=mon)
    assert mon.streak == 3 and mon.collapsed_at is None
    mon = CollapseMonitor(patience=3, threshold=10.0)
    _fit(collapsed=False, steps=6, every=2, mon=mon)
    assert mon.collapsed_at == 6


def test_captures_only_on_logged_steps():
    mon = CollapseMonitor()
    seen: list[int] = []
    original = mon.on_train_batch_end

    def spy(trainer, pl_module, outputs, batch, batch_idx):
        seen.append(len(mon._z))
        original(trainer, pl_module, outputs, batch, batch_idx)

    mon.on_train_batch_end = spy
    _fit(collapsed=False, steps=9, every=3, mon=mon)
    # 9 steps, logged every 3rd: two projections held on those, none on the others
    assert seen == [0, 0, 2, 0, 0, 2, 0, 0, 2]
    assert mon._handle is None  # the hook is removed when training ends


def test_state_survives_a_checkpoint():
    mon = CollapseMonitor()
    mon.streak, mon.collapsed_at, mon.message = 2, 7, "m"
    other = CollapseMonitor()
    other.load_state_dict(mon.state_dict())
    assert (other.streak, other.collapsed_at, other.message) == (2, 7, "m")


@pytest.mark.parametrize(("kwargs", "match"), [({"patience": 0}, "patience"),
                                               ({"threshold": -1.0}, "threshold"),
                                               ({"patience": True}, "patience")])
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CollapseMonitor(**kwargs)
