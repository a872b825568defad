"""Download the public SR data sets: resumable, MD5-checked fetch and safe archive extraction.

Nothing is left half-written: downloads grow in ``<file>.part`` and are renamed once their MD5
matches; archives are extracted into a temporary folder beside the target, then renamed.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Literal, cast

from tqdm.auto import tqdm

from litesr.atomic import honour_umask

ArchiveFormat = Literal["zip", "tar"]  # "tar" may be compressed (gzip, bzip2, xz)
CHUNK = 1 << 20
USER_AGENT = "litesr-downloader"


@dataclass(frozen=True)
class Source:
    """One downloadable data set: its archive and where its HR images sit inside it."""

    name: str
    url: str
    md5: str
    archive: ArchiveFormat
    hr_subdir: str  # folder inside the archive holding the HR images ("" = archive root)

    @property
    def filename(self) -> str:
        return PurePosixPath(self.url).name


# URLs and MD5 sums as listed by torchSR (github.com/Coloquinte/torchSR,
# torchsr/datasets/div2k.py and benchmarks.py); the DIV2K sums also appear in other public
# loaders. The four benchmark sets come from EDSR's benchmark.tar (cv.snu.ac.kr).
_EDSR_BENCHMARK = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"
_EDSR_BENCHMARK_MD5 = "4ace41d33c2384b97e6b320cd0afd6ba"
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "DIV2K_train_HR",
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            "bdc2d9338d4e574fe81bf7d158758658",
            "zip",
            "DIV2K_train_HR",
        ),
        Source(
            "DIV2K_valid_HR",
            "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            "9fcdda83005c5e5997799b69f955ff88",
            "zip",
            "DIV2K_valid_HR",
        ),
        Source("Set5", _EDSR_BENCHMARK, _EDSR_BENCHMARK_MD5, "tar", "benchmark/Set5/HR"),
        Source("Set14", _EDSR_BENCHMARK, _EDSR_BENCHMARK_MD5, "tar", "benchmark/Set14/HR"),
        Source("B100", _EDSR_BENCHMARK, _EDSR_BENCHMARK_MD5, "tar", "benchmark/B100/HR"),
        Source("Urban100", _EDSR_BENCHMARK, _EDSR_BENCHMARK_MD5, "tar", "benchmark/Urban100/HR"),
    )
}


class DownloadError(RuntimeError):
    """A download that could not be completed (network, HTTP status, short transfer)."""


class ChecksumError(DownloadError):
    """A downloaded file whose MD5 differs from the expected one."""


class ArchiveError(ValueError):
    """An archive that is unreadable, unsafe or lacks the expected folder."""


class _RangeNotSatisfiable(Exception):
    """HTTP 416: the partial file is not a prefix of the remote file."""


def md5sum(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str, dest: Path, md5: str | None, *, progress: bool = True, timeout: float = 60
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and check its MD5.

    Does nothing when ``dest`` already exists with the expected MD5 (or exists and ``md5`` is
    None); a ``dest`` with another MD5 is downloaded again and replaced. On MD5 mismatch of the
    download the partial file is deleted, so a retry starts clean. Processes fetching the same
    ``dest`` at once (e.g. benchmark sets that share one archive) take turns through an
    exclusive lock on the hidden file ``.<dest name>.lock`` beside it; the later ones find
    the file complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(f".{dest.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_locked(url, dest, md5, progress=progress, timeout=timeout)


def _fetch_locked(url: str, dest: Path, md5: str | None, *, progress: bool, timeout: float) -> Path:
    if dest.is_file() and (md5 is None or md5sum(dest) == md5.lower()):
        return dest
    part = dest.with_suffix(dest.suffix + ".part")
    _download(url, part, progress=progress, timeout=timeout)
    if md5 is not None:
        got = md5sum(part)
        if got != md5.lower():
            part.unlink()
            raise ChecksumError(
                f"{dest.name}: MD5 mismatch for {url}: expected {md5.lower()}, "
                f"got {got}; the partial download was deleted, retry to fetch "
                "it again"
            )
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, *, progress: bool, timeout: float) -> None:
    """Complete ``part`` from ``url``, appending with a Range request when it already exists."""
    offset = part.stat().st_size if part.is_file() else 0
    try:
        resp = _request(url, offset, timeout)
    except _RangeNotSatisfiable:
        offset, resp = 0, _request(url, 0, timeout)
    with resp:
        if offset and resp.status != HTTPStatus.PARTIAL_CONTENT:
            offset = 0  # the server ignored Range and sends the whole file
        elif offset and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise DownloadError(
                f"could not download {url}: server answered Range "
                f"bytes={offset}- with Content-Range "
                f"{resp.headers.get('Content-Range')!r}"
            )
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            part.open("ab" if offset else "wb") as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                file=sys.stderr,
            ) as bar,
        ):
            for chunk in _chunks(resp, url, part):
                fh.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size < total:
        raise DownloadError(
            f"could not download {url}: got {size} of {total} bytes; rerun to resume from {part}"
        )


def _chunks(resp: http.client.HTTPResponse, url: str, part: Path) -> Iterator[bytes]:
    """The response body in chunks; a broken connection becomes a DownloadError."""
    while True:
        try:
            chunk = resp.read(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"could not download {url}: connection lost ({exc}); rerun to resume from {part}"
            ) from exc
        if not chunk:
            return
        yield chunk


def _request(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Open ``url`` from byte ``offset``, turning every failure into a DownloadError."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE and offset:
            raise _RangeNotSatisfiable from exc
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"could not download {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc


def extract(
    archive: Path, dest_dir: Path, *, fmt: ArchiveFormat | None = None, subdir: str = ""
) -> Path:
    """Extract the files under ``subdir`` of a zip or tar archive into ``dest_dir``.

    ``subdir`` is stripped from the extracted paths. ``fmt`` (detected from the content when
    None) must match the archive. Members with absolute paths or ``..`` are refused, as are
    links under ``subdir``. ``dest_dir`` must not exist; it appears complete or not at all.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    if dest_dir.exists():
        raise FileExistsError(f"{dest_dir} already exists; remove it to extract {archive} again")
    found = _format(archive)
    if found is None:
        raise ArchiveError(f"{archive}: not a zip or tar archive")
    if fmt is not None and found != fmt:
        raise ArchiveError(f"{archive}: expected a {fmt} archive, found a {found} archive")
    prefix = PurePosixPath(subdir.strip("/")) if subdir.strip("/") else None
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".tmp", dir=dest_dir.parent))
    try:
        count = 0
        with _members(archive, found) as members:
            for name, opener in members:
                rel = _relative(name, prefix)
                if rel is None:
                    continue
                if opener is None:
                    raise ArchiveError(
                        f"{archive}: member {name!r} is a link or special file; "
                        "refusing to extract it"
                    )
                out = tmp.joinpath(*rel.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with opener() as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                count += 1
        if not count:
            raise ArchiveError(f"{archive}: no files under {subdir or 'the archive root'!r}")
        honour_umask(tmp, directory=True)  # mkdtemp made it owner-only
        os.replace(tmp, dest_dir)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot extract ({type(exc).__name__}: {exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest_dir


def _format(archive: Path) -> ArchiveFormat | None:
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    if zipfile.is_zipfile(archive):
        return "zip"
    return "tar" if tarfile.is_tarfile(archive) else None


_Opener = Callable[[], IO[bytes]]


@contextmanager
def _members(archive: Path, fmt: ArchiveFormat) -> Iterator[list[tuple[str, _Opener | None]]]:
    """(name, opener) of each non-directory member, opener None for links and devices.

    Every member name is checked for path traversal before anything is returned.
    """
    if fmt == "zip":
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_name(archive, info.filename)
            yield [(i.filename, partial(zf.open, i)) for i in infos if not i.is_dir()]
        return
    with tarfile.open(archive, "r:*") as tf:
        entries = tf.getmembers()
        for entry in entries:
            _check_name(archive, entry.name)
        yield [
            (m.name, partial(_tar_file, tf, m) if m.isfile() else None)
            for m in entries
            if not m.isdir()
        ]


def _tar_file(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """Open a regular tar member (``extractfile`` returns None only for other kinds)."""
    return cast(IO[bytes], tf.extractfile(member))


def _check_name(archive: Path, name: str) -> None:
    """Refuse absolute member paths and ``..`` components (path traversal)."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise ArchiveError(
            f"{archive}: unsafe member path {name!r} (absolute or containing "
            "'..'); refusing to extract this archive"
        )


def _relative(name: str, prefix: PurePosixPath | None) -> PurePosixPath | None:
    """Path of member ``name`` below ``prefix``, or None when it lies outside it."""
    path = PurePosixPath(name.replace("\\", "/"))
    path = PurePosixPath(*[p for p in path.parts if p != "."])
    if prefix is None:
        return path
    if path == prefix or prefix not in path.parents:
        return None
    return path.relative_to(prefix)


def mirror_url(source: Source, base_url: str) -> str:
    """``source``'s URL with everything before the file name replaced by ``base_url``."""
    return f"{base_url.rstrip('/')}/{source.filename}"


def _source(dataset: str | Source) -> Source:
    if isinstance(dataset, Source):
        return dataset
    try:
        return SOURCES[dataset]
    except KeyError:
        raise ValueError(f"unknown data set {dataset!r}; known: {', '.join(SOURCES)}") from None


def hr_folder(dataset: str | Source, root: Path) -> Path:
    """Folder of the HR images of an already downloaded data set."""
    name = _source(dataset).name
    folder = Path(root) / name
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data set {name!r} is not downloaded: {folder} does not exist; download it first"
        )
    return folder


def download_dataset(
    dataset: str | Source, root: Path, *, base_url: str | None = None, progress: bool = True
) -> Path:
    """Fetch and extract one data set into ``root/<name>``; return that folder of HR images.

    ``dataset`` is a name from :data:`SOURCES` or a :class:`Source`. The archive is kept as
    ``root/<archive file name>`` (shared by the benchmark sets). ``base_url`` replaces the
    host and path of the source URL (e.g. a mirror, or a local test server).
    """
    source, root = _source(dataset), Path(root)
    target = root / source.name
    if target.is_dir():
        return target
    url = source.url if base_url is None else mirror_url(source, base_url)
    archive = fetch(url, root / source.filename, source.md5, progress=progress)
    return extract(archive, target, fmt=source.archive, subdir=source.hr_subdir)
