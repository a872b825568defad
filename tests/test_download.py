"""fetch / extract / download_dataset against a local HTTP server that supports Range."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from litesr.data.download import (
    SOURCES,
    ArchiveError,
    ChecksumError,
    DownloadError,
    Source,
    download_dataset,
    extract,
    fetch,
    hr_folder,
    md5sum,
    mirror_url,
)
from litesr.data.images import list_images, read_image, write_png


@dataclass
class FileServer:
    """What the test server serves, how it behaves, and the requests it received."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    honor_range: bool = True
    cut_next: bool = False  # announce the full length, send half, close


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        range_header = self.headers.get("Range")
        state.requests.append((self.path, range_header))
        body = state.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if range_header and state.honor_range:
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert match, range_header
            start = int(match[1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.cut_next:
            state.cut_next = False
            payload = payload[: len(payload) // 2]
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    state: FileServer


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = FileServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _pngs(tmp_path: Path, names: list[str]) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    out = {}
    for name in names:
        write_png(tmp_path / "src" / name, rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        out[name] = (tmp_path / "src" / name).read_bytes()
    return out


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(
    members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in _entries(folder) if p.name.startswith(".") or p.suffix == ".part")


def _entries(folder: Path) -> list[Path]:
    """Folder contents, less the hidden lock files that serialise concurrent fetches."""
    return sorted(p for p in folder.iterdir() if not p.name.endswith(".lock"))


Tiny = tuple[Source, dict[str, bytes]]


@pytest.fixture
def tiny_zip(tmp_path: Path, server: FileServer) -> Tiny:
    pngs = _pngs(tmp_path, ["0001.png", "0002.png"])
    data = _zip({f"Tiny_HR/{k}": v for k, v in pngs.items()} | {"readme.txt": b"hi"})
    server.files["tiny.zip"] = data
    return Source(
        "Tiny", "https://example.org/some/path/tiny.zip", _md5(data), "zip", "Tiny_HR"
    ), pngs


def test_download_zip_dataset(tmp_path: Path, server: FileServer, tiny_zip: Tiny) -> None:
    source, pngs = tiny_zip
    root = tmp_path / "root"
    folder = download_dataset(source, root, base_url=server.url, progress=False)
    assert folder == root / "Tiny" == hr_folder(source, root)
    assert [p.name for p in list_images(folder)] == sorted(pngs)
    for name, data in pngs.items():
        assert (folder / name).read_bytes() == data
    assert server.requests == [("/tiny.zip", None)]
    assert [p.name for p in _entries(root)] == ["Tiny", "tiny.zip"]
    download_dataset(source, root, base_url=server.url, progress=False)
    assert len(server.requests) == 1  # idempotent: nothing fetched again


def test_tar_sets_share_one_archive(tmp_path: Path, server: FileServer) -> None:
    pngs = _pngs(tmp_path, ["a.png", "b.png"])
    data = _tar(
        {
            "benchmark/Set5/HR/a.png": pngs["a.png"],
            "benchmark/Set5/LR_bicubic/X2/a.png": pngs["b.png"],
            "./benchmark/Set14/HR/b.png": pngs["b.png"],
        }
    )  # "./" as `tar -C d .` writes
    server.files["bench.tar.gz"] = data
    root = tmp_path / "root"
    for name, expected in (("Set5", "a.png"), ("Set14", "b.png")):
        src = Source(
            name, "https://example.org/bench.tar.gz", _md5(data), "tar", f"benchmark/{name}/HR"
        )
        folder = download_dataset(src, root, base_url=server.url, progress=False)
        assert [p.name for p in _entries(folder)] == [expected]
        np.testing.assert_array_equal(
            read_image(folder / expected), read_image(tmp_path / "src" / expected)
        )
    assert len(server.requests) == 1  # the second set reuses the archive


def test_checksum_mismatch(tmp_path: Path, server: FileServer, tiny_zip: Tiny) -> None:
    source, _ = tiny_zip
    good = server.files["tiny.zip"]
    bad = good[:100] + bytes([good[100] ^ 0xFF]) + good[101:]
    server.files["tiny.zip"] = bad
    root = tmp_path / "root"
    with pytest.raises(ChecksumError) as err:
        download_dataset(source, root, base_url=server.url, progress=False)
    message = str(err.value)
    assert "tiny.zip" in message and source.md5 in message and _md5(bad) in message
    assert _entries(root) == []  # no archive, no .part, no extracted folder


def test_resume_sends_range(tmp_path: Path, server: FileServer) -> None:
    data = bytes(range(256)) * 40
    server.files["blob.bin"] = data
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(data[:5000])
    assert fetch(server.url + "blob.bin", dest, _md5(data), progress=False) == dest
    assert server.requests == [("/blob.bin", "bytes=5000-")]
    assert dest.read_bytes() == data
    assert _leftovers(tmp_path) == []


def test_server_ignoring_range_restarts(tmp_path: Path, server: FileServer) -> None:
    data = bytes(range(256)) * 40
    server.files["blob.bin"] = data
    server.honor_range = False
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)  # wrong bytes: must be discarded
    fetch(server.url + "blob.bin", tmp_path / "blob.bin", _md5(data), progress=False)
    assert server.requests == [("/blob.bin", "bytes=5000-")]
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_unsatisfiable_range_restarts(tmp_path: Path, server: FileServer) -> None:
    data = b"abc" * 100
    server.files["blob.bin"] = data
    (tmp_path / "blob.bin.part").write_bytes(b"y" * 400)  # longer than the file: 416
    fetch(server.url + "blob.bin", tmp_path / "blob.bin", _md5(data), progress=False)
    assert server.requests == [("/blob.bin", "bytes=400-"), ("/blob.bin", None)]
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_cut_connection_then_resume(tmp_path: Path, server: FileServer) -> None:
    data = bytes(range(256)) * 40
    server.files["blob.bin"] = data
    server.cut_next = True
    url, dest = server.url + "blob.bin", tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match="rerun to resume"):
        fetch(url, dest, _md5(data), progress=False)
    assert not dest.exists() and (tmp_path / "blob.bin.part").stat().st_size == len(data) // 2
    fetch(url, dest, _md5(data), progress=False)
    assert server.requests[-1] == ("/blob.bin", f"bytes={len(data) // 2}-")
    assert dest.read_bytes() == data


def test_fetch_idempotent(
    tmp_path: Path, server: FileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"payload" * 50
    server.files["p.bin"] = data
    dest = tmp_path / "p.bin"
    fetch(server.url + "p.bin", dest, _md5(data), progress=True)
    assert "p.bin" in capsys.readouterr().err  # the progress bar goes to stderr
    fetch(server.url + "p.bin", dest, _md5(data), progress=False)
    fetch(server.url + "p.bin", dest, None, progress=False)
    assert len(server.requests) == 1


def test_http_404(tmp_path: Path, server: FileServer) -> None:
    url = server.url + "missing.zip"
    with pytest.raises(DownloadError, match=re.escape(url) + ".*HTTP 404"):
        fetch(url, tmp_path / "missing.zip", None, progress=False)
    assert _entries(tmp_path) == []


def test_unreachable_host(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.zip"
    with pytest.raises(DownloadError, match=re.escape(url)):
        fetch(url, tmp_path / "x.zip", None, progress=False, timeout=5)


@pytest.mark.parametrize(
    "archive",
    [
        _zip({"ok/a.png": b"1", "../evil.png": b"2"}),
        _zip({"/abs/evil.png": b"2"}),
        _tar({"ok/a.png": b"1", "ok/../../evil.png": b"2"}),
        _tar({"/abs/evil.png": b"2"}, mode="w"),
    ],
)
def test_extract_refuses_path_traversal(tmp_path: Path, archive: bytes) -> None:
    (tmp_path / "a.arc").write_bytes(archive)
    (tmp_path / "out").mkdir()
    with pytest.raises(ArchiveError, match=r"a\.arc: unsafe member path"):
        extract(tmp_path / "a.arc", tmp_path / "out" / "x")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.png").exists()


def test_extract_refuses_links_and_bad_input(tmp_path: Path) -> None:
    arc = tmp_path / "l.tar"
    arc.write_bytes(_tar({"d/HR/a.png": b"1"}, links={"d/HR/b.png": "/etc/passwd"}))
    with pytest.raises(ArchiveError, match="link or special file"):
        extract(arc, tmp_path / "x", subdir="d/HR")
    with pytest.raises(ArchiveError, match="no files under 'd/LR'"):
        extract(arc, tmp_path / "x", subdir="d/LR")
    with pytest.raises(ArchiveError, match="expected a zip archive, found a tar"):
        extract(arc, tmp_path / "x", fmt="zip")
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(ArchiveError, match=r"junk\.zip: not a zip or tar"):
        extract(tmp_path / "junk.zip", tmp_path / "x")
    (tmp_path / "x").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        extract(arc, tmp_path / "x", subdir="d/HR")
    assert _leftovers(tmp_path) == []


def test_sources_table() -> None:
    assert set(SOURCES) == {"DIV2K_train_HR", "DIV2K_valid_HR", "Set5", "Set14", "B100", "Urban100"}
    for name, src in SOURCES.items():
        assert src.name == name and re.fullmatch(r"[0-9a-f]{32}", src.md5)
        assert src.url.startswith("https://") and src.archive in ("zip", "tar")
        assert mirror_url(src, "http://127.0.0.1:8000/") == f"http://127.0.0.1:8000/{src.filename}"


def test_unknown_and_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown data set 'Set6'.*Set5"):
        download_dataset("Set6", tmp_path)
    with pytest.raises(FileNotFoundError, match="'Set5' is not downloaded"):
        hr_folder("Set5", tmp_path)


def test_concurrent_fetches_of_one_archive_take_turns(
    tmp_path: Path, server: FileServer, tiny_zip: Tiny
) -> None:
    source, _ = tiny_zip
    url, dest = mirror_url(source, server.url), tmp_path / "tiny.zip"
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: fetch(url, dest, source.md5, progress=False), range(4)))
    assert done == [dest] * 4 and md5sum(dest) == source.md5
    assert server.requests == [("/tiny.zip", None)]  # one download; the others found it done
