"""Fetching a catalogued dataset into the cache, every file verified before it appears.

A download streams to `<file>.part`; a later fetch resumes it with an HTTP Range request (and
starts over when the server ignores the range). Only a file whose size and sha256 match the
catalog is renamed into place, so the cache never holds a half-written or wrong file.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelforge.datasets.catalog import MIRROR_ENV, Dataset, DatasetFile, cache_root, missing_files
from modelforge.errors import DataError, ModelforgeError
from modelforge.files import fsync_directory, sha256_of

CHUNK = 1 << 20
TIMEOUT_S = 60


class TermsNotAccepted(ModelforgeError):
    """A dataset whose terms restrict use was fetched without accepting them."""


@dataclass(frozen=True)
class FetchReport:
    folder: Path
    fetched: int  # files downloaded or built now
    present: int  # files already in the cache


def mirror_url(mirror: str) -> str:
    """A mirror is a URL, or a local folder laid out like the cache."""
    if "://" not in mirror:
        return Path(mirror).expanduser().resolve().as_uri() + "/"
    return mirror if mirror.endswith("/") else mirror + "/"


def fetch_dataset(
    dataset: Dataset,
    root: Path | None = None,
    *,
    accept_terms: bool = False,
    mirror: str | None = None,
    on_file: Callable[[DatasetFile], None] | None = None,
) -> FetchReport:
    """Put every file of `dataset` into `root/NAME` (default: the cache), verified; files already there
    (of the right size) are kept. Restricted terms must be accepted. A dataset `built_here` ignores the mirror."""
    root = root or cache_root()
    folder = root / dataset.name
    # A dataset built wholly from an installed package is the same bytes everywhere: build it even with a
    # mirror, which would only have to hold a copy of it.
    mirror = None if dataset.built_here else mirror or os.environ.get(MIRROR_ENV) or None
    missing = missing_files(dataset, root)
    if missing and dataset.restricted and not accept_terms:
        raise TermsNotAccepted(
            f"dataset {dataset.name}: its terms restrict use ({dataset.licence}); read them with "
            f"`modelforge datasets info {dataset.name}` and fetch with --accept-terms"
        )
    built = [f for f in missing if f.path in dataset.builders and not mirror]  # after the files they read
    try:
        for entry in [f for f in missing if f not in built] + built:
            if on_file:
                on_file(entry)
            target = folder / entry.path
            part = target.with_name(target.name + ".part")
            part.parent.mkdir(parents=True, exist_ok=True)
            if mirror:
                download(mirror_url(mirror) + f"{dataset.name}/{entry.path}", part)
            else:
                fetch_upstream(dataset, entry, folder, part)
            install(part, target, entry, dataset.name)
    finally:  # an empty downloads folder goes; one holding a partial download stays, for the next fetch to resume
        with contextlib.suppress(OSError):
            (folder / ".downloads").rmdir()
    shutil.rmtree(folder / ".downloads", ignore_errors=True)  # a whole archive, once its members are out
    return FetchReport(folder, len(missing), len(dataset.files) - len(missing))


def fetch_upstream(dataset: Dataset, entry: DatasetFile, folder: Path, part: Path) -> None:
    """Write `entry`'s bytes into `part` from the dataset's upstream form (see `Dataset`)."""
    downloads = folder / ".downloads"
    if entry.path in dataset.builders:
        part.write_bytes(dataset.builders[entry.path](folder))
    elif entry.path in dataset.converted:
        converted = dataset.converted[entry.path]
        raw = downloads / (converted.url.rsplit("/", 1)[-1] + ".part")
        download(converted.url, raw)
        if sha256_of(raw) != converted.sha256:
            raw.unlink()
            raise DataError(f"{converted.url}: not the file the catalog converts (sha256 differs); it was removed")
        part.write_bytes(converted.convert(raw.read_bytes()))
        raw.unlink()
    elif dataset.archive:
        archive = downloads / dataset.archive.rsplit("/", 1)[-1]
        if not archive.exists():
            download(dataset.archive, archive.with_name(archive.name + ".part"))
            os.replace(archive.with_name(archive.name + ".part"), archive)
        extract_member(archive, dataset.members.get(entry.path, dataset.archive_root + entry.path), part)
    elif dataset.url_base and dataset.gzip:
        packed = downloads / (entry.path + ".gz.part")
        download(dataset.url_base + entry.path + ".gz", packed)
        decompress(packed, part)
    elif dataset.url_base:
        download(dataset.url_base + entry.path, part)
    else:
        raise DataError(f"{dataset.name}/{entry.path}: no upstream source; fetch it from a mirror ({MIRROR_ENV})")


def download(url: str, part: Path) -> None:
    """Stream `url` into `part`, resuming what an earlier try left there when the server honours Range."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "modelforge"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole (or longer): start over
            part.unlink()
            return download(url, part)
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: cannot download ({reason}); run the fetch again to resume") from None
    with response:
        resumed = (
            have and response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        )
        try:
            with open(part, "ab" if resumed else "wb") as file:
                shutil.copyfileobj(response, file, CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise DataError(f"{url}: download interrupted ({exc!r}); run the fetch again to resume") from None


def extract_member(archive: Path, member: str, part: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as bundle, bundle.open(member) as source, open(part, "wb") as file:
            shutil.copyfileobj(source, file, CHUNK)
    except (KeyError, zipfile.BadZipFile) as exc:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive.name}: cannot read {member} ({exc}); run the fetch again") from None


def decompress(packed: Path, part: Path) -> None:
    try:
        with gzip.open(packed, "rb") as source, open(part, "wb") as file:
            shutil.copyfileobj(source, file, CHUNK)
    except (OSError, EOFError) as exc:
        packed.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        raise DataError(f"{packed.name}: not a whole gzip file ({exc}); run the fetch again") from None
    packed.unlink()


def install(part: Path, target: Path, entry: DatasetFile, name: str) -> None:
    """Rename `part` to `target` if its size and sha256 are the catalog's. A short part stays, for the
    next fetch to resume; a longer or different one is deleted."""
    size = part.stat().st_size
    if size < entry.size:
        raise DataError(
            f"{name}/{entry.path}: the download stopped at {size:,} of {entry.size:,} bytes; run the fetch again "
            "to resume"
        )
    digest = sha256_of(part) if size == entry.size else ""
    if digest != entry.sha256:
        part.unlink()
        got = f"sha256 {digest[:16]}…" if digest else f"{size:,} bytes"
        raise DataError(
            f"{name}/{entry.path}: expected sha256 {entry.sha256[:16]}… ({entry.size:,} bytes), got {got}; "
            "the download was removed, run the fetch again"
        )
    os.replace(part, target)
    fsync_directory(target.parent)


def verify_dataset(dataset: Dataset, root: Path | None = None) -> list[str]:
    """Every problem of the fetched copy, one line each: missing files, wrong sizes, wrong checksums."""
    folder = (root or cache_root()) / dataset.name
    problems = []
    for entry in dataset.files:
        path = folder / entry.path
        if not path.is_file():
            problems.append(f"{entry.path}: missing")
        elif path.stat().st_size != entry.size:
            problems.append(f"{entry.path}: {path.stat().st_size:,} bytes, expected {entry.size:,}")
        elif sha256_of(path) != entry.sha256:
            problems.append(f"{entry.path}: sha256 differs from the catalog's")
    return problems
