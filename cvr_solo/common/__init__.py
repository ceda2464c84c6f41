"""What every room of cvr-solo reads; imports torch at most, never solo-learn or Lightning.

- :mod:`~cvr_solo.common.catalog`: the one table of methods and their baselines.
- :mod:`~cvr_solo.common.checks`: the argument and config-value checks (one message shape).
- :mod:`~cvr_solo.common.metric_names`: the names of every logged metric.
- :mod:`~cvr_solo.common.representation`: RankMe, alignment, uniformity, std of z/|z|.
- :mod:`~cvr_solo.common.progress_file`: the step file a pretraining child writes for the bench.
- :mod:`~cvr_solo.common.quiet`: the known third-party warnings ``cvr-solo`` silences.
"""
