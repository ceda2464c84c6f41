"""The CEB state a method carries through training (cvr_solo.methods._ceb.CEBMixin): the beta
schedule in optimiser steps and the residual floor it logs. The mixin is driven with a
stand-in trainer; only importing ``cvr_solo.methods`` needs solo-learn (skipped without)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from cvr_solo.solo.env import SoloLearnUnavailableError

try:
    from cvr_solo.methods._ceb import CEBMixin
except SoloLearnUnavailableError as err:
    pytest.skip(f"cvr_solo.methods needs solo-learn: {str(err).splitlines()[0]}",
                allow_module_level=True)


class _Method(CEBMixin):
    """The mixin on its own, with the two things solo-learn's module would give it."""

    def __init__(self, max_epochs: int, steps: int, **mk) -> None:
        kwargs = {"kappa_e": 16384.0, "kappa_b": 10.0, "beta": 0.5, "beta_schedule": "constant",
                  "beta_warmup_epochs": 0, "proj_output_dim": 256, **mk}
        self._init_ceb(OmegaConf.create({"method_kwargs": kwargs}))
        self.max_epochs = max_epochs
        self.trainer = SimpleNamespace(estimated_stepping_batches=steps, global_step=0)
        self.logged: dict = {}

    def log_dict(self, metrics, **kwargs) -> None:
        self.logged.update(metrics)
        self.log_kwargs = kwargs

    def log(self, name, value, **kwargs) -> None:
        self.logged[name] = value

    def beta_at_step(self, step: int) -> float:
        self.trainer.global_step = step
        return self.current_beta()


def test_warmup_epochs_are_converted_to_steps():
    # 4 epochs of 10 steps; 2 warm-up epochs = 20 steps: half-way through the ramp at step 10
    m = _Method(max_epochs=4, steps=40, beta=0.8, beta_schedule="warmup",
                beta_warmup_epochs=2)
    assert m.beta_at_step(0) == 0.0
    assert m.beta_at_step(10) == pytest.approx(0.4)
    assert m.beta_at_step(19) == pytest.approx(0.8 * 19 / 20)
    assert m.beta_at_step(20) == pytest.approx(0.8)
    assert m.beta_at_step(39) == pytest.approx(0.8)


def test_fractional_warmup_epochs_and_steps_past_the_end():
    m = _Method(max_epochs=10, steps=100, beta=1.0, beta_schedule="warmup",
                beta_warmup_epochs=2.5)  # 25 steps
    assert m.beta_at_step(5) == pytest.approx(0.2)
    assert m.beta_at_step(500) == 1.0


def test_cosine_ramps_over_all_steps_and_constant_is_constant():
    m = _Method(max_epochs=4, steps=40, beta=0.6, beta_schedule="cosine")
    assert m.beta_at_step(0) == 0.0
    assert m.beta_at_step(20) == pytest.approx(0.3)
    assert m.beta_at_step(40) == pytest.approx(0.6)
    assert _Method(max_epochs=4, steps=40, beta=0.6).beta_at_step(3) == 0.6


@pytest.mark.parametrize(("kappa_e", "floor"), [(16384.0, 522.36), (1024.0, 184.68)])
def test_logged_residual_floor_is_the_spec_value(kappa_e, floor):
    # floors of KL(vMF(mu, kappa_e) || vMF(mu, kappa_b = 10)) at d = 256, from the design
    # page: swapping the kappas gives another number
    m = _Method(max_epochs=1, steps=1, kappa_e=kappa_e)
    assert m.residual_floor == pytest.approx(floor, abs=5e-3)
    residual = torch.tensor([floor + 1.0, floor + 3.0], dtype=torch.float64)
    m._log_ceb(torch.tensor(2.0), residual, 0.5, torch.tensor(0.1), "c_byol",
               {"train_neg_cos_sim": torch.tensor(0.7)})
    assert float(m.logged["train_residual"]) == pytest.approx(floor + 2.0, abs=5e-3)
    assert float(m.logged["train_residual_above_floor"]) == pytest.approx(2.0, abs=5e-3)
    assert (m.logged["train_kappa_e"], m.logged["train_kappa_b"]) == (kappa_e, 10.0)
    assert m.logged["train_beta"] == 0.5
    assert float(m.logged["train_c_byol_loss"]) == 2.0
    assert float(m.logged["train_neg_cos_sim"]) == pytest.approx(0.7)
    assert float(m.logged["train_z_std"]) == pytest.approx(0.1)
    # epoch means (the benchmark reads them), averaged over ranks
    assert m.log_kwargs == {"on_epoch": True, "sync_dist": True}


def test_one_epoch_and_one_step_runs():
    # max_epochs = 1: warm-up epochs are a fraction of the run's steps
    m = _Method(max_epochs=1, steps=10, beta=1.0, beta_schedule="warmup", beta_warmup_epochs=0.5)
    assert m.beta_at_step(1) == pytest.approx(0.2)
    # one optimiser step in all: the cosine ramp ends at that step
    assert _Method(max_epochs=1, steps=1, beta=1.0, beta_schedule="cosine").beta_at_step(1) == 1.0


def _cfg(method_kwargs: dict, crops: int = 2, max_epochs: int = 4):
    return OmegaConf.create({"max_epochs": max_epochs, "base_kappa": 20.0,
                             "augmentations": [{"crop_size": 32, "num_crops": crops}],
                             "method_kwargs": {"proj_hidden_dim": 64, "proj_output_dim": 16,
                                               "pred_hidden_dim": 64, **method_kwargs}})


def test_fill_ceb_cfg_resolves_checks_against_max_epochs_and_names_the_method():
    from cvr_solo.config.errors import ConfigError
    from cvr_solo.methods._ceb import fill_ceb_cfg

    cfg = fill_ceb_cfg(_cfg({"kappa_b": "${base_kappa}", "beta": 0.25}), "c_byol")
    mk = cfg.method_kwargs
    assert (mk.kappa_b, mk.beta, mk.kappa_e, mk.b_view) == (20.0, 0.25, 16384.0, "same")
    with pytest.raises(ConfigError, match=r"method_kwargs.beta_warmup_epochs must be .* "
                                          r"and <= 4, got 5"):
        fill_ceb_cfg(_cfg({"beta_schedule": "warmup", "beta_warmup_epochs": 5}), "c_byol")
    with pytest.raises(ConfigError, match=r"c_simclr needs exactly 2 crops of one size"):
        fill_ceb_cfg(_cfg({}, crops=3), "c_simclr")
