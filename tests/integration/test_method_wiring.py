"""How C-BYOL and C-SimCLR connect their heads to the loss, inside one solo-learn training
step, and the two load-time guards (a backbone checkpoint missing tensors, a truncated
checkpoint to resume).

One CPU training step of a small C-BYOL is run with the loss spied on: what reaches
``c_byol_loss`` (and, inside it, ``residual_information``) is compared with the heads applied
to the intended view, recomputed here.
"""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from .helpers import compose_pretrain

SMALL_HEADS = ["method_kwargs.proj_hidden_dim=64", "method_kwargs.pred_hidden_dim=64",
               "method_kwargs.b_hidden_dim=64"]


def _method(tmp_path, name, overrides=()):
    """A small ``name`` from the shipped fashion-mnist config, in train mode."""
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    train = tmp_path / "train"
    for c in range(10):  # solo-learn's online top-5 accuracy needs >= 5 classes
        (train / f"class{c}").mkdir(parents=True, exist_ok=True)
    cfg = compose_pretrain(name, [f"data.train_path={train}", *overrides])
    OmegaConf.set_struct(cfg, False)
    cls = METHODS[name]
    torch.manual_seed(0)
    return cls(cls.add_and_assert_specific_cfg(parse_cfg(cfg))).train()


def _c_byol(tmp_path, overrides=()):
    return _method(tmp_path, "c_byol", [*SMALL_HEADS, *overrides])


def _batch(n: int = 8):
    g = torch.Generator().manual_seed(1)
    views = [torch.rand(n, 3, 32, 32, generator=g) for _ in range(2)]
    return torch.arange(n), views, torch.randint(0, 10, (n,), generator=g)


def _spy(monkeypatch, owner, name: str) -> dict:
    """Wraps ``owner.name``; returns the dict that each call fills with its bound arguments
    and its result (``"output"``)."""
    real = getattr(owner, name)
    seen: dict = {}

    def spy(*args, **kwargs):
        seen.update(inspect.signature(real).bind(*args, **kwargs).arguments)
        seen["output"] = real(*args, **kwargs)
        return seen["output"]

    monkeypatch.setattr(owner, name, spy)
    return seen


def _spied_step(model, monkeypatch):
    """One training step; returns (the bound arguments of c_byol_loss, the calls of
    residual_information in order)."""
    import cvr_solo.ceb.losses as losses
    import cvr_solo.methods.c_byol as c_byol

    real_ri = losses.residual_information
    ri_calls: list = []

    def ri_spy(*args, **kwargs):
        ri_calls.append(inspect.signature(real_ri).bind(*args, **kwargs).arguments)
        return real_ri(*args, **kwargs)

    seen = _spy(monkeypatch, c_byol, "c_byol_loss")
    monkeypatch.setattr(losses, "residual_information", ri_spy)
    batch = _batch()
    with warnings.catch_warnings():  # self.log without a Trainer warns
        warnings.simplefilter("ignore")
        loss = model.training_step(batch, 0)
    assert torch.isfinite(loss)
    seen["total"] = loss
    return batch, seen, ri_calls


@pytest.mark.parametrize("b_view", ["same", "other"])
def test_loss_gets_each_views_heads_and_the_intended_backward_mean(tmp_path, monkeypatch,
                                                                   b_view):
    model = _c_byol(tmp_path, [f"method_kwargs.b_view={b_view}"])
    (_, views, _), seen, ri_calls = _spied_step(model, monkeypatch)
    with torch.no_grad():  # the targets and backward means, recomputed per view
        targets = [model.momentum_forward(x)["z"] for x in views]
        mu_b = [model.backward_encoder(t) for t in targets]
    assert not torch.allclose(targets[0], targets[1], atol=1e-3)  # the views differ
    for v in (0, 1):
        assert torch.allclose(seen["t"][v], targets[v], atol=1e-5), v
        assert torch.allclose(seen["b_loc"][v].detach(), mu_b[v], atol=1e-5), v
    assert (seen["kappa_e"], seen["kappa_b"], seen["w"], seen["beta"], seen["b_view"]) == (
        16384.0, 10.0, 1.0, 0.5, b_view)

    # inside the loss: R(v) uses z, mu_e and e_cos of view v and mu_b of the intended view
    assert len(ri_calls) == 2
    cond = {"same": (0, 1), "other": (1, 0)}[b_view]
    for v, call in enumerate(ri_calls):
        z, e_loc = call["z"], call["e_loc"]
        assert torch.equal(z, seen["z"][v]) and torch.equal(e_loc, seen["e_loc"][v])
        assert torch.allclose(call["b_loc"].detach(), mu_b[cond[v]], atol=1e-5), v
        # e_cos is mu_e^T z of this view (the other view's cosines differ by ~1e-3)
        own = (e_loc.detach().double() * z.detach().double()).sum(-1)
        assert torch.allclose(call["e_cos"].double(), own, atol=1e-5, rtol=0), v


