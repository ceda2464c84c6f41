"""Frozen-backbone evaluation, the benchmark's and the studies': the protocol and its scores
(protocol.py), weighted kNN, the linear probe and the corruption suite (frozen.py, probe.py,
corruptions.py)."""
