"""The benchmark's pure plan, its statistics and its evaluation helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cvr_solo.bench.plan import BUDGETS, Raw, hydra_args, parse_methods, parse_seeds, plan_runs
from cvr_solo.bench.report import _pm, paired_t_interval
from cvr_solo.evaluation.frozen import ImageSet, reference_rows
from cvr_solo.evaluation.probe import probe_accuracy, select_probe, train_probe


def test_parse_methods():
    assert parse_methods("simclr,c_byol:beta=0.1+b_view=same,barlow") == [
        ("simclr", "simclr", {}),
        ("c_byol@beta=0.1_b_view=same", "c_byol", {"beta": "0.1", "b_view": "same"}),
        ("barlow", "barlow_twins", {})]
    with pytest.raises(ValueError, match="unknown method 'moco'"):
        parse_methods("simclr,moco")
    with pytest.raises(ValueError,
                       match="only c_simclr/c_byol/c_mocov3/c_simsiam take CEB overrides"):
        parse_methods("byol:beta=1")
    with pytest.raises(ValueError, match="give each run once"):
        parse_methods("byol,byol")
    with pytest.raises(ValueError, match="overrides are key=value"):
        parse_methods("c_byol:beta")


def test_parse_seeds():
    assert parse_seeds("5,6,7") == [5, 6, 7]
    for bad in ("5,x", "5,5", "", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_hydra_args_quote_once():
    assert hydra_args({"name": "c_byol@b_view=other-seed5", "x": None, "e": 2,
                       "p": Path("/a b/c,d"), "t": True, "l": [1, 2],
                       "method_kwargs.beta": Raw("0.5")}) == [
        "name='c_byol@b_view=other-seed5'", "x=null", "e=2", "p='/a b/c,d'", "t=True",
        "l=[1,2]", "method_kwargs.beta=0.5"]
    assert hydra_args({"n": "it's"}) == ["n='it\\'s'"]


def test_plan_is_seed_major_with_per_seed_subsets_and_overrides():
    methods = parse_methods("simclr,c_byol:b_view=other")
    specs = plan_runs(methods, [5, 6], BUDGETS["smoke"], Path("out"), Path("data"))
    assert [(s.label, s.seed) for s in specs] == [
        ("simclr", 5), ("c_byol@b_view=other", 5), ("simclr", 6), ("c_byol@b_view=other", 6)]
    s = specs[1]
    assert s.run_dir == Path("out/runs/c_byol@b_view=other/seed-5")
    assert s.train_dir == Path("out/data/seed-5") and specs[2].train_dir == Path("out/data/seed-6")
    assert s.config == "c_byol.yaml"
    o = s.overrides
    assert o["seed"] == 5 and o["data.train_path"] == s.train_dir
    assert o["max_epochs"] == BUDGETS["smoke"].pretrain_epochs
    assert o["checkpoint.dir"] == s.run_dir / "pretrain"
    assert o["method_kwargs.b_view"] == "other" and o["++diagnostics.enabled"] is True
    assert o["++diagnostics.data_path"] == Path("data/val")  # held out from pretraining
    assert o["data.val_path"] is None and o["accelerator"] == "cpu"
    args = hydra_args(o)
    assert "method_kwargs.b_view=other" in args and "augmentations=asymmetric.yaml" in args
    assert "seed=5" in args and "precision=bf16-mixed" in args
    gpu = plan_runs(methods, [5], BUDGETS["gpu"], Path("o"), Path("d"), "native", dali=True)
    assert gpu[0].train_dir == Path("d/train")  # all images
    assert gpu[0].overrides["precision"] == "bf16-mixed"
    assert gpu[0].overrides["data.format"] == "dali" and "augmentations" not in gpu[0].overrides


def test_budgets():
    g = BUDGETS["gpu"]
    assert (g.subset, g.val_subset, g.batch_size, g.precision) == (None, None, 256, "bf16-mixed")
    assert BUDGETS["full"].pretrain_epochs == 100
    assert all(b.val_subset is None for b in BUDGETS.values())  # the full validation split


def test_cpu_budget_plan_gives_every_run_the_same_sizes_and_only_its_method_differs():
    """The CPU ranking budget (issue #16): every run of a seed gets the same size knobs
    (ImageNet stem, 32 px crops of the shipped augmentations, epochs, batch, subset, bf16) and
    the same schedule; a run's overrides differ from another's only in its name and folder."""
    cpu = BUDGETS["cpu"]
    assert (cpu.device, cpu.precision, cpu.small_stem, cpu.val_subset) == (
        "cpu", "bf16-mixed", False, None)
    specs = plan_runs(parse_methods("simclr,c_simclr,byol,c_byol,barlow_twins"), [5, 6], cpu,
                      Path("o"), Path("d"))
    assert len(specs) == 10 and [s.seed for s in specs] == [5] * 5 + [6] * 5
    shared = {"name", "checkpoint.dir"}
    for seed in (5, 6):
        runs = [s for s in specs if s.seed == seed]
        first = {k: v for k, v in runs[0].overrides.items() if k not in shared}
        for s in runs:
            assert {k: v for k, v in s.overrides.items() if k not in shared} == first
            assert s.train_dir == Path(f"o/data/seed-{seed}")
    o = specs[0].overrides
    assert o["++backbone.kwargs.small_stem"] is False and o["max_epochs"] == cpu.pretrain_epochs
    assert o["optimizer.batch_size"] == cpu.batch_size and o["precision"] == "bf16-mixed"
    assert o["++scheduler.warmup_epochs"] == 2  # a tenth of the 20 epochs
    assert "++checkpoint.keep_prev" not in o
    assert [s.config for s in specs[:5]] == ["simclr.yaml", "c_simclr.yaml", "byol.yaml",
                                             "c_byol.yaml", "barlow.yaml"]
    kept = plan_runs(parse_methods("simclr"), [5], cpu, Path("o"), Path("d"),
                     keep_checkpoints=True)
    assert kept[0].overrides["++checkpoint.keep_prev"] is True


@pytest.mark.parametrize("epochs, warmup", [(2, 0), (8, 1), (10, 1), (25, 2), (100, 10),
                                            (400, 10)])
def test_warmup_is_a_rounded_tenth_of_the_run_at_most_ten_epochs(epochs, warmup):
    import dataclasses

    budget = dataclasses.replace(BUDGETS["cpu"], pretrain_epochs=epochs)
    spec = plan_runs(parse_methods("byol"), [5], budget, Path("o"), Path("d"))[0]
    assert spec.overrides["++scheduler.warmup_epochs"] == warmup


def test_cpu_budget_overrides_compose_and_validate_for_every_method(tmp_path):
    from cvr_solo.bench.run import check_runs
    from cvr_solo.config.validate import shipped_config_dir

    specs = plan_runs(parse_methods("simclr,c_simclr,byol,c_byol,barlow_twins"), [5],
                      BUDGETS["cpu"], tmp_path, tmp_path, keep_checkpoints=True)
    configs = check_runs(shipped_config_dir("pretrain", "fashion-mnist"), specs)
    assert list(configs) == ["simclr", "c_simclr", "byol", "c_byol", "barlow_twins"]
    # the reference rows are planned from the same composed config: the runs' stem
    from cvr_solo.bench.stages import reference_args

    for cfg in configs.values():
        assert reference_args(cfg) == {
            "backbone": {"name": "resnet18", "kwargs": {"small_stem": False}},
            "augmentations": [{"mean": [0.219] * 3, "std": [0.3318] * 3}]}


def test_mean_std_and_t_interval_against_hand_numbers():
    assert _pm([2.0, 4.0, 9.0], 3) == f"5.000 ± {math.sqrt(13):.3f}"  # sample sd
    assert _pm([1.5]) == "1.50" and _pm([None, float("nan")]) == "n/a"
    assert _pm([1.0, None, float("nan"), float("inf"), 3.0], 4) == f"2.0000 ± {math.sqrt(2):.4f}"
    # diffs 1, 2, 3 (n = 3): mean 2, sd 1, t(0.975, 2) = 4.302652729911275
    m, lo, hi, n = paired_t_interval([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (m, n) == (2.0, 3) and (lo, hi) == pytest.approx((2 - half, 2 + half))
    # 90% with n = 5: t(0.95, 4) = 2.131846786326649; diffs -1, 0, 1, 2, 3 (sd sqrt(2.5))
    m, lo, hi, n = paired_t_interval([-1.0, 0.0, 1.0, 2.0, 3.0], [0.0] * 5, level=0.9)
    half = 2.131846786326649 * math.sqrt(2.5) / math.sqrt(5)
    assert (lo, hi) == pytest.approx((1 - half, 1 + half))
    from scipy import stats

    ref = stats.t.interval(0.9, 4, loc=1.0, scale=math.sqrt(2.5) / math.sqrt(5))
    assert (lo, hi) == pytest.approx(ref)
    with pytest.raises(ValueError, match="equal non-empty"):
        paired_t_interval([1.0], [1.0, 2.0])


def test_probe_learns_a_separable_problem_and_generalises():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 20, generator=g) * 3
    y = torch.arange(400) % 4
    x = centres[y] + torch.randn(400, 20, generator=g)
    probe = train_probe(x[:200], y[:200])
    assert probe_accuracy(probe, x[200:], y[200:]) > 95
    noise = torch.randn(400, 20, generator=g)
    assert probe_accuracy(train_probe(noise[:200], y[:200]), noise[200:], y[200:]) < 45


def _two_classes(n: int, d: int, shift: float, g: torch.Generator):
    y = torch.arange(n) % 2
    return torch.randn(n, d, generator=g) + (2 * y[:, None] - 1) * shift, y


def test_select_probe_chooses_the_weight_decay_that_generalises():
    g = torch.Generator().manual_seed(0)
    # separable: a weight decay of 1e3 shrinks W to ~0 and scores ~chance on the held-out part
    x, y = _two_classes(400, 20, 1.0, g)
    probe, wd = select_probe(x[:200], y[:200], weight_decays=(1e-4, 1e3))
    assert wd == 1e-4 and probe_accuracy(probe, x[200:], y[200:]) > 95
    # more dimensions than images, a weak signal spread over all: 1e-4 overfits (with
    # generator seeds 0-4 the choice is 1.0 each time, +2.3 to +3.2 points on fresh data)
    g = torch.Generator().manual_seed(0)
    x, y = _two_classes(300, 600, 0.05, g)
    test_x, test_y = _two_classes(2000, 600, 0.05, g)
    probe, wd = select_probe(x, y, weight_decays=(1e-4, 1.0))
    assert wd == 1.0
    assert (probe_accuracy(probe, test_x, test_y)
            > probe_accuracy(train_probe(x, y, 1e-4), test_x, test_y) + 1)


def test_select_probe_refits_on_all_images_and_rejects_an_empty_grid():
    g = torch.Generator().manual_seed(1)
    x, y = _two_classes(100, 5, 0.5, g)
    probe, wd = select_probe(x, y, weight_decays=(1e-3,))
    assert wd == 1e-3
    assert torch.equal(probe.linear.weight, train_probe(x, y, 1e-3).linear.weight)
    with pytest.raises(ValueError, match="weight_decays is empty"):
        select_probe(x, y, weight_decays=())


def test_reference_rows_pixels_and_untrained_backbone(monkeypatch):
    """Pixel probe on images whose class is the brightness of one quadrant: ~100%; the
    'untrained backbone' (a fixed random projection here) is evaluated like a run."""
    pytest.importorskip("solo", reason="the kNN of the reference rows is solo-learn's "
                        "(cvr-solo install-solo); the CI stages with solo-learn run this")
    import cvr_solo.evaluation.frozen as ev

    g = torch.Generator().manual_seed(1)

    def images(n: int) -> ImageSet:
        y = torch.arange(n) % 4
        x = torch.rand(n, 3, 8, 8, generator=g) * 0.2
        for k in range(4):
            r, c = divmod(k, 2)
            x[y == k, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.7
        return ImageSet(x, y)

    def fake_backbone(name, kwargs, seed=0):
        assert (name, kwargs) == ("resnet18", {"small_stem": True})
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 32))

    monkeypatch.setattr(ev, "random_backbone", fake_backbone)
    train, val = images(200), images(100)
    rows = reference_rows(train, val, torch.arange(0, 100, 5), (3,), "resnet18",
                          {"small_stem": True}, [0.5] * 3, [0.25] * 3, "cpu", progress=False)
    assert rows["raw pixels (linear probe)"].clean == 100.0
    rnd = rows["random resnet18 (untrained)"]
    assert rnd.clean > 90 and rnd.knn_acc1 > 90
    assert rnd.corruption_images == 20 and len(rnd.corruptions) == 7
    json.dumps({k: v.to_dict() for k, v in rows.items()})


def test_reference_stage_is_cached_per_data_and_budget(tmp_path, monkeypatch):
    import dataclasses

    import cvr_solo.evaluation.frozen as ev
    from cvr_solo.bench import stages
    from cvr_solo.evaluation.protocol import Scores

    computed = []

    def rows(*args, **kwargs):
        computed.append(args)
        return {"x": Scores(clean=float(len(computed)), knn_acc1=None)}

    monkeypatch.setattr(ev, "reference_rows", rows)
    monkeypatch.setattr(stages, "draw_subset", lambda *a: tmp_path)
    args = {"backbone": {"name": "resnet18", "kwargs": {"small_stem": True}},
            "augmentations": [{"mean": [0.2] * 3, "std": [0.3] * 3}]}

    def reference(budget=BUDGETS["smoke"], run_args=args):
        ctx = stages.Context(budget, tmp_path, tmp_path / "data", tmp_path)
        ctx.train_set = lambda folder: None
        ctx.val_set = lambda: (None, None)
        return stages.reference(ctx, run_args)["x"].clean

    assert reference() == 1.0 and reference() == 1.0  # computed once, then read back
    assert reference(dataclasses.replace(BUDGETS["smoke"], subset=500)) == 2.0
    big = {**args, "backbone": {"name": "resnet18", "kwargs": {"small_stem": False}}}
    assert reference(run_args=big) == 3.0
    # features at another precision
    assert reference(dataclasses.replace(BUDGETS["smoke"], precision="32")) == 4.0
    assert reference(dataclasses.replace(BUDGETS["smoke"], precision="32")) == 4.0
    saved = json.loads((tmp_path / "reference.json").read_text())
    assert saved["key"]["precision"] == "32" and saved["rows"]["x"]["clean"] == 4.0
    # another evaluation protocol: the rows of the old probe are not reused (a29cf43's
    # report carried reference rows of the probe before its weight decay was chosen)
    other = dataclasses.replace(stages.PROTOCOL, probe_weight_decays=(1e-4,))
    monkeypatch.setattr(stages, "PROTOCOL", other)
    assert reference(dataclasses.replace(BUDGETS["smoke"], precision="32")) == 5.0
    saved = json.loads((tmp_path / "reference.json").read_text())
    assert saved["key"]["protocol"]["probe_weight_decays"] == [1e-4]


def test_bf16_features_are_float32_and_close_to_fp32():
    from cvr_solo.evaluation.frozen import features

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    images = torch.rand(20, 3, 12, 12)
    args = (net, images, [0.5] * 3, [0.25] * 3, torch.device("cpu"))
    exact = features(*args, batch_size=7)
    half = features(*args, batch_size=7, precision="bf16-mixed")
    assert half.dtype == torch.float32 and half.shape == exact.shape == (20, 16)
    assert not torch.equal(half, exact)  # the autocast did apply
    torch.testing.assert_close(half, exact, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("native, given, expected", [
    (True, None, "bf16-mixed"), (False, None, "32"), (False, "bf16-mixed", "bf16-mixed"),
    (True, "32", "32")])
def test_smoke_budget_precision_follows_the_cpu(monkeypatch, capsys, native, given, expected):
    import cvr_solo.bench.run as run

    monkeypatch.setattr(run, "cpu_runs_bf16", lambda: native)
    argv = ["--data", "d", "--out", "o", "--budget", "smoke"]
    argv += ["--precision", given] if given else []
    assert run._budget(run._parser().parse_args(argv)).precision == expected
    warned = "no native bf16" in capsys.readouterr().err
    assert warned == (not native and given is None)


def test_the_stem_is_a_budget_knob_on_the_command_line(capsys):
    import cvr_solo.bench.run as run

    parse = run._parser().parse_args
    base = ["--data", "d", "--out", "o", "--budget", "cpu"]
    assert run._budget(parse(base)).small_stem is False
    assert run._budget(parse([*base, "--small-stem"])).small_stem is True
    smoke = ["--data", "d", "--out", "o", "--budget", "smoke"]
    assert run._budget(parse(smoke)).small_stem is True
    assert run._budget(parse([*smoke, "--no-small-stem"])).small_stem is False
    with pytest.raises(SystemExit):
        parse([*base, "--small-stem", "yes"])
    assert "unrecognized arguments: yes" in capsys.readouterr().err


def test_progress_is_on_unless_switched_off():
    import cvr_solo.bench.run as run

    base = ["--data", "d", "--out", "o"]
    assert run._parser().parse_args(base).progress is True
    assert run._parser().parse_args([*base, "--no-progress"]).progress is False
    assert run._parser().parse_args([*base, "--progress"]).progress is True


def test_bench_says_how_to_install_what_its_report_needs(monkeypatch, capsys):
    import importlib.util

    import cvr_solo.bench.run as run

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tabulate" else real(name, *a))
    assert run.main(["--data", "d", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "needs tabulate for its report: pip install 'cvr-solo[bench]'" in err


def test_bench_checks_every_runs_overrides_before_anything_trains(tmp_path):
    from cvr_solo.bench.plan import BUDGETS, parse_methods, plan_runs
    from cvr_solo.bench.run import check_runs
    from cvr_solo.config.errors import ConfigError
    from cvr_solo.config.validate import shipped_config_dir

    config_dir = shipped_config_dir("pretrain", "fashion-mnist")
    good = plan_runs(parse_methods("byol,c_byol:b_view=other"), [5, 6], BUDGETS["smoke"],
                     tmp_path, tmp_path)
    check_runs(config_dir, good)
    bad = plan_runs(parse_methods("byol,c_byol:kapa_e=5"), [5], BUDGETS["smoke"], tmp_path,
                    tmp_path)
    with pytest.raises(ConfigError, match=r"--methods c_byol@kapa_e=5: .*kapa_e"):
        check_runs(config_dir, bad)
    worse = plan_runs(parse_methods("c_byol:beta=-1"), [5], BUDGETS["smoke"], tmp_path,
                      tmp_path)
    with pytest.raises(ConfigError, match="method_kwargs.beta must be a number >= 0, got -1"):
        check_runs(config_dir, worse)
    assert not any(tmp_path.iterdir())  # nothing written


def test_bench_help_describes_every_option_and_each_budget():
    from cvr_solo.bench.plan import BUDGETS, describe_budget
    from cvr_solo.bench.run import _parser

    parser = _parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    text = parser.format_help()
    for name in BUDGETS:
        assert describe_budget(name) in text
    smoke = BUDGETS["smoke"]
    assert (f"smoke: {smoke.subset} train images per seed, {smoke.pretrain_epochs} pretraining "
            f"epochs at batch {smoke.batch_size}") in text
