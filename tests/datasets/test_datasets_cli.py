"""`modelforge datasets` end to end, and the examples in a clone with no dataset fetched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from loopback_mirror import ROOT, Mirror
from test_datasets_catalog import example_datasets

from modelforge.config import ParallelFiles, load_config
from modelforge.datasets.catalog import DATASETS
from modelforge.datasets.fetch import fetch_dataset


def modelforge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODELFORGE_DATA")} | env
    command = [sys.executable, "-m", "modelforge", *args]
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=300)


def test_list_info_and_path(tmp_path: Path) -> None:
    env = {"MODELFORGE_DATA": str(tmp_path)}
    listing = modelforge("datasets", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert f"cache: {tmp_path}" in listing.stdout
    for name in DATASETS.names():
        assert any(line.startswith(name) and line.endswith("not fetched") for line in listing.stdout.splitlines())
    info = modelforge("datasets", "info", "movielens-100k", env=env)
    assert info.returncode == 0, info.stderr
    assert "may not be redistributed" in info.stdout and "[fetch needs --accept-terms]" in info.stdout
    assert "u.data" in info.stdout and "06416e597f82b734" in info.stdout and "ml-100k.zip" in info.stdout
    for name in DATASETS.names():  # every kind of source describes itself (islp is built from a package)
        described = modelforge("datasets", "info", name, env=env)
        assert described.returncode == 0 and f"{name}: " in described.stdout, described.stderr
    assert "built from an installed package" in modelforge("datasets", "info", "islp", env=env).stdout
    path = modelforge("datasets", "path", "sst2", env=env)
    assert path.stdout.strip() == str(tmp_path / "sst2")
    unknown = modelforge("datasets", "info", "shakespeare", env=env)
    assert unknown.returncode == 2 and "did you mean tinyshakespeare?" in unknown.stderr


def test_fetch_and_verify_from_the_loopback_mirror(shared_mirror: Mirror, tmp_path: Path) -> None:
    env = {"MODELFORGE_DATA": str(tmp_path), "MODELFORGE_DATA_MIRROR": shared_mirror.url}
    fetched = modelforge("datasets", "fetch", "tinyshakespeare", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (
        f"tinyshakespeare: 1 files fetched, 0 already there; 1.1 MB in {tmp_path / 'tinyshakespeare'}" in fetched.stdout
    )
    rows = modelforge("datasets", "list", env=env).stdout.splitlines()
    assert [row.split()[-1] for row in rows if row.startswith("tinyshakespeare")] == ["fetched"]
    assert [row.split()[-2:] for row in rows if row.startswith("sst2")] == [["not", "fetched"]]
    assert modelforge("datasets", "verify", "tinyshakespeare", env=env).returncode == 0
    (tmp_path / "tinyshakespeare" / "input.txt").write_bytes(b"?" * 1_115_394)
    tampered = modelforge("datasets", "verify", "tinyshakespeare", env=env)
    assert tampered.returncode == 2 and "input.txt: sha256 differs" in tampered.stderr
    refused = modelforge("datasets", "fetch", "movielens-100k", env=env)  # stdin is no terminal: no prompt
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--accept-terms" in refused.stderr
    accepted = modelforge("datasets", "fetch", "movielens-100k", "--accept-terms", env=env)
    assert accepted.returncode == 0, accepted.stderr


@pytest.mark.parametrize(("example", "dataset"), example_datasets())
def test_an_example_without_its_data_names_the_dataset_to_fetch(example: str, dataset: str, tmp_path: Path) -> None:
    result = modelforge("train", f"examples/{example}.yaml", "--no-progress", env={"MODELFORGE_DATA": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"run `modelforge datasets fetch {dataset}`" in result.stderr


def test_examples_load_after_their_datasets_are_fetched(
    shared_mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in sorted({dataset for _, dataset in example_datasets()}):
        fetch_dataset(DATASETS.get(name), tmp_path, accept_terms=True, mirror=shared_mirror.url)
    monkeypatch.setenv("MODELFORGE_DATA", str(tmp_path))
    for example, _ in example_datasets():
        train = load_config(ROOT / "examples" / f"{example}.yaml").data.train
        paths = [train.source, train.target] if isinstance(train, ParallelFiles) else [train]
        for path in map(Path, paths):
            assert path.is_relative_to(tmp_path) and path.exists(), example
    env = {"MODELFORGE_DATA": str(tmp_path)}
    steps = ["train.max_steps=2", "train.eval_every=2", "train.eval_batches=1", "train.threads=1"]
    run = modelforge(
        "train",
        "examples/shakespeare_char.yaml",
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        *[arg for step in steps for arg in ("--set", step)],
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "run:" in run.stdout
