"""The ``cvr-solo`` command: one small table of sub-commands (:data:`COMMANDS`).

    cvr-solo pretrain [--config-path DIR] --config-name c_byol.yaml [hydra overrides]
    cvr-solo linear   [--config-path DIR] --config-name linear.yaml [hydra overrides]
    cvr-solo data fashion-mnist --out DIR [--subset N] [--download]
    cvr-solo bench --data DIR --methods simclr,c_simclr,... --budget smoke|gpu|full --out DIR
    cvr-solo install-solo [--source URL|DIR|ARCHIVE]

``--verbose`` (or ``CVR_SOLO_VERBOSE=1``) keeps the third-party warnings cvr-solo silences
(see :mod:`cvr_solo.common.quiet`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from cvr_solo.common.quiet import QUIET_ENV, VERBOSE_ENV, silence_known_warnings, verbose_requested

#: The data set whose shipped configs ``--config-path`` defaults to.
DEFAULT_CONFIG_DATASET = "fashion-mnist"


class Command(NamedTuple):
    """A sub-command: its one-line description and handler (argv after the name -> exit)."""

    summary: str
    handler: Callable[[list[str]], int]


def _absolute_config_path(argv: list[str]) -> list[str]:
    """Hydra resolves a relative --config-path against the module declaring @hydra.main (inside
    site-packages here); users mean their working directory, as with solo-learn's scripts."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("--config-path", "-cp") and i + 1 < len(out):
            out[i + 1] = os.path.abspath(out[i + 1])
        elif arg.startswith("--config-path="):
            out[i] = "--config-path=" + os.path.abspath(arg.split("=", 1)[1])
    return out


def _has_option(argv: list[str], long: str, short: str) -> bool:
    return any(a in (long, short) or a.startswith(long + "=") for a in argv)


def shipped_configs(kind: str) -> dict[str, list[str]]:
    """{dataset: [config file names]} of the configs shipped for ``kind`` (pretrain | linear)."""
    from cvr_solo.config.validate import shipped_config_dir

    try:
        root = shipped_config_dir(kind, DEFAULT_CONFIG_DATASET).parent
    except FileNotFoundError:
        return {}
    return {d.name: sorted(p.name for p in d.glob("*.yaml") if not p.name.startswith("_"))
            for d in sorted(root.iterdir()) if d.is_dir()}


_MAIN_OVERRIDES = {
    "pretrain": [
        ("data.train_path=DIR data.val_path=DIR", "image folders (one sub-folder per class)"),
        ("max_epochs=N optimizer.batch_size=N", "run length and batch"),
        ("method_kwargs.beta=0.5 method_kwargs.kappa_e=16384", "CEB settings (C-variants)"),
        ("accelerator=cpu devices=1 data.num_workers=N", "where it runs"),
        ("checkpoint.dir=DIR", "where run folders go (default trained_models)"),
        ("auto_resume.enabled=False", "start afresh instead of resuming a matching run"),
        ("data.format=dali precision=16-mixed", "on a GPU"),
    ],
    "linear": [
        ("pretrained_feature_extractor=\"'CKPT'\"", "the pretraining checkpoint (quoted)"),
        ("pretrain_method=c_byol", "the method that produced it"),
        ("data.train_path=DIR data.val_path=DIR", "image folders (one sub-folder per class)"),
        ("max_epochs=N optimizer.batch_size=N optimizer.lr=X", "the probe's training"),
        ("checkpoint.dir=DIR accelerator=cpu", "where run folders go, where it runs"),
    ],
}


def hydra_help(command: str) -> str:
    """The ``cvr-solo pretrain|linear --help`` page: usage, shipped configs, main overrides."""
    from cvr_solo.config.validate import shipped_config_dir

    lines = [f"usage: cvr-solo {command} [--config-path DIR] --config-name NAME.yaml "
             "[OVERRIDE ...] [--verbose]", ""]
    lines.append("Pretrains a solo-learn method (c_simclr, c_byol, c_mocov3, c_simsiam and "
                 "solo-learn's own)." if command == "pretrain" else
                 "Trains a linear probe on a frozen pretrained backbone (offline evaluation).")
    try:
        default = shipped_config_dir(command, DEFAULT_CONFIG_DATASET)
        lines += ["", f"--config-path defaults to the shipped {DEFAULT_CONFIG_DATASET} configs: "
                  f"{default}"]
    except FileNotFoundError:
        lines += ["", "--config-path: no shipped configs found; give one."]
    configs = shipped_configs(command)
    if configs:
        lines += ["", "Shipped configs (--config-path <dir>  --config-name <name>):"]
        for dataset, names in configs.items():
            lines.append(f"  {dataset:<14} {', '.join(names)}")
        root = shipped_config_dir(command, DEFAULT_CONFIG_DATASET).parent
        lines.append(f"  (folders under {root})")
    lines += ["", "Main overrides (Hydra syntax, key=value; ++key=value adds a key):"]
    for over, what in _MAIN_OVERRIDES[command]:
        lines.append(f"  {over:<52} {what}")
    lines += ["", *textwrap.wrap(
        "Every key of the config can be overridden; `--cfg job` prints the composed config, "
        "--hydra-help Hydra's own options. --verbose (or CVR_SOLO_VERBOSE=1) shows the "
        "third-party warnings cvr-solo silences.", 90)]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def rank_entry(command: str, hydra_argv: list[str]) -> Iterator[None]:
    """sys.argv, ``__main__.__spec__`` and the environment as Lightning's DDP launcher needs.

    Lightning starts each further rank as ``python -m <__main__.__spec__.name> sys.argv[1:]``
    (``python sys.argv[0] ...`` when ``__spec__`` is None), and Hydra parses sys.argv[1:]: so
    sys.argv[1:] is the Hydra arguments and the main module :mod:`cvr_solo.launch.ddp_rank`,
    which runs ``command`` (named in its environment variable). Restored afterwards.
    """
    from cvr_solo.launch.ddp_rank import COMMAND_ENV

    main_module = sys.modules["__main__"]
    saved = sys.argv, getattr(main_module, "__spec__", None), os.environ.get(COMMAND_ENV)
    sys.argv = [f"cvr-solo {command}", *hydra_argv]
    main_module.__spec__ = importlib.util.find_spec("cvr_solo.launch.ddp_rank")
    os.environ[COMMAND_ENV] = command
    try:
        yield
    finally:
        sys.argv, main_module.__spec__ = saved[:2]
        if saved[2] is None:
            os.environ.pop(COMMAND_ENV, None)
        else:
            os.environ[COMMAND_ENV] = saved[2]


