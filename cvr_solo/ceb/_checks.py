"""Argument checks shared by the CEB core.

Every check raises ``ValueError`` with the argument's name, the value it got and what is
allowed, so that a bad setting fails at start-up rather than deep inside training.
"""

from __future__ import annotations

import math
import numbers

import torch

# |‖loc‖ - 1| allowed for a "unit" mean, by dtype: 1e-4 for float32/float64, looser for the
# 16-bit types whose own rounding is larger than that.
UNIT_NORM_TOL = {torch.float16: 2e-3, torch.bfloat16: 1e-2}
DEFAULT_UNIT_NORM_TOL = 1e-4


def unit_norm_tol(dtype: torch.dtype) -> float:
    """Tolerance on |‖loc‖ - 1| for a tensor of ``dtype``."""
    return UNIT_NORM_TOL.get(dtype, DEFAULT_UNIT_NORM_TOL)


def as_real(name: str, value: object) -> float:
    """``value`` as a Python float; rejects bools, non-numbers and tensors with gradients."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a single number, got a tensor of shape "
                             f"{tuple(value.shape)}")
        if value.requires_grad:
            raise ValueError(f"{name} must be a fixed number (no gradient), got a tensor "
                             "that requires grad")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


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
    v = as_real(name, value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_non_negative(name: str, value: object) -> float:
    """A finite number >= 0 (beta)."""
    if torch.compiler.is_compiling() and not isinstance(value, torch.Tensor):
        return _traced_number(name, value, strict=False)  # type: ignore[arg-type]
    v = as_real(name, value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_dim(name: str, d: object) -> int:
    """An integer dimension d >= 2 (the sphere S^{d-1} needs d >= 2)."""
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or int(d) < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {d!r}")
    return int(d)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """One of a fixed set of names."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return str(value)


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


def check_unit(name: str, x: torch.Tensor) -> None:
    """Rows of ``x`` lie on the unit sphere within :func:`unit_norm_tol` (one device sync)."""
    tol = unit_norm_tol(x.dtype)
    dev = (x.detach().float().norm(dim=-1) - 1).abs().max().item() if x.numel() else 0.0
    if not dev <= tol:
        raise ValueError(f"{name} must hold unit vectors (|‖{name}‖ - 1| <= {tol:g} for "
                         f"{x.dtype}), got a largest deviation of {dev:.3g}; l2-normalise it")
