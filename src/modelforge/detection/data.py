"""Detection data: COCO annotation JSON or YOLO txt folders → images and boxes, checked at the boundary.

COCO: `images` (id, file_name, width, height), `annotations` (image_id, bbox [x, y, w, h] in pixels,
category_id, optional iscrowd), `categories` (id, name); image paths relative to the JSON file.
YOLO: an images folder (`.../images/...`) whose labels sit at the same relative path under the sibling
`labels` folder, one `class cx cy w h` line (fractions of the image) per box; class names from
`classes.txt`, `obj.names` or `data.yaml` in the folder or above it (else the class numbers).

Every problem is one DataError line naming the file, the image or the annotation: a box outside its
image, a missing image file, an unknown category id, an empty annotation list, a malformed label line.
Images are letterboxed (aspect kept, padded with grey) to a square side and cached as uint8.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelforge.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
NAME_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml")
EDGE_TOLERANCE = 1.0  # pixels a COCO box may overhang its image (rounding in exported sets); clipped
PAD_VALUE = 114  # letterbox padding, grey (YOLO's)


@dataclass
class DetectionSet:
    """Images (paths and sizes) with their boxes: per image K × 4 x y w h pixels, K class indices, K crowd flags."""

    files: list[Path]
    sizes: list[tuple[int, int]]  # (width, height)
    boxes: list[np.ndarray]
    labels: list[np.ndarray]
    classes: list[str]
    category_ids: list[int]  # the COCO id of each class index (YOLO: the class number)
    crowd: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def take(self, rows: np.ndarray | list[int]) -> DetectionSet:
        picked = [int(r) for r in rows]
        return DetectionSet(
            [self.files[r] for r in picked],
            [self.sizes[r] for r in picked],
            [self.boxes[r] for r in picked],
            [self.labels[r] for r in picked],
            self.classes,
            self.category_ids,
            [self.crowd[r] for r in picked],
        )


# ----------------------------------------------------------------------------- recognising the formats
def is_coco_file(path: Path) -> bool:
    """A .json file whose top level has `images` and `annotations` (read cheaply: only its first bytes)."""
    if not (path.is_file() and path.suffix.lower() == ".json"):
        return False
    with open(path, encoding="utf-8", errors="replace") as handle:
        head = handle.read(1 << 16)
    return head.lstrip().startswith("{") and ('"images"' in head or '"annotations"' in head)


def labels_folder(images: Path) -> Path | None:
    """YOLO's labels folder for an images folder: the path with its last `images` part named `labels`."""
    parts = list(images.resolve().parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            return Path(*parts[:i], "labels", *parts[i + 1 :])
    return None


def yolo_images_folder(path: Path) -> Path | None:
    """The images folder of a YOLO set given as its root (holding images/ and labels/) or as images/."""
    if not path.is_dir():
        return None
    if (path / "images").is_dir() and (path / "labels").is_dir():
        return path / "images"
    labels = labels_folder(path)
    return path if labels is not None and labels.is_dir() else None


def recognizes_detection_data(path: Path) -> bool:
    """For `modelforge init` with no --task: COCO annotation JSON, or a YOLO folder or its data.yaml."""
    return is_coco_file(path) or bool(yolo_splits(path)) or yolo_images_folder(path) is not None


# a YOLO set laid out by split: each part's folder names, as exports write them
SPLIT_FOLDERS = {"train": ("train", "training"), "valid": ("valid", "val", "validation", "dev"), "test": ("test",)}
SPLIT_KEYS = {"train": "train", "valid": "val", "test": "test"}  # data.yaml's keys (Ultralytics)


def yolo_splits(path: Path) -> dict[str, Path]:
    """The images folder of each part of a YOLO set laid out by split — `train/images` beside `train/labels`
    (Roboflow's export), `images/train` beside `labels/train` (Ultralytics'), or the folders a data.yaml
    names — keyed train / valid / test; {} for anything else (one folder of images is no split)."""
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return yaml_splits(path)
    if not path.is_dir():
        return {}
    if (path / "data.yaml").is_file() and (named := yaml_splits(path / "data.yaml")):
        return named
    found: dict[str, Path] = {}
    for part, names in SPLIT_FOLDERS.items():
        for images in [folder for name in names for folder in (path / name / "images", path / "images" / name)]:
            labels = labels_folder(images)
            if part not in found and images.is_dir() and labels is not None and labels.is_dir():
                found[part] = images
    return found if "train" in found else {}


def yaml_splits(file: Path) -> dict[str, Path]:
    """The image folders an Ultralytics data.yaml names (`train:`, `val:`, `test:`; relative to its `path:`,
    else to the file's folder; Roboflow's `../train/images` read from the file's folder too)."""
    import yaml

    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return {}
    if not isinstance(raw, dict) or "names" not in raw:
        return {}
    root = file.parent / str(raw.get("path") or "")
    found: dict[str, Path] = {}
    for part, key in SPLIT_KEYS.items():
        value = raw.get(key)
        value = value[0] if isinstance(value, list) and value else value
        if not isinstance(value, str):
            continue
        relative = Path(value.removeprefix("./"))
        stripped = Path(*[p for p in relative.parts if p != ".."]) if not relative.is_absolute() else relative
        folder = next(
            (c for c in (root / relative, file.parent / relative, file.parent / stripped) if c.is_dir()), None
        )
        if folder is not None:
            found[part] = folder.resolve()
    return found if "train" in found else {}


# ----------------------------------------------------------------------------- COCO
def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a COCO object with images, annotations and categories")
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(raw.get(key), list)]
    if missing:
        raise DataError(f"{path}: not COCO annotations (no {', '.join(missing)} list)")
    return raw