def test_training_samples_unit_mu_e_and_the_prediction_follows_the_sample(tmp_path,
                                                                          monkeypatch):
    from cvr_solo.ceb.vmf import mean_resultant_length

    model = _c_byol(tmp_path)
    _, seen, _ = _spied_step(model, monkeypatch)
    a_d = mean_resultant_length(256, 16384.0)
    for v in (0, 1):
        mu_e, z, cos = (seen["e_loc"][v].detach(), seen["z"][v].detach(),
                        seen["e_cos"][v].detach())
        assert torch.allclose(mu_e.norm(dim=-1), torch.ones(len(mu_e)), atol=1e-5)
        assert torch.allclose(z.norm(dim=-1), torch.ones(len(z)), atol=1e-5)
        assert not torch.allclose(z, mu_e, atol=1e-4)  # a draw, not the mean
        # cosines of vMF(mu_e, 16384) draws at d = 256: A_d = 0.99225, sd ~ 7e-4
        assert abs(cos.mean().item() - a_d) < 2e-3
        with torch.no_grad():
            assert torch.allclose(seen["p"][v], model.predictor.out(seen["z"][v]), atol=1e-5)


def test_training_step_logs_the_loss_terms_and_the_projection_spread(tmp_path, monkeypatch):

    model = _c_byol(tmp_path)
    logged: dict = {}
    how: dict = {}  # the keyword arguments of each logging call, by its first metric

    def log_dict(metrics, **kw):
        logged.update(metrics)
        how[next(iter(metrics))] = kw

    monkeypatch.setattr(model, "log_dict", log_dict)
    monkeypatch.setattr(model, "log", lambda name, value, **kw: log_dict({name: value}, **kw))
    from solo.methods.base import BaseMomentumMethod  # BYOL's parent: the shared step

    base = _spy(monkeypatch, BaseMomentumMethod, "training_step")
    (_, views, _), seen, _ = _spied_step(model, monkeypatch)
    # epoch means over every rank; the sampler's failure count: its max over the epoch
    assert how["train_c_byol_loss"] == {"on_epoch": True, "sync_dist": True}
    assert how["train_vmf_failures"] == {"on_epoch": True, "reduce_fx": "max", "sync_dist": True}
    from cvr_solo.ceb.wood import sampler_failures  # the process's running count

    assert float(logged["train_vmf_failures"]) == float(sampler_failures("cpu"))
    base_out = base["output"]
    out = seen["output"]
    # the step returns the C-BYOL loss plus the online and momentum classifiers' losses
    assert float(seen["total"]) == pytest.approx(float(out.loss + base_out["loss"]))
    assert float(logged["train_c_byol_loss"]) == pytest.approx(float(out.loss))
    assert float(logged["train_neg_cos_sim"]) == pytest.approx(float(out.regression))
    assert float(logged["train_residual"]) == pytest.approx(float(out.residual.mean()))
    # z_std (cvr_solo.common.representation.z_std): the per-feature population std over the batch,
    # both views pooled, of the l2-normalised projections, averaged over features
    with torch.no_grad():
        z = torch.stack([model.projector(model.backbone(x)) for x in views])  # projections
    expected = torch.nn.functional.normalize(z, dim=-1).flatten(0, 1).std(
        dim=0, unbiased=False).mean()
    assert float(logged["train_z_std"]) == pytest.approx(float(expected), rel=1e-4)


