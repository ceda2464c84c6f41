"""C-BYOL's heads, the small-image stem and the methods table (no solo-learn needed)."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from cvr_solo.ceb.heads import (
    BackwardEncoder,
    StochasticPredictor,
    drop_last_bias,
    release_mlp,
)
from cvr_solo.ceb.vmf import mean_resultant_length
from cvr_solo.common.catalog import BASELINE_OF, CEB_FAMILIES, CEB_METHODS, METHODS, lookup
from cvr_solo.solo.stem import (
    checkpoint_has_small_stem,
    follow_checkpoint_stem,
    has_small_stem,
    use_small_stem,
)


def test_catalog_has_one_entry_per_method_and_variants_share_their_baselines_family():
    assert list(METHODS) == ["simclr", "c_simclr", "byol", "c_byol", "mocov3", "c_mocov3",
                             "simsiam", "c_simsiam", "barlow_twins"]
    assert BASELINE_OF == {"c_simclr": "simclr", "c_byol": "byol", "c_mocov3": "mocov3",
                           "c_simsiam": "simsiam"}
    assert CEB_METHODS == ("c_simclr", "c_byol", "c_mocov3", "c_simsiam")
    for variant, base in BASELINE_OF.items():
        assert METHODS[variant].base_kwargs == METHODS[base].base_kwargs
        assert METHODS[variant].momentum == METHODS[base].momentum
        assert METHODS[variant].loss_key == METHODS[base].loss_key or variant == "c_simclr"
        assert METHODS[variant].family in CEB_FAMILIES and METHODS[base].family is None
    assert lookup("barlow").name == "barlow_twins"
    with pytest.raises(KeyError, match="unknown method 'moco'"):
        lookup("moco")


def test_stochastic_predictor_samples_in_training_and_returns_the_mean_in_eval():
    torch.manual_seed(0)
    d, kappa = 64, 100.0
    head = StochasticPredictor(release_mlp(d, 32, d), d, kappa_e=kappa)
    y = torch.randn(512, d)
    train = head.train()(y)
    assert torch.allclose(train.mu_e.norm(dim=-1), torch.ones(512), atol=1e-5)
    assert torch.allclose((train.mu_e * train.z).sum(-1), train.cos, atol=1e-5)
    assert (train.cos < 1 - 1e-3).all()  # a draw, not the mean
    # E[mu^T z] = A_d(kappa) for a vMF draw
    assert train.cos.mean().item() == pytest.approx(mean_resultant_length(d, kappa), abs=0.01)
    assert torch.allclose(train.p, head.out(train.z))
    ev = head.eval()(y)
    assert torch.equal(ev.z, ev.mu_e) and torch.equal(ev.cos, torch.ones(512))
    assert torch.allclose(ev.p, head.out(ev.mu_e))


def test_stochastic_predictor_mean_is_the_normalised_mlp_output_and_layers_are_bias_free():
    head = StochasticPredictor(release_mlp(16, 8, 16), 16, kappa_e=10.0).eval()
    y = torch.randn(4, 16)
    mlp_out = head.mlp(y)
    assert torch.allclose(head(y).mu_e, mlp_out / mlp_out.norm(dim=-1, keepdim=True))
    assert head.mlp[-1].bias is None and head.out.bias is None
    assert head.mlp[0].bias is not None  # only the last layer loses its bias (release)
    with pytest.raises(ValueError, match="kappa_e"):
        StochasticPredictor(release_mlp(16, 8, 16), 16, kappa_e=0.0)


def test_drop_last_bias_keeps_the_weights_and_wraps_the_mlp_as_built():
    torch.manual_seed(2)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                              torch.nn.Linear(8, 16))  # solo-learn's BYOL predictor, small
    weights = {k: v.clone() for k, v in mlp.state_dict().items() if k != "3.bias"}
    head = StochasticPredictor(drop_last_bias(mlp), 16, kappa_e=10.0)
    assert head.mlp is mlp and mlp[-1].bias is None
    assert all(torch.equal(mlp.state_dict()[k], v) for k, v in weights.items())
    assert sorted(head.state_dict()) == sorted(
        [f"mlp.{k}" for k in weights] + ["out.weight"])
    y = torch.randn(4, 16)
    head.eval()
    expected = torch.nn.functional.normalize(mlp[3](mlp[2](mlp[1](mlp[0](y)))), dim=-1)
    assert torch.allclose(head(y).mu_e, expected, atol=1e-6)
    with pytest.raises(TypeError, match="last module must be an nn.Linear"):
        drop_last_bias(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))


def test_backward_encoder_normalises_its_input_and_output_and_never_reaches_the_target():
    torch.manual_seed(1)
    b = BackwardEncoder(16, 8).eval()
    t = torch.randn(4, 16, requires_grad=True)
    mu_b = b(t)
    assert torch.allclose(mu_b.norm(dim=-1), torch.ones(4), atol=1e-6)
    rows = torch.tensor([0.5, 3.0, 10.0, 0.1]).unsqueeze(1)  # eval: rows do not interact
    assert torch.allclose(b(rows * t), mu_b, atol=1e-5)  # it sees l2norm(t), row by row
    mu_b.sum().backward()
    assert t.grad is None  # the target branch stays gradient-free
    assert all(p.grad is not None for p in b.parameters() if p.requires_grad)
    assert b.mlp[-1].bias is None


def test_small_stem_is_solo_learns_cifar_stem_and_keeps_spatial_resolution():
    big, small = resnet18(), use_small_stem(resnet18())
    assert not has_small_stem(big) and has_small_stem(small)
    conv = small.conv1
    assert (conv.kernel_size, conv.stride, conv.padding, conv.bias) == ((3, 3), (1, 1),
                                                                         (2, 2), None)
    assert isinstance(small.maxpool, torch.nn.Identity)

    def layer4_size(net: torch.nn.Module) -> tuple[int, int]:
        net.eval()
        with torch.no_grad():
            h = net.maxpool(net.relu(net.bn1(net.conv1(torch.zeros(1, 3, 32, 32)))))
            h = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        return tuple(h.shape[-2:])

    assert layer4_size(big) == (1, 1) and layer4_size(small) == (5, 5)
    with pytest.raises(TypeError, match="ResNet backbones only"):
        use_small_stem(torch.nn.Linear(2, 2))


def test_checkpoint_stem_is_read_off_conv1():
    assert checkpoint_has_small_stem(
        {f"backbone.{k}": v for k, v in use_small_stem(resnet18()).state_dict().items()})
    assert checkpoint_has_small_stem(
        {f"backbone.{k}": v for k, v in resnet18().state_dict().items()}) is False
    assert checkpoint_has_small_stem({"classifier.weight": torch.zeros(2, 2)}) is None


@pytest.mark.parametrize("small", [True, False])
def test_a_resnet_follows_the_stem_of_the_weights_loaded_into_it(small, capsys):
    """solo-learn's main_linear.py builds the backbone before it reads the checkpoint."""
    source = use_small_stem(resnet18()) if small else resnet18()
    net = resnet18() if small else use_small_stem(resnet18())
    net.register_load_state_dict_pre_hook(follow_checkpoint_stem)
    holder = torch.nn.Module()
    holder.backbone = net  # the prefix of a nested load, as in load_from_checkpoint
    holder.load_state_dict({f"backbone.{k}": v for k, v in source.state_dict().items()})
    assert has_small_stem(holder.backbone) is small
    assert torch.equal(holder.backbone.conv1.weight, source.conv1.weight)
    x = torch.randn(1, 3, 32, 32)
    source.eval(), holder.eval()
    assert torch.allclose(holder.backbone(x), source(x), atol=1e-5)
    assert "backbone follows them" in capsys.readouterr().err
    holder.load_state_dict({f"backbone.{k}": v for k, v in source.state_dict().items()})
    assert capsys.readouterr().err == ""  # same stem: nothing changes, nothing said


