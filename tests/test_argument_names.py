"""Every public function of the CEB core refuses each bad argument with a ValueError that
starts with that argument's name: "{name} must be ..." / "{name} must have ..."
(cvr_solo.common.checks)."""

from __future__ import annotations

import re

import pytest
import torch

from cvr_solo import ceb

H = torch.eye(4)[:3]  # three unit rows in R^4
COS = torch.tensor([0.5, 0.9])
X = torch.randn(2, 5)

#: (function, arguments that pass, {argument: a value it refuses})
CASES = [
    (ceb.shrink_threshold, {"d": 256, "kappa_e": 1024.0, "beta": 1.0},
     {"d": 0, "kappa_e": 0.0, "beta": -1.0}),
    (ceb.full_beta_ratio, {"d": 256, "kappa_e": 1024.0, "beta": 1.0, "guard": 0.5},
     {"d": 0, "kappa_e": -1.0, "beta": 0.0, "guard": 1.5}),
    (ceb.held_back_beta, {"beta": 1.0, "h1": H, "h2": H, "kappa_e": 1024.0, "guard": 0.5},
     {"beta": -1.0, "kappa_e": 0.0, "guard": 0.0}),
    (ceb.guarded_beta, {"r1": H, "r2": H, "beta": 1.0, "kappa_e": 1024.0, "guard": 0.5},
     {"r1": torch.ones(3), "r2": torch.ones(3), "beta": -1.0, "kappa_e": 0.0, "guard": 2.0}),
    (ceb.guarded_beta, {"r1": H, "r2": H, "beta": 1.0, "kappa_e": 1024.0, "guard": 0.5},
     {"r2": H[:2]}),  # another shape than r1's
    (ceb.c_simclr_loss, {"r1": X, "r2": X + 1, "kappa_e": 1024.0, "kappa_b": 5.0, "beta": 1.0},
     {"r1": torch.ones(5), "r2": torch.ones(5), "kappa_e": 0.0, "kappa_b": -1.0, "beta": -1.0}),
    (ceb.StochasticPredictor, {"mlp": torch.nn.Linear(4, 4), "dim": 4, "kappa_e": 10.0},
     {"kappa_e": 0.0}),
    (ceb.residual_information, {"z": H, "e_loc": H, "b_loc": H, "kappa_e": 10.0, "kappa_b": 5.0},
     {"z": torch.ones(3, 1), "e_loc": torch.ones(3, 1), "b_loc": torch.ones(3, 1),
      "kappa_e": 0.0, "kappa_b": -1.0}),
    (ceb.residual_floor, {"d": 256, "kappa_e": 1024.0, "kappa_b": 10.0},
     {"d": 0, "kappa_e": 0.0, "kappa_b": -1.0}),
    (ceb.log_normalizer, {"d": 256, "kappa": 10.0}, {"d": 0, "kappa": 0.0}),
    (ceb.mean_resultant_length, {"d": 256, "kappa": 10.0}, {"d": 0, "kappa": -2.0}),
    (ceb.wood_acceptance, {"d": 256, "kappa": 10.0}, {"d": 0, "kappa": 0.0}),
    (ceb.wood_plan, {"n": 4, "d": 256, "kappa": 10.0}, {"n": 0, "d": 1, "kappa": 0.0}),
    (ceb.vmf_kl, {"d": 8, "kappa_1": 10.0, "kappa_2": 5.0, "cos_12": 0.5},
     {"d": 0, "kappa_1": 0.0, "kappa_2": -1.0}),
    (ceb.embedding_distance_from_kl, {"kl": COS, "d": 8, "kappa_e": 10.0, "kappa_b": 5.0},
     {"d": 0, "kappa_e": 0.0, "kappa_b": -1.0}),
    (ceb.lipschitz_lower_bound, {"kl": COS, "x": X, "y": X + 1, "d": 8, "kappa_e": 10.0,
                                 "kappa_b": 5.0},
     {"d": 0, "kappa_e": 0.0, "kappa_b": -1.0}),
]


@pytest.mark.parametrize(("function", "good", "name", "bad"), [
    pytest.param(f, good, name, bad, id=f"{getattr(f, '__name__', f)}-{name}-{i}")
    for i, (f, good, bads) in enumerate(CASES) for name, bad in bads.items()])
