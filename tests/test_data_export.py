"""Fashion-MNIST export: layout, pixels and labels against an independent IDX reader,
manifest checksums and statistics, idempotence, repair, argument errors and the CLI."""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvr_solo.data import CLASS_NAMES, DEFAULT_SOURCE, export_fashion_mnist, verify_export
from cvr_solo.data.cli import main

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "val": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SOURCE_NAMES = [name for pair in FILES.values() for name in pair]
HAVE_SOURCE = all((DEFAULT_SOURCE / name).is_file() for name in SOURCE_NAMES)
needs_source = pytest.mark.skipif(
    not HAVE_SOURCE,
    reason=f"Fashion-MNIST IDX files absent from {DEFAULT_SOURCE} "
           "(apt-get install -y dataset-fashion-mnist)")
INSTALL = "apt-get install -y dataset-fashion-mnist"
REDO = "re-exporting"


@functools.cache
def source_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28), labels (N,)) read with a minimal IDX reader of its own."""
    img_raw = gzip.decompress((DEFAULT_SOURCE / FILES[split][0]).read_bytes())
    lab_raw = gzip.decompress((DEFAULT_SOURCE / FILES[split][1]).read_bytes())
    magic, n, rows, cols = struct.unpack(">4i", img_raw[:16])
    assert (magic, rows, cols) == (2051, 28, 28)
    magic_l, n_l = struct.unpack(">2i", lab_raw[:8])
    assert magic_l == 2049 and n_l == n
    images = np.frombuffer(img_raw[16:], np.uint8).reshape(n, 28, 28)
    return images, np.frombuffer(lab_raw[8:], np.uint8)


def pngs_on_disk(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for split in ("train", "val")
            for p in (out / split).rglob("*") if p.is_file()}


def listed(manifest: dict) -> dict[str, str]:
    return {**manifest["splits"]["train"]["files"], **manifest["splits"]["val"]["files"]}


def check_export(out: Path, manifest: dict) -> None:
    """Every listed PNG is the padded, grey-replicated source image, in its label's folder,
    with the listed checksum; nothing else is there."""
    files = listed(manifest)
    assert pngs_on_disk(out) == set(files)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train", "val"]
    for rel, digest in files.items():
        split, folder, name = rel.split("/")
        images, labels = source_split(split)
        index = int(Path(name).stem)
        assert name == f"{index:05d}.png"
        data = (out / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
        with Image.open(out / rel) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (32, 32)
            arr = np.asarray(im)
        assert (arr == arr[:, :, :1]).all()  # grey replicated to 3 channels
        grey = arr[:, :, 0]
        assert not grey[:2].any() and not grey[-2:].any()  # the 2-px black border
        assert not grey[:, :2].any() and not grey[:, -2:].any()
        np.testing.assert_array_equal(grey[2:30, 2:30], images[index])
        assert folder == CLASS_NAMES[labels[index]]
    assert json.loads((out / "manifest.json").read_text()) == manifest


@pytest.fixture
def small(tmp_path):
    out = tmp_path / "fmnist"
    return out, export_fashion_mnist(out, subset=50, progress=False)


# --- no source needed --------------------------------------------------------------------------

def test_class_folders_sort_in_label_order():
    assert len(CLASS_NAMES) == 10
    assert sorted(CLASS_NAMES) == list(CLASS_NAMES)
    assert [int(n.split("_")[0]) for n in CLASS_NAMES] == list(range(10))


def test_missing_source_says_how_to_install(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(FileNotFoundError) as err:
        export_fashion_mnist(tmp_path / "out", source=missing, progress=False)
    assert INSTALL in str(err.value) and str(missing) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_partial_source_names_the_missing_files(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz") as err:
        export_fashion_mnist(tmp_path / "out", source=tmp_path / "src", progress=False)
    assert INSTALL in str(err.value)
    assert "train-images-idx3-ubyte.gz," not in str(err.value)


@pytest.mark.parametrize(("content", "match"), [
    (b"not gzip at all", "gzip"),
    (gzip.compress(struct.pack(">4i", 2049, 60000, 28, 28), mtime=0), "magic"),
    (gzip.compress(struct.pack(">4i", 2051, 60000, 28, 28) + bytes(100), mtime=0), "data bytes"),
    (gzip.compress(struct.pack(">4i", 2051, 60000, 28, 28), mtime=0)[:-6], "gzip"),
])
def test_corrupt_source_is_an_error_and_out_is_left_alone(tmp_path, content, match):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCE_NAMES:
        (src / name).write_bytes(content)
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "train" / "keep.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=match) as err:
        export_fashion_mnist(out, source=src, progress=False)
    assert "corrupt" in str(err.value)
    assert (out / "train" / "keep.png").read_bytes() == b"x"


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"subset": 0}, "subset"),
    ({"subset": 15}, "subset"),
    ({"subset": -10}, "subset"),
    ({"subset": 70000}, "subset"),
    ({"subset": 60010}, "subset"),
    ({"subset": 50.0}, "subset"),
    ({"subset": True}, "subset"),
    ({"val_subset": 5}, "val_subset"),
    ({"val_subset": 10010}, "val_subset"),
    ({"subset": 50, "val_subset": 0}, "val_subset"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must be") as err:
        export_fashion_mnist(tmp_path / "out", progress=False, **kwargs)
    assert str(err.value).endswith(f"got {kwargs[name]!r}")
    assert not (tmp_path / "out").exists()


def test_cli_missing_source_one_line_error(tmp_path, capsys):
    rc = main(["fashion-mnist", "--out", str(tmp_path / "out"), "--source",
               str(tmp_path / "nope"), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and INSTALL in lines[0]
    assert "Traceback" not in captured.err


def test_cli_bad_subset_and_bad_dataset(tmp_path, capsys):
    assert main(["fashion-mnist", "--out", str(tmp_path), "--subset", "15"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: subset must be")
    assert main(["mnist", "--out", str(tmp_path)]) == 2
    assert "invalid choice" in capsys.readouterr().err


# --- with the real source ----------------------------------------------------------------------

@needs_source
def test_subset_layout_pixels_and_labels(small):
    out, manifest = small
    assert manifest["parameters"] == {"subset": 50, "val_subset": 10, "seed": 0,
                                      "image_size": 32, "padding": 2}
    assert manifest["splits"]["train"]["counts"] == dict.fromkeys(CLASS_NAMES, 5)
    assert manifest["splits"]["val"]["counts"] == dict.fromkeys(CLASS_NAMES, 1)
    assert manifest["splits"]["train"]["num_images"] == 50
    assert manifest["splits"]["val"]["num_images"] == 10
    for split, per_class in (("train", 5), ("val", 1)):
        for cls in CLASS_NAMES:
            assert len(list((out / split / cls).glob("*.png"))) == per_class
    check_export(out, manifest)
    assert verify_export(out) == []


@needs_source
def test_imagefolder_targets_are_the_source_labels(small):
    datasets = pytest.importorskip("torchvision.datasets")
    out, _ = small
    for split in ("train", "val"):
        ds = datasets.ImageFolder(str(out / split))
        assert ds.classes == list(CLASS_NAMES)
        labels = source_split(split)[1]
        for path, target in ds.samples:
            assert target == labels[int(Path(path).stem)]


@needs_source
def test_manifest_checksums_and_statistics(small):
    out, manifest = small
    for name in SOURCE_NAMES:
        digest = hashlib.sha256((DEFAULT_SOURCE / name).read_bytes()).hexdigest()
        assert manifest["source"]["sha256"][name] == digest
    for rel, digest in listed(manifest).items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    train = np.stack([np.asarray(Image.open(out / rel), dtype=np.float64) / 255
                      for rel in manifest["splits"]["train"]["files"]])
    np.testing.assert_allclose(manifest["mean"], train.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(manifest["std"], train.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    assert all(0 < m < 1 for m in manifest["mean"]) and all(0 < s < 1 for s in manifest["std"])


@needs_source
def test_subset_draw_depends_on_seed_only(tmp_path, small):
    _, manifest = small
    again = export_fashion_mnist(tmp_path / "again", subset=50, progress=False)
    assert listed(again) == listed(manifest)
    other = export_fashion_mnist(tmp_path / "other", subset=50, seed=1, progress=False)
    assert set(listed(other)) != set(listed(manifest))
    check_export(tmp_path / "other", other)


@needs_source
def test_second_call_is_a_no_op(small, caplog):
    out, manifest = small
    paths = [out / "manifest.json", *(out / rel for rel in listed(manifest))]
    before = {p: p.stat().st_mtime_ns for p in paths}
    with caplog.at_level(logging.INFO):
        again = export_fashion_mnist(out, subset=50, progress=False)
        explicit = export_fashion_mnist(out, subset=50, val_subset=10, seed=0, progress=False)
    assert again == manifest and explicit == manifest
    assert {p: p.stat().st_mtime_ns for p in paths} == before
    assert REDO not in caplog.text


def _delete_file(out, manifest):
    rel = next(iter(manifest["splits"]["train"]["files"]))
    (out / rel).unlink()
    return f"missing file {rel}"


def _flip_bytes(out, manifest):
    rel = list(manifest["splits"]["val"]["files"])[3]
    data = bytearray((out / rel).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / rel).write_bytes(bytes(data))
    return f"checksum mismatch in {rel}"


def _extra_file(out, manifest):
    (out / "train" / CLASS_NAMES[4] / "99999.png").write_bytes(b"\x89PNG")
    return f"unexpected file train/{CLASS_NAMES[4]}/99999.png"


def _extra_folder(out, manifest):
    (out / "val" / "10_extra").mkdir()
    return "unexpected folder val/10_extra"


def _delete_manifest(out, manifest):
    (out / "manifest.json").unlink()
    return "manifest.json is missing"


def _truncate_manifest(out, manifest):
    path = out / "manifest.json"
    path.write_text(path.read_text()[:100])
    return "manifest.json is unreadable"


@needs_source
@pytest.mark.parametrize("damage", [_delete_file, _flip_bytes, _extra_file, _extra_folder,
                                    _delete_manifest, _truncate_manifest])
def test_damage_is_detected_and_repaired(small, damage, caplog):
    out, manifest = small
    problem = damage(out, manifest)
    problems = verify_export(out)
    assert any(p.startswith(problem) for p in problems), problems
    with caplog.at_level(logging.WARNING):
        repaired = export_fashion_mnist(out, subset=50, progress=False)
    assert REDO in caplog.text and sum(REDO in r.getMessage() for r in caplog.records) == 1
    assert verify_export(out) == []
    assert listed(repaired) == listed(manifest)
    check_export(out, repaired)


@needs_source
def test_other_parameters_re_export(small, caplog):
    out, _ = small
    with caplog.at_level(logging.WARNING):
        manifest = export_fashion_mnist(out, subset=100, progress=False)
    assert REDO in caplog.text and "parameters" in caplog.text
    assert manifest["parameters"]["val_subset"] == 20  # round(100 / 60) * 10
    assert manifest["splits"]["train"]["counts"] == dict.fromkeys(CLASS_NAMES, 10)
    assert manifest["splits"]["val"]["counts"] == dict.fromkeys(CLASS_NAMES, 2)
    check_export(out, manifest)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        manifest = export_fashion_mnist(out, subset=100, val_subset=50, progress=False)
    assert REDO in caplog.text
    assert manifest["splits"]["val"]["counts"] == dict.fromkeys(CLASS_NAMES, 5)
    check_export(out, manifest)


@needs_source
def test_source_checksums_decide_not_the_source_path(tmp_path, small, caplog):
    out, manifest = small
    copy = tmp_path / "copy-of-source"
    copy.mkdir()
    for name in SOURCE_NAMES:
        (copy / name).write_bytes((DEFAULT_SOURCE / name).read_bytes())
    mtime = (out / "manifest.json").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING):
        assert export_fashion_mnist(out, source=copy, subset=50, progress=False) == manifest
    assert (out / "manifest.json").stat().st_mtime_ns == mtime and REDO not in caplog.text
    # a recorded source checksum that differs (other source files) forces a re-export
    stale = json.loads((out / "manifest.json").read_text())
    stale["source"]["sha256"][SOURCE_NAMES[0]] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(stale))
    assert verify_export(out) == []  # the files themselves are fine
    with caplog.at_level(logging.WARNING):
        redone = export_fashion_mnist(out, subset=50, progress=False)
    assert REDO in caplog.text
    assert redone["source"]["sha256"] == manifest["source"]["sha256"]
    check_export(out, redone)


@needs_source
def test_refuses_to_wipe_a_foreign_directory(tmp_path):
    out = tmp_path / "mine"
    (out / "train").mkdir(parents=True)
    (out / "train" / "holiday.png").write_bytes(b"precious")
    (out / "notes.txt").write_text("do not delete")
    with pytest.raises(ValueError, match="refusing") as err:
        export_fashion_mnist(out, subset=50, progress=False)
    assert "notes.txt" in str(err.value)
    assert (out / "notes.txt").read_text() == "do not delete"
    assert (out / "train" / "holiday.png").read_bytes() == b"precious"
    # a manifest.json that is not ours does not make the directory ours
    (out / "manifest.json").write_text('{"name": "something else"}')
    with pytest.raises(ValueError, match="refusing"):
        export_fashion_mnist(out, subset=50, progress=False)
    assert (out / "train" / "holiday.png").exists()


@needs_source
def test_empty_existing_directory_and_leftover_partial_export(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    check_export(out, export_fashion_mnist(out, subset=10, progress=False))
    partial = tmp_path / "partial"
    (partial / "train" / CLASS_NAMES[0]).mkdir(parents=True)
    (partial / "train" / CLASS_NAMES[0] / "00000.png").write_bytes(b"half")
    (partial / "manifest.json.tmp").write_text("{")
    check_export(partial, export_fashion_mnist(partial, subset=10, progress=False))


@needs_source
def test_progress_bar_only_when_asked(tmp_path, capsys):
    export_fashion_mnist(tmp_path / "a", subset=10, progress=False)
    assert capsys.readouterr().err == ""
    export_fashion_mnist(tmp_path / "b", subset=10, progress=True)
    assert "fashion-mnist" in capsys.readouterr().err


@needs_source
def test_cli_success(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["fashion-mnist", "--out", str(out), "--subset", "20", "--val-subset", "10",
               "--seed", "3", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0
    assert str(out) in captured.out and "mean" in captured.out and "std" in captured.out
    assert "20 train" in captured.out and "10 val" in captured.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parameters"]["seed"] == 3
    check_export(out, manifest)
