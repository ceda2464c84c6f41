"""cvr-solo's methods inside solo-learn: registration, pretrain -> linear -> load, the stems,
the config checks through solo-learn's own parsing, solo-learn's own main_pretrain.py.
(Resuming and the target branch: test_solo_training.py.)"""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvr_solo.common.catalog import METHODS as METHODS_INFO
from cvr_solo.solo.stem import has_small_stem

from .helpers import LINEAR, PRETRAIN, REPO, compose_pretrain, run_cli, small_run_overrides

# the C-variants carry the flow on every stack; the baselines, the second b_view and C-MoCo v3
# (C-SimCLR's contrastive CEB path on another base class) run it again with solo-learn's own
# classes and another option (CI's stage 2, pins_only)
_AGAIN = pytest.mark.pins_only
METHOD_RUNS = [  # (label of helpers.TINY_RUNS, method)
    pytest.param("simclr", "simclr", id="simclr", marks=_AGAIN),
    pytest.param("c_simclr", "c_simclr", id="c_simclr"),
    pytest.param("byol", "byol", id="byol", marks=_AGAIN),
    pytest.param("c_byol-other", "c_byol", id="c_byol-other", marks=_AGAIN),
    pytest.param("c_byol-same", "c_byol", id="c_byol-same"),
    pytest.param("barlow", "barlow_twins", id="barlow", marks=_AGAIN),
    pytest.param("c_mocov3", "c_mocov3", id="c_mocov3", marks=_AGAIN),
    pytest.param("c_simsiam", "c_simsiam", id="c_simsiam"),
]
#: the runs whose checkpoint ``cvr-solo linear`` then evaluates: the three C-variants that
#: carry the flow on every stack and one baseline. The linear launcher reads any method's
#: checkpoint the same way (backbone.* weights, args.json), so the others would repeat it.
LINEAR_AFTER = ("c_simclr", "c_byol-same", "c_simsiam", "byol")
#: cvr-solo's methods as solo-learn's METHODS lists them after registration, written out.
OURS = "['c_byol', 'c_mocov3', 'c_simclr', 'c_simsiam']"


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in sorted(run_dir.rglob("metrics.csv")):
        rows += list(csv.DictReader(f.open()))
    return rows


def test_register_is_idempotent_and_hook_registers_in_a_fresh_process():
    import solo.methods

    import cvr_solo

    first = cvr_solo.register()
    assert cvr_solo.register() == first
    assert solo.methods.METHODS["c_byol"] is first["c_byol"]
    code = "from solo.methods import METHODS; print(sorted(k for k in METHODS if 'c_' in k))"
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == OURS, out.stderr[-2000:]
    off = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, timeout=300,
                         env={**os.environ, "CVR_SOLO_NO_AUTOREGISTER": "1"})
    assert off.stdout.strip().splitlines()[-1] == "[]"


def test_the_hook_registers_when_our_methods_import_solo_learn_first():
    """A ``ddp_spawn`` rank's first import of solo-learn comes from unpickling a method, i.e.
    from inside ``import cvr_solo.methods``: the hook's registration must not meet the half
    imported package (it once failed there with a circular-import warning)."""
    code = ("import sys, warnings; warnings.simplefilter('error', UserWarning)\n"
            "warnings.filterwarnings('ignore', message='(?!cvr-solo)')\n"
            "import cvr_solo.methods.c_simclr\n"
            "assert 'solo' in sys.modules\n"
            "from solo.methods import METHODS\n"
            "print(sorted(k for k in METHODS if k.startswith('c_')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={k: v for k, v in os.environ.items()
                                           if k not in ("PYTHONWARNINGS", "CVR_SOLO_QUIET")})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == OURS
    assert "could not register" not in out.stderr, out.stderr[-3000:]