def _hydra_command(command: str) -> Callable[[list[str]], int]:
    def handler(argv: list[str]) -> int:
        if any(a in ("--help", "-h") for a in argv):
            sys.stdout.write(hydra_help(command))
            return 0
        if not _has_option(argv, "--config-name", "-cn") and "--hydra-help" not in argv:
            print(f"cvr-solo {command}: error: give --config-name NAME.yaml (see cvr-solo "
                  f"{command} --help for the shipped configs)", file=sys.stderr)
            return 2
        if not _has_option(argv, "--config-path", "-cp"):
            from cvr_solo.config.validate import shipped_config_dir

            argv = ["--config-path", str(shipped_config_dir(command, DEFAULT_CONFIG_DATASET)),
                    *argv]
        from cvr_solo.config.errors import ConfigError
        from cvr_solo.config.overrides import check_hydra_args
        from cvr_solo.solo.env import SoloLearnUnavailableError, require_solo

        hydra_argv = _absolute_config_path(argv)
        try:  # the command line first: a typo is answered in a second, before the imports
            check_hydra_args(hydra_argv)  # of solo-learn, Lightning and timm (5-10 s)
            require_solo()
        except (ConfigError, SoloLearnUnavailableError) as err:
            print(f"cvr-solo {command}: error: {err}", file=sys.stderr)
            return 2
        if command == "pretrain":
            from cvr_solo.launch.pretrain import main as hydra_main
        else:
            from cvr_solo.launch.linear import main as hydra_main
        with rank_entry(command, hydra_argv):
            hydra_main()
        return 0

    return handler


def _data(argv: list[str]) -> int:
    from cvr_solo.data.cli import main as data_main

    return data_main(argv)


def _bench(argv: list[str]) -> int:
    from cvr_solo.bench.run import main as bench_main

    return bench_main(argv)


def _install_solo(argv: list[str]) -> int:
    from cvr_solo.solo.install import main as install_main

    return install_main(argv)


#: name -> (one-line description, handler). Adding a sub-command is one entry here.
COMMANDS: dict[str, Command] = {
    "pretrain": Command("pretrain a method (C-SimCLR, C-BYOL or a solo-learn baseline) from a "
                        "Hydra config", _hydra_command("pretrain")),
    "linear": Command("train a linear probe on a frozen pretrained backbone",
                      _hydra_command("linear")),
    "data": Command("export a dataset (fashion-mnist) to an image folder, downloading it if "
                    "asked", _data),
    "bench": Command("pretrain and evaluate several methods under one budget, with a report",
                     _bench),
    "install-solo": Command("install solo-learn at the supported commit the right way, and "
                            "check it", _install_solo),
}


def version() -> str:
    """cvr-solo's version string."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("cvr-solo")
    except PackageNotFoundError:  # a source checkout on sys.path
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml")
        for line in text.read_text().splitlines() if text.is_file() else []:
            if line.startswith("version = "):
                return line.split("=", 1)[1].strip().strip('"')
        return "unknown"


def usage() -> str:
    """The ``cvr-solo --help`` page: each sub-command with its description."""
    width = max(map(len, COMMANDS))
    lines = ["usage: cvr-solo [--version] [--verbose] COMMAND [ARGS]", "",
             "C-SimCLR and C-BYOL for solo-learn. Commands:"]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    lines += ["", *textwrap.wrap(
        "`cvr-solo COMMAND --help` describes a command. --verbose (or CVR_SOLO_VERBOSE=1) "
        "shows the third-party warnings cvr-solo silences.", 90)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Runs ``cvr-solo``; returns the exit code (0 ok, 2 usage or config error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not verbose_requested(argv):
        silence_known_warnings()
        os.environ[QUIET_ENV] = "1"  # the processes it starts (DDP ranks, loader workers)
    elif "--verbose" in argv:  # DDP ranks that Lightning starts see it too
        os.environ[VERBOSE_ENV] = "1"
    argv = [a for a in argv if a != "--verbose"]
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"cvr-solo {version()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"cvr-solo: error: unknown command {command!r}; one of {', '.join(COMMANDS)} "
              "(cvr-solo --help)", file=sys.stderr)
        return 2
    return COMMANDS[command].handler(rest)


if __name__ == "__main__":
    raise SystemExit(main())
