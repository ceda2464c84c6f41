"""The bad inputs of issue 19 and what each must get: one table for the integration test that
runs them (tests/integration/test_bad_inputs.py) and for the test that keeps the table in
docs/usage.md in step with it (tests/test_docs_bad_inputs.py)."""

from __future__ import annotations

from typing import NamedTuple


class BadInput(NamedTuple):
    """One bad input: its id, what the user typed or had, and a part of the one-line error."""

    id: str
    command: str
    what: str
    message: str


BAD_INPUTS: tuple[BadInput, ...] = (
    BadInput("precision", "pretrain", "`precision=bogus`",
             "precision must be one of 64, 32, 16, transformer-engine"),
    BadInput("checkpoint_dir_under_file", "pretrain", "`checkpoint.dir` below a regular file",
             "is a file, not a folder; give a folder path"),
    BadInput("checkpoint_dir_read_only", "pretrain", "a read-only `checkpoint.dir`",
             "cannot write in"),
    BadInput("checkpoint_dir_under_read_only", "pretrain",
             "a missing `checkpoint.dir` under a read-only folder", "cannot write in"),
    BadInput("accelerator_gpu", "pretrain", "`accelerator=gpu` on a machine without a GPU",
             "accelerator=gpu: torch sees no CUDA GPU on this machine; use accelerator=cpu"),
    BadInput("one_class", "pretrain", "a training folder with a single class folder",
             "holds 1 class folder (0_tshirt_top): the linear classifier needs at least 2 "
             "classes"),
    BadInput("config_name", "pretrain", "a misspelt `--config-name c_byl.yaml`",
             "no such config in"),
    BadInput("key_without_plus", "pretrain", "`method_kwargs.betta=0.5` (misspelt, no `+`)",
             "method_kwargs.betta is not a key of c_byol.yaml: did you mean method_kwargs.beta?"),
    BadInput("unquoted_equals", "linear", "an unquoted checkpoint path holding `=` "
             "(`pretrained_feature_extractor=run/x-ep=9.ckpt`)",
             "quote a value holding '=', spaces or brackets"),
    BadInput("truncated_checkpoint", "linear", "a truncated checkpoint",
             "cannot be read as a checkpoint"),
    BadInput("wrong_pretrain_method", "linear", "`pretrain_method=byol` for a C-BYOL checkpoint",
             "pretrain_method=byol does not fit pretrained_feature_extractor"),
    BadInput("corrupt_image", "pretrain", "a corrupt PNG in the training folder (found when "
             "a loader reads it, mid-epoch)", "cannot read the image"),
)
