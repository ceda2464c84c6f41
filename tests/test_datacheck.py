"""Start-up data checks (no solo-learn): class folders, class sets, class counts, crops."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cvr_solo.config.datacheck import check_data, class_folders
from cvr_solo.config.errors import ConfigError

AUG = [{"crop_size": 32, "num_crops": 2}]


def _split(root, classes=("a", "b", "c"), images=1):
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(images):
            (root / c / f"{i}.png").write_bytes(b"")
    return root


def _cfg(train, val=None, kind_extra=None, **data):
    cfg = {"data": {"dataset": "custom", "format": "image_folder", "train_path": str(train),
                    "val_path": None if val is None else str(val), **data},
           "augmentations": AUG}
    return OmegaConf.create({**cfg, **(kind_extra or {})})


def test_a_good_pair_of_splits_passes(tmp_path):
    train, val = _split(tmp_path / "train"), _split(tmp_path / "val")
    check_data(_cfg(train, val))
    check_data(_cfg(train, val, num_classes=3))
    check_data(_cfg(train, val), kind="linear")
    assert class_folders(train, "data.train_path") == ["a", "b", "c"]


def test_dataset_root_as_train_path_is_named(tmp_path):
    _split(tmp_path / "train"), _split(tmp_path / "val")
    with pytest.raises(ConfigError, match=r"data\.train_path=.* holds train, val, whose "
                                          r"sub-folders are the class folders") as err:
        check_data(_cfg(tmp_path, tmp_path / "val"))
    assert f"data.train_path={tmp_path / 'train'}" in str(err.value)


def test_missing_folder_empty_folder_and_empty_class(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.train_path: no directory"):
        check_data(_cfg(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"has no sub-folders"):
        check_data(_cfg(tmp_path / "empty"))
    train = _split(tmp_path / "train")
    (train / "d").mkdir()
    (train / "d" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"class folder\(s\) d hold no images"):
        check_data(_cfg(train))


def test_train_and_val_class_sets_must_agree(tmp_path):
    train = _split(tmp_path / "train")
    val = _split(tmp_path / "val", classes=("a", "b", "x"))
    with pytest.raises(ConfigError, match=r"different class folders: only in train \['c'\], "
                                          r"only in val \['x'\]"):
        check_data(_cfg(train, val))


def test_num_classes_that_solo_learn_would_replace(tmp_path):
    train = _split(tmp_path / "train")
    with pytest.raises(ConfigError, match=r"data\.num_classes=10 disagrees with the 3 class "
                                          r"folders"):
        check_data(_cfg(train, num_classes=10))
    cfg = _cfg(train)
    cfg.data.dataset = "imagenet100"
    with pytest.raises(ConfigError, match=r"imagenet100 has 100 classes, but .* holds 3"):
        check_data(cfg)


def test_crop_counts_that_solo_learn_would_replace(tmp_path):
    train = _split(tmp_path / "train")
    with pytest.raises(ConfigError, match=r"data\.num_small_crops=2 would be silently "
                                          r"replaced by solo-learn with 0"):
        check_data(_cfg(train, num_small_crops=2))
    check_data(_cfg(train, num_large_crops=2, num_small_crops=0))
    # the linear probe has no crops to count
    check_data(_cfg(train, num_small_crops=2), kind="linear")


def test_non_folder_datasets_and_unlabelled_data_are_left_to_solo_learn(tmp_path):
    cfg = _cfg(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r"data\.train_path: no directory"):
        check_data(cfg)  # as an image folder, the missing path is refused ...
    cfg.data.dataset = "cifar10"
    assert check_data(cfg) is None  # ... not for torchvision's CIFAR (reads its own files)
    flat = tmp_path / "flat"
    flat.mkdir()
    with pytest.raises(ConfigError, match=r"has no sub-folders"):
        check_data(_cfg(flat))
    assert check_data(_cfg(flat, no_labels=True)) is None  # unlabelled: no classes wanted
