"""Fetching into the cache from a loopback mirror: checksums verified, partial downloads resumed or
discarded, nothing half-written left behind, restricted terms refused unless accepted."""

from __future__ import annotations

import csv
import gzip
import hashlib
import sys
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from loopback_mirror import SHARED_DATASETS, Mirror, needs_shared

from modelforge.datasets.catalog import DATASETS, Dataset
from modelforge.datasets.fetch import TermsNotAccepted, fetch_dataset, verify_dataset
from modelforge.errors import DataError

SHAKESPEARE = DATASETS.get("tinyshakespeare")


def leftovers(folder: Path) -> list[str]:
    """Temporaries a fetch must never leave: .part files and the downloads folder."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix == ".part" or ".downloads" in p.parts
    )


def test_fetch_from_the_loopback_mirror_verifies_every_file(shared_mirror: Mirror, tmp_path: Path) -> None:
    for name in ("tinyshakespeare", "sst2", "movielens-100k", "multi30k"):
        report = fetch_dataset(DATASETS.get(name), tmp_path, accept_terms=True, mirror=shared_mirror.url)
        assert report.fetched == len(DATASETS.get(name).files) and report.present == 0
        assert verify_dataset(DATASETS.get(name), tmp_path) == []
    assert leftovers(tmp_path) == []
    again = fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    assert (again.fetched, again.present) == (0, 1)


def test_a_corrupted_download_is_refused_and_nothing_is_left(shared_mirror: Mirror, tmp_path: Path) -> None:
    shared_mirror.corrupt.add("tinyshakespeare/input.txt")
    with pytest.raises(DataError, match=r"tinyshakespeare/input.txt: expected sha256 86c4e6aa9db7c042… .* removed"):
        fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    assert list((tmp_path / "tinyshakespeare").iterdir()) == []


def test_a_partial_download_is_resumed_with_a_range_request(shared_mirror: Mirror, tmp_path: Path) -> None:
    whole = (SHARED_DATASETS / "tinyshakespeare" / "input.txt").read_bytes()
    part = tmp_path / "tinyshakespeare" / "input.txt.part"
    part.parent.mkdir()
    part.write_bytes(whole[:500_000])
    fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    assert shared_mirror.requests == [("tinyshakespeare/input.txt", "bytes=500000-")]
    assert (tmp_path / "tinyshakespeare" / "input.txt").read_bytes() == whole
    assert leftovers(tmp_path) == []


def test_a_dropped_download_is_kept_and_resumed_by_the_next_fetch(shared_mirror: Mirror, tmp_path: Path) -> None:
    shared_mirror.truncate.add("tinyshakespeare/input.txt")
    with pytest.raises(DataError, match=r"tinyshakespeare/input.txt: .*run the fetch again to resume"):
        fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    part = tmp_path / "tinyshakespeare" / "input.txt.part"
    assert part.stat().st_size == 1_115_394 // 2 and not (tmp_path / "tinyshakespeare" / "input.txt").exists()
    shared_mirror.truncate.clear()
    fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    assert shared_mirror.requests[-1] == ("tinyshakespeare/input.txt", f"bytes={1_115_394 // 2}-")
    assert verify_dataset(SHAKESPEARE, tmp_path) == [] and leftovers(tmp_path) == []


def test_a_partial_download_is_discarded_when_the_server_ignores_range(shared_mirror: Mirror, tmp_path: Path) -> None:
    shared_mirror.ranges = False
    part = tmp_path / "tinyshakespeare" / "input.txt.part"
    part.parent.mkdir()
    part.write_bytes(b"stale bytes of another file" * 1000)  # appended to, the file would be wrong
    fetch_dataset(SHAKESPEARE, tmp_path, mirror=shared_mirror.url)
    assert verify_dataset(SHAKESPEARE, tmp_path) == [] and leftovers(tmp_path) == []


def test_restricted_terms_must_be_accepted(shared_mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(TermsNotAccepted, match=r"movielens-100k: its terms restrict use .* --accept-terms"):
        fetch_dataset(DATASETS.get("movielens-100k"), tmp_path, mirror=shared_mirror.url)
    assert shared_mirror.requests == [] and not (tmp_path / "movielens-100k").exists()


def glue_tsv(csv_path: Path, header: str, line_end: str) -> bytes:
    """The upstream TSV an SST-2 CSV was converted from (label<TAB>sentence, no quoting)."""
    rows = list(csv.reader(csv_path.open(newline="", encoding="utf-8")))[1:]
    return line_end.join([header] + [f"{label}\t{text}" for text, label in rows]).encode() + line_end.encode()


@needs_shared
def test_sst2_csvs_are_converted_from_the_upstream_tsvs(
    make_mirror: Callable[[Path], Mirror], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELFORGE_DATA_MIRROR", raising=False)
    served = tmp_path / "served"
    served.mkdir()
    sst2 = DATASETS.get("sst2")
    tsvs = {
        "train.tsv": ("label\tsentence", "\r\n"),
        "dev.tsv": ("label\tcontent", "\n"),
        "test.tsv": ("label\tcontent", "\n"),
    }
    for path, converted in sst2.converted.items():
        name = converted.url.rsplit("/", 1)[-1]
        (served / name).write_bytes(glue_tsv(SHARED_DATASETS / "sst2" / path, *tsvs[name]))
    mirror = make_mirror(served)
    upstream = {path: replace(c, url=mirror.url + c.url.rsplit("/", 1)[-1]) for path, c in sst2.converted.items()}
    report = fetch_dataset(replace(sst2, converted=upstream), tmp_path / "cache", accept_terms=True)
    assert report.fetched == 3 and verify_dataset(sst2, tmp_path / "cache") == []  # the TSVs' sha256 matched too
    assert leftovers(tmp_path / "cache") == []
    (tmp_path / "cache" / "sst2" / "test.csv").unlink()
    (served / "test.tsv").write_bytes(b"label\tcontent\n1\tnot the upstream file\n")
    with pytest.raises(DataError, match=r"test.tsv: not the file the catalog converts"):
        fetch_dataset(replace(sst2, converted=upstream), tmp_path / "cache", accept_terms=True)
    assert leftovers(tmp_path / "cache") == [] and not (tmp_path / "cache" / "sst2" / "test.csv").exists()


@needs_shared
def test_fsdd_files_csv_is_built_after_the_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELFORGE_DATA_MIRROR", raising=False)
    fsdd = DATASETS.get("fsdd")
    fetch_dataset(fsdd, tmp_path, mirror=str(SHARED_DATASETS))
    (tmp_path / "fsdd" / "files.csv").unlink()
    report = fetch_dataset(fsdd, tmp_path)  # no mirror, nothing to download: the table is built
    assert (report.fetched, report.present) == (1, 2500)
    assert verify_dataset(fsdd, tmp_path) == []


@needs_shared
def test_a_local_folder_serves_as_a_mirror(tmp_path: Path) -> None:
    fetch_dataset(SHAKESPEARE, tmp_path, mirror=str(SHARED_DATASETS))
    assert verify_dataset(SHAKESPEARE, tmp_path) == []


def test_gzip_files_and_zip_members_upstream(make_mirror: Callable[[Path], Mirror], tmp_path: Path) -> None:
    """The upstream forms the catalog uses (multi30k's .gz files, MovieLens's zip) on a synthetic dataset."""
    served, cache = tmp_path / "served", tmp_path / "cache"
    served.mkdir()
    contents = {"a.txt": b"alpha\n" * 1000, "README": b"terms\n", "sub/b.txt": b"beta\n" * 500}
    (served / "a.txt.gz").write_bytes(gzip.compress(contents["a.txt"]))
    with zipfile.ZipFile(served / "bundle.zip", "w") as bundle:
        bundle.writestr("bundle/README", contents["README"])
        bundle.writestr("bundle/sub/b.txt", contents["sub/b.txt"])
    mirror = make_mirror(served)

    def listing(name: str, paths: dict[str, str]) -> Path:
        lines = [
            f"{hashlib.sha256(contents[key]).hexdigest()} {len(contents[key])} {path}" for path, key in paths.items()
        ]
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
        return tmp_path / f"{name}.txt"

    common = dict(
        title="t", description="d", homepage="https://example.org", licence="l", terms="none", restricted=False
    )
    packed = Dataset(
        name="packed", url_base=mirror.url, gzip=True, checksums=listing("packed", {"a.txt": "a.txt"}), **common
    )
    bundled = Dataset(
        name="bundled",
        archive=mirror.url + "bundle.zip",
        archive_root="bundle/",
        members={"LICENCE.txt": "bundle/README"},
        checksums=listing("bundled", {"LICENCE.txt": "README", "sub/b.txt": "sub/b.txt"}),
        **common,
    )
    fetch_dataset(packed, cache)
    fetch_dataset(bundled, cache)
    assert (cache / "packed" / "a.txt").read_bytes() == contents["a.txt"]
    assert (cache / "bundled" / "LICENCE.txt").read_bytes() == contents["README"]
    assert (cache / "bundled" / "sub" / "b.txt").read_bytes() == contents["sub/b.txt"]
    assert [path for path, _ in mirror.requests].count("bundle.zip") == 1  # one archive download for both members
    assert leftovers(cache) == []


def test_islp_tables_are_built_from_the_package_even_with_a_mirror(
    make_mirror: Callable[[Path], Mirror], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No mirror holds islp (the shared copy does not): its tables come from the installed ISLP package."""
    pytest.importorskip("ISLP")
    (tmp_path / "empty").mkdir()
    mirror = make_mirror(tmp_path / "empty")
    monkeypatch.setenv("MODELFORGE_DATA_MIRROR", mirror.url)
    islp = DATASETS.get("islp")
    report = fetch_dataset(islp, tmp_path / "cache", mirror=mirror.url)
    assert (report.fetched, report.present) == (2, 0) and mirror.requests == []
    assert verify_dataset(islp, tmp_path / "cache") == [] and leftovers(tmp_path / "cache") == []
    with open(tmp_path / "cache" / "islp" / "Default.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 10_000 and list(rows[0]) == ["default", "student", "balance", "income"]
    assert {row["default"] for row in rows} == {"No", "Yes"} and sum(row["default"] == "Yes" for row in rows) == 333


def test_islp_without_the_package_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ISLP", None)  # the import fails as when the package is not installed
    with pytest.raises(DataError, match=r"^dataset islp: needs the ISLP package: pip install --no-deps ISLP==0.6.0$"):
        fetch_dataset(DATASETS.get("islp"), tmp_path)
    assert leftovers(tmp_path) == [] and not list((tmp_path / "islp").glob("*.csv"))
