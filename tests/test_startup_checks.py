"""Issue 19's start-up checks without solo-learn: devices, precision, checkpoint.dir, one-class
data, unreadable images, and Hydra's three commonest slips."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image
from torchvision.datasets import ImageFolder

from cvr_solo.config.datacheck import BadImageError, check_data, check_images_on_read
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.overrides import check_hydra_args
from cvr_solo.config.trainer import check_checkpoint_dir, check_precision, normalize_devices
from cvr_solo.config.validate import validate_pretrain_cfg

ROOT = Path(__file__).resolve().parents[1] / "scripts" / "pretrain" / "fashion-mnist"


@pytest.mark.parametrize(("accelerator", "cuda", "want"), [
    ("cpu", True, "2"), ("auto", False, "2"), ("gpu", True, [0, 1]), ("auto", True, [0, 1])])
def test_an_integer_devices_takes_the_form_solo_learn_scales_the_lr_by(
        monkeypatch, accelerator, cuda, want):
    monkeypatch.setattr("torch.cuda.is_available", lambda: cuda)
    cfg = {"accelerator": accelerator, "devices": 2}
    normalize_devices(cfg)
    assert cfg["devices"] == want


def test_devices_2_passes_the_pretrain_checks(tmp_path):
    from tests.test_configs import _fm

    cfg = _fm("byol")
    cfg.update(accelerator="cpu", devices=2)
    cfg["checkpoint"]["dir"] = str(tmp_path)
    validate_pretrain_cfg(cfg)
    assert cfg["devices"] == "2"
    for bad in (0, -1):
        with pytest.raises(ConfigError, match=rf"devices must be >= 1, .* got {bad}"):
            normalize_devices({"devices": bad})


@pytest.mark.parametrize("good", [32, 16, "16-mixed", "bf16-mixed", "32-true", None])
def test_lightnings_precisions_pass(good):
    if good is not None:  # without Lightning the check has no list and passes anything
        pytest.importorskip("lightning", reason="the allowed precisions are Lightning's own "
                            "list; Lightning comes with solo-learn (cvr-solo install-solo)")
    assert check_precision(good) is None


@pytest.mark.parametrize("bad", ["bogus", 8, True])
def test_other_precisions_are_named_with_the_allowed_ones(bad):
    pytest.importorskip("lightning", reason="the allowed precisions are Lightning's own list; "
                        "Lightning comes with solo-learn (cvr-solo install-solo)")
    with pytest.raises(ConfigError, match=rf"precision must be one of 64, 32, 16, .*"
                                          rf"bf16-mixed.*, got {bad!r}"):
        check_precision(bad)


def test_checkpoint_dir_below_a_file_is_refused_and_a_new_one_passes(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=rf"checkpoint.dir=.*: {tmp_path / 'f'} is a file"):
        check_checkpoint_dir(str(tmp_path / "f" / "a" / "b"))
    check_checkpoint_dir(str(tmp_path / "new" / "runs"))
    assert not (tmp_path / "new").exists()  # a check, not a mkdir


def _folder(root: Path, classes: tuple[str, ...]) -> Path:
    for c in classes:
        (root / c).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / c / "0.png")
    return root


@pytest.mark.parametrize("kind", ["pretrain", "linear"])
def test_one_class_data_is_refused(tmp_path, kind):
    train = _folder(tmp_path / "train", ("only",))
    cfg = OmegaConf.create({"data": {"dataset": "custom", "train_path": str(train),
                                     "val_path": None},
                            "augmentations": [{"crop_size": 32, "num_crops": 2}]})
    with pytest.raises(ConfigError, match=r"holds 1 class folder \(only\): the linear "
                                          r"classifier needs at least 2 classes"):
        check_data(cfg, kind)
    cfg.data.no_labels = True
    check_data(cfg, "pretrain")  # unlabelled images: no classifier, no class rule


def test_an_unreadable_image_is_named_also_through_a_worker(tmp_path):
    import torch.utils.data

    root = _folder(tmp_path / "train", ("a", "b"))
    (root / "b" / "0.png").write_bytes(b"not a png")
    ds = check_images_on_read(ImageFolder(str(root)), "data.train_path")
    ds[0]  # a good image reads as before
    with pytest.raises(BadImageError, match=rf"^data.train_path: cannot read the image "
                                            rf"{root / 'b' / '0.png'} \(cannot identify image "
                                            rf"file\); remove or replace the file"):
        ds[1]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [1]), num_workers=1,
                                         collate_fn=lambda batch: batch)
    with pytest.raises(BadImageError) as err:
        next(iter(loader))
    assert str(err.value).startswith("data.train_path: cannot read the image ")
    assert "\n" not in str(err.value)


def _hydra(*argv: str) -> None:
    check_hydra_args(["--config-path", str(ROOT), *argv])


def test_hydra_slips_get_what_was_meant():
    with pytest.raises(ConfigError, match=r"--config-name c_byl.yaml: no such config in .*; "
                                          r"did you mean --config-name c_byol.yaml\?"):
        _hydra("--config-name", "c_byl.yaml")
    with pytest.raises(ConfigError, match=r"method_kwargs.betta is not a key of c_byol.yaml: "
                                          r"did you mean method_kwargs.beta\? allowed keys "
                                          r"under method_kwargs: .*kappa_e.*; add \+"):
        _hydra("--config-name", "c_byol.yaml", "max_epochs=2", "method_kwargs.betta=1")
    with pytest.raises(ConfigError, match=r"quote a value .*: "
                                          r"pretrained_feature_extractor=\"'a/x-ep=9.ckpt'\""):
        _hydra("--config-name", "c_byol.yaml", "pretrained_feature_extractor=a/x-ep=9.ckpt")


def test_good_hydra_command_lines_and_hydras_own_options_pass():
    good = ("--config-name", "c_byol", "+method_kwargs.betta=1", "max_epochs=2",
            "name='run=1'")
    assert _hydra(*good) is None
    # the same line with the key not added (no +) is refused: the check ran on this config
    with pytest.raises(ConfigError, match="method_kwargs.betta"):
        _hydra(*(a.lstrip("+") for a in good))
    assert _hydra("--config-name", "c_byl.yaml", "--cfg", "job") is None  # Hydra's to answer
    with pytest.raises(ConfigError, match="c_byl"):  # the same slip without Hydra's option
        _hydra("--config-name", "c_byl.yaml")
    assert check_hydra_args(["--config-name", "c_byl.yaml"]) is None  # no path: Hydra's search
