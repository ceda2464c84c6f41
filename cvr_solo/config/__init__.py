"""Checks of settings before anything runs; no solo-learn import.

- :mod:`~cvr_solo.config.errors`: :class:`ConfigError`, which every check raises.
- :mod:`~cvr_solo.config.validate`: the method, data and pretrain/linear config rules.
- :mod:`~cvr_solo.config.trainer`: the Trainer-level keys (devices, precision, checkpoint dir).
- :mod:`~cvr_solo.config.datacheck`: the data folders and images a config names.
- :mod:`~cvr_solo.config.overrides`: a command line's Hydra overrides, before Hydra runs.
- :mod:`~cvr_solo.config.compose`: compose a shipped config and validate it.
"""
