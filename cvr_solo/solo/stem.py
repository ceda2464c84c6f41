"""The small-image ResNet stem as an option of its own: ``backbone.kwargs.small_stem``.

solo-learn replaces a ResNet's ImageNet stem (7x7 stride-2 conv + 3x3 stride-2 max-pool) by a
small-image stem (3x3 stride-1 conv, no max-pool) only when ``data.dataset`` is cifar10 or
cifar100. On other small images (Fashion-MNIST, STL, Tiny-ImageNet, any ``custom`` folder)
the ImageNet stem leaves a 32 px input 8x8 before layer1 and 1x1 at layer4.

``backbone.kwargs.small_stem: true`` asks for solo-learn's CIFAR stem on any data set. The
key lives in ``backbone.kwargs`` because every solo-learn code path passes those to the
backbone constructor: the online and the momentum backbone of every method (so the momentum
copy starts identical), ``main_linear.py``, and ``load_from_checkpoint`` (the kwargs are
saved with the run). :func:`install` wraps solo-learn's ResNet constructors so they accept the
key; :func:`cvr_solo.register` (run by cvr-solo's start-up hook whenever solo-learn is
imported) calls it, so solo-learn's own unmodified scripts apply it to every method.

A ResNet built through those constructors also follows the stem of the weights loaded into it
(:func:`follow_checkpoint_stem`): solo-learn's ``main_linear.py`` builds the backbone from the
linear config, which cannot know the checkpoint's stem, and would otherwise stop at
``size mismatch for conv1.weight``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

__all__ = ["checkpoint_has_small_stem", "follow_checkpoint_stem", "has_small_stem", "install",
           "use_imagenet_stem", "use_small_stem"]


def use_small_stem(net: nn.Module) -> nn.Module:
    """Gives a torchvision-style ResNet the small-image stem, in place.

    conv1 becomes Conv2d(3, 64, kernel 3, stride 1, padding 2, no bias) and maxpool the
    identity: exactly the stem solo-learn builds for CIFAR, so a ``small_stem`` run and a
    CIFAR run share one architecture.

    Args:
        net: a module with ``conv1`` (Conv2d) and ``maxpool`` attributes.

    Returns:
        ``net``, changed.

    Raises:
        TypeError: when ``net`` has no ResNet stem.

    Example:
        >>> from torchvision.models import resnet18
        >>> use_small_stem(resnet18()).conv1.kernel_size
        (3, 3)
    """
    conv = getattr(net, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(net, "maxpool"):
        raise TypeError(f"{type(net).__name__} has no ResNet stem (conv1 + maxpool); "
                        "backbone.kwargs.small_stem applies to ResNet backbones only")
    net.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, stride=1,
                          padding=2, bias=False)
    net.maxpool = nn.Identity()
    return net


def use_imagenet_stem(net: nn.Module) -> nn.Module:
    """Gives a torchvision-style ResNet the ImageNet stem back, in place: conv1 a 7x7 stride-2
    conv (padding 3, no bias) and maxpool a 3x3 stride-2 max-pool, as torchvision builds it.

    Example:
        >>> from torchvision.models import resnet18
        >>> use_imagenet_stem(use_small_stem(resnet18())).conv1.kernel_size
        (7, 7)
    """
    conv = net.conv1
    net.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=7, stride=2,
                          padding=3, bias=False)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return net


def has_small_stem(net: nn.Module) -> bool:
    """Whether a ResNet's conv1 is the small-image one (3x3 kernel, stride 1, no max-pool).

    Example:
        >>> from torchvision.models import resnet18
        >>> has_small_stem(resnet18()), has_small_stem(use_small_stem(resnet18()))
        (False, True)
    """
    conv = net.conv1
    return (tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1)
            and isinstance(net.maxpool, nn.Identity))


def checkpoint_has_small_stem(state_dict: Mapping[str, torch.Tensor],
                              prefix: str = "backbone.") -> bool | None:
    """Which stem a checkpoint's ResNet was trained with, read off ``<prefix>conv1.weight``:
    True for a 3x3 kernel, False for 7x7, None when there is no such tensor.

    Example:
        >>> from torchvision.models import resnet18
        >>> checkpoint_has_small_stem(resnet18().state_dict(), prefix="")
        False
    """
    weight = state_dict.get(prefix + "conv1.weight")
    if weight is None or weight.dim() != 4:
        return None
    return tuple(weight.shape[-2:]) == (3, 3)


def follow_checkpoint_stem(net: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str,
                           *_: Any) -> None:
    """``load_state_dict`` pre-hook of the ResNets :func:`install` builds: when the weights
    being loaded have the other stem (read off ``<prefix>conv1.weight``), the ResNet takes that
    stem before the tensors are copied, and one line on stderr says so.

    Only the stem's shape follows: every other tensor must still fit, as before.

    Example:
        >>> from torchvision.models import resnet18
        >>> net = resnet18()
        >>> _ = net.register_load_state_dict_pre_hook(follow_checkpoint_stem)
        >>> _ = net.load_state_dict(use_small_stem(resnet18()).state_dict())
        >>> has_small_stem(net)
        True
    """
    small = checkpoint_has_small_stem(state_dict, prefix=prefix)
    if small is None or small == has_small_stem(net):
        return
    (use_small_stem if small else use_imagenet_stem)(net)
    kind = ("small-image (3x3 stride-1 conv1, no max-pool)" if small
            else "ImageNet (7x7 stride-2 conv1 + max-pool)")
    print(f"cvr-solo: the weights loaded into the {type(net).__name__} have the {kind} stem; "
          "the backbone follows them (backbone.kwargs.small_stem="
          f"{str(small).lower()})", file=sys.stderr, flush=True)


class _WithSmallStem:
    """A solo-learn backbone constructor that also takes ``small_stem``; a module-level class
    (not a closure) so that a model holding it pickles, as ``ddp_spawn`` requires."""

    def __init__(self, build: Callable[..., nn.Module]) -> None:
        self.__wrapped__ = build
        self.__name__ = getattr(build, "__name__", "backbone")
        self.__doc__ = getattr(build, "__doc__", None)

    def __call__(self, method: str, *args: Any, small_stem: bool = False,
                 **kwargs: Any) -> nn.Module:
        net = self.__wrapped__(method, *args, **kwargs)
        net.register_load_state_dict_pre_hook(follow_checkpoint_stem)
        return use_small_stem(net) if small_stem else net


def install() -> None:
    """Lets solo-learn's ResNet constructors take ``small_stem`` (idempotent).

    Wraps the ``resnet*`` entries of ``solo.methods.base.BaseMethod._BACKBONES``, the table
    every solo-learn method, ``main_linear.py`` and checkpoint loading build backbones from.
    Needs solo-learn.
    """
    from solo.methods.base import BaseMethod

    table = BaseMethod._BACKBONES
    for name, build in list(table.items()):
        if name.startswith("resnet") and not hasattr(build, "__wrapped__"):
            table[name] = _WithSmallStem(build)
