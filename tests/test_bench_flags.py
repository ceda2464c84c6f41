"""The benchmark report says what a reader must not miss (issue 19): a collapsed run, a method
below the untrained backbone, a resumed run's summed cost, a one-seed difference."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time

import pytest

from cvr_solo.bench.report import flags, write_markdown
from cvr_solo.bench.result import RunResult
from tests.test_bench_report import REFERENCE, RESULTS, unpad

HEADER = "# bench"


def _md(tmp_path, results, reference=REFERENCE) -> str:
    write_markdown(results, tmp_path / "report.md", HEADER, [], reference)
    return unpad((tmp_path / "report.md").read_text())


def test_a_clean_report_says_there_is_nothing_to_flag(tmp_path):
    assert flags(RESULTS, REFERENCE) == []
    assert "## Flags\n\nNone: no run collapsed and no method is below the untrained backbone." \
        in _md(tmp_path, RESULTS)


def test_a_collapsed_run_and_a_method_below_the_untrained_backbone_are_flagged(tmp_path):
    results = copy.deepcopy(RESULTS)
    collapsed = next(r for r in results if r.label == "c_simclr" and r.seed == 6)
    collapsed.curves["z_std"] = [0.03, 0.001]  # isotropic 0.0625
    for r in results:
        if r.label == "byol":
            r.knn_acc1 = 50.0  # the untrained backbone's kNN is 55.5
    found = flags(results, REFERENCE)
    assert found == [
        "**c_simclr seed 6 collapsed**: std of z/|z| 0.0010, under 5% of the isotropic "
        "0.0625, alignment 0.400: the projector maps the images to nearly one point.",
        "**byol is below the untrained backbone** in kNN top-1: 50.00 (mean of 2 seeds) < 55.50 "
        "(random resnet18 (untrained)): pretraining made the features worse than none at this "
        "budget."]
    md = _md(tmp_path, results)
    assert "## Flags\n\n- " + found[0] + "\n- " + found[1] in md


def test_a_one_seed_difference_says_why_it_has_no_interval(tmp_path):
    md = _md(tmp_path, [r for r in RESULTS if r.seed == 5])
    assert "| c_simclr - simclr | 1 | +1.00 (one seed: no interval) |" in md


def test_a_resumed_runs_cost_is_marked_and_named(tmp_path):
    results = copy.deepcopy(RESULTS)
    results[1].attempts *= 3  # c_simclr seed 5
    md = _md(tmp_path, results)
    row = next(line for line in md.splitlines() if line.startswith("| c_simclr | 305.2"))
    assert "| 167 ± 115 † |" in row  # seed 5 summed over its 3 launches: 300, 100, 100
    assert ("† Resumed: the pretraining times are summed over the launches of c_simclr seed 5 "
            "(3 launches)") in md
    assert "† Resumed" not in _md(tmp_path, RESULTS)


def test_a_killed_launch_counts_up_to_its_last_write(tmp_path):
    root = tmp_path / "pretrain"
    root.mkdir()
    start = time.time() - 100
    (root / "metrics.csv").write_text("step\n")
    os.utime(root / "metrics.csv", (start + 40, start + 40))
    rec = RunResult(label="x", method="byol", seed=5, attempts=[
        {"start": start - 500, "wall": 300.0, "cpu": 500.0}, {"start": start}])
    rec.close_attempts(root)
    assert rec.attempts[0] == {"start": start - 500, "wall": 300.0, "cpu": 500.0}
    assert abs(rec.attempts[1]["wall"] - 40) < 1e-6 and rec.attempts[1]["cpu"] is None
    assert abs(rec.pretrain_seconds - 340) < 1e-6 and rec.pretrain_cpu_seconds is None


def test_pretrain_records_every_launch_in_the_runs_record(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from cvr_solo.bench import stages

    spec = SimpleNamespace(run_dir=tmp_path, config="c.yaml", overrides={}, label="x", seed=5,
                           method="byol", method_kwargs={})
    ctx = SimpleNamespace(budget=SimpleNamespace(pretrain_epochs=1), config_dir=tmp_path,
                          status=None)
    seen = []

    def finish(*_args):
        seen.append(RunResult.load(tmp_path / "result.json").attempts)  # saved as it starts
        (tmp_path / "pretrain").mkdir(exist_ok=True)
        (tmp_path / "pretrain" / "x-ep=0.ckpt").write_text("")

    monkeypatch.setattr(stages, "run_cli", finish)
    RunResult(label="x", method="byol", seed=5, attempts=[
        {"start": time.time() - 50, "wall": 30.0, "cpu": 20.0}]).save(tmp_path / "result.json")
    rec = stages.record(spec)
    assert stages.pretrain(ctx, spec, rec) == tmp_path / "pretrain" / "x-ep=0.ckpt"
    assert len(seen[0]) == 2 and "wall" not in seen[0][1]
    saved = RunResult.load(tmp_path / "result.json")
    assert len(saved.attempts) == 2 and not saved.evaluated
    assert 30.0 <= saved.pretrain_seconds < 35 and 20.0 <= saved.pretrain_cpu_seconds < 25
    assert stages.pretrain(ctx, spec, rec) == tmp_path / "pretrain" / "x-ep=0.ckpt"
    assert len(RunResult.load(tmp_path / "result.json").attempts) == 2  # nothing relaunched


def test_a_finished_run_is_not_retrained_when_its_checkpoints_are_gone(tmp_path, monkeypatch):
    """A relaunch (another session, checkpoints deleted to save disk) reuses result.json
    and reference.json: nothing trains, the report is rewritten."""
    pytest.importorskip("solo", reason="`cvr-solo bench` checks for solo-learn at start-up "
                        "(cvr-solo install-solo); the CI stages with solo-learn run this")
    from cvr_solo.bench import run, stages
    from cvr_solo.bench.plan import BUDGETS, parse_methods, plan_runs

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("a finished run was pretrained again")

    monkeypatch.setattr(stages, "run_cli", must_not_run)
    monkeypatch.setattr(stages, "draw_subset", must_not_run)
    data = tmp_path / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True)
    out = tmp_path / "out"
    specs = plan_runs(parse_methods("simclr,c_simclr"), [5], BUDGETS["cpu"], out, data)
    args = {"backbone": {"name": "resnet18", "kwargs": {"small_stem": False}},
            "augmentations": [{"mean": [0.2] * 3, "std": [0.3] * 3}]}
    for spec in specs:
        spec.run_dir.mkdir(parents=True)
        r = next(r for r in RESULTS if r.label == spec.label and r.seed == 5)
        r = dataclasses.replace(r, pretrain_checkpoint=str(spec.run_dir / "gone" / "x-ep=7.ckpt"))
        r.save(spec.run_dir / "result.json")
    ctx = stages.Context(BUDGETS["cpu"], out, data, tmp_path)
    (out / "reference.json").write_text(json.dumps(
        {"key": stages.reference_key(ctx, args),
         "rows": {k: v.to_dict() for k, v in REFERENCE.items()}}))
    assert run.main(["--data", str(data), "--out", str(out), "--budget", "cpu",
                     "--methods", "simclr,c_simclr", "--no-progress"]) == 0
    assert "c_simclr - simclr" in (out / "report.md").read_text()


def test_the_bench_passes_the_childs_step_to_its_console(tmp_path, monkeypatch):
    """For 12 minutes the console showed only `simclr seed 5: pretrain`."""
    import sys

    from cvr_solo.bench import stages

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho \"3 10\" > \"$CVR_SOLO_PROGRESS_FILE\"\nsleep 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    seen: list[str] = []
    stages.run_cli("pretrain", tmp_path, "c.yaml", [], tmp_path / "pretrain.log", seen.append)
    assert seen and seen[-1] == "step 3/10"


def test_step_file_writes_the_step_and_the_total(tmp_path):
    from types import SimpleNamespace

    pytest.importorskip("lightning", reason="Lightning comes with solo-learn (cvr-solo "
                        "install-solo); the callback builds on it")
    from cvr_solo.common.progress_file import read_step_file
    from cvr_solo.launch.progress import StepFile

    trainer = SimpleNamespace(is_global_zero=True, estimated_stepping_batches=40,
                              global_step=7)
    cb = StepFile(tmp_path / "s", every=3600)
    assert read_step_file(tmp_path / "s") is None
    cb.on_train_batch_end(trainer)
    trainer.global_step = 8
    cb.on_train_batch_end(trainer)  # within `every`: not written again
    assert read_step_file(tmp_path / "s") == (7, 40)
    cb.on_train_end(trainer, None)
    assert read_step_file(tmp_path / "s") == (8, 40)


def test_an_out_made_with_other_settings_is_not_mixed_with_new_runs(tmp_path):
    """bench.json names the settings its runs were made with: another value of one of them,
    or a bench.json without it, is refused; the same settings are reused."""
    from cvr_solo.bench import run

    header = {k: None for k in run._FIXED}
    header.update(budget="smoke", pretrain_epochs=2, small_stem=True, severities=(3,),
                  protocol=run.PROTOCOL.key())
    (tmp_path / "bench.json").write_text(json.dumps({**header, "pretrain_epochs": 1}))
    with pytest.raises(ValueError, match=r"other settings \(pretrain_epochs: 1 -> 2\); give"):
        run._check_reuse(tmp_path, header)
    assert json.loads((tmp_path / "bench.json").read_text())["pretrain_epochs"] == 1  # as it was
    (tmp_path / "bench.json").write_text(json.dumps(
        {k: v for k, v in header.items() if k != "small_stem"}))
    with pytest.raises(ValueError, match=r"small_stem: None -> True"):
        run._check_reuse(tmp_path, header)
    # runs evaluated under another protocol (the probe's weight decays) are not mixed in
    (tmp_path / "bench.json").write_text(json.dumps(
        {**header, "protocol": {**header["protocol"], "probe_weight_decays": [1e-4]}}))
    with pytest.raises(ValueError, match=r"other settings \(protocol: "):
        run._check_reuse(tmp_path, header)
    (tmp_path / "bench.json").write_text(json.dumps(header))
    run._check_reuse(tmp_path, header)
    assert json.loads((tmp_path / "bench.json").read_text())["small_stem"] is True


def test_a_record_of_another_version_is_refused_naming_its_file(tmp_path):
    """A result.json from before the one record (pretrain_seconds.json beside it) is not
    read as a finished run: the bench stops and names the file and the keys."""
    old = {"label": "byol", "method": "byol", "seed": 5, "clean": 80.0, "knn_acc1": 70.0,
           "pretrain_seconds": 10.0, "pretrain_cpu_seconds": 5.0, "pretrain_attempts": 1}
    (tmp_path / "result.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"result.json is not a RunResult of this cvr-solo "
                       r"version \(unknown keys \['pretrain_attempts', 'pretrain_cpu_seconds', "
                       r"'pretrain_seconds'\], missing keys \[\]\)"):
        RunResult.load(tmp_path / "result.json")