def test_release_mlp_is_linear_bn_relu_and_a_bias_free_linear():
    mlp = release_mlp(8, 16, 4)
    assert [type(m) for m in mlp] == [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU,
                                      torch.nn.Linear]
    assert mlp[0].bias is not None and mlp[-1].bias is None
    with pytest.raises(TypeError, match="last module must be an nn.Linear, got ReLU"):
        drop_last_bias(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))


def test_stochastic_predictor_in_eval_keeps_batch_dims_dtype_and_device():
    """A (2, 3, d) batch in float64: mu_e normalised over d, cos = 1 per row in loc's dtype;
    on the meta device (a stand-in for a GPU) every output stays there."""
    head = StochasticPredictor(torch.nn.Linear(4, 4), 4, kappa_e=100.0).double().eval()
    out = head(torch.randn(2, 3, 4, dtype=torch.float64))
    assert torch.allclose(out.mu_e.norm(dim=-1), torch.ones(2, 3, dtype=torch.float64))
    assert out.cos.shape == (2, 3) and out.cos.dtype == torch.float64
    assert bool((out.cos == 1).all()) and torch.equal(out.z, out.mu_e)
    meta = StochasticPredictor(torch.nn.Linear(4, 4), 4, kappa_e=100.0).to("meta").eval()
    assert {t.device.type for t in meta(torch.empty(5, 4, device="meta"))} == {"meta"}
    with pytest.raises(ValueError, match="^kappa_e must be"):
        StochasticPredictor(torch.nn.Linear(4, 4), 4, kappa_e=0.0)
