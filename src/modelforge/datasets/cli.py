"""`modelforge datasets list | info NAME | fetch NAME | path NAME | verify NAME`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

datasets_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="The datasets the examples use: list them, read their terms, fetch them into the cache.",
)

NameArgument = Annotated[str, typer.Argument(help="dataset name (see `modelforge datasets list`)")]


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@datasets_app.command(name="list")
def list_datasets() -> None:
    """Each catalogued dataset: size, terms, and whether it is in the cache."""
    from modelforge.datasets.catalog import DATASETS, cache_root, missing_files

    root = cache_root()
    typer.echo(f"cache: {root}  (set MODELFORGE_DATA to move it)")
    typer.echo(f"{'name':<16} {'size':>9}  {'terms':<11} status")
    for name in DATASETS.names():
        dataset = DATASETS.get(name)
        missing = len(missing_files(dataset, root))
        total = len(dataset.files)
        status = "fetched" if not missing else "not fetched" if missing == total else f"partial ({missing} missing)"
        terms = "restricted" if dataset.restricted else "open"
        typer.echo(f"{name:<16} {megabytes(dataset.size):>9}  {terms:<11} {status}")


@datasets_app.command()
def info(name: NameArgument) -> None:
    """A dataset's description, licence and terms, source, files, and where it is cached."""
    from modelforge.datasets.catalog import DATASETS, cache_root, missing_files

    dataset = DATASETS.get(name)
    root = cache_root()
    missing = missing_files(dataset, root)
    typer.echo(f"{dataset.name}: {dataset.title}")
    typer.echo(dataset.description)
    typer.echo(f"homepage: {dataset.homepage}")
    typer.echo(f"licence:  {dataset.licence}")
    typer.echo(f"terms:    {dataset.terms}" + ("  [fetch needs --accept-terms]" if dataset.restricted else ""))
    if dataset.citation:
        typer.echo(f"cite:     {dataset.citation}")
    if dataset.built_here:
        source = "built on this machine (see each file)"
    else:
        converted_from = next(iter(dataset.converted.values())).url.rsplit("/", 1)[0] + "/" if dataset.converted else ""
        source = dataset.archive or dataset.url_base or converted_from
    typer.echo(f"source:   {source}" + (" (files gzip-compressed)" if dataset.gzip else ""))
    typer.echo(f"files:    {len(dataset.files)}, {megabytes(dataset.size)}")
    shown = dataset.files if len(dataset.files) <= 12 else dataset.files[:5]
    for entry in shown:
        converted = dataset.converted.get(entry.path)
        built = "built from an installed package" if dataset.built_here else "built from the others"
        note = converted.how if converted else built if entry.path in dataset.builders else ""
        typer.echo(f"  {entry.path:<28} {entry.size:>10,}  sha256 {entry.sha256[:16]}…" + (f"  {note}" if note else ""))
    if len(shown) < len(dataset.files):
        typer.echo(f"  … and {len(dataset.files) - len(shown)} more")
    state = "fetched" if not missing else f"not fetched; run `modelforge datasets fetch {name}`"
    typer.echo(f"cache:    {root / name} ({state})")
    typer.echo(f"in a config: dataset:{name}/{dataset.files[0].path} (a file), dataset:{name} (the folder)")


@datasets_app.command()
def fetch(
    name: NameArgument,
    accept_terms: Annotated[bool, typer.Option(help="accept the dataset's terms (shown by `info`)")] = False,
    mirror: Annotated[
        str | None, typer.Option(help="URL or folder holding NAME/FILE copies (default: $MODELFORGE_DATA_MIRROR)")
    ] = None,
) -> None:
    """Download a dataset into the cache, every file checked against its sha256; resumes a broken fetch."""
    from modelforge.datasets.catalog import DATASETS, DatasetFile, missing_files
    from modelforge.datasets.fetch import fetch_dataset

    dataset = DATASETS.get(name)
    missing = missing_files(dataset)
    if missing and dataset.restricted and not accept_terms and sys.stdin.isatty():
        typer.echo(f"{dataset.name}: {dataset.licence}\n{dataset.terms}", err=True)
        accept_terms = typer.confirm("Accept these terms?", err=True)
    done = 0

    def progress(entry: DatasetFile) -> None:  # each file of a small dataset; every 250th of a large one
        nonlocal done
        done += 1
        if len(missing) <= 20 or done % 250 == 1:
            typer.echo(f"  {entry.path} ({done}/{len(missing)})", err=True)

    report = fetch_dataset(dataset, accept_terms=accept_terms, mirror=mirror, on_file=progress)
    typer.echo(
        f"{name}: {report.fetched} files fetched, {report.present} already there; "
        f"{megabytes(dataset.size)} in {report.folder}"
    )


@datasets_app.command()
def path(name: NameArgument) -> None:
    """The dataset's folder in the cache (whether fetched or not), for scripts: `$(modelforge datasets path sst2)`."""
    from modelforge.datasets.catalog import DATASETS, cache_root

    typer.echo(cache_root() / DATASETS.get(name).name)


@datasets_app.command()
def verify(name: NameArgument) -> None:
    """Re-check every cached file of a dataset against its size and sha256."""
    from modelforge.datasets.catalog import DATASETS, cache_root
    from modelforge.datasets.fetch import verify_dataset
    from modelforge.errors import DataError

    problems = verify_dataset(DATASETS.get(name))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DataError(
            f"dataset {name} in {cache_root()}: {shown}; delete those files and run `modelforge datasets fetch {name}`"
        )
    typer.echo(f"{name}: all files match the catalog")
