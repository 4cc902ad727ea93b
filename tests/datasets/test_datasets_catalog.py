"""The dataset catalog: its checksums are the shared copy's, and every example names catalogued files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from loopback_mirror import ROOT, SHARED_DATASETS, needs_shared

from modelforge.datasets.catalog import DATASET_PREFIX, DATASETS, fsdd_files_csv, resolve_dataset_path
from modelforge.datasets.fetch import verify_dataset
from modelforge.errors import DataError

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def dataset_references(node: object) -> list[str]:
    """Every `dataset:` string anywhere in a parsed config."""
    if isinstance(node, dict):
        return [ref for value in node.values() for ref in dataset_references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in dataset_references(value)]
    return [node] if isinstance(node, str) and node.startswith(DATASET_PREFIX) else []


def example_datasets() -> list[tuple[str, str]]:
    """(example name, dataset name) for every example that reads a catalogued dataset."""
    pairs = []
    for path in EXAMPLES:
        names = {
            ref.removeprefix(DATASET_PREFIX).split("/")[0]
            for ref in dataset_references(yaml.safe_load(path.read_text()))
        }
        pairs += [(path.stem, name) for name in sorted(names)]
    return pairs


@needs_shared
@pytest.mark.parametrize("name", [name for name in DATASETS.names() if not DATASETS.get(name).built_here])
def test_catalog_checksums_are_those_of_the_shared_copy(name: str) -> None:
    dataset = DATASETS.get(name)
    on_disk = {str(p.relative_to(SHARED_DATASETS / name)) for p in (SHARED_DATASETS / name).rglob("*") if p.is_file()}
    assert on_disk - {"README.md"} == {f.path for f in dataset.files}
    assert verify_dataset(dataset, SHARED_DATASETS) == []


@needs_shared
def test_fsdd_files_csv_is_built_from_the_recordings() -> None:
    built = fsdd_files_csv(SHARED_DATASETS / "fsdd")
    assert hashlib.sha256(built).hexdigest() == DATASETS.get("fsdd").files[0].sha256  # files.csv sorts first


def test_every_dataset_has_terms_a_licence_and_a_way_to_get_each_file() -> None:
    for name in DATASETS.names():
        dataset = DATASETS.get(name)
        assert dataset.licence and dataset.terms and dataset.homepage.startswith("https://"), name
        upstream = dataset.url_base or dataset.archive
        for entry in dataset.files:
            assert upstream or entry.path in dataset.converted or entry.path in dataset.builders, (name, entry.path)


def test_every_example_reads_catalogued_files_only() -> None:
    assert len(example_datasets()) >= 11  # fsdd, three MovieLens, Multi30K, Shakespeare, four SST-2, ISLP Default
    for path in EXAMPLES:
        config = yaml.safe_load(path.read_text())
        for reference in dataset_references(config):
            name, _, relative = reference.removeprefix(DATASET_PREFIX).partition("/")
            dataset = DATASETS.get(name)
            if relative:
                dataset.check_path(relative)
        assert "shared/" not in path.read_text(), f"{path.name} reads a path outside the repo"


def test_a_dataset_reference_resolves_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELFORGE_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"dataset tinyshakespeare is not in .*; run `modelforge datasets fetch"):
        resolve_dataset_path("dataset:tinyshakespeare/input.txt")
    with pytest.raises(DataError, match=r"dataset:sst3/train.csv: unknown dataset 'sst3' \(did you mean sst2\?\)"):
        resolve_dataset_path("dataset:sst3/train.csv")
    with pytest.raises(DataError, match=r"has no file 'trian.csv' \(did you mean train.csv\?\)"):
        resolve_dataset_path("dataset:sst2/trian.csv")
    folder = tmp_path / "tinyshakespeare"
    folder.mkdir()
    entry = DATASETS.get("tinyshakespeare").files[0]
    (folder / entry.path).write_bytes(b"x" * entry.size)  # presence is judged by size; `verify` checks the hash
    assert resolve_dataset_path("dataset:tinyshakespeare/input.txt") == folder / "input.txt"
    assert resolve_dataset_path("dataset:tinyshakespeare") == folder


@needs_shared
def test_data_options_read_dataset_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--data dataset:sst2/validation.csv` (evaluate, predict, report…) reads the cached file."""
    from modelforge.data.readers import read_data

    monkeypatch.setenv("MODELFORGE_DATA", str(SHARED_DATASETS))
    assert len(read_data("dataset:sst2/validation.csv")) == 872
    monkeypatch.setenv("MODELFORGE_DATA", str(tmp_path))
    with pytest.raises(DataError, match=r"run `modelforge datasets fetch sst2`"):
        read_data(Path("dataset:sst2/validation.csv"))