@pytest.mark.parametrize(("label", "method"), METHOD_RUNS)
def test_pretrain_linear_and_knn_load(tmp_path, fm_data, tiny_runs, label, method):
    run = tiny_runs(label)  # cvr-solo pretrain of helpers.TINY_RUNS[label], shared
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = run.models / method
    ckpts = list(run_dir.rglob("*.ckpt"))
    assert len(ckpts) == 1
    rows = _metrics(run_dir)
    loss_key = {"simclr": "train_nce_loss_step", "byol": "train_neg_cos_sim_step",
                "barlow_twins": "train_barlow_loss_step"}.get(method, f"train_{method}_loss_step")
    losses = [float(r[loss_key]) for r in rows if r.get(loss_key)]
    assert len(losses) >= 3 and all(math.isfinite(x) for x in losses)
    if method.startswith("c_"):
        res = [float(r["train_residual_step"]) for r in rows if r.get("train_residual_step")]
        floor = [float(r["train_residual_above_floor_step"]) for r in rows
                 if r.get("train_residual_above_floor_step")]
        assert res and all(math.isfinite(x) for x in res + floor)
        failures = [float(r["train_vmf_failures_step"]) for r in rows
                    if r.get("train_vmf_failures_step")]
        assert failures and set(failures) == {0.0}  # each draw fails with P < 1e-12
        assert {r["train_kappa_e_step"] for r in rows if r.get("train_kappa_e_step")} == {
            "16384.0" if METHODS_INFO[method].family == "regression" else "1024.0"}
    if label in ("c_mocov3", "c_simsiam"):  # helpers.TINY_RUNS sets a threshold that fires
        collapsed = [float(r["train_collapsed"]) for r in rows if r.get("train_collapsed")]
        assert collapsed and collapsed[-1] == 1.0
        assert "cvr-solo pretrain: warning: projections collapsed at step" in run.stdout
    if method == "c_simclr":
        lips = [float(r["train_lipschitz_lower_bound_step"]) for r in rows
                if r.get("train_lipschitz_lower_bound_step")]
        assert lips and all(x > 0 for x in lips)
    step_times = [float(r["train_step_time"]) for r in rows if r.get("train_step_time")]
    assert step_times and all(t > 0 for t in step_times)

    # main_knn / main_umap style: METHODS[...].load_from_checkpoint with the saved args
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    args = json.loads((ckpts[0].parent / "args.json").read_text())
    assert args["method"] == method
    model = METHODS[args["method"]].load_from_checkpoint(ckpts[0], strict=False,
                                                         cfg=OmegaConf.create(args))
    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)["state_dict"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    if label.startswith("c_byol"):
        assert model.b_view == label.split("-")[1]
    # the shipped Fashion-MNIST configs train with the small-image stem, online and momentum
    assert args["backbone"]["kwargs"] == {"small_stem": True}
    backbones = ["backbone", *(["momentum_backbone"] if hasattr(model, "momentum_backbone")
                               else [])]
    assert backbones == (["backbone", "momentum_backbone"] if METHODS_INFO[method].momentum
                         else ["backbone"])
    for name in backbones:
        assert state[f"{name}.conv1.weight"].shape == (64, 3, 3, 3), name
        assert has_small_stem(getattr(model, name)), name

    if label not in LINEAR_AFTER:
        return
    lin_dir = tmp_path / "linear-models"
    lin = run_cli("linear", "--config-path", str(LINEAR), "--config-name", "linear.yaml",
                  f"pretrained_feature_extractor='{ckpts[0]}'", f"pretrain_method={method}",
                  *small_run_overrides(fm_data, lin_dir))
    assert lin.returncode == 0, lin.stderr[-3000:]
    lin_ckpts = list((lin_dir / "linear").rglob("*.ckpt"))
    assert lin_ckpts
    lin_state = torch.load(lin_ckpts[0], map_location="cpu", weights_only=False)["state_dict"]
    assert torch.equal(lin_state["backbone.conv1.weight"], state["backbone.conv1.weight"])
    accs = [float(r["val_acc1"]) for r in _metrics(lin_dir / "linear") if r.get("val_acc1")]
    assert accs and 0 <= accs[-1] <= 100


@pytest.mark.pins_only  # caught in our start-up checks, before Lightning runs
def test_linear_rejects_a_checkpoint_without_the_backbone(tmp_path, fm_data):
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"classifier.weight": torch.zeros(10, 512)}}, bad)
    lin = run_cli("linear", "--config-path", str(LINEAR), "--config-name", "linear.yaml",
                  f"pretrained_feature_extractor={bad}",
                  *small_run_overrides(fm_data, tmp_path / "m"))
    assert lin.returncode == 2
    assert "has no backbone.* weights" in lin.stderr and "Traceback" not in lin.stderr


