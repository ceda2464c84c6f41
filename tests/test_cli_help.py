"""cvr-solo's help pages, --version, --verbose and the default --config-path."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from cvr_solo import cli
from cvr_solo.common.quiet import known_warnings, silence_known_warnings, verbose_requested
from cvr_solo.config.validate import shipped_config_dir


def test_top_level_help_describes_every_sub_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, cmd in cli.COMMANDS.items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert cmd.summary in line
    assert set(cli.COMMANDS) == {"pretrain", "linear", "data", "bench", "install-solo"}


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("cvr-solo ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize("command", ["pretrain", "linear"])
def test_pretrain_and_linear_help_list_shipped_configs_and_overrides(capsys, command):
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "powered by Hydra" not in out
    assert str(shipped_config_dir(command, "fashion-mnist")) in out
    shipped = cli.shipped_configs(command)
    assert set(shipped) == {"cifar", "fashion-mnist", "imagenet", "imagenet-100"}
    for dataset, names in shipped.items():
        assert f"  {dataset}" in out and all(n in out for n in names)
    if command == "pretrain":
        assert "c_byol.yaml" in shipped["fashion-mnist"] and "_base.yaml" not in out
        assert "method_kwargs.beta" in out
    else:
        assert "pretrained_feature_extractor" in out and "pretrain_method" in out


def test_missing_config_name_points_at_help(capsys, monkeypatch):
    monkeypatch.setattr("cvr_solo.solo.env.require_solo", lambda: None)
    assert cli.main(["pretrain", "max_epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "--config-name" in err and "cvr-solo pretrain --help" in err


def test_config_path_defaults_to_the_shipped_configs(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("cvr_solo.solo.env.require_solo", lambda: None)
    import types

    fake = types.ModuleType("cvr_solo.launch.pretrain")
    fake.main = lambda: seen.setdefault("argv", list(sys.argv))
    monkeypatch.setitem(sys.modules, "cvr_solo.launch.pretrain", fake)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["pretrain", "--config-name", "c_byol.yaml", "max_epochs=1"]) == 0
    assert seen["argv"][1:] == ["--config-path", str(shipped_config_dir("pretrain",
                                                                        "fashion-mnist")),
                                "--config-name", "c_byol.yaml", "max_epochs=1"]
    seen.clear()
    assert cli.main(["pretrain", "--config-path", "mine", "--config-name", "x.yaml"]) == 0
    assert seen["argv"][1:3] == ["--config-path", str(tmp_path / "mine")]


def test_known_warnings_are_silenced_one_by_one():
    emitted = [
        ("Importing from timm.models.layers is deprecated, please import via timm.layers",
         FutureWarning),
        ("Overwriting convnext_tiny in registry with solo.backbones.convnext.convnext."
         "convnext_tiny.", UserWarning),
        ("'pin_memory' argument is set as true but no accelerator is found, then device "
         "pinned memory won't be used.", UserWarning),
        ("Importing from timm is fine", FutureWarning),  # not a known message
        ("Overwriting x in registry with mine", UserWarning),
        ("Importing from timm.models is deprecated", UserWarning),  # another category
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert silence_known_warnings() == len(known_warnings())
        for message, category in emitted:
            warnings.warn(message, category, stacklevel=1)
    assert [str(w.message) for w in seen] == [m for m, _ in emitted[3:]]


def test_verbose_flag_and_environment(monkeypatch):
    monkeypatch.delenv("CVR_SOLO_VERBOSE", raising=False)
    assert not verbose_requested(["pretrain"])
    assert verbose_requested(["pretrain", "--verbose"])
    monkeypatch.setenv("CVR_SOLO_VERBOSE", "0")
    assert not verbose_requested([])
    monkeypatch.setenv("CVR_SOLO_VERBOSE", "1")
    assert verbose_requested([])


def test_help_process_prints_no_warning():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",
                                                            "CVR_SOLO_VERBOSE")}
    proc = subprocess.run([sys.executable, "-m", "cvr_solo.cli", "pretrain", "--help"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_help_and_version_import_no_torch_and_the_package_names_stay_reachable():
    """`cvr-solo --help` / `--version` took 8-10 s when `import cvr_solo` pulled in torch."""
    code = ("import sys; from cvr_solo import cli; cli.main(['--version']); "
            "cli.main(['--help']); print('torch' in sys.modules); import cvr_solo; "
            "print(cvr_solo.vmf_kl.__module__, cvr_solo.ceb.wood_plan.__name__, "
            "cvr_solo.register.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith("cvr-solo ") and "Commands:" in "\n".join(out)
    assert out[-2:] == ["False", "cvr_solo.ceb.vmf wood_plan cvr_solo.solo.registry"]
    import cvr_solo
    import cvr_solo.ceb

    assert sorted(cvr_solo._CEB_NAMES) == sorted(cvr_solo.ceb.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        cvr_solo.nope  # noqa: B018
