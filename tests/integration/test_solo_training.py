"""cvr-solo's methods training inside solo-learn: a run resumes (automatically, in its folder,
and from a named checkpoint) with its optimiser state and weights, and C-BYOL's target branch
and backward encoder update as they should."""

from __future__ import annotations

import copy
import csv

import torch

from .helpers import compose_pretrain, crop_overrides, small_run_overrides


def _stop_after_first_epoch():
    """Stops training at the end of epoch 0, after solo-learn's Checkpointer saved it."""
    from lightning.pytorch import Callback

    class Stop(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True

    return Stop()


def _probe():
    from lightning.pytorch import Callback

    class Probe(Callback):
        def on_train_start(self, trainer, pl_module):
            self.global_step = trainer.global_step
            self.epoch = trainer.current_epoch
            self.opt_state = copy.deepcopy(trainer.optimizers[0].state_dict())
            self.params = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    return Probe()


def test_a_run_resumes_in_its_folder_with_its_state_or_from_a_named_checkpoint(
        tmp_path, fm_data, capsys):
    """One 2-epoch C-BYOL run stopped after its first epoch, then: the same command resumes
    it in the same folder with the saved optimiser state and weights, metrics.csv continues
    (each row names its launch), the old checkpoint is pruned as solo-learn prunes; the
    finished run is left alone; ``+resume_from_checkpoint`` continues from a named checkpoint
    with auto-resume off; another beta is another run."""
    import shutil

    from cvr_solo.launch.pretrain import run

    over = [*small_run_overrides(fm_data, tmp_path / "ck", epochs=2),
            *crop_overrides("c_byol")]
    first = run(compose_pretrain("c_byol", over), [_stop_after_first_epoch()])
    assert first.global_step == 5 and first.current_epoch == 1
    (folder,) = list((tmp_path / "ck" / "c_byol").iterdir())
    (first_ckpt,) = list(folder.glob("*.ckpt"))
    assert first_ckpt.name.endswith("-ep=0.ckpt")
    kept = shutil.copy(first_ckpt, tmp_path / "epoch0.ckpt")  # pruned by the resumed run
    ckpt = torch.load(first_ckpt, map_location="cpu", weights_only=False)
    capsys.readouterr()

    probe = _probe()
    second = run(compose_pretrain("c_byol", over), [probe])
    assert f"resuming {folder} from {first_ckpt}" in capsys.readouterr().out
    assert probe.global_step == ckpt["global_step"] == 5
    assert probe.epoch == 1
    saved = ckpt["optimizer_states"][0]["state"]
    assert probe.opt_state["state"].keys() == saved.keys() and saved
    for idx, st in saved.items():
        for k, v in st.items():
            got = probe.opt_state["state"][idx][k]
            assert torch.equal(got, v) if torch.is_tensor(v) else got == v
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(probe.params[k], v), k
    assert second.global_step == 10 and second.current_epoch == 2
    assert list((tmp_path / "ck" / "c_byol").iterdir()) == [folder]  # no second run folder
    assert [p.name for p in folder.glob("*.ckpt")] == [
        first_ckpt.name.replace("ep=0", "ep=1")]  # the old one pruned like solo-learn's
    (metrics,) = list(folder.rglob("metrics.csv"))
    rows = [r for r in csv.DictReader(metrics.open()) if r.get("train_c_byol_loss_step")]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[0] < 5 <= steps[-1]  # both halves in one file
    assert {r["epoch"]: r["attempt"] for r in rows} == {"0": "1", "1": "2"}

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert run(compose_pretrain("c_byol", over)) is None
    assert (f"the matching run in {folder} is finished (epoch 2 of 2)"
            in capsys.readouterr().out)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

    named = [*small_run_overrides(fm_data, tmp_path / "named", epochs=2),
             *crop_overrides("c_byol")]
    probe = _probe()
    trainer = run(compose_pretrain("c_byol", [*named, "auto_resume.enabled=False",
                                              f"+resume_from_checkpoint='{kept}'"]), [probe])
    assert probe.global_step == 5 and trainer.global_step == 10

    # a different beta is a different run: it must not resume from this one (one epoch of it
    # shows where it started)
    probe = _probe()
    run(compose_pretrain("c_byol", [*over, "method_kwargs.beta=0.25"]),
        [probe, _stop_after_first_epoch()])
    assert probe.global_step == 0


def test_c_byol_target_branch_and_backward_encoder(tmp_path, fm_data):
    from lightning.pytorch import Callback

    from cvr_solo.launch.pretrain import run

    class TargetProbe(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.momentum_before = {f"{i}.{n}": p.detach().clone()
                                    for i, (_, m) in enumerate(pl_module.momentum_pairs)
                                    for n, p in m.named_parameters()}
            self.b_before = [p.detach().clone() for p in pl_module.backward_encoder.parameters()]

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.b_grads = [p.grad for p in pl_module.backward_encoder.parameters()]
            self.optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
            self.momentum_ids = {id(p) for _, m in pl_module.momentum_pairs
                                 for p in m.parameters()}
            self.online_ids = {id(p) for m, _ in pl_module.momentum_pairs
                               for p in m.parameters()}
            self.b_ids = {id(p) for p in pl_module.backward_encoder.parameters()}
            self.out_grads = [p.grad for p in pl_module.predictor.out.parameters()]

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            # callbacks run before the module's hook, which applies the EMA
            self.tau = pl_module.momentum_updater.cur_tau
            self.online_after = {f"{i}.{n}": p.detach().clone()
                                 for i, (m, _) in enumerate(pl_module.momentum_pairs)
                                 for n, p in m.named_parameters()}

        def on_train_end(self, trainer, pl_module):
            self.momentum_after = {f"{i}.{n}": p.detach().clone()
                                   for i, (_, m) in enumerate(pl_module.momentum_pairs)
                                   for n, p in m.named_parameters()}
            self.b_after = [p.detach().clone() for p in pl_module.backward_encoder.parameters()]
            self.pair_modules = [(type(a).__name__, type(b).__name__)
                                 for a, b in pl_module.momentum_pairs]
            self.b_in_pairs = any(pl_module.backward_encoder in pair
                                  for pair in pl_module.momentum_pairs)

    probe = TargetProbe()
    over = small_run_overrides(fm_data, tmp_path)
    run(compose_pretrain("c_byol", [*over, "+max_steps=1", "checkpoint.enabled=False",
                            "data.val_path=null"]), [probe])
    # the target branch is updated by the EMA alone: none of its parameters is in an
    # optimiser group (solo-learn's requires_grad=False would hide a gradient, not a step)
    assert probe.momentum_ids and not probe.momentum_ids & probe.optimised
    assert probe.online_ids <= probe.optimised and probe.b_ids <= probe.optimised
    assert all(g is not None and g.abs().sum() > 0 for g in probe.b_grads)
    assert all(g is not None and g.abs().sum() > 0 for g in probe.out_grads)
    assert not probe.b_in_pairs  # trained, never EMA-updated
    assert any(not torch.equal(a, b) for a, b in zip(probe.b_before, probe.b_after,
                                                      strict=True))
    tau = probe.tau
    assert 0 < tau < 1
    for k, before in probe.momentum_before.items():
        expected = tau * before + (1 - tau) * probe.online_after[k]
        assert torch.allclose(probe.momentum_after[k], expected, atol=1e-6), k
