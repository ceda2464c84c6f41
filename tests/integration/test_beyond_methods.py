"""C-MoCo v3 and C-SimSiam inside solo-learn: at beta = 0 without noise their losses are
solo-learn's own ``mocov3_loss_func`` / ``simsiam_loss_func``; one training step feeds the
loss the baseline's outputs of the intended views and logs what it returned. (Pretraining,
linear, kNN loading and the collapse warning: test_solo_methods; solo-learn's own
main_pretrain.py: test_launcher_equality; DDP: test_ddp_equivalence.)"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from .test_method_wiring import _batch, _method, _spy

SMALL = ["method_kwargs.proj_hidden_dim=64", "method_kwargs.pred_hidden_dim=64"]


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_c_mocov3_loss_at_beta_zero_is_solo_learns_mocov3_loss(tau):
    from solo.losses.mocov3 import mocov3_loss_func

    from cvr_solo.ceb import c_mocov3_loss

    q1, q2, k1, k2 = (_rand(12, 32, seed=s) for s in range(4))
    ours = c_mocov3_loss([q1, q2], [k1, k2], kappa_b=1 / tau, beta=0.0, sample=False)
    solo = mocov3_loss_func(q1, k2, tau) + mocov3_loss_func(q2, k1, tau)
    assert ours.loss.item() == pytest.approx(solo.item(), rel=1e-12)


def test_c_simsiam_loss_at_beta_zero_is_solo_learns_simsiam_loss():
    from solo.losses.simsiam import simsiam_loss_func

    from cvr_solo.ceb import c_simsiam_loss

    p1, p2, z1, z2 = (_rand(12, 32, seed=s) for s in range(4))
    unit = [F.normalize(_rand(12, 32, seed=s), dim=-1) for s in (4, 5)]
    ours = c_simsiam_loss([p1, p2], [z1, z2], unit, unit, unit, beta=0.0)
    solo = simsiam_loss_func(p1, z2) / 2 + simsiam_loss_func(p2, z1) / 2
    assert ours.loss.item() == pytest.approx(solo.item(), rel=1e-12)
    assert ours.neg_cos_sim.item() == pytest.approx(solo.item(), rel=1e-12)


def _step(model, monkeypatch):
    logged: dict = {}
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kw: logged.update(metrics))
    batch = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = model.training_step(batch, 0)
    return batch[1], total, logged


def test_c_mocov3_step_feeds_the_queries_and_the_other_views_keys(tmp_path, monkeypatch):
    from solo.methods.base import BaseMomentumMethod

    import cvr_solo.methods.c_mocov3 as c_mocov3

    model = _method(tmp_path, "c_mocov3", SMALL)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in _method(tmp_path, "mocov3", SMALL).parameters())  # no new weights
    seen = _spy(monkeypatch, c_mocov3, "c_mocov3_loss")
    guard = _spy(monkeypatch, c_mocov3, "guarded_beta")
    base = _spy(monkeypatch, BaseMomentumMethod, "training_step")
    views, total, logged = _step(model, monkeypatch)
    with torch.no_grad():
        q = [model.predictor(model.projector(model.backbone(x))) for x in views]
        k = [model.momentum_projector(model.momentum_backbone(x)) for x in views]
    assert not torch.allclose(q[0], q[1], atol=0.1) and not torch.allclose(k[0], k[1], atol=0.1)
    for v in (0, 1):  # the recomputation agrees to ~1e-4 (see the C-SimSiam test below)
        assert torch.allclose(seen["q"][v].detach(), q[v], rtol=1e-3, atol=1e-3)
        assert torch.allclose(seen["k"][v], k[v], rtol=1e-3, atol=1e-3)
    # shipped fashion-mnist: kappa_b = 1/temperature (0.2), C-SimCLR's kappa_e and beta
    assert (seen["kappa_e"], seen["kappa_b"]) == (1024.0, 5.0)
    assert (guard["beta"], guard["kappa_e"], guard["guard"]) == (1.0, 1024.0, 0.5)
    # the guard's pairs: each query with the key of the other view
    assert torch.equal(guard["r1"], torch.cat(seen["q"]))
    assert torch.equal(guard["r2"], torch.cat([seen["k"][1], seen["k"][0]]))
    held, ratio = guard["output"]
    assert seen["beta"] is held
    out = seen["output"]
    assert float(total) == pytest.approx(float(out.loss + base["output"]["loss"]))
    assert float(logged["train_c_mocov3_loss"]) == pytest.approx(float(out.loss))
    assert float(logged["train_contrastive_loss"]) == pytest.approx(float(out.contrastive))
    assert float(logged["train_i_yz"]) == pytest.approx(float(out.i_yz))
    assert float(logged["train_residual"]) == pytest.approx(float(out.residual.mean()))
    assert float(logged["train_beta"]) == pytest.approx(float(held))
    assert float(logged["train_align_ratio"]) == pytest.approx(float(ratio))


def test_c_simsiam_step_regresses_on_the_stop_gradient_projection(tmp_path, monkeypatch):
    from solo.methods.base import BaseMethod

    import cvr_solo.methods.c_simsiam as c_simsiam

    model = _method(tmp_path, "c_simsiam", [*SMALL, "method_kwargs.b_hidden_dim=32"])
    assert model.predictor.mlp[-1].bias is None  # SimSiam's predictor, made the release's
    assert model.backward_encoder.mlp[0].out_features == 32
    groups = {g["name"]: g for g in model.learnable_params}
    assert groups["predictor"].get("static_lr") is True  # SimSiam's fixed predictor lr kept
    assert "backward_encoder" in groups
    seen = _spy(monkeypatch, c_simsiam, "c_simsiam_loss")
    base = _spy(monkeypatch, BaseMethod, "training_step")
    views, total, logged = _step(model, monkeypatch)
    with torch.no_grad():
        z = [model.projector(model.backbone(x)) for x in views]
    assert not torch.allclose(z[0], z[1], atol=0.1)
    for v in (0, 1):
        # the recomputed forward agrees to ~1e-4, not exactly (batch-8 BatchNorm without
        # affine at the projector's end amplifies the CPU kernels' rounding, which depends on
        # the thread count); the views differ by O(1)
        assert torch.allclose(seen["t"][v], z[v], rtol=1e-3, atol=1e-3)
        assert not seen["t"][v].requires_grad  # SimSiam's stop-gradient
        assert torch.allclose(seen["b_loc"][v], model.backward_encoder(z[v]), rtol=1e-3, atol=1e-3)
        assert torch.allclose(seen["p"][v], model.predictor.out(seen["z"][v]), rtol=1e-4, atol=1e-4)
    assert (seen["kappa_e"], seen["kappa_b"], seen["beta"], seen["b_view"]) == (
        16384.0, 10.0, 0.0125, "same")
    out = seen["output"]
    assert float(total) == pytest.approx(float(out.loss + base["output"]["loss"]))
    assert float(logged["train_c_simsiam_loss"]) == pytest.approx(float(out.loss))
    assert float(logged["train_neg_cos_sim"]) == pytest.approx(float(out.neg_cos_sim))
    assert float(logged["train_residual"]) == pytest.approx(float(out.residual.mean()))


def test_c_simsiam_checkpoints_drop_only_solo_learns_scheduler_partial(tmp_path):
    import functools

    model = _method(tmp_path, "c_simsiam", [*SMALL, "method_kwargs.b_hidden_dim=32"])
    state = {"lr_schedulers": [{"get_lr": functools.partial(max, 1), "last_epoch": 3},
                               {"last_epoch": 4}],  # a second scheduler, without one
             "state_dict": {"w": 1}}
    model.on_save_checkpoint(state)
    assert state == {"lr_schedulers": [{"last_epoch": 3}, {"last_epoch": 4}],
                     "state_dict": {"w": 1}}
    weights_only = {"state_dict": {"w": 1}}  # ModelCheckpoint(save_weights_only=True) saves
    model.on_save_checkpoint(weights_only)  # no scheduler states
    assert weights_only == {"state_dict": {"w": 1}}
