"""The benchmark's numbers against hand-counted accuracies.

A stub model on four images, whose predictions for every (corruption, severity) are written
out below, goes through ``cvr_solo.evaluation.frozen.probe_accuracy_under_corruptions`` and the
report (``cvr_solo.bench.report.table`` / ``write_markdown``); the weighted kNN (solo-learn's)
and the step-time ratio get cases where a wrong temperature or the wrong baseline run changes
the answer. Only the kNN needs solo-learn.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cvr_solo.bench.report import step_time_ratios, table, write_markdown
from cvr_solo.bench.result import RunResult
from cvr_solo.evaluation import frozen
from cvr_solo.evaluation.frozen import ImageSet, knn_accuracy, probe_accuracy_under_corruptions
from tests.test_bench_report import unpad

LABELS = [0, 1, 2, 3]
NAMES = ("gaussian_noise", "contrast")
SEVERITIES = (1, 3)
#: predicted class of image i under each view; hand count of correct ones on the right
PREDICTIONS = {
    ("clean", 0): [0, 1, 2, 0],  # 3 of 4 -> 75 %
    ("gaussian_noise", 1): [0, 1, 0, 0],  # 2 -> 50 %
    ("gaussian_noise", 3): [0, 0, 0, 0],  # 1 -> 25 %
    ("contrast", 1): [1, 1, 2, 1],  # 2 -> 50 %
    ("contrast", 3): [3, 2, 1, 0],  # 0 -> 0 %
}
CLEAN = 75.0
PER_CORRUPTION = {"gaussian_noise": [50.0, 25.0], "contrast": [50.0, 0.0]}
MEAN_CORRUPTION = (50 + 25 + 50 + 0) / 4  # 31.25
RELATIVE_DROP = (75 - 31.25) / 75  # 0.5833


def _code(name: str, severity: int) -> float:
    return (list(PREDICTIONS).index((name, severity)) + 1) / 10


def _fake_corrupt(x, name, severity, seed=0):
    """Marks the view in pixel (0, 0, 0) instead of corrupting."""
    out = x.clone()
    out[:, 0, 0, 0] = _code(name, severity)
    return out


class _ScriptedProbe(nn.Module):
    """Reads (view, image) off the marker pixels and answers with PREDICTIONS."""

    def forward(self, x):
        views = list(PREDICTIONS)
        logits = torch.zeros(len(x), 4)
        for row, img in enumerate(x):
            view = views[round(float(img[0, 0, 0]) * 10) - 1]
            idx = round(float(img[0, 0, 1]) * 10)
            logits[row, PREDICTIONS[view][idx]] = 1.0
        return logits


def _val_set() -> ImageSet:
    images = torch.full((4, 3, 4, 4), 0.5)
    images[:, 0, 0, 0] = _code("clean", 0)
    images[:, 0, 0, 1] = torch.arange(4) / 10  # the image's index
    return ImageSet(images, torch.tensor(LABELS))


@pytest.fixture
def robust(monkeypatch):
    monkeypatch.setattr(frozen, "corrupt", _fake_corrupt)
    return probe_accuracy_under_corruptions(
        nn.Identity(), _ScriptedProbe(), _val_set(), mean=(0, 0, 0), std=(1, 1, 1),
        device=torch.device("cpu"), batch_size=3, corruptions=NAMES, severities=SEVERITIES,
        progress=False)


def test_probe_accuracies_are_hand_counted_percentages(robust):
    assert robust["clean"] == pytest.approx(CLEAN)
    assert robust["corruptions"].keys() == PER_CORRUPTION.keys()
    for name, accs in PER_CORRUPTION.items():
        assert robust["corruptions"][name] == pytest.approx(accs), name
    assert robust["severities"] == list(SEVERITIES)
    assert robust["mean_corruption"] == pytest.approx(MEAN_CORRUPTION)
    assert robust["relative_drop"] == pytest.approx(RELATIVE_DROP)


def _result(label: str, method: str, robust: dict, step_time: float) -> RunResult:
    return RunResult(label=label, method=method, seed=5, **robust, knn_acc1=60.0,
                     cost={"step_time": step_time, "images_per_sec": 100.0,
                           "peak_rss_mib": 900.0})


def test_report_tables_show_the_hand_counted_numbers(robust, tmp_path):
    results = [_result("byol", "byol", robust, 0.2), _result("c_byol", "c_byol", robust, 0.3)]
    flat = table(results).iloc[1]
    assert flat["clean_acc1"] == pytest.approx(CLEAN)
    assert flat["mean_corruption_acc1"] == pytest.approx(MEAN_CORRUPTION)
    assert flat["relative_drop"] == pytest.approx(RELATIVE_DROP)
    write_markdown(results, tmp_path / "report.md", "# r", [])
    md = unpad((tmp_path / "report.md").read_text())
    # run | seeds | probe | kNN | mean corruption | relative drop (%)
    assert "| c_byol | 1 | 75.00 | 60.00 | 31.25 | 58.3 |" in md
    # per corruption: the mean over severities (37.5, 25.0), not the best severity (50, 50)
    assert "| run | clean (same images) | gaussian_noise | contrast |" in md
    assert "| c_byol | n/a | 37.5 | 25.0 |" in md


def test_step_time_ratio_uses_the_first_run_of_the_baseline():
    results = [RunResult(label=lab, method=m, seed=5, clean=0.0, knn_acc1=0.0,
                         cost={"step_time": t})
               for lab, m, t in [("byol", "byol", 0.30), ("c_byol", "c_byol", 0.33),
                                 ("byol-rerun", "byol", 0.60), ("simclr", "simclr", 0.20)]]
    assert step_time_ratios(results) == pytest.approx({("c_byol", 5): 1.1})
    # without a plain "byol" label, the first run of the baseline method is the reference
    for r in results:
        r.label = {"byol": "byol@a", "byol-rerun": "byol@b"}.get(r.label, r.label)
    assert step_time_ratios(results) == pytest.approx({("c_byol", 5): 1.1})


def _knn_case() -> tuple[torch.Tensor, ...]:
    # k = 3. The first test point's neighbours: one of class 0 at cosine 1, two of class 1 at
    # cosine 0.6. Votes exp(cos / T), T = 0.07: class 0 wins (e^14.3 vs 2 e^8.6); with the
    # temperature inverted (exp(cos * T)) or no weighting, the two class-1 neighbours win.
    # The other two test points are right either way (every class is in the test labels:
    # solo-learn's classifier counts the classes there).
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [-1.0, 0.0], [-0.9, 0.1],
                          [-0.9, -0.1]])
    train_labels = torch.tensor([0, 1, 1, 2, 2, 2])
    test = torch.tensor([[1.0, 0.0], [-1.0, 0.05], [0.6, 0.8]])
    test_labels = torch.tensor([0, 2, 1])
    return train, train_labels, test, test_labels


def test_knn_weights_votes_by_exp_cos_over_temperature():
    pytest.importorskip("solo.utils.knn", reason="the kNN is solo-learn's (cvr-solo "
                        "install-solo); the CI stages with solo-learn run this")
    train, train_labels, test, test_labels = _knn_case()
    assert knn_accuracy(train, train_labels, test, test_labels, k=3) == pytest.approx(100.0)
    # with a flat temperature the majority (class 1) wins the first test point
    assert knn_accuracy(train, train_labels, test, test_labels, k=3,
                        temperature=100.0) == pytest.approx(200 / 3)


def test_knn_is_the_weighted_vote_on_random_features():
    """solo-learn's classifier against the rule written out (the bench's own kNN before
    issue #25): the same accuracy on features with many near ties."""
    pytest.importorskip("solo.utils.knn", reason="the kNN is solo-learn's")
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 16, generator=g), torch.randn(120, 16, generator=g)
    train_labels, test_labels = torch.arange(300) % 10, torch.arange(120) % 10
    sims = nn.functional.normalize(test, dim=1) @ nn.functional.normalize(train, dim=1).T
    top, idx = sims.topk(20, dim=1)
    votes = torch.zeros(120, 10).scatter_add_(1, train_labels[idx], (top / 0.07).exp())
    by_hand = float((votes.argmax(1) == test_labels).float().mean() * 100)
    assert knn_accuracy(train, train_labels, test, test_labels) == pytest.approx(by_hand)
