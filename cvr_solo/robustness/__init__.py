"""Robustness evaluation: CIFAR-10-C style corruptions computed on the fly."""

from cvr_solo.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupted_views

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "corrupted_views"]
