"""The datasets the examples and tutorials use: where each comes from, its terms, its files and checksums.

Each dataset registers by name in DATASETS. Its files (path, size, sha256) are listed in
`checksums/NAME.txt`, one `sha256 size path` a line, so the catalog stays readable when a
dataset has thousands of files. A fetched dataset lies in `<cache>/NAME/` with the layout
of that list; configs name its files as `dataset:NAME/relative/path`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from modelforge.errors import DataError, ModelforgeError, did_you_mean
from modelforge.registry import Registry

CACHE_ENV = "MODELFORGE_DATA"
MIRROR_ENV = "MODELFORGE_DATA_MIRROR"
DATASET_PREFIX = "dataset:"
CHECKSUMS = Path(__file__).resolve().parent / "checksums"


@dataclass(frozen=True)
class DatasetFile:
    path: str  # relative to the dataset's folder, with forward slashes
    size: int
    sha256: str


@dataclass(frozen=True)
class Converted:
    """A file made from one upstream file of known bytes (url, sha256) by a conversion."""

    url: str
    sha256: str
    convert: Callable[[bytes], bytes]
    how: str  # one line for `datasets info`


@dataclass(frozen=True)
class Dataset:
    """A dataset as the catalog knows it. Upstream, file P is one of:

    - `url_base + P` (+ ".gz" when `gzip`: the file is served compressed),
    - member `members.get(P, archive_root + P)` of the zip at `archive`,
    - `converted[P]`: an upstream file converted (SST-2's TSVs into CSV),
    - built by `builders[P]`: from the other files (FSDD's files.csv lists the recordings), or from an
      installed package (ISLP's tables).

    A mirror (MODELFORGE_DATA_MIRROR or `fetch --mirror`) holds every file as `<mirror>/NAME/P`, except
    those of a dataset `built_here`, which are built even when a mirror is set.
    """

    name: str
    title: str
    description: str
    homepage: str
    licence: str
    terms: str
    restricted: bool  # the terms restrict use: fetching needs them accepted
    citation: str = ""
    url_base: str | None = None
    gzip: bool = False
    archive: str | None = None
    archive_root: str = ""
    members: dict[str, str] = field(default_factory=dict)
    converted: dict[str, Converted] = field(default_factory=dict)
    builders: dict[str, Callable[[Path], bytes]] = field(default_factory=dict)
    checksums: Path | None = None  # the `sha256 size path` list; default checksums/NAME.txt

    @cached_property
    def files(self) -> list[DatasetFile]:
        listing = self.checksums or CHECKSUMS / f"{self.name}.txt"
        rows = (line.split(" ", 2) for line in listing.read_text().splitlines() if line)
        return [DatasetFile(path, int(size), sha256) for sha256, size, path in rows]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def built_here(self) -> bool:
        """Every file is built on this machine (from an installed package): no upstream, nothing to download."""
        upstream = self.url_base or self.archive or self.converted
        return not upstream and all(f.path in self.builders for f in self.files)

    def check_path(self, path: str) -> None:
        """Raise unless `path` is one of the dataset's files or folders."""
        known = {f.path for f in self.files} | {f.path.rsplit("/", 1)[0] for f in self.files if "/" in f.path}
        if path.rstrip("/") not in known:
            raise DataError(f"dataset {self.name} has no file {path!r}{did_you_mean(path, known)}")


DATASETS: Registry[Dataset] = Registry("dataset")


def cache_root() -> Path:
    """Where datasets are fetched to: $MODELFORGE_DATA, else the user's cache folder."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("modelforge")) / "datasets"


def missing_files(dataset: Dataset, root: Path | None = None) -> list[DatasetFile]:
    """The files not (or not wholly) in the cache: absent, or of the wrong size."""
    folder = (root or cache_root()) / dataset.name
    missing = []
    for entry in dataset.files:
        path = folder / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            missing.append(entry)
    return missing


def resolve_dataset_path(reference: str) -> Path:
    """`dataset:NAME/relative/path` → the file (or folder) in the cache; a one-line error naming the
    fetch command when the dataset is not there."""
    name, _, relative = reference.removeprefix(DATASET_PREFIX).strip("/").partition("/")
    try:
        dataset = DATASETS.get(name)
        if relative:
            dataset.check_path(relative)
    except ModelforgeError as exc:
        raise DataError(f"{reference}: {exc}") from None
    root = cache_root()
    if missing_files(dataset, root):
        raise DataError(f"{reference}: dataset {name} is not in {root}; run `modelforge datasets fetch {name}`")
    return root / dataset.name / relative if relative else root / dataset.name


# ----------------------------------------------------------------------------- the datasets
def fsdd_files_csv(folder: Path) -> bytes:
    """files.csv of the five-speaker FSDD copy: one row per recording in name order; recordings 0–4
    are test, the rest train (the dataset's own rule); CRLF line ends as Python's csv writes them."""
    rows = ["path,label,speaker,index,split"]
    for path in sorted((folder / "recordings").glob("*.wav"), key=lambda p: p.name):
        digit, speaker, index = path.stem.split("_")
        rows.append(f"recordings/{path.name},{digit},{speaker},{index},{'test' if int(index) < 5 else 'train'}")
    return "".join(row + "\r\n" for row in rows).encode()


def sst2_csv(tsv: bytes) -> bytes:
    """The GLUE-style SST-2 TSV (header, then `label<TAB>sentence` lines) as CSV with columns text,label:
    no quote processing on the way in, Python's csv quoting and "\\n" line ends on the way out."""
    lines = tsv.decode("utf-8").replace("\r\n", "\n").split("\n")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    for line in lines[1:]:
        if line:
            label, text = line.split("\t", 1)
            writer.writerow([text, label])
    return out.getvalue().encode("utf-8")


def islp_csv(table: str, folder: Path) -> bytes:
    """ISLP's table `table` as CSV (its categorical columns as their labels, "\\n" line ends). The ISLP
    package ships the tables, so nothing is downloaded; `folder` is unused."""
    try:
        from ISLP import load_data
    except ModuleNotFoundError as exc:
        if exc.name != "ISLP":  # ISLP imports scikit-learn, which --no-deps does not install
            raise DataError(f"dataset islp: ISLP cannot be imported ({exc}): pip install scikit-learn") from None
        raise DataError("dataset islp: needs the ISLP package: pip install --no-deps ISLP==0.6.0") from None
    import pandas as pd

    frame = load_data(table)
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame.to_csv(index=False, lineterminator="\n").encode()


SST2_RAW = (
    "https://raw.githubusercontent.com/awake020/pytorch_Bert_sst2/ce2ab1719d32182e6233b24b2de246bd32814fde/SST-2/"
)


DATASETS.add(
    "tinyshakespeare",
    Dataset(
        name="tinyshakespeare",
        title="Tiny Shakespeare",
        description="40,000 lines of Shakespeare plays in one 1.1 MB text file: the classic character-level "
        "language-modeling set (first 90 % of characters to train, last 10 % to validate).",
        homepage="https://github.com/karpathy/char-rnn",
        licence="public domain (the plays); collected by Andrej Karpathy for char-rnn",
        terms="None: the texts are in the public domain.",
        restricted=False,
        url_base="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
    ),
)

DATASETS.add(
    "sst2",
    Dataset(
        name="sst2",
        title="SST-2 (Stanford Sentiment Treebank, binary; GLUE splits)",
        description="Movie-review sentiment: 67,349 training phrases, 872 validation sentences (the trusted "
        "held-out set), 1,821 test sentences whose labels come from the hosting copy, not GLUE. CSV columns "
        "text,label (0 negative, 1 positive), lower-cased and PTB-tokenized. Load with keep_default_na=False.",
        homepage="https://nlp.stanford.edu/sentiment/",
        licence="no explicit licence; GLUE lists SST-2 for research use",
        terms="The Stanford Sentiment Treebank ships no licence file; GLUE distributes SST-2 for research. "
        "Use it for research and evaluation only.",
        restricted=True,
        citation='Socher et al., "Recursive Deep Models for Semantic Compositionality Over a Sentiment '
        'Treebank", EMNLP 2013.',
        converted={
            path: Converted(SST2_RAW + tsv, sha256, sst2_csv, f"from {tsv} (TSV → CSV text,label)")
            for path, tsv, sha256 in (
                ("train.csv", "train.tsv", "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c"),
                ("validation.csv", "dev.tsv", "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f"),
                ("test.csv", "test.tsv", "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c"),
            )
        },
    ),
)

DATASETS.add(
    "fsdd",
    Dataset(
        name="fsdd",
        title="Free Spoken Digit Dataset (five speakers)",
        description="2,500 WAV recordings (8 kHz mono) of the digits 0–9 by five speakers (george, jackson, "
        "nicolas, theo, yweweler), 50 per digit per speaker; files.csv lists path,label,speaker,index,split "
        "(recordings 0–4 are test).",
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        licence="CC BY-SA 4.0",
        terms="Creative Commons Attribution-ShareAlike 4.0: credit the dataset; share adaptations of the "
        "data under the same licence.",
        restricted=False,
        url_base="https://raw.githubusercontent.com/Jakobovski/free-spoken-digit-dataset/"
        "6346b9293e9957e741906eed1804913cf7cb8fb0/",
        builders={"files.csv": fsdd_files_csv},
    ),
)

DATASETS.add(
    "movielens-100k",
    Dataset(
        name="movielens-100k",
        title="MovieLens 100K (GroupLens)",
        description="100,000 ratings (1–5) from 943 users on 1,682 movies, 1997–98, with user and movie "
        "features: u.data (user, item, rating, timestamp), u.item, u.user, u.genre, u.occupation.",
        homepage="https://grouplens.org/datasets/movielens/100k/",
        licence="GroupLens research licence (see GROUPLENS-README.txt)",
        terms="Research use only. The data may not be redistributed (never copy it into a repository), may "
        "not be used for commercial purposes without permission from GroupLens, and publications using it "
        "must cite it. Full terms: GROUPLENS-README.txt.",
        restricted=True,
        citation='F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets: History and Context", '
        "ACM TiiS 5(4), 2015.",
        archive="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        archive_root="ml-100k/",
        members={"GROUPLENS-README.txt": "ml-100k/README"},
    ),
)

DATASETS.add(
    "multi30k",
    Dataset(
        name="multi30k",
        title="Multi30K (text only, German–English)",
        description="Image descriptions in German and English (WMT 2016 multimodal task 1): line N of a .de "
        "file translates line N of the .en file; 29,000 training pairs, 1,014 validation, 1,000 test "
        "(test_2016_flickr). Raw, untokenized UTF-8.",
        homepage="https://github.com/multi30k/dataset",
        licence="non-commercial research and educational use (derived from Flickr30K)",
        terms="Partially derived from Flickr30K; its maintainers provide it for non-commercial research and "
        "educational purposes only. Do not copy it into a repository.",
        restricted=True,
        citation='Elliott et al., "Multi30K: Multilingual English-German Image Descriptions", 2016.',
        url_base="https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/",
        gzip=True,
    ),
)

DATASETS.add(
    "islp",
    Dataset(
        name="islp",
        title="ISLP's Default and Caravan tables (An Introduction to Statistical Learning)",
        description="Two imbalanced yes/no tables from the ISLP package. Default.csv: 10,000 credit-card "
        "customers, columns default (Yes for 3.3 %), student, balance, income. Caravan.csv: 5,822 insurance "
        "customers, 85 sociodemographic and product-ownership columns and Purchase (Yes for 6 %).",
        homepage="https://github.com/intro-stat-learning/ISLP",
        licence="BSD 3-Clause (the ISLP package)",
        terms="No restrictions beyond the package's BSD licence: keep its copyright notice when you redistribute the "
        "tables. Default is simulated data made for the book; Caravan is real customer data (sociodemographics "
        "derived from zip codes) that Sentient Machine Research supplied for the CoIL Challenge 2000.",
        restricted=False,
        citation="James, Witten, Hastie, Tibshirani and Taylor, An Introduction to Statistical Learning with "
        "Applications in Python, Springer 2023; P. van der Putten and M. van Someren (eds), CoIL Challenge 2000: "
        "The Insurance Company Case, 2000.",
        builders={
            "Default.csv": partial(islp_csv, "Default"),
            "Caravan.csv": partial(islp_csv, "Caravan"),
        },
    ),
)