@pytest.mark.parametrize("name", ["simclr", "c_simclr", "byol", "c_byol", "barlow"])
def test_every_method_builds_the_small_stem_online_and_momentum(tmp_path, name):
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    train = tmp_path / "train"
    for c in range(3):
        (train / f"class{c}").mkdir(parents=True)
    cfg = compose_pretrain(name, [f"data.train_path={train}"])
    OmegaConf.set_struct(cfg, False)
    model = METHODS[cfg.method](parse_cfg(cfg))
    assert has_small_stem(model.backbone)
    if name in ("byol", "c_byol"):
        assert has_small_stem(model.momentum_backbone)
        online, momentum = model.backbone.state_dict(), model.momentum_backbone.state_dict()
        assert online.keys() == momentum.keys()
        assert [k for k in online if not torch.equal(online[k], momentum[k])] == []  # a copy
    b = model.backbone.eval()
    with torch.no_grad():  # a 32 px image keeps a 5x5 map at layer4 (1x1 with the big stem)
        x = torch.zeros(1, 3, 32, 32)
        h = b.layer4(b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x))))))))
    assert h.shape[-2:] == (5, 5)  # solo-learn's CIFAR stem pads by 2: 34 -> 17 -> 9 -> 5


def test_c_byol_heads_are_the_release_layout(tmp_path):
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    from cvr_solo.ceb.heads import BackwardEncoder, StochasticPredictor

    train = tmp_path / "train"
    for c in range(3):
        (train / f"class{c}").mkdir(parents=True)
    cfg = compose_pretrain("c_byol", [f"data.train_path={train}"])
    OmegaConf.set_struct(cfg, False)
    model = METHODS["c_byol"](METHODS["c_byol"].add_and_assert_specific_cfg(parse_cfg(cfg)))
    assert (model.b_view, model.w, model.beta) == ("same", 1.0, 0.5)
    assert isinstance(model.predictor, StochasticPredictor)
    assert isinstance(model.backward_encoder, BackwardEncoder)
    assert model.predictor.mlp[-1].bias is None and model.predictor.out.bias is None
    assert model.backward_encoder.mlp[-1].bias is None
    groups = {g["name"]: list(g["params"]) for g in model.learnable_params}
    ids = {name: {id(p) for p in ps} for name, ps in groups.items()}
    assert {id(p) for p in model.predictor.parameters()} == ids["predictor"]
    assert {id(p) for p in model.backward_encoder.parameters()} == ids["backward_encoder"]


def _fake_checkpoint(path: Path, small: bool) -> Path:
    from torchvision.models import resnet18

    from cvr_solo.solo.stem import use_small_stem

    net = resnet18()
    if small:
        use_small_stem(net)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in net.state_dict().items()
                               if not k.startswith("fc.")}}, path)
    return path


@pytest.mark.pins_only  # caught in our start-up checks, before Lightning runs
def test_linear_refuses_a_stem_other_than_the_checkpoints(tmp_path, fm_data):
    ckpt = _fake_checkpoint(tmp_path / "small.ckpt", small=True)
    lin = run_cli("linear", "--config-path", str(LINEAR), "--config-name", "linear.yaml",
                  f"pretrained_feature_extractor={ckpt}", "pretrain_method=byol",
                  "++backbone.kwargs.small_stem=false",
                  *small_run_overrides(fm_data, tmp_path / "m"))
    assert lin.returncode == 2, lin.stderr[-3000:]
    assert "backbone.kwargs.small_stem=False does not fit pretrained_feature_extractor" in (
        lin.stderr) and "small-image (3x3 stride-1 conv1, no max-pool)" in lin.stderr
    assert "Traceback" not in lin.stderr


@pytest.mark.parametrize("small", [True, False])
def test_loaders_build_the_stem_the_checkpoint_was_trained_with(tmp_path, small):
    from omegaconf import OmegaConf

    from cvr_solo.launch.linear import load_backbone

    ckpt = _fake_checkpoint(tmp_path / "b.ckpt", small=small)
    cfg = OmegaConf.create({"backbone": {"name": "resnet18", "kwargs": {}},
                            "pretrain_method": "byol", "data": {"dataset": "custom"},
                            "pretrained_feature_extractor": str(ckpt)})
    backbone = load_backbone(cfg)
    assert has_small_stem(backbone) is small
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert torch.equal(backbone.conv1.weight, state["backbone.conv1.weight"])


@pytest.mark.pins_only  # caught in our start-up checks, before Lightning runs
def test_bad_ceb_value_fails_at_start_up_with_key_and_value(tmp_path, fm_data):
    proc = run_cli("pretrain", "--config-path", str(PRETRAIN), "--config-name", "c_byol.yaml",
                   *small_run_overrides(fm_data, tmp_path),
                   "method_kwargs.kappa_e=-3")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("method_kwargs.kappa_e must be a number > 0, got -3")
    assert not (tmp_path / "c_byol").exists()  # nothing started


@pytest.mark.parametrize("dataset", ["cifar", "imagenet-100", "imagenet", "fashion-mnist"])
@pytest.mark.parametrize("name", ["simclr", "byol", "barlow", "c_simclr", "c_byol", "mocov3",
                                  "c_mocov3", "simsiam", "c_simsiam"])
