"""``cvr-solo data fashion-mnist`` without Debian's files: the download through torchvision
and the message offering both ways.

Offline: torchvision's mirror list points at a folder served on the loopback interface.
(A ``file://`` mirror does not work: torchvision 0.29's ``_urlretrieve`` reads
``response.length``, which urllib's file responses lack.)"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from cvr_solo.data import cli as data_cli
from cvr_solo.data.fashion_mnist import DEFAULT_SOURCE, INSTALL_COMMAND, SOURCE_FILES

NAMES = [n for pair in SOURCE_FILES.values() for n in pair]
needs_source = pytest.mark.skipif(
    not all((DEFAULT_SOURCE / n).is_file() for n in NAMES),
    reason="Fashion-MNIST is missing: apt-get install -y dataset-fashion-mnist")


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    monkeypatch.setattr(data_cli, "DEFAULT_SOURCE", tmp_path / "not-installed")
    monkeypatch.setattr(data_cli, "_ask", lambda question: False)  # as without a terminal


@pytest.fixture
def local_mirror(monkeypatch, tmp_path):
    from torchvision.datasets import FashionMNIST

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in NAMES:
        shutil.copy(DEFAULT_SOURCE / name, mirror / name)
    # Debian re-compressed the .gz files (same IDX content, other bytes), so torchvision's
    # table gets their MD5s; its check itself is what the corrupt-file test exercises.
    monkeypatch.setattr(FashionMNIST, "resources", [
        (name, hashlib.md5((mirror / name).read_bytes()).hexdigest()) for name, _ in
        FashionMNIST.resources])
    handler = functools.partial(_QuietHandler, directory=str(mirror))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(FashionMNIST, "mirrors",
                        [f"http://127.0.0.1:{server.server_address[1]}/"])
    yield mirror
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # the client closing a HEAD request early


def test_without_any_source_the_message_offers_apt_and_download(no_debian, tmp_path, capsys):
    rc = data_cli.main(["fashion-mnist", "--out", str(tmp_path / "out"), "--cache",
                        str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert INSTALL_COMMAND in err[0] and "--download" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@needs_source
def test_download_through_torchvision_then_export(no_debian, local_mirror, tmp_path, capsys):
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    rc = data_cli.main(["fashion-mnist", "--out", str(out), "--subset", "20", "--download",
                        "--cache", str(cache), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    raw = cache / "FashionMNIST" / "raw"
    for name in NAMES:  # the served files, MD5-checked by torchvision
        assert (raw / name).read_bytes() == (DEFAULT_SOURCE / name).read_bytes()
    assert len(list((out / "train").rglob("*.png"))) == 20
    assert f"(source {raw})" in capsys.readouterr().out
    # the cached download is found again without --download, and not fetched twice
    for name in NAMES:
        (local_mirror / name).unlink()
    rc = data_cli.main(["fashion-mnist", "--out", str(tmp_path / "again"), "--subset", "20",
                        "--cache", str(cache), "--no-progress"])
    assert rc == 0, capsys.readouterr().err


@needs_source
def test_a_corrupt_download_is_refused(no_debian, local_mirror, tmp_path, capsys):
    (local_mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    rc = data_cli.main(["fashion-mnist", "--out", str(tmp_path / "out"), "--download",
                        "--cache", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "t10k-labels-idx1-ubyte.gz" in err and "corrupted" in err
    assert not (tmp_path / "out").exists()
