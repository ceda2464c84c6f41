"""cvr_solo.common.checks, the one validation module: the message names the key, the value and what
is allowed, and the caller picks the error class."""

from __future__ import annotations

import pytest
import torch

from cvr_solo.common.checks import check_bool, check_choice, check_fraction, check_number, fail
from cvr_solo.config.errors import ConfigError


@pytest.mark.parametrize(("kwargs", "value", "message"), [
    ({"low": 0, "inclusive": False}, 0, "x must be a number > 0, got 0"),
    ({"low": 0, "high": 1}, 1.5, "x must be a number >= 0 and <= 1, got 1.5"),
    ({"low": 0}, float("inf"), "x must be a number >= 0, got inf"),
    ({"low": 0}, "on", "x must be a number, got 'on'"),
    ({"low": 0}, True, "x must be a number, got True"),
    ({"low": 1, "integer": True}, 1.0, "x must be an integer >= 1, got 1.0"),
    ({"low": 1, "high": 5, "integer": True}, 6, "x must be an integer >= 1 and <= 5, got 6"),
    ({"integer": True}, 1.5, "x must be an integer, got 1.5"),
    ({"low": 0, "noun": "a finite number"}, -1, "x must be a finite number >= 0, got -1"),
])
def test_check_number_messages(kwargs, value, message):
    with pytest.raises(ValueError) as err:
        check_number("x", value, **kwargs)
    assert str(err.value) == message


def test_check_number_values_and_error_class():
    assert check_number("x", 3, low=1, integer=True) == 3
    assert check_number("x", 10**400, integer=True) == 10**400
    assert isinstance(check_number("x", 2, low=0), float)
    assert check_number("x", 1, low=0, high=1) == 1.0
    with pytest.raises(ConfigError, match="x must be a number > 0, got 0"):
        check_number("x", 0, low=0, inclusive=False, error=ConfigError)


def test_choice_bool_fraction_and_fail():
    assert check_choice("k", "a", ("a", "b")) == "a"
    with pytest.raises(ConfigError, match=r"^k must be one of 'a', 'b', got 'c'$"):
        check_choice("k", "c", ("a", "b"), ConfigError)
    assert check_bool("b", False) is False
    with pytest.raises(ValueError, match=r"^b must be true or false, got 'yes'$"):
        check_bool("b", "yes")
    assert check_fraction("g", torch.tensor(0.5)) == 0.5
    with pytest.raises(ValueError, match=r"^g must be a finite number > 0 and <= 1, got 1.5$"):
        check_fraction("g", 1.5)
    with pytest.raises(ConfigError, match=r"^k must be here, got 1$"):
        fail("k", "here", 1, ConfigError)