def test_shipped_configs_pass_solo_parsing_and_method_checks(tmp_path, dataset, name):
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    train = tmp_path / "train"
    for c in range(3):
        (train / f"class{c}").mkdir(parents=True)
    cfg = compose_pretrain(name, [f"data.train_path={train}"],
                   config_dir=REPO / "scripts" / "pretrain" / dataset)
    OmegaConf.set_struct(cfg, False)
    cfg = parse_cfg(cfg)
    cfg = METHODS[cfg.method].add_and_assert_specific_cfg(cfg)
    if name.startswith("c_"):
        assert cfg.method_kwargs.kappa_e in (1024.0, 16384.0)
        assert cfg.method_kwargs.beta_schedule == "constant"
    if name.endswith("simsiam"):  # SGD: no kwargs in the configs but ImageNet-1k's, and
        # solo-learn's parse_cfg fills momentum 0.9 (what the configs' comments say)
        assert cfg.optimizer.name == "sgd" and cfg.optimizer.kwargs.momentum == 0.9
    bad = copy.deepcopy(cfg)
    if name.startswith("c_"):
        bad.method_kwargs.beta = -1.0
        with pytest.raises(ValueError, match="method_kwargs.beta must be a number >= 0, got -1"):
            METHODS[bad.method].add_and_assert_specific_cfg(bad)


@pytest.mark.skipif(not os.environ.get("CVR_SOLO_TEST_SOLO_SRC") or not torch.cuda.is_available(),
                    reason="needs a CUDA GPU (solo-learn's main_knn.py moves data to CUDA) and "
                           "CVR_SOLO_TEST_SOLO_SRC, a solo-learn checkout; on CPU, "
                           "test_launcher_equality runs main_pretrain.py and loads its "
                           "checkpoint as main_knn.py does")
def test_solo_learns_own_main_pretrain_and_main_knn_take_c_byol_on_gpu(tmp_path, fm_data):
    src = Path(os.environ["CVR_SOLO_TEST_SOLO_SRC"])
    # solo-learn's loaders validate custom data at 224 px: one validation batch and no
    # sanity check keep the validation step in, and short
    over = [o.replace("accelerator=cpu", "accelerator=gpu")
            for o in small_run_overrides(fm_data, tmp_path)
            if "enable_progress_bar" not in o]
    over += ["++limit_val_batches=1", "++num_sanity_val_steps=0"]
    proc = subprocess.run([sys.executable, str(src / "main_pretrain.py"), "--config-path",
                           str(PRETRAIN), "--config-name", "c_byol.yaml", *over],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next((tmp_path / "c_byol").rglob("*.ckpt"))
    knn = subprocess.run([sys.executable, str(src / "main_knn.py"),
                          "--pretrained_checkpoint_dir", str(ckpt.parent),
                          "--dataset", "custom", "--train_data_path", str(fm_data / "train"),
                          "--val_data_path", str(fm_data / "val"), "--batch_size", "50",
                          "--num_workers", "0", "--k", "5", "--temperature", "0.1",
                          "--distance_function", "cosine", "--feature_type", "backbone",
                          "projector"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert knn.returncode == 0, knn.stderr[-3000:]
    results = [line for line in knn.stdout.splitlines() if line.startswith("Result: acc@1=")]
    assert len(results) == 2, knn.stdout[-2000:]


@pytest.mark.skipif(not torch.cuda.is_available()
                    or importlib.util.find_spec("nvidia.dali") is None,
                    reason="needs a CUDA GPU and NVIDIA DALI (pip install 'cvr-solo[dali]')")
def test_c_byol_with_dali_on_gpu(tmp_path, fm_data):
    """data.format=dali through solo-learn's DALI module; images/s beside torchvision's."""
    speeds = {}
    for fmt in ("dali", "image_folder"):
        over = [o.replace("accelerator=cpu", "accelerator=gpu")
                for o in small_run_overrides(fm_data, tmp_path / fmt)]
        proc = run_cli("pretrain", "--config-path", str(PRETRAIN), "--config-name",
                       "c_byol.yaml", *over, f"data.format={fmt}", "precision=16-mixed")
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = _metrics(tmp_path / fmt / "c_byol")
        ips = [float(r["train_images_per_sec"]) for r in rows if r.get("train_images_per_sec")]
        assert ips and all(x > 0 for x in ips)
        speeds[fmt] = sorted(ips)[len(ips) // 2]
    print(f"c_byol images/s on GPU: {speeds}")
