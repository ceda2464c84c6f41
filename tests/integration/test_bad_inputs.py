"""Each bad input of tests/bad_inputs.py gets one line on stderr naming the key or file, exit
code 2, no traceback and, found at start-up, nothing written (issue 19)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.bad_inputs import BAD_INPUTS, BadInput

from .helpers import LINEAR, PRETRAIN, crop_overrides, run_cli, small_run_overrides


def _checkpoint(folder: Path, method: str) -> Path:
    """A small-stem backbone checkpoint with the args.json solo-learn's Checkpointer writes."""
    from torchvision.models import resnet18

    from cvr_solo.solo.stem import use_small_stem

    folder.mkdir(parents=True)
    net = use_small_stem(resnet18())
    path = folder / f"{method}-ep=0.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()
                               if not k.startswith("fc.")}}, path)
    (folder / "args.json").write_text(json.dumps({"method": method}))
    return path


def _read_only_folder(tmp: Path) -> Path:
    """A folder this process cannot write in: a mode-555 folder, or as root (who writes
    anywhere the mode says no) a folder of /sys, where no one creates files."""
    if os.geteuid() != 0:
        folder = tmp / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    folder = Path("/sys/kernel")
    if not folder.is_dir():
        pytest.skip("root, and no /sys/kernel to stand for a read-only folder")
    return folder


def _args(case: BadInput, data: Path, tmp: Path) -> tuple[list[str], Path]:
    """(command line, the folder that must stay unwritten) of ``case``."""
    out = tmp / "out"
    over = small_run_overrides(data, out)
    if case.id == "precision":
        over.append("precision=bogus")
    elif case.id == "checkpoint_dir_under_file":
        (tmp / "file").write_text("x")
        out = tmp / "file" / "runs"
        over = small_run_overrides(data, out)
    elif case.id in ("checkpoint_dir_read_only", "checkpoint_dir_under_read_only"):
        folder = _read_only_folder(tmp)
        ckpt = folder if case.id == "checkpoint_dir_read_only" else folder / "runs"
        over = small_run_overrides(data, ckpt)
        out = ckpt / "c_byol"  # the run folder a run would make there
    elif case.id == "accelerator_gpu":
        if torch.cuda.is_available():
            pytest.skip("a GPU is visible: accelerator=gpu is no bad input here")
        over = [o for o in over if o != "accelerator=cpu"] + ["accelerator=gpu"]
    elif case.id == "one_class":
        one = tmp / "one"
        shutil.copytree(next(p for p in sorted((data / "train").iterdir())), one / "train" /
                        sorted(p.name for p in (data / "train").iterdir())[0])
        over = [o for o in over if not o.startswith("data.")]
        over += [f"data.train_path={one / 'train'}", "data.val_path=null",
                 "data.num_workers=0"]
    elif case.id == "key_without_plus":
        over.append("method_kwargs.betta=0.5")
    elif case.id == "corrupt_image":
        bad = tmp / "data"
        shutil.copytree(data, bad)
        first = sorted((bad / "train").iterdir())[0]
        next(first.glob("*.png")).write_bytes(b"not a png")
        over = [o.replace(str(data), str(bad)).replace("num_workers=0", "num_workers=1")
                for o in over] + ["data.val_path=null", *crop_overrides("c_byol")]
    if case.command == "pretrain":
        name = "c_byl.yaml" if case.id == "config_name" else "c_byol.yaml"
        return ["pretrain", "--config-path", str(PRETRAIN), "--config-name", name, *over], out
    ckpt = _checkpoint(tmp / "pre", "c_byol")
    method = "byol" if case.id == "wrong_pretrain_method" else "c_byol"
    if case.id == "truncated_checkpoint":
        ckpt.write_bytes(ckpt.read_bytes()[:5000])
    value = f"'{ckpt}'"
    if case.id == "unquoted_equals":
        value = str(ckpt)
    return ["linear", "--config-path", str(LINEAR), "--config-name", "linear.yaml",
            f"pretrained_feature_extractor={value}", f"pretrain_method={method}", *over], out


#: the cases whose check meets Lightning: its precision names, and the loader's error raised
#: inside its training loop; the others fail in our start-up checks before Lightning runs,
#: the same code on every stack (CI's stage 3 deselects them: pins_only)
_ON_EVERY_STACK = ("precision", "corrupt_image")


@pytest.mark.parametrize("case", [
    pytest.param(c, id=c.id, marks=() if c.id in _ON_EVERY_STACK else pytest.mark.pins_only)
    for c in BAD_INPUTS])
def test_a_bad_input_gets_one_line_naming_it(tmp_path, fm_data, case):
    argv, out = _args(case, fm_data, tmp_path)
    proc = run_cli(*argv)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith(f"cvr-solo {case.command}: error: "), errors
    assert case.message in errors[0], errors[0]
    if case.id == "corrupt_image":  # found mid-epoch: the file is named
        assert str(tmp_path / "data" / "train") in errors[0]
    else:  # found at start-up: nothing written
        assert not out.exists()


def test_linear_takes_an_unset_pretrain_method_from_the_checkpoints_args(tmp_path, capsys):
    from omegaconf import OmegaConf

    from cvr_solo.launch.linear import check_pretrain_method

    ckpt = _checkpoint(tmp_path / "pre", "c_simclr")
    cfg = OmegaConf.create({"pretrained_feature_extractor": str(ckpt), "pretrain_method": None})
    check_pretrain_method(cfg)
    assert cfg.pretrain_method == "c_simclr"
    assert capsys.readouterr().err.strip() == (
        f"cvr-solo linear: pretrain_method=c_simclr (from {ckpt.parent / 'args.json'})")
    (ckpt.parent / "args.json").unlink()  # nothing to compare with: left as given
    cfg.pretrain_method = "byol"
    check_pretrain_method(cfg)
    assert cfg.pretrain_method == "byol"