def read_coco(
    path: str | Path, classes: list[str] | None = None, category_ids: list[int] | None = None
) -> DetectionSet:
    """A COCO annotation file; `classes`/`category_ids` (a trained run's) fix the class order."""
    path = Path(path)
    raw = _load_json(path)
    if not raw["annotations"]:
        raise DataError(f"{path}: the annotation list is empty; a detection set needs boxes to learn from")
    if category_ids is None:
        categories = sorted(raw["categories"], key=lambda c: c.get("id", 0))
        category_ids = [int(c["id"]) for c in categories]
        classes = [str(c.get("name", c["id"])) for c in categories]
    if not category_ids:
        raise DataError(f"{path}: the categories list is empty")
    index = {cid: k for k, cid in enumerate(category_ids)}
    images: dict[int, int] = {}
    files, sizes = [], []
    for entry in raw["images"]:
        try:
            image_id, name = int(entry["id"]), str(entry["file_name"])
            width, height = int(entry["width"]), int(entry["height"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: image {entry!r:.120}: needs id, file_name, width and height") from None
        file = (path.parent / name).resolve()
        if not file.is_file():
            raise DataError(f"{path}: image {name!r} (id {image_id}) not found at {file}")
        images[image_id] = len(files)
        files.append(file)
        sizes.append((width, height))
    boxes: list[list[list[float]]] = [[] for _ in files]
    labels: list[list[int]] = [[] for _ in files]
    crowd: list[list[bool]] = [[] for _ in files]
    for number, entry in enumerate(raw["annotations"]):
        ann = f"annotation {entry.get('id', number)}"
        if entry.get("image_id") not in images:
            raise DataError(f"{path}: {ann}: image_id {entry.get('image_id')!r} is not in images")
        row = images[entry["image_id"]]
        where = f"{path}: {ann} (image {files[row].name!r})"
        category = entry.get("category_id")
        if category not in index:
            known = ", ".join(map(str, category_ids[:20]))
            raise DataError(f"{where}: unknown category_id {category!r} (categories: {known})")
        bbox = entry.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise DataError(f"{where}: bbox must be [x, y, width, height] in pixels, got {bbox!r}")
        x, y, w, h = map(float, bbox)
        width, height = sizes[row]
        inside = x >= -EDGE_TOLERANCE and y >= -EDGE_TOLERANCE
        inside = inside and x + w <= width + EDGE_TOLERANCE and y + h <= height + EDGE_TOLERANCE
        if w <= 0 or h <= 0 or not inside:
            raise DataError(f"{where}: bbox {bbox} lies outside the {width}×{height} image (or has no area)")
        x1, y1 = max(x, 0.0), max(y, 0.0)
        boxes[row].append([x1, y1, min(x + w, width) - x1, min(y + h, height) - y1])
        labels[row].append(index[category])
        crowd[row].append(bool(entry.get("iscrowd", 0)))
    return DetectionSet(
        files,
        sizes,
        [np.array(b, dtype=np.float32).reshape(-1, 4) for b in boxes],
        [np.array(v, dtype=np.int64) for v in labels],
        list(classes or []),
        list(category_ids),
        [np.array(c, dtype=bool) for c in crowd],
    )


# ----------------------------------------------------------------------------- YOLO
def yolo_class_names(images: Path) -> list[str] | None:
    """Names from classes.txt / obj.names (one a line) or data.yaml (`names:` list or {id: name}), looked
    for in the images folder and up to three folders above it."""
    import yaml

    for folder in [images, *list(images.resolve().parents)[:3]]:
        for name in NAME_FILES:
            file = folder / name
            if not file.is_file():
                continue
            if file.suffix == ".yaml":
                names = (yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("names")
                if isinstance(names, dict):
                    return [str(names[k]) for k in sorted(names)]
                if isinstance(names, list):
                    return [str(n) for n in names]
                continue
            return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return None


def read_yolo(path: str | Path, classes: list[str] | None = None) -> DetectionSet:
    from PIL import Image

    path = Path(path)
    images = yolo_images_folder(path)
    if images is None:
        raise DataError(f"{path}: not a YOLO folder (expected images/ beside labels/)")
    labels_root = labels_folder(images) or images
    names = classes or yolo_class_names(images)
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{images}: no images found")
    sizes, boxes, labels = [], [], []
    highest = -1
    for file in files:
        with Image.open(file) as image:
            width, height = image.size
        sizes.append((width, height))
        label_file = (labels_root / file.relative_to(images)).with_suffix(".txt")
        rows: list[list[float]] = []
        classes_here: list[int] = []
        lines = label_file.read_text(encoding="utf-8").splitlines() if label_file.is_file() else []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                label, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
            except (ValueError, IndexError):
                raise DataError(f"{label_file}:{number}: expected `class cx cy w h`, got {line.strip()!r}") from None
            if names is not None and not 0 <= label < len(names):
                raise DataError(f"{label_file}:{number}: unknown class {label} (classes 0–{len(names) - 1})")
            if label < 0:
                raise DataError(f"{label_file}:{number}: unknown class {label}")
            inside = w > 0 and h > 0 and cx - w / 2 >= -1e-3 and cy - h / 2 >= -1e-3
            if not inside or cx + w / 2 > 1 + 1e-3 or cy + h / 2 > 1 + 1e-3:
                raise DataError(f"{label_file}:{number}: box {line.strip()!r} lies outside image {file.name!r}")
            x1, y1 = max(cx - w / 2, 0.0) * width, max(cy - h / 2, 0.0) * height
            rows.append([x1, y1, min(cx + w / 2, 1.0) * width - x1, min(cy + h / 2, 1.0) * height - y1])
            classes_here.append(label)
            highest = max(highest, label)
        boxes.append(np.array(rows, dtype=np.float32).reshape(-1, 4))
        labels.append(np.array(classes_here, dtype=np.int64))
    if highest < 0:
        raise DataError(f"{labels_root}: the annotation list is empty (no boxes in any label file)")
    names = names or [str(k) for k in range(highest + 1)]
    crowd = [np.zeros(len(b), dtype=bool) for b in boxes]
    return DetectionSet(files, sizes, boxes, labels, names, list(range(len(names))), crowd)


def read_detection_set(
    path: str | Path, classes: list[str] | None = None, category_ids: list[int] | None = None
) -> DetectionSet:
    """COCO JSON or a YOLO folder (`classes`/`category_ids`: a trained run's, fixing the class order)."""
    path = Path(path)
    if path.is_dir():
        return read_yolo(path, classes)
    if path.suffix.lower() == ".json" or not path.exists():
        data = read_coco(path, classes, category_ids)
        if classes is not None and len(data.classes) != len(classes):
            raise DataError(f"{path}: has {len(data.classes)} classes, the run {len(classes)}")
        return data
    raise DataError(f"{path}: expected COCO annotation JSON or a YOLO folder (images/ beside labels/)")


# ----------------------------------------------------------------------------- pixels
@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the square: input = original × scale + pad."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox_of(width: int, height: int, side: int) -> Letterbox:
    scale = side / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return Letterbox(scale, (side - new_w) // 2, (side - new_h) // 2)


def letterbox(image: Any, side: int, channels: int) -> tuple[np.ndarray, Letterbox]:
    """A PIL image or H×W[×C] array → C × side × side uint8, aspect kept, padded with grey."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        array = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[2] not in (1, 3):
            array = array.transpose(1, 2, 0)  # C × H × W → H × W × C
        image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)
    image = image.convert("L" if channels == 1 else "RGB")
    box = letterbox_of(image.width, image.height, side)
    new_w, new_h = max(1, round(image.width * box.scale)), max(1, round(image.height * box.scale))
    resized = image.resize((new_w, new_h), Image.BILINEAR)
    canvas = Image.new(image.mode, (side, side), (PAD_VALUE,) * channels if channels > 1 else PAD_VALUE)
    canvas.paste(resized, (int(box.pad_x), int(box.pad_y)))
    pixels = np.asarray(canvas, dtype=np.uint8)
    return (pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)), box


def image_channels(files: list[Path]) -> int:
    """3 when any image is in colour, else 1 (headers only: opening a PIL image reads no pixels)."""
    from PIL import Image

    for file in files:
        with Image.open(file) as image:
            if image.mode == "P" or image.mode.startswith("RGB") or image.mode in ("CMYK", "YCbCr"):
                return 3
    return 1


def load_images(data: DetectionSet, side: int, channels: int) -> tuple[np.ndarray, list[np.ndarray], list[Letterbox]]:
    """Every image letterboxed (N × C × side × side uint8), its boxes in those pixels (x1 y1 x2 y2, crowd
    boxes left out) and its letterbox."""
    from PIL import Image

    pixels = np.empty((len(data), channels, side, side), dtype=np.uint8)
    boxes, fits = [], []
    for i, file in enumerate(data.files):
        try:
            with Image.open(file) as image:
                if image.size != data.sizes[i]:
                    raise DataError(
                        f"{file}: is {image.width}×{image.height}, its annotation says "
                        f"{data.sizes[i][0]}×{data.sizes[i][1]}"
                    )
                pixels[i], box = letterbox(image, side, channels)
        except OSError as exc:
            raise DataError(f"{file}: cannot read the image ({exc.__class__.__name__})") from None
        xywh = data.boxes[i][~data.crowd[i]] if len(data.crowd) else data.boxes[i]
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) * box.scale
        boxes.append((xyxy + np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y])).astype(np.float32))
        fits.append(box)
    return pixels, boxes, fits


def kept_labels(data: DetectionSet) -> list[np.ndarray]:
    """Each image's class indices of the boxes trained on (crowd boxes are left out)."""
    return [labels[~crowd] for labels, crowd in zip(data.labels, data.crowd, strict=True)]


def split_rows(n: int, valid: float, test: float, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_valid = round(test * n), round(valid * n)
    return {"test": order[:n_test], "valid": order[n_test : n_test + n_valid], "train": order[n_test + n_valid :]}