def test_c_simclr_step_feeds_each_views_projection_and_logs_what_the_loss_returned(
        tmp_path, monkeypatch):
    import cvr_solo.methods.c_simclr as c_simclr

    model = _method(tmp_path, "c_simclr", ["method_kwargs.proj_hidden_dim=64"])
    from solo.methods.base import BaseMethod  # SimCLR's parent: the shared step

    seen = _spy(monkeypatch, c_simclr, "c_simclr_loss")
    guard = _spy(monkeypatch, c_simclr, "guarded_beta")
    base = _spy(monkeypatch, BaseMethod, "training_step")
    logged: dict = {}
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kw: logged.update(metrics))
    _, views, _ = batch = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = model.training_step(batch, 0)
    with torch.no_grad():
        z = torch.stack([model.projector(model.backbone(x)) for x in views])
    assert not torch.allclose(z[0], z[1], atol=1e-3)
    assert torch.allclose(seen["r1"].detach(), z[0], atol=1e-5)
    assert torch.allclose(seen["r2"].detach(), z[1], atol=1e-5)
    # the shipped fashion-mnist values: kappa_b = 1/temperature (0.2), published kappa_e, beta
    assert (seen["kappa_e"], seen["kappa_b"]) == (1024.0, 5.0)
    # the guard (shipped gamma 0.5, docs/c-simclr-stability.md) on the scheduled beta 1.0
    assert (guard["beta"], guard["kappa_e"], guard["guard"]) == (1.0, 1024.0, 0.5)
    assert guard["r1"] is seen["r1"] and guard["r2"] is seen["r2"]
    held, ratio = guard["output"]
    assert seen["beta"] is held  # the loss gets the guard's beta, a device tensor (no sync)
    out = seen["output"]
    assert float(total) == pytest.approx(float(out.loss + base["output"]["loss"]))
    assert float(logged["train_c_simclr_loss"]) == pytest.approx(float(out.loss))
    assert float(logged["train_residual"]) == pytest.approx(float(out.residual.mean()))
    assert float(logged["train_contrastive"]) == pytest.approx(float(out.contrastive))
    assert float(logged["train_i_yz"]) == pytest.approx(float(out.i_yz))
    assert (float(logged["train_kappa_e"]), float(logged["train_kappa_b"])) == (1024.0, 5.0)
    # the beta the loss used: the guard's, at most the scheduled 1.0, and its A/D
    assert float(logged["train_beta"]) == pytest.approx(float(held))
    assert 0 <= float(held) <= 1.0
    from cvr_solo.ceb.diagnostics import pair_distances

    a, d = pair_distances(*torch.nn.functional.normalize(z, dim=-1))
    assert float(logged["train_align_ratio"]) == pytest.approx(float(ratio))
    assert float(ratio) == pytest.approx(float(a / d), rel=1e-4)
    assert float(logged["train_residual_above_floor"]) == pytest.approx(
        float(out.residual.mean() - model.residual_floor))
    expected = torch.nn.functional.normalize(z, dim=-1).flatten(0, 1).std(
        dim=0, unbiased=False).mean()
    assert float(logged["train_z_std"]) == pytest.approx(float(expected), rel=1e-4)
    from cvr_solo.ceb.diagnostics import lipschitz_lower_bound_from_cos

    h = torch.nn.functional.normalize(z, dim=-1)  # the bound of view 1 against view 2
    bound = lipschitz_lower_bound_from_cos((h[0] * h[1]).sum(-1), views[0], views[1])
    assert float(logged["train_lipschitz_lower_bound"]) == pytest.approx(float(bound),
                                                                         rel=1e-4)


def test_c_simclr_without_the_guard_trains_at_the_scheduled_beta(tmp_path, monkeypatch):
    """beta_guard=null: the release's objective, the scheduled beta as a number, no A/D."""
    import cvr_solo.methods.c_simclr as c_simclr

    model = _method(tmp_path, "c_simclr", ["method_kwargs.proj_hidden_dim=64",
                                           "method_kwargs.beta_guard=null"])
    assert model.beta_guard is None
    seen = _spy(monkeypatch, c_simclr, "c_simclr_loss")
    guard = _spy(monkeypatch, c_simclr, "guarded_beta")
    logged: dict = {}
    monkeypatch.setattr(model, "log_dict", lambda metrics, **kw: logged.update(metrics))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.training_step(_batch(), 0)
    assert not guard and seen["beta"] == 1.0 and isinstance(seen["beta"], float)
    assert "train_align_ratio" not in logged and float(logged["train_beta"]) == 1.0


