"""``python -m cvr_solo.launch.ddp_rank HYDRA_ARGS``: a further rank of a DDP run that Lightning
starts itself (``strategy=ddp`` with devices > 1).

Lightning re-executes the main module with sys.argv[1:] for each further rank; ``cvr-solo
pretrain|linear`` points it here (:func:`cvr_solo.cli.rank_entry`) and names the command in
:data:`COMMAND_ENV`, which the ranks inherit. The known third-party warnings are silenced
before solo-learn is imported, as in the first rank.
"""

from __future__ import annotations

import os
import sys

#: The environment variable naming the sub-command (pretrain | linear) the ranks run.
COMMAND_ENV = "CVR_SOLO_DDP_COMMAND"


def main() -> None:
    """Runs the Hydra app of the command in :data:`COMMAND_ENV` on sys.argv[1:]."""
    from cvr_solo.common.quiet import silence_known_warnings, verbose_requested

    if not verbose_requested():
        silence_known_warnings()
    command = os.environ.get(COMMAND_ENV)
    if command == "pretrain":
        from cvr_solo.launch.pretrain import main as hydra_main
    elif command == "linear":
        from cvr_solo.launch.linear import main as hydra_main
    else:
        sys.exit(f"cvr_solo.launch.ddp_rank: {COMMAND_ENV} must be pretrain or linear, "
                 f"got {command!r}")
    hydra_main()


if __name__ == "__main__":
    main()
