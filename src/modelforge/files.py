"""The ground floor: atomic writes, JSONL, hashes and the run manifest. Imports nothing of modelforge.

Every file is written to a temporary name in the same folder, fsynced, then renamed, so a crash
never leaves a half-written file behind. A new file gets the mode the umask allows (as `open` would
give it); a replaced file keeps its mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MANIFEST = "files.json"


# ----------------------------------------------------------------------------- atomic files
def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file; an OSError (no space, no permission, file too
    large) names `path`, not the temporary, and leaves `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = file_mode_for(path)
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise naming(exc, path) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise naming(exc, path) from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def naming(exc: OSError, path: Path) -> OSError:
    """The same OSError (PermissionError stays PermissionError) with `path` as its file name."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def current_umask() -> int:
    """The process umask, read from /proc where it can be (setting it to read it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode_for(path: Path) -> int:
    """An existing file's permission bits, else what `open(path, "w")` would give a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def directory_mode() -> int:
    """What `mkdir` gives a new folder under the current umask (mkdtemp's folders are 0700)."""
    return 0o777 & ~current_umask()


def fsync_directory(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")


def json_default(value: Any) -> Any:
    """numpy scalars and arrays and paths as plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# ----------------------------------------------------------------------------- reading text and YAML
# what compressed files start with: a `.csv.gz` (or .bz2, .xz) reads as its text
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "lzma"}
COMPRESSED_SUFFIXES = {".gz", ".bz2", ".xz"}
BZIP2_BLOCK = b"1AY&SY"  # after "BZh" and the block-size digit: so a text that starts "BZh" stays text


def compression_of(start: bytes) -> str | None:
    """The module that decompresses a file starting with these bytes (10 or more), or None for plain bytes."""
    module = next((module for magic, module in COMPRESSED.items() if start.startswith(magic)), None)
    if module == "bz2" and not (start[3:4].isdigit() and start[4:10] == BZIP2_BLOCK):
        return None
    return module


def decompressed(data: bytes, path: Path, error: type[Exception]) -> bytes:
    """`data` as it was before gzip, bzip2 or xz compressed it (told by its first bytes); other bytes as they are."""
    import importlib

    module = compression_of(data[:10])
    if module is None:
        return data
    try:
        return importlib.import_module(module).decompress(data)  # type: ignore[no-any-return]
    except (OSError, EOFError, ValueError) as exc:
        raise error(f"{path}: cannot decompress ({exc})") from None


def head_text(path: Path, size: int = 65536) -> str:
    """The first `size` bytes of a text file (decompressing as `decompressed` does), undecodable bytes replaced;
    empty when a compressed file cannot be read."""
    import importlib

    with path.open("rb") as file:
        module = compression_of(file.read(10))
    opener = importlib.import_module(module).open if module else open
    try:
        with opener(path, "rb") as file:
            head = file.read(size)
    except (OSError, EOFError, ValueError):  # a torn archive: reading it whole names the problem
        return ""
    utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff")
    return head.decode("utf-16" if utf16 else "utf-8", errors="replace")


def path_from(value: Any, root: str | None) -> Path:
    """The file a path read from data names: as given, else (a relative one not found so) under `root`,
    the folder of the table that lists it."""
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and not path.exists() and root:
        return Path(root) / path
    return path


def plain_suffix(path: Path) -> str:
    """A file's type by its name, a compression's suffix set aside: `data.csv.gz` → `.csv`."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in COMPRESSED_SUFFIXES:
        return suffixes[-2]
    return path.suffix.lower()


def read_utf8(path: str | Path, error: type[Exception]) -> str:
    """A text file's contents (decompressed when gzip, bzip2 or xz made it); `error` (a ModelforgeError from
    the caller's floor) naming the file and the first bad byte when it is not UTF-8."""
    path = Path(path)
    data = decompressed(path.read_bytes(), path, error)
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its byte-order mark (Excel's "Unicode text")
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise error(f"{path}: starts as UTF-16 text but does not decode as it; save it as UTF-8") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as UTF-8") from None


def read_yaml_file(path: str | Path, error: type[Exception]) -> Any:
    """A YAML file's contents; `error` naming the file and the line for text that is not UTF-8 or not YAML."""
    text = read_utf8(path, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise error(f"{path}:{where}: {problem}") from None


def inside(root: Path, name: str) -> Path | None:
    """`root / name` when it stays inside `root` (no absolute names, no `..`, no symlink out), else None."""
    candidate = Path(name)
    if not name or candidate.is_absolute() or ".." in candidate.parts:
        return None
    path = root / candidate
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return path


# ----------------------------------------------------------------------------- JSONL
def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(row, default=json_default) + "\n")
        file.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (killed mid-write) is ignored."""
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# ----------------------------------------------------------------------------- hashes and the manifest
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files in name order (names included)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def run_files(run_dir: Path) -> list[Path]:
    """Every file of a run except the manifest itself and hidden temporaries."""
    return sorted(
        p
        for p in run_dir.rglob("*")
        if p.is_file() and p.name != MANIFEST and not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
    )


def write_manifest(run_dir: str | Path) -> dict[str, Any]:
    """Record sha256 and size of every file in the run directory as files.json (`modelforge audit` checks it)."""
    run_dir = Path(run_dir)
    files = {
        str(path.relative_to(run_dir)): {"sha256": sha256_of(path), "bytes": path.stat().st_size}
        for path in run_files(run_dir)
    }
    manifest = {"algorithm": "sha256", "files": files}
    atomic_write_json(run_dir / MANIFEST, manifest)
    return manifest