def test_eval_uses_the_mean_and_train_draws_around_it(tmp_path):
    model = _c_byol(tmp_path)
    x = _batch()[1][0]
    with torch.no_grad():
        model.eval()
        ev = model(x)
        assert torch.allclose(ev["mu_e"].norm(dim=-1), torch.ones(len(x)), atol=1e-5)
        assert torch.equal(ev["z_e"], ev["mu_e"])
        assert torch.equal(ev["e_cos"], torch.ones(len(x)))
        assert torch.allclose(ev["p"], model.predictor.out(ev["mu_e"]), atol=1e-6)
        model.train()
        tr = model(x)
        assert not torch.allclose(tr["z_e"], tr["mu_e"], atol=1e-4)
        assert (tr["e_cos"] < 1).all()
        assert torch.allclose((tr["mu_e"] * tr["z_e"]).sum(-1), tr["e_cos"], atol=1e-5)


def test_linear_loader_refuses_a_backbone_missing_a_tensor(tmp_path):
    from omegaconf import OmegaConf
    from torchvision.models import resnet18

    from cvr_solo.config.errors import ConfigError
    from cvr_solo.launch.linear import load_backbone
    from cvr_solo.solo.stem import use_small_stem

    net = resnet18()
    use_small_stem(net)
    state = {f"backbone.{k}": v for k, v in net.state_dict().items()
             if not k.startswith("fc.") and k != "layer4.1.bn2.weight"}
    torch.save({"state_dict": state}, tmp_path / "b.ckpt")
    cfg = OmegaConf.create({"backbone": {"name": "resnet18", "kwargs": {}},
                            "pretrain_method": "byol", "data": {"dataset": "custom"},
                            "pretrained_feature_extractor": str(tmp_path / "b.ckpt")})
    with pytest.raises(ConfigError, match=r"missing 1 tensors, e.g. \['layer4.1.bn2.weight'\]"):
        load_backbone(cfg)


def test_a_truncated_checkpoint_is_skipped_for_the_newest_readable_one(tmp_path):
    import os

    from cvr_solo.launch.resume import loadable_checkpoint

    good, older, bad = tmp_path / "ep=1.ckpt", tmp_path / "ep=0.ckpt", tmp_path / "ep=2.ckpt"
    torch.save({"epoch": 0}, older)
    torch.save({"epoch": 1, "w": torch.zeros(1000)}, good)
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # killed while saving
    for i, p in enumerate((older, good, bad)):
        os.utime(p, (1000 + i, 1000 + i))
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint"):
        assert loadable_checkpoint(bad) == str(good)
    assert loadable_checkpoint(good) == str(good)
    bad.unlink()
    older.write_bytes(b"not a checkpoint")
    good.write_bytes(b"")
    with pytest.warns(UserWarning):
        assert loadable_checkpoint(good) is None


def test_ceb_metrics_are_logged_as_tensors_on_the_losss_device():
    """Every CEB metric, Python numbers included, reaches Lightning as a tensor on the loss's
    device (the meta device stands in for a GPU), so logging copies nothing host-to-device."""
    from types import SimpleNamespace

    from cvr_solo.methods._ceb import CEBMixin

    logged: dict = {}
    model = SimpleNamespace(kappa_e=1024.0, kappa_b=5.0, residual_floor=1.0,
                            log_dict=lambda metrics, **kw: logged.update(metrics),
                            log=lambda name, value, **kw: logged.update({name: value}))
    meta = torch.empty((), device="meta")
    CEBMixin._log_ceb(model, meta, torch.empty(4, device="meta"), 0.5, meta, "c_byol",
                      {"train_extra": 2.0})
    assert len(logged) == 9  # 7 CEB terms, the extra one, the sampler failures
    assert {type(v) for v in logged.values()} == {torch.Tensor}
    assert {v.device.type for v in logged.values()} == {"meta"}
