"""Every ValueError path of the public CEB API, message included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvr_solo import (
    VonMisesFisher,
    c_byol_loss,
    c_simclr_loss,
    log_normalizer,
    mean_resultant_length,
    residual_floor,
    residual_information,
    vmf_kl,
    vmf_rsample,
)

U = F.normalize(torch.randn(4, 8), dim=-1)


@pytest.mark.parametrize(("kappa", "shown"), [
    (0.0, "0.0"), (-3.0, "-3.0"), (float("inf"), "inf"), (float("nan"), "nan"),
])
def test_concentration_must_be_positive_finite(kappa, shown):
    with pytest.raises(ValueError, match=f"concentration must be a finite number > 0, "
                                         f"got {shown}"):
        VonMisesFisher(U, kappa)
    with pytest.raises(ValueError, match=f"kappa must be a finite number > 0, got {shown}"):
        vmf_rsample(U, kappa)
    with pytest.raises(ValueError, match=f"kappa must be a finite number > 0, got {shown}"):
        log_normalizer(8, kappa)
    with pytest.raises(ValueError, match=f"kappa must be a finite number > 0, got {shown}"):
        mean_resultant_length(8, kappa)


def test_concentration_type_errors():
    with pytest.raises(ValueError, match="concentration must be a real number, got True"):
        VonMisesFisher(U, True)
    with pytest.raises(ValueError, match="concentration must be a real number, got '10'"):
        VonMisesFisher(U, "10")
    with pytest.raises(ValueError, match=r"concentration must be a single number, got a tensor "
                                         r"of shape \(4,\)"):
        VonMisesFisher(U, torch.ones(4))
    with pytest.raises(ValueError, match="concentration must be a fixed number"):
        VonMisesFisher(U, torch.tensor(3.0, requires_grad=True))
    assert VonMisesFisher(U, torch.tensor(3.0)).kappa == 3.0


@pytest.mark.parametrize("d", [1, 0, 2.5])
def test_dimension_must_be_at_least_two(d):
    with pytest.raises(ValueError, match=f"d must be an integer >= 2, got {d}"):
        log_normalizer(d, 10.0)
    with pytest.raises(ValueError, match=f"d must be an integer >= 2, got {d}"):
        residual_floor(d, 10.0, 5.0)


def test_loc_with_one_dim_is_rejected():
    with pytest.raises(ValueError, match=r"loc must have a last \(event\) dim d >= 2, got shape "
                                         r"\(4, 1\)"):
        VonMisesFisher(torch.ones(4, 1), 10.0)
    with pytest.raises(ValueError, match="loc must be a floating-point tensor"):
        vmf_rsample(torch.ones(4, 3, dtype=torch.long), 10.0)
    with pytest.raises(ValueError, match=r"loc must be a torch\.Tensor, got list"):
        VonMisesFisher([1.0, 0.0], 10.0)


def test_non_unit_mean_is_rejected_with_the_tolerance():
    with pytest.raises(ValueError, match=r"loc must hold unit vectors \(\|‖loc‖ - 1\| <= 0.0001 "
                                         r"for torch.float32\), got a largest deviation of 1"):
        VonMisesFisher(2 * U, 10.0)
    # inside the tolerance is fine; validation can be switched off like torch's
    VonMisesFisher(U * (1 + 5e-5), 10.0)
    VonMisesFisher(2 * U, 10.0, validate_args=False)
    # bfloat16 has its own, looser tolerance
    with pytest.raises(ValueError, match=r"0.01 for torch.bfloat16"):
        VonMisesFisher((1.1 * U).bfloat16(), 10.0)


def test_log_prob_checks_the_value():
    dist = VonMisesFisher(U, 10.0)
    with pytest.raises(ValueError, match=r"value must have last dim d = 8, got shape \(4, 5\)"):
        dist.log_prob(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="value must hold unit vectors"):
        dist.log_prob(torch.zeros(4, 8))


def test_kl_needs_the_same_dimension():
    from torch.distributions import kl_divergence

    with pytest.raises(ValueError, match="KL needs the same d, got 8 and 3"):
        kl_divergence(VonMisesFisher(U, 10.0), VonMisesFisher(F.normalize(torch.ones(4, 3),
                                                                          dim=-1), 10.0))
    with pytest.raises(ValueError, match="kappa_2 must be a finite number > 0, got -1"):
        vmf_kl(8, 10.0, -1, 0.5)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"kappa_e": 0}, "kappa_e must be a finite number > 0, got 0"),
    ({"kappa_b": -1.0}, "kappa_b must be a finite number > 0, got -1.0"),
    ({"beta": -0.5}, "beta must be a finite number >= 0, got -0.5"),
    ({"beta": float("inf")}, "beta must be a finite number >= 0, got inf"),
])
def test_c_simclr_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        c_simclr_loss(U, U, **kwargs)


def test_c_simclr_shape_errors():
    with pytest.raises(ValueError, match=r"r2 must have the shape of r1 \(4, 8\), got \(3, 8\)"):
        c_simclr_loss(U, U[:3])
    with pytest.raises(ValueError, match=r"r1 must have 2 dims \(batch, d\), got shape \(8,\)"):
        c_simclr_loss(U[0], U[0])


def _byol_args():
    return {"p": (U, U), "t": (U, U), "z": (U, U), "e_loc": (U, U), "b_loc": (U, U)}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"b_view": "both"}, "b_view must be one of 'other', 'same', got 'both'"),
    ({"w": 0.0}, "w must be a finite number > 0, got 0.0"),
    ({"beta": -1}, "beta must be a finite number >= 0, got -1"),
    ({"kappa_e": float("nan")}, "kappa_e must be a finite number > 0, got nan"),
    ({"kappa_b": 0}, "kappa_b must be a finite number > 0, got 0"),
])
def test_c_byol_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        c_byol_loss(**_byol_args(), **kwargs)


def test_c_byol_shape_errors():
    args = _byol_args()
    args["t"] = (U, U[:2])
    with pytest.raises(ValueError, match=r"t\[1\] must have the shape of p\[0\] \(4, 8\), got "
                                         r"\(2, 8\)"):
        c_byol_loss(**args)
    args = _byol_args()
    args["z"] = (U,)
    with pytest.raises(ValueError, match=r"z must be a pair \(view 1, view 2\) of tensors, got "
                                         r"tuple of length 1"):
        c_byol_loss(**args)


def test_residual_information_errors():
    with pytest.raises(ValueError, match=r"b_loc must have the shape of z \(4, 8\), got \(4, 7\)"):
        residual_information(U, U, U[:, :7], 10.0, 5.0)
    with pytest.raises(ValueError, match="kappa_b must be a finite number > 0, got 0"):
        residual_information(U, U, U, 10.0, 0)
