"""Dataset export to ImageFolder trees for solo-learn's "custom" dataset."""

from cvr_solo.data.fashion_mnist import (
    CLASS_NAMES,
    DEFAULT_SOURCE,
    export_fashion_mnist,
    verify_export,
)

__all__ = ["CLASS_NAMES", "DEFAULT_SOURCE", "export_fashion_mnist", "verify_export"]
