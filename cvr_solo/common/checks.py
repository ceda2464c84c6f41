"""The checks of arguments and config values, for the whole package (the CEB core included:
this module imports torch only).

Every failure says ``"{name} must be {what is allowed}, got {value!r}"`` (:func:`fail`), as a
``ValueError`` or the caller's subclass of it (``error=ConfigError`` for config keys), so that
a bad setting fails at start-up rather than deep inside training.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NoReturn

import torch

__all__ = ["check_bool", "check_choice", "check_dim", "check_features", "check_fraction",
           "check_non_negative", "check_number", "check_positive", "check_same_shape",
           "check_unit", "fail", "unit_norm_tol"]

# |‖loc‖ - 1| allowed for a "unit" mean, by dtype: 1e-4 for float32/float64, looser for the
# 16-bit types whose own rounding is larger than that.
UNIT_NORM_TOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2}
DEFAULT_UNIT_NORM_TOL = 1e-4


def fail(name: str, allowed: str, value: Any, error: type[ValueError] = ValueError) -> NoReturn:
    """Raises ``error("{name} must be {allowed}, got {value!r}")``."""
    raise error(f"{name} must be {allowed}, got {value!r}")


def _bounds(low: float | None, inclusive: bool, high: float | None) -> str:
    parts = [] if low is None else [f"{'>=' if inclusive else '>'} {low:g}"]
    return " and ".join(parts + ([] if high is None else [f"<= {high:g}"]))


def check_number(name: str, value: Any, *, low: float | None = None, inclusive: bool = True,
                 high: float | None = None, integer: bool = False, noun: str | None = None,
                 error: type[ValueError] = ValueError) -> Any:
    """``value`` as a float (an int with ``integer``), if it is a finite number (bools are not)
    within [low, high] (``(low, high]`` without ``inclusive``).

    The message names the kind and the bounds: "a number > 0 and <= 1", "an integer >= 1"; a
    real of the wrong type is told the kind only ("a number"). ``noun`` replaces the kind
    (the CEB core says "a finite number").
    """
    noun = noun or ("an integer" if integer else "a number")
    allowed = " ".join(filter(None, (noun, _bounds(low, inclusive, high))))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer
                                                 else numbers.Real):
        fail(name, allowed if integer else noun, value, error)
    below = low is not None and (value < low if inclusive else value <= low)
    above = high is not None and value > high
    if (not integer and not math.isfinite(value)) or below or above:
        fail(name, allowed, value, error)
    return int(value) if integer else float(value)


def check_choice(name: str, value: Any, allowed: Sequence[str],
                 error: type[ValueError] = ValueError) -> str:
    """One of a fixed set of names."""
    if value not in allowed:
        fail(name, f"one of {', '.join(map(repr, allowed))}", value, error)
    return value


def check_bool(name: str, value: Any, error: type[ValueError] = ValueError) -> bool:
    """A bool (a YAML ``true`` / ``false``)."""
    if not isinstance(value, bool):
        fail(name, "true or false", value, error)
    return value


# --- the CEB core's arguments: numbers that may come as one-element tensors -----------------

def _scalar(name: str, value: object) -> object:
    """``value``, a one-element tensor without gradient as a Python float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape "
                             f"{tuple(value.shape)}")
        if value.requires_grad:
            raise ValueError(f"{name} must be a fixed number (no gradient), got a tensor "
                             "that requires grad")
        return value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, "a real number", value)
    return value


def _traced_number(name: str, value: float, strict: bool) -> float:
    """The check of a number inside ``torch.compile``: once dynamo has seen a float argument
    change (a beta schedule) it traces it as a symbol, on which Python branches cannot run;
    ``torch._check`` turns the condition into a guard instead (a bad value fails there)."""
    torch._check(value > 0 if strict else value >= 0,
                 lambda: f"{name} must be a finite number {'>' if strict else '>='} 0")
    torch._check(value < math.inf, lambda: f"{name} must be a finite number")
    return value


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 (a concentration kappa, a weight w)."""
    if torch.compiler.is_compiling() and not isinstance(value, torch.Tensor):
        return _traced_number(name, value, strict=True)  # type: ignore[arg-type]
    return check_number(name, _scalar(name, value), low=0, inclusive=False,
                        noun="a finite number")


def check_non_negative(name: str, value: object) -> float:
    """A finite number >= 0 (beta)."""
    if torch.compiler.is_compiling() and not isinstance(value, torch.Tensor):
        return _traced_number(name, value, strict=False)  # type: ignore[arg-type]
    return check_number(name, _scalar(name, value), low=0, noun="a finite number")


def check_fraction(name: str, value: object) -> float:
    """A finite number in (0, 1] (a guard on beta)."""
    v = check_positive(name, value)
    if v > 1:
        fail(name, "a finite number > 0 and <= 1", value)
    return v


def check_dim(name: str, d: object) -> int:
    """An integer dimension d >= 2 (the sphere S^{d-1} needs d >= 2)."""
    return check_number(name, d, low=2, integer=True)


def check_features(name: str, x: object, ndim: int | None = 2) -> torch.Tensor:
    """A floating-point tensor of ``ndim`` dims (None: any >= 1) whose last dim is >= 2."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dims (batch, d), got shape {tuple(x.shape)}")
    if x.dim() < 1 or x.shape[-1] < 2:
        raise ValueError(f"{name} must have a last (event) dim d >= 2, got shape "
                         f"{tuple(x.shape)}")
    return x


def check_same_shape(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    """All tensors have the shape of the first."""
    ref = tuple(tensors[0].shape)
    for n, t in zip(names[1:], tensors[1:], strict=True):
        if tuple(t.shape) != ref:
            raise ValueError(f"{n} must have the shape of {names[0]} {ref}, got {tuple(t.shape)}")


def unit_norm_tol(dtype: torch.dtype) -> float:
    """Tolerance on |‖loc‖ - 1| for a tensor of ``dtype``."""
    return UNIT_NORM_TOL.get(dtype, DEFAULT_UNIT_NORM_TOL)


def check_unit(name: str, x: torch.Tensor) -> None:
    """Rows of ``x`` lie on the unit sphere within :func:`unit_norm_tol` (one device sync)."""
    tol = unit_norm_tol(x.dtype)
    dev = (x.detach().float().norm(dim=-1) - 1).abs().max().item() if x.numel() else 0.0
    if not dev <= tol:
        raise ValueError(f"{name} must hold unit vectors (|‖{name}‖ - 1| <= {tol:g} for "
                         f"{x.dtype}), got a largest deviation of {dev:.3g}; l2-normalise it")
