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
    pytest.param(f, good, name, bad, id=f"{f.__name__}-{name}-{i}")
    for i, (f, good, bads) in enumerate(CASES) for name, bad in bads.items()])
def test_a_bad_argument_is_named_first(function, good, name, bad):
    function(**good)  # the good arguments pass
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must (be|have)"):
        function(**{**good, name: bad})
