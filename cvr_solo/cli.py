"""The ``cvr-solo`` command: pretrain, linear, data, bench, install-solo.

    cvr-solo pretrain --config-path DIR --config-name c_byol.yaml [hydra overrides]
    cvr-solo linear   --config-path DIR --config-name linear.yaml [hydra overrides]
    cvr-solo data fashion-mnist --out DIR [--subset N]
    cvr-solo bench --data DIR --methods simclr,c_simclr,... --budget smoke|full --out DIR
    cvr-solo install-solo [--source URL|DIR|ARCHIVE]
"""

from __future__ import annotations

import os
import sys

USAGE = __doc__.split("\n\n", 1)[1].rstrip() + "\n"
HYDRA_COMMANDS = ("pretrain", "linear")


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


def _run_hydra(command: str, argv: list[str]) -> int:
    from cvr_solo.solo_env import SoloLearnUnavailableError, require_solo

    try:
        require_solo()
    except SoloLearnUnavailableError as err:
        print(f"cvr-solo {command}: error: {err}", file=sys.stderr)
        return 2
    if "--config-name" not in argv and "-cn" not in argv and not any(
            a.startswith("--config-name=") for a in argv) and not any(
            a in ("--help", "-h", "--hydra-help") for a in argv):
        print(f"cvr-solo {command}: error: give --config-path DIR --config-name NAME "
              "(see scripts/pretrain/<dataset>/ and scripts/linear/<dataset>/)", file=sys.stderr)
        return 2
    if command == "pretrain":
        from cvr_solo.launch.pretrain import main as hydra_main
    else:
        from cvr_solo.launch.linear import main as hydra_main
    sys.argv = [f"cvr-solo {command}", *_absolute_config_path(argv)]
    hydra_main()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in HYDRA_COMMANDS:
        return _run_hydra(command, rest)
    if command == "data":
        from cvr_solo.data.fashion_mnist import main as data_main

        return data_main(rest)
    if command == "bench":
        from cvr_solo.bench.run import main as bench_main

        return bench_main(rest)
    if command == "install-solo":
        from cvr_solo.install_solo import main as install_main

        return install_main(rest)
    print(f"cvr-solo: error: unknown command {command!r}; one of pretrain, linear, data, bench, "
          "install-solo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
