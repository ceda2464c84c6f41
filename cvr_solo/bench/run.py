"""``cvr-solo bench``: every method and seed under one budget, then accuracy, robustness, cost.

One pipeline: each (method, seed) is one spec and one record (runs/LABEL/seed-S/result.json)
that the stages fill (bench/stages.py); after each run the outputs are rewritten from the
records. A relaunch skips the finished runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cvr_solo.bench import plan as p
from cvr_solo.bench import stages
from cvr_solo.bench.plan import BUDGETS, Budget, RunSpec, plan_runs
from cvr_solo.bench.result import RunResult
from cvr_solo.evaluation.protocol import PROTOCOL, Scores

#: header keys that must match for an --out's finished runs to be reused
_FIXED = ("budget", *(f.name for f in dataclasses.fields(Budget)), "augmentations", "data",
          "protocol")
#: what ``cvr-solo bench`` needs beyond the base install (the report's tables)
_EXTRA = ("pandas", "tabulate")


def _parser() -> argparse.ArgumentParser:
    budgets = "\n".join("  " + p.describe_budget(n) for n in BUDGETS)
    parser = argparse.ArgumentParser(
        prog="cvr-solo bench", description=__doc__.split("\n\n")[0],
        epilog=f"budgets (every method gets the same):\n{budgets}\n\n"
               "Every method's config and overrides are composed and checked before the first "
               "pretraining starts.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path,
                        help="image folder with train/ and val/ (cvr-solo data fashion-mnist)")
    parser.add_argument("--methods", default="simclr,c_simclr,byol,c_byol,barlow_twins",
                        help="comma-separated methods (%(default)s; also mocov3, c_mocov3, "
                             "simsiam, c_simsiam); a C-variant may carry "
                             "method_kwargs overrides joined by '+', e.g. "
                             "c_byol:b_view=other+beta=1.0 (each a row of its own)")
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="smoke",
                        help="what every method gets (see below; default %(default)s)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder: runs/LABEL/seed-S/, results.csv, report.md, PNGs; "
                             "a relaunch with the same settings skips finished runs")
    parser.add_argument("--seeds", default="5",
                        help="comma-separated seeds, e.g. 5,6,7 (default %(default)s); each "
                             "draws the subset, the initialisation and the augmentation")
    parser.add_argument("--config-path", type=Path, default=None,
                        help="pretrain configs (default: the shipped fashion-mnist ones)")
    parser.add_argument("--augmentations", default="asymmetric",
                        help="augmentation config every method uses (asymmetric | symmetric), "
                             "or 'native' for each baseline's published choice")
    for f in dataclasses.fields(Budget):
        kind = {"device": str, "precision": str, "severities": str}.get(
            f.name, _count if "subset" in f.name else int)
        parser.add_argument(f"--{f.name.replace('_', '-')}", default=None,
                            **({"action": argparse.BooleanOptionalAction} if f.type == "bool"
                               else {"type": kind}),
                            help=f"override the budget's {f.name}" + (
                                " (comma-separated)" if f.name == "severities" else
                                " ('all' for every image)" if "subset" in f.name else ""))
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep every epoch's checkpoint, not only the last (for "
                             "benchmarks/frontier.py: accuracy against steps)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="a progress bar (default: on)")
    return parser


def _count(text: str) -> int:
    """An image count, or 'all' (0: no subset)."""
    return 0 if text == "all" else int(text)


def _budget(args: argparse.Namespace) -> Budget:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(Budget):
        v = getattr(args, f.name)
        if v is None:
            continue
        if f.name == "severities":
            try:
                v = tuple(int(s) for s in v.split(","))
            except ValueError:
                raise ValueError(f"--severities: comma-separated integers, got {v!r}") from None
            if not v or not set(v) <= {1, 2, 3, 4, 5}:
                raise ValueError(f"--severities: values in 1-5, got {args.severities!r}")
        changes[f.name] = None if "subset" in f.name and v == 0 else v
    budget = dataclasses.replace(BUDGETS[args.budget], **changes)
    if (budget.device == "cpu" and "bf16" in budget.precision and args.precision is None
            and not cpu_runs_bf16()):
        print(f"cvr-solo bench: this CPU has no native bf16 (AVX512-BF16 or AMX), so the "
              f"{args.budget!r} budget runs in fp32 (--precision 32), about 2.5x slower; "
              "give --precision bf16-mixed to force bf16", file=sys.stderr)
        budget = dataclasses.replace(budget, precision="32")
    return budget


def cpu_runs_bf16() -> bool:
    """Whether this CPU has native bf16 (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    import torch

    return any(getattr(torch.cpu, f, lambda: False)() for f in (
        "_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    missing = [m for m in _EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        print(f"cvr-solo bench: needs {', '.join(missing)} for its report: pip install "
              "'cvr-solo[bench]' (or: pip install pandas tabulate)", file=sys.stderr)
        return 2
    try:
        return _bench(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"cvr-solo bench: error: {err}", file=sys.stderr)
        return 2


def _check_reuse(out: Path, header: dict[str, Any]) -> None:
    previous = out / "bench.json"
    if previous.is_file():  # finished runs are reused: only under the very same settings
        old = json.loads(previous.read_text())
        old["severities"] = tuple(old.get("severities") or ())
        changed = [k for k in _FIXED if old.get(k) != header[k]]
        if changed:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {header[k]!r}" for k in changed)
            raise ValueError(f"--out {out} holds runs made with other settings ({diff}); "
                             "give another --out")
    previous.write_text(json.dumps(header, indent=2))


def _bench(args: argparse.Namespace) -> int:
    from cvr_solo.config.validate import shipped_config_dir
    from cvr_solo.solo.env import require_solo

    with warnings.catch_warnings():  # solo-learn's and timm's import-time deprecations
        warnings.simplefilter("ignore")
        require_solo()
    methods, seeds, budget = p.parse_methods(args.methods), p.parse_seeds(args.seeds), _budget(args)
    if budget.device in ("cuda", "gpu"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"the {args.budget!r} budget runs on a GPU and none is visible; "
                             "use --device cpu (slow) or --budget smoke")
    for split in ("train", "val"):
        if not (args.data / split).is_dir():
            raise FileNotFoundError(f"--data {args.data} has no {split}/ folder; make one with "
                                    f"`cvr-solo data fashion-mnist --out {args.data}`")
    dali = budget.device != "cpu" and importlib.util.find_spec("nvidia.dali") is not None
    out = args.out
    config_dir = args.config_path or shipped_config_dir("pretrain", "fashion-mnist")
    specs = plan_runs(methods, seeds, budget, out, args.data, args.augmentations, dali,
                      args.keep_checkpoints)
    configs = check_runs(config_dir, specs)  # before anything is written or trained
    out.mkdir(parents=True, exist_ok=True)
    header = {"budget": args.budget, **dataclasses.asdict(budget), "seeds": args.seeds,
              "methods": args.methods, "augmentations": args.augmentations,
              "data": str(args.data.resolve()), "protocol": PROTOCOL.key(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "command": "cvr-solo bench " + shlex.join(args.argv)}
    _check_reuse(out, header)
    ctx = stages.Context(budget, out, args.data, config_dir, progress=args.progress)
    bar = tqdm(specs, desc="bench", unit="run", disable=not args.progress)

    def show(what: str) -> None:  # the stage, and the child's step while it trains
        bar.set_postfix_str(what)
        ctx.status = (lambda text: bar.set_postfix_str(f"{what}, {text}"))

    show("reference rows")
    reference = stages.reference(ctx, stages.reference_args(configs[specs[0].label]))
    results: list[RunResult] = []
    t_start = time.time()
    for spec in bar:
        name = f"{spec.label} seed {spec.seed}"
        rec = stages.record(spec)
        if rec.evaluated:  # it stands, even with its checkpoints gone
            show(f"{name}: done, skipped")
        else:
            show(f"{name}: subset")
            stages.draw_subset(ctx, spec.seed, spec.train_dir)
            show(f"{name}: pretrain")
            checkpoint = stages.pretrain(ctx, spec, rec)
            show(f"{name}: evaluate")
            stages.evaluate(ctx, spec, rec, checkpoint)
        results.append(rec)
        header["wall_seconds_this_launch"] = time.time() - t_start
        write_outputs(out, results, header, reference)
    bar.close()
    print(f"cvr-solo bench: wrote {out / 'results.csv'}, {out / 'report.md'} and plots")
    return 0


def check_runs(config_dir: Path, specs: Sequence[RunSpec]) -> dict[str, Any]:
    """Label -> its config composed and validated with its first seed's overrides (the seeds
    differ only in paths and the seed); ConfigError naming the run and the bad key."""
    from cvr_solo.config.compose import compose_and_validate
    from cvr_solo.config.errors import ConfigError

    configs: dict[str, Any] = {}
    for spec in specs:
        try:
            if spec.label not in configs:
                configs[spec.label] = compose_and_validate(config_dir, spec.config,
                                                           p.hydra_args(spec.overrides))
        except ConfigError as err:
            raise ConfigError(f"--methods {spec.label}: {err}") from None
    return configs


def write_outputs(out: Path, results: Sequence[RunResult], header: dict[str, Any],
                  reference: dict[str, Scores] | None = None) -> None:
    """results.csv, report.md and the figures of ``results`` in ``out`` (``header``:
    bench.json's settings)."""
    from cvr_solo.bench.plots import plot
    from cvr_solo.bench.report import report_header, write_csv, write_markdown

    write_csv(results, out / "results.csv")
    figs = plot(results, out, reference)
    write_markdown(results, out / "report.md", report_header(header), figs, reference)
