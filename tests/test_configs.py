"""Every shipped Hydra config composes and validates; compressed variants are fair."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cvr_solo.common.catalog import BASELINE_OF
from cvr_solo.config.errors import ConfigError
from cvr_solo.config.validate import (
    CEB_DEFAULTS,
    ceb_method_kwargs,
    validate_linear_cfg,
    validate_pretrain_cfg,
)

hydra = pytest.importorskip("hydra")
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "scripts"
DATASETS = ("cifar", "imagenet-100", "imagenet", "fashion-mnist")
METHODS = ("simclr", "byol", "barlow", "mocov3", "simsiam", "c_simclr", "c_byol", "c_mocov3",
           "c_simsiam")
PRETRAIN = [(d, m) for d in DATASETS for m in METHODS]


def _compose(kind: str, dataset: str, name: str, overrides: list[str] | None = None) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / kind / dataset), version_base="1.2"):
        cfg = compose(config_name=name, overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)


def test_every_dataset_ships_every_method_and_a_linear_config():
    for d in DATASETS:
        names = {p.stem for p in (ROOT / "pretrain" / d).glob("*.yaml")}
        assert set(METHODS) <= names, d
        assert (ROOT / "linear" / d / "linear.yaml").is_file(), d
    for variant in CEB_DEFAULTS:
        shipped = {p.parent.name for p in (ROOT / "pretrain").glob(f"*/{variant}.yaml")}
        assert shipped == set(DATASETS), variant


@pytest.mark.parametrize(("dataset", "method"), PRETRAIN)
def test_pretrain_config_composes_and_validates(dataset, method):
    cfg = _compose("pretrain", dataset, method)
    validate_pretrain_cfg(cfg)
    assert cfg["method"] == {"barlow": "barlow_twins"}.get(method, method)
    assert isinstance(cfg["optimizer"]["weight_decay"], float)  # "1e-4" must not be a str
    assert len(cfg["augmentations"]) in (1, 2)
    assert cfg["wandb"]["enabled"] is False
    if method.startswith("c_"):
        mk = ceb_method_kwargs(method, cfg["method_kwargs"], cfg["max_epochs"])
        assert {k: mk[k] for k in SHIPPED[method]} == SHIPPED[method]
        if method == "c_byol":  # the published balance beta / w = 1 / 2 (w = 2, beta = 1)
            assert mk["beta"] / mk["w"] == 0.5
        elif method == "c_simsiam":  # a tenth of that balance at SimSiam's w = 1/4
            assert mk["beta"] / 0.25 == pytest.approx(0.05, rel=1e-12)
            assert mk["b_hidden_dim"] == cfg["method_kwargs"]["pred_hidden_dim"]
        else:  # kappa_b is 1/temperature of the baseline
            assert mk["kappa_b"] * cfg["method_kwargs"]["temperature"] == pytest.approx(1.0)


#: What every shipped C-config must hold, written out (Lee et al. 2021 and the release): not
#: read from the code's defaults, so a changed default cannot pass unnoticed.
SHIPPED = {
    "c_simclr": {"kappa_e": 1024.0, "beta": 1.0, "beta_schedule": "constant", "beta_guard": 0.5},
    "c_byol": {"kappa_e": 16384.0, "kappa_b": 10.0, "beta": 0.5, "w": 1.0, "b_view": "same",
               "b_hidden_dim": 4096, "beta_schedule": "constant"},
    # beyond the paper: the contrastive family's settings (C-SimCLR's) and the regression
    # family's (C-BYOL's) at SimSiam's loss scale, beta a tenth of C-BYOL's beta / w, which
    # collapsed SimSiam (docs/faithfulness.md#beyond-the-paper)
    "c_mocov3": {"kappa_e": 1024.0, "beta": 1.0, "beta_schedule": "constant",
                 "beta_guard": 0.5},
    "c_simsiam": {"kappa_e": 16384.0, "kappa_b": 10.0, "beta": 0.0125, "b_view": "same",
                  "b_hidden_dim": 512, "beta_schedule": "constant"},
}


def test_code_defaults_of_c_byol_are_the_release_pairing_at_solo_learns_loss_scale():
    assert CEB_DEFAULTS["c_byol"] | SHIPPED["c_byol"] == CEB_DEFAULTS["c_byol"]
    assert CEB_DEFAULTS["c_simclr"]["kappa_b"] == 10.0  # the paper's kappa_b (tau = 0.1)
    # the study's fix (docs/c-simclr-stability.md) is the code's default too
    assert CEB_DEFAULTS["c_simclr"] | SHIPPED["c_simclr"] == CEB_DEFAULTS["c_simclr"]
    for variant in ("c_mocov3", "c_simsiam"):  # the shipped configs are the code's defaults
        assert CEB_DEFAULTS[variant] | SHIPPED[variant] == CEB_DEFAULTS[variant]
    assert CEB_DEFAULTS["c_mocov3"]["kappa_b"] == 10.0  # derived from the temperature instead


@pytest.mark.parametrize("method", METHODS)
def test_fashion_mnist_configs_use_the_small_image_stem(method):
    assert _compose("pretrain", "fashion-mnist", method)["backbone"]["kwargs"] == {
        "small_stem": True}


@pytest.mark.parametrize("dataset", ["cifar", "imagenet-100", "imagenet"])
def test_other_datasets_leave_the_stem_to_solo_learn(dataset):
    # cifar: solo-learn's own small stem; ImageNet(-100): 224 px, the ImageNet stem is right
    cfg = _compose("pretrain", dataset, "c_byol")
    assert "small_stem" not in (cfg["backbone"].get("kwargs") or {})


@pytest.mark.parametrize(("change", "match"), [
    ({"backbone": {"name": "vit_small", "kwargs": {"small_stem": True}}},
     r"backbone.kwargs.small_stem=true needs a ResNet backbone .* got backbone.name="
     r"'vit_small'"),
    ({"backbone": {"name": "resnet18", "kwargs": {"small_stem": "yes"}}},
     "backbone.kwargs.small_stem must be true or false, got 'yes'"),
    ({"backbone": {"name": "resnet18", "kwargs": {"small_stem": False}},
      "data": {"dataset": "cifar10"}},
     "small_stem=false cannot apply to data.dataset='cifar10'"),
])
def test_bad_stem_settings_are_config_errors(change, match):
    cfg = _compose("pretrain", "fashion-mnist", "simclr")
    for key, sub in change.items():
        cfg[key].update(sub)
    with pytest.raises(ConfigError, match=match):
        validate_pretrain_cfg(cfg)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(("variant", "baseline"), sorted(BASELINE_OF.items()))
def test_compressed_variant_changes_only_the_ceb_keys(dataset, variant, baseline):
    c, b = _compose("pretrain", dataset, variant), _compose("pretrain", dataset, baseline)
    for cfg in (c, b):
        cfg.pop("name")
        cfg.pop("method")
    c_mk, b_mk = c.pop("method_kwargs"), b.pop("method_kwargs")
    assert c == b  # data, backbone, optimizer, schedule, augmentations, epochs, seed ...
    assert {k: v for k, v in c_mk.items() if k not in CEB_DEFAULTS[variant]} == b_mk


@pytest.mark.parametrize("dataset", DATASETS)
def test_linear_config_composes_and_validates(dataset):
    cfg = _compose("linear", dataset, "linear", ["pretrained_feature_extractor=x.ckpt"])
    validate_linear_cfg(cfg)
    missing = _compose("linear", dataset, "linear")
    with pytest.raises(ConfigError, match="pretrained_feature_extractor is missing"):
        validate_linear_cfg(missing)


def test_fashion_mnist_runs_on_cpu_as_shipped():
    cfg = _compose("pretrain", "fashion-mnist", "c_byol", ["accelerator=cpu"])
    validate_pretrain_cfg(cfg)
    assert cfg["precision"] == 32 and cfg["devices"] == "1"
    assert cfg["data"]["dataset"] == "custom"
    assert cfg["augmentations"][0]["crop_size"] == 32


def _fm(method: str) -> dict:
    return _compose("pretrain", "fashion-mnist", method)


@pytest.mark.parametrize(("path", "value", "match"), [
    ("method_kwargs.kappa_e", -1, "method_kwargs.kappa_e must be a number > 0, got -1"),
    ("method_kwargs.kappa_b", 0, "method_kwargs.kappa_b must be a number > 0, got 0"),
    ("method_kwargs.beta", -0.5, "method_kwargs.beta must be a number >= 0, got -0.5"),
    ("method_kwargs.w", 0, "method_kwargs.w must be a number > 0, got 0"),
    ("method_kwargs.b_view", "both", "method_kwargs.b_view must be one of 'other', 'same', "
                                     "got 'both'"),
    ("method_kwargs.beta_schedule", "step", "method_kwargs.beta_schedule must be one of "
                                            "'constant', 'warmup', 'cosine', got 'step'"),
    ("method_kwargs.beta_warmup_epochs", 500, r"method_kwargs.beta_warmup_epochs must be a "
                                              r"number >= 0 and <= 200, got 500"),
    ("method_kwargs.kapa_e", 5.0, "method_kwargs.kapa_e is not a c_byol setting; allowed:"),
    ("method_kwargs.pred_hidden_dim", 0, "method_kwargs.pred_hidden_dim must be an integer "
                                         ">= 1, got 0"),
    ("momentum.base_tau", 1.5, "momentum.base_tau must be a number >= 0 and <= 1, got 1.5"),
    ("optimizer.name", "rmsprop", "optimizer.name must be one of 'sgd', 'lars', 'adam', "
                                  "'adamw', got 'rmsprop'"),
    ("optimizer.lr", 0, "optimizer.lr must be a number > 0, got 0"),
    ("data.dataset", "mnist", "data.dataset must be one of"),
    ("max_epochs", 0, "max_epochs must be an integer >= 1, got 0"),
])
def test_c_byol_bad_values_name_key_value_and_range(path, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_pretrain_cfg(_set(_fm("c_byol"), path, value))


def _set(cfg: dict, path: str, value) -> dict:
    """cfg with cfg[a][b][c] = value for path 'a.b.c'."""
    node = cfg
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return cfg


def test_warmup_schedule_needs_warmup_epochs():
    cfg = _fm("c_byol")
    cfg["method_kwargs"]["beta_schedule"] = "warmup"
    with pytest.raises(ConfigError, match="beta_warmup_epochs must be > 0 with "
                                          "beta_schedule='warmup', got 0"):
        validate_pretrain_cfg(cfg)
    cfg["method_kwargs"]["beta_warmup_epochs"] = 10
    validate_pretrain_cfg(cfg)


def test_c_simclr_kappa_b_is_one_over_temperature():
    cfg = _fm("c_simclr")
    mk = ceb_method_kwargs("c_simclr", cfg["method_kwargs"])
    assert mk["kappa_b"] == pytest.approx(5.0) and mk["temperature"] == pytest.approx(0.2)
    mk = ceb_method_kwargs("c_simclr", {"proj_hidden_dim": 8, "proj_output_dim": 4})
    assert mk["kappa_b"] == 10.0 and mk["temperature"] == pytest.approx(0.1)
    bad = copy.deepcopy(cfg)
    bad["method_kwargs"]["kappa_b"] = 10.0
    with pytest.raises(ConfigError, match=r"method_kwargs.kappa_b \(10\) and "
                                          r"method_kwargs.temperature \(0.2\) disagree"):
        validate_pretrain_cfg(bad)


def test_cpu_device_list_is_rejected_with_the_reason():
    cfg = _fm("byol")
    cfg["accelerator"], cfg["devices"] = "cpu", [0]
    with pytest.raises(ConfigError, match=r"devices must be a number \(e.g. 1\) with "
                                          r"accelerator=cpu, got \[0\]"):
        validate_pretrain_cfg(cfg)


def test_crops_must_be_two_of_one_size():
    cfg = _fm("c_simclr")
    cfg["augmentations"][0]["num_crops"] = 3
    with pytest.raises(ConfigError, match=r"c_simclr needs exactly 2 crops of one size"):
        validate_pretrain_cfg(cfg)


def test_missing_key_is_named():
    cfg = _fm("simclr")
    del cfg["method_kwargs"]["temperature"]
    with pytest.raises(ConfigError, match="method_kwargs.temperature is missing"):
        validate_pretrain_cfg(cfg)
    cfg = _fm("c_byol")
    del cfg["data"]["train_path"]
    with pytest.raises(ConfigError, match="data.train_path is missing"):
        validate_pretrain_cfg(cfg)


def test_dali_needs_a_dali_dataset():
    cfg = _compose("pretrain", "cifar", "byol", ["data.format=dali"])
    with pytest.raises(ConfigError, match="data.format='dali' needs data.dataset in"):
        validate_pretrain_cfg(cfg)


# --- compose_and_validate: what bench calls for every method before the first run -----------

def test_compose_and_validate_names_the_misspelt_key():
    from cvr_solo.config.compose import compose_and_validate
    from cvr_solo.config.errors import ConfigError
    from cvr_solo.config.validate import shipped_config_dir

    d = shipped_config_dir("pretrain", "fashion-mnist")
    cfg = compose_and_validate(d, "c_byol.yaml", {"method_kwargs.beta": 0.25, "max_epochs": 3})
    assert cfg.method_kwargs.beta == 0.25 and cfg.max_epochs == 3
    with pytest.raises(ConfigError, match=r"method_kwargs\.kapa_e is not a c_byol setting"):
        compose_and_validate(d, "c_byol", ["++method_kwargs.kapa_e=5"])
    with pytest.raises(ConfigError, match=r"kapa_e") as err:  # Hydra's own refusal, named
        compose_and_validate(d, "c_byol", ["method_kwargs.kapa_e=5"])
    assert "Traceback" not in str(err.value)
    with pytest.raises(ConfigError, match=r"method_kwargs\.kappa_e must be a number > 0"):
        compose_and_validate(d, "c_simclr", ["method_kwargs.kappa_e=-1"])
    with pytest.raises(ConfigError, match=r"optimizer\.batch_size must be an integer"):
        compose_and_validate(d, "simclr", ["optimizer.batch_size=0"])
    with pytest.raises(FileNotFoundError, match="no config nope.yaml"):
        compose_and_validate(d, "nope")
    lin = compose_and_validate(shipped_config_dir("linear", "fashion-mnist"), "linear",
                               ["pretrained_feature_extractor=x.ckpt"], kind="linear")
    assert lin.pretrained_feature_extractor == "x.ckpt"


@pytest.mark.parametrize(("path", "value", "match"), [
    ("method_kwargs.beta_guard", 0, r"method_kwargs.beta_guard must be a number > 0 and <= 1, "
                                    r"got 0"),
    ("method_kwargs.beta_guard", 1.5, r"method_kwargs.beta_guard must be a number > 0 and <= 1,"
                                      r" got 1.5"),
    ("method_kwargs.beta_guard", "on", r"method_kwargs.beta_guard must be a number, got 'on'"),
    ("collapse_warning.enabled", "yes", r"collapse_warning.enabled must be true or false, got "
                                        r"'yes'"),
    ("collapse_warning.patience", 0, r"collapse_warning.patience must be an integer >= 1, "
                                     r"got 0"),
    ("collapse_warning.threshold", -0.1, r"collapse_warning.threshold must be a number > 0, "
                                         r"got -0.1"),
])
def test_c_simclr_guard_and_collapse_warning_bad_values(path, value, match):
    cfg = _fm("c_simclr")
    section, leaf = path.split(".")
    cfg[section][leaf] = value
    with pytest.raises(ConfigError, match=match):
        validate_pretrain_cfg(cfg)


def test_c_simclr_guard_off_is_the_release():
    cfg = _fm("c_simclr")
    cfg["method_kwargs"]["beta_guard"] = None
    validate_pretrain_cfg(cfg)
    assert ceb_method_kwargs("c_simclr", cfg["method_kwargs"])["beta_guard"] is None
    assert ceb_method_kwargs("c_simclr", {"proj_hidden_dim": 8, "proj_output_dim": 4,
                                          "beta_guard": 1})["beta_guard"] == 1.0
    assert _fm("simclr")["collapse_warning"] == {"enabled": True, "patience": 3,
                                                  "threshold": None}


@pytest.mark.parametrize(("method", "path", "value", "match"), [
    # C-SimSiam has no w: its regression weight is SimSiam's scale, fixed (SIMSIAM_W)
    ("c_simsiam", "method_kwargs.w", 1.0, "method_kwargs.w is not a c_simsiam setting"),
    ("c_simsiam", "method_kwargs.b_view", "both", "method_kwargs.b_view must be one of"),
    ("c_simsiam", "method_kwargs.b_hidden_dim", 0, "method_kwargs.b_hidden_dim must be an "
                                                    "integer >= 1, got 0"),
    ("c_mocov3", "method_kwargs.kappa_b", 10.0, r"method_kwargs.kappa_b \(10\) and "
     r"method_kwargs.temperature \(0.2\) disagree: in c_mocov3 kappa_b is 1/temperature"),
    ("c_mocov3", "method_kwargs.beta_guard", 2.0, "method_kwargs.beta_guard must be a number "
                                                  "> 0 and <= 1, got 2.0"),
    ("c_mocov3", "method_kwargs.lipschitz_diagnostic", True,
     "method_kwargs.lipschitz_diagnostic is not a c_mocov3 setting"),
    ("c_mocov3", "momentum.final_tau", 1.5, "momentum.final_tau must be a number >= 0 and "
                                            "<= 1, got 1.5"),
])
def test_new_variants_bad_values_name_key_value_and_range(method, path, value, match):
    with pytest.raises(ConfigError, match=match):
        validate_pretrain_cfg(_set(_fm(method), path, value))


def test_c_mocov3_derives_its_kappa_b_from_mocov3s_temperature():
    for dataset, kappa_b in (("fashion-mnist", 5.0), ("cifar", 5.0), ("imagenet", 1.0)):
        cfg = _compose("pretrain", dataset, "c_mocov3")
        mk = ceb_method_kwargs("c_mocov3", cfg["method_kwargs"])
        assert mk["kappa_b"] == pytest.approx(kappa_b), dataset


@pytest.mark.parametrize("dataset", DATASETS)
def test_simsiam_takes_sgd_without_lars_settings_and_the_others_keep_lars(dataset):
    # torch's SGD would reject LARS' clip_lr/eta/exclude_bias_n_norm as keyword arguments
    for method in ("simsiam", "c_simsiam"):
        opt = _compose("pretrain", dataset, method)["optimizer"]
        assert opt["name"] == "sgd"
        assert opt.get("kwargs", {}) == ({"momentum": 0.9} if dataset == "imagenet" else {})
    for method in ("simclr", "byol", "barlow", "mocov3", "c_mocov3"):
        opt = _compose("pretrain", dataset, method)["optimizer"]
        assert opt["name"] == "lars" and {"eta", "clip_lr"} <= set(opt["kwargs"]), method