def test_a_bad_argument_is_named_first(function, good, name, bad):
    function(**good)  # the good arguments pass
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must (be|have)"):
        function(**{**good, name: bad})


def _c_byol_args() -> dict:
    g = torch.Generator().manual_seed(0)
    unit = [torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=-1)
            for _ in range(6)]
    return {"p": [torch.randn(4, 8, generator=g) for _ in range(2)],
            "t": [torch.randn(4, 8, generator=g) for _ in range(2)],
            "z": unit[:2], "e_loc": unit[2:4], "b_loc": unit[4:]}


def test_c_byol_loss_names_the_view_pair_and_the_view():
    args = _c_byol_args()
    x = args["p"][0]
    cases = [([x], "p must be a pair (view 1, view 2) of tensors, got list of length 1"),
             ([torch.ones(4), x], "p[0] must have 2 dims"),
             ([x, torch.ones(4)], "p[1] must have 2 dims")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
            ceb.c_byol_loss(**{**args, "p": bad})
    with pytest.raises(ValueError,  # a tensor: no length in the message
                       match=r"^p must be a pair \(view 1, view 2\) of tensors, got Tensor$"):
        ceb.c_byol_loss(**{**args, "p": x})


def test_c_byol_loss_defaults_are_the_releases():
    """kappa_e 16384, kappa_b 10, beta 1, w 2 when not given (Lee et al. 2021, Sec. 4.2)."""
    args = _c_byol_args()
    torch.manual_seed(0)
    default = ceb.c_byol_loss(**args)
    torch.manual_seed(0)
    given = ceb.c_byol_loss(**args, kappa_e=16384.0, kappa_b=10.0, beta=1.0, w=2.0)
    assert torch.equal(default.loss, given.loss)
    assert torch.equal(default.residual, given.residual)
    assert torch.equal(default.regression, given.regression)


def test_c_simclr_loss_defaults_are_the_papers_and_a_tensor_beta_is_not_read_back(monkeypatch):
    """kappa_e 1024, kappa_b 10, beta 1 when not given (Lee et al. 2021, Sec. 4.1); a 0-d
    tensor beta (the guard's) is used as it is, never read back with .item() (a host sync)."""
    r1, r2 = X, X + 0.3 * torch.randn(2, 5)
    default = ceb.c_simclr_loss(r1, r2, sample=False)
    given = ceb.c_simclr_loss(r1, r2, kappa_e=1024.0, kappa_b=10.0, beta=1.0, sample=False)
    assert torch.equal(default.loss, given.loss) and torch.equal(default.residual,
                                                                given.residual)

    def no_item(self):
        raise AssertionError("c_simclr_loss read a tensor back to the host")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    out = ceb.c_simclr_loss(r1, r2, beta=torch.tensor(1.0), sample=False)
    assert torch.equal(out.loss, given.loss)


def test_residual_information_takes_any_batch_shape():
    """R per example over a (2, 3, d) batch equals R of the same rows flattened to (6, d)."""
    g = torch.Generator().manual_seed(2)
    z, e, b = (torch.nn.functional.normalize(torch.randn(2, 3, 8, generator=g), dim=-1)
               for _ in range(3))
    r = ceb.residual_information(z, e, b, 10.0, 5.0)
    flat = ceb.residual_information(*(t.reshape(6, 8) for t in (z, e, b)), 10.0, 5.0)
    assert r.shape == (2, 3) and torch.equal(r.reshape(6), flat)


def test_a_shape_mismatch_names_both_arguments():
    with pytest.raises(ValueError, match=r"^r2 must have the shape of r1 \(3, 4\), got \(2, 4\)"):
        ceb.guarded_beta(H, H[:2], 1.0, 1024.0, 0.5)
    with pytest.raises(ValueError, match=r"^e_loc must have the shape of z \(3, 4\)"):
        ceb.residual_information(H, H[:2], H, 10.0, 5.0)
    with pytest.raises(ValueError, match=r"^d must be an integer >= 2, got 1"):  # h's width
        ceb.held_back_beta(1.0, torch.ones(3, 1), torch.ones(3, 1), 1024.0, 0.5)
