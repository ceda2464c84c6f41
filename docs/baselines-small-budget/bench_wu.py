"""``cvr-solo bench`` with the warm-up forced to $WU epochs (an experiment hook, not shipped).

The bench sets ``++scheduler.warmup_epochs`` (a tenth of the run) after the config, so a config
copy cannot change it: ``WU=1 python bench_wu.py --data ... --pretrain-epochs 2 ...``.
"""

import os
import sys

import cvr_solo.bench.run as r

_orig = r.plan_runs


def _plan(*a, **k):
    specs = _orig(*a, **k)
    for s in specs:
        s.overrides["++scheduler.warmup_epochs"] = float(os.environ["WU"])
    return specs


r.plan_runs = _plan
sys.exit(r.main(sys.argv[1:]))
