"""Object detection end to end on a tiny generated set (squares and discs on 64 px canvases): init on COCO
JSON and on a YOLO folder, train → evaluate (pycocotools mAP) → predict boxes.csv → serve a base64 image,
bad annotations refused in one line with exit 2, bitwise resume, NMS against a brute-force reference,
box-aware augmentation, and our mAP equal to pycocotools' run on files."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from shapes import write_shapes, write_yolo

from cli_runner import modelforge_in_process
from modelforge.config import DetectionAugment, load_config
from modelforge.detection.augment import augment, horizontal_flip, scale_translate
from modelforge.detection.boxes import batched_nms, box_iou, detection_loss
from modelforge.detection.compress import calibration_images, int8_detector
from modelforge.detection.recipe import read_splits, train_detector
from modelforge.detection.run import DetectorRun, load_detector_run
from modelforge.training.checkpoint import checkpoint_name, list_checkpoints


def tiny_config(data: Path, **train: Any) -> dict[str, Any]:
    return {
        "task": "detection",
        "seed": 3,
        "data": {"train": str(data), "split": {"valid": 0.2, "test": 0.0}},
        "model": {"type": "detector", "widths": [8, 16, 32], "head_width": 16},
        # precision pinned: `auto` picks by a timed probe, so a loaded machine could train another model
        "train": {"epochs": 12, "batch_size": 16, "lr": 0.01, "warmup_steps": 10, "threads": 1, "precision": "fp32"}
        | train,
        "detection": {"image_size": 64},
    }


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), n_images=120, seed=1)


@pytest.fixture(scope="module")
def trained(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> DetectorRun:
    return train_detector(load_config(tiny_config(shapes)), tmp_path_factory.mktemp("runs") / "run")


def test_a_small_detector_learns_the_shapes_well_above_chance(trained: DetectorRun) -> None:
    metrics = trained.metrics
    assert metrics["split"] == "valid" and metrics["images"] == 24
    assert metrics["map50"] > 0.4 and metrics["map"] > 0.2, metrics  # chance is ~0: boxes must be found and fit
    assert set(metrics["ap_per_class"]) == {"square", "disc"}
    assert metrics["best_epoch"] >= 1 and (trained.path / "checkpoints").is_dir()


def test_bf16_training_follows_the_fp32_loss(shapes: Path, tmp_path: Path) -> None:
    """train.precision: bf16 runs the detector's forward under autocast, its losses in fp32: the loss
    differs from fp32's in its last digits, not in its course (auto takes bf16 only where it is faster)."""
    losses = {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(shapes, precision=precision, epochs=1, max_steps=6)
        run = train_detector(load_config(config), tmp_path / precision)
        losses[precision] = run.history[0]["train_loss"]
    assert losses["bf16"] != losses["fp32"]  # autocast ran
    assert abs(losses["bf16"] - losses["fp32"]) < 0.05 * losses["fp32"], losses


def test_evaluate_predict_and_serve_through_the_cli(trained: DetectorRun, shapes: Path, tmp_path: Path) -> None:
    evaluated = modelforge_in_process("evaluate", str(trained.path), "--data", str(shapes), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert {"map", "map50", "map75", "ap_per_class"} <= set(scores) and 0 < scores["map50"] <= 1

    out = tmp_path / "boxes.csv"
    predicted = modelforge_in_process(
        "predict", str(trained.path), "--data", str(shapes.parent / "images"), "--out", str(out),
        "--score-threshold", "0.3",
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    boxes = pd.read_csv(out)
    assert list(boxes.columns) == ["image", "x", "y", "w", "h", "label", "score"]
    assert (boxes["score"] >= 0.3).all() and set(boxes["label"]) <= {"square", "disc"}
    assert boxes["image"].nunique() > 60 and (boxes[["x", "y"]] >= 0).all().all()
    assert (boxes["x"] + boxes["w"] <= 64.01).all()

    refused = modelforge_in_process("predict", str(trained.path), "--data", str(shapes), "--score-threshold", "2")
    assert refused.returncode == 2 and "--score-threshold" in refused.stderr


def test_serve_answers_a_base64_image_with_its_boxes(trained: DetectorRun, shapes: Path) -> None:
    from fastapi.testclient import TestClient

    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    truth = json.loads(shapes.read_text())
    png = (shapes.parent / truth["images"][0]["file_name"]).read_bytes()
    url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    with TestClient(create_app(load_services([f"det={trained.path}"]))) as client:
        info = client.get("/v1/models/det").json()
        assert info["task"] == "detection" and info["features"][0]["kind"] == "image"
        answer = client.post("/v1/models/det/predict", json={"records": [{"image": url}, {"image": url}]})
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["predictions"]
        assert first == second and first["boxes"], first
        assert {"x", "y", "w", "h", "label", "score"} == set(first["boxes"][0])
        bad = client.post("/v1/models/det/predict", json={"records": [{"image": "not an image"}]})
        assert bad.status_code == 422


def test_predict_with_onnx_engine_refuses_before_export_then_matches_torch(
    trained: DetectorRun, shapes: Path, tmp_path: Path
) -> None:
    run = shutil.copytree(trained.path, tmp_path / "run")  # the shared run stays without model.onnx
    images = str(shapes.parent / "images")
    refused = modelforge_in_process("predict", str(run), "--data", images, "--engine", "onnx")
    assert refused.returncode == 2 and "model.onnx" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    exported = modelforge_in_process("export", str(run), "--format", "onnx")
    assert exported.returncode == 0, exported.stderr
    for engine in ("torch", "onnx"):
        predicted = modelforge_in_process(
            "predict", str(run), "--data", images, "--engine", engine, "--out", str(tmp_path / f"{engine}.csv")
        )
        assert predicted.returncode == 0, predicted.stderr
    torch_boxes, onnx_boxes = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert len(torch_boxes) > 60
    assert onnx_boxes[["image", "label"]].equals(torch_boxes[["image", "label"]])
    numbers = ["x", "y", "w", "h", "score"]
    assert np.abs(onnx_boxes[numbers].to_numpy() - torch_boxes[numbers].to_numpy()).max() <= 0.02


def test_serve_with_onnx_engine_answers_like_torch(trained: DetectorRun, shapes: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from modelforge.export.recipe import export_run
    from modelforge.serve.app import create_app
    from modelforge.serve.services import load_services

    run = shutil.copytree(trained.path, tmp_path / "run")
    export_run(run, "onnx")
    truth = json.loads(shapes.read_text())
    pngs = [(shapes.parent / image["file_name"]).read_bytes() for image in truth["images"][:2]]
    records = [{"image": "data:image/png;base64," + base64.b64encode(png).decode("ascii")} for png in pngs]
    answers = {}
    for engine in ("torch", "onnx"):
        with TestClient(create_app(load_services([f"det={run}"], engine=engine))) as client:
            answer = client.post("/v1/models/det/predict", json={"records": records})
            assert answer.status_code == 200, answer.text
            answers[engine] = answer.json()["predictions"]
            if engine == "onnx":
                assert client.get("/v1/models/det").json()["engine"] == "onnxruntime on model.onnx"
    assert all(p["boxes"] for p in answers["torch"])
    for ours, theirs in zip(answers["onnx"], answers["torch"], strict=True):
        assert [b["label"] for b in ours["boxes"]] == [b["label"] for b in theirs["boxes"]]
        for a, b in zip(ours["boxes"], theirs["boxes"], strict=True):
            assert all(abs(a[k] - b[k]) <= 0.02 for k in ("x", "y", "w", "h", "score")), (a, b)


def test_compress_int8_static_keeps_the_boxes_and_reloads_exactly(trained: DetectorRun, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    result = modelforge_in_process("compress", str(trained.path), "--out", str(out), "--quantize", "int8-static")
    assert result.returncode == 0, result.stderr
    compressed = load_detector_run(out)
    assert compressed.model_info["quantization"] == "int8-static"
    metrics = compressed.metrics
    assert metrics["split"] == "valid" and metrics["original_map50"] == trained.metrics["map50"]
    assert metrics["map50"] >= trained.metrics["map50"] - 0.1, metrics  # int8 costs little mAP
    assert (out / "model.safetensors").stat().st_size < 0.5 * (trained.path / "model.safetensors").stat().st_size
    calibration = calibration_images(trained, read_splits(trained.config)[0])  # compress's default: training images
    images = calibration[0][:8]
    rebuilt = int8_detector(trained.model, calibration)  # what compress quantized, built again in memory
    assert torch.equal(compressed.model(images), rebuilt(images))  # the saved int8 values, not rounded twice
    assert not torch.equal(compressed.model(images), trained.model(images))  # and not the float model
    # the heatmap and box heads leave on int8 grids of their own: one quantized cat of both (a single
    # 8-bit scale for logits and log-distances) cost the boxes their tightness
    raw = compressed.model(images)
    heat, box = raw[:, : trained.model.n_classes].unique(), raw[:, trained.model.n_classes :].unique()
    on_heat_grid = box / heat.diff().min()
    assert (on_heat_grid - on_heat_grid.round()).abs().max() > 0.05
    assert modelforge_in_process("audit", str(out)).returncode == 0
    refused = modelforge_in_process(
        "compress", str(trained.path), "--out", str(tmp_path / "d"), "--quantize", "int8-dynamic"
    )
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: compress: detection runs take --quantize int8-static only, got --quantize int8-dynamic"
    ]
    assert not (tmp_path / "d").exists()
    exported = modelforge_in_process("export", str(out), "--format", "onnx")
    assert exported.returncode == 2 and "export the float run it was compressed from" in exported.stderr


def test_report_draws_boxes_and_per_class_curves(trained: DetectorRun, tmp_path: Path) -> None:
    result = modelforge_in_process("report", str(trained.path), "--out", str(tmp_path / "r.html"), "--no-explain")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "r.html").read_text()
    assert "Boxes on sample images" in page and "precision–recall" in page and page.count("data:image/png") >= 3


def test_init_on_coco_json_and_on_yolo_folders_writes_a_config_that_loads(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "coco.yaml"
    result = modelforge_in_process("init", str(shapes), "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(out.read_text())
    assert config["task"] == "detection" and config["detection"]["image_size"] == 64
    assert config["model"]["type"] == "detector" and config["train"]["epochs"] >= 6
    assert load_config(out).data.train == str(shapes)

    root = write_yolo(tmp_path / "yolo", n_images=12)
    for given in (root, root / "images"):
        result = modelforge_in_process("init", str(given), "--out", str(tmp_path / "yolo.yaml"), "--force")
        assert result.returncode == 0, result.stderr
        loaded = load_config(tmp_path / "yolo.yaml")
        assert loaded.task == "detection" and Path(str(loaded.data.train)).is_dir()
    from modelforge.detection.data import read_detection_set

    yolo = read_detection_set(root)
    assert yolo.classes == ["square", "disc"] and len(yolo) == 12
    trained = train_detector(
        load_config(tmp_path / "yolo.yaml", ["train.epochs=1", "train.threads=1"]), tmp_path / "yolo-run"
    )
    assert trained.classes == ["square", "disc"] and "map" in trained.metrics  # init's config trains as written
    coco = read_detection_set(write_shapes(tmp_path / "same", n_images=12))  # the same draws, so the same boxes
    for a, b in zip(yolo.boxes, coco.boxes, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


def bad_sets(folder: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Broken copies of a good COCO file and the words the one-line error must contain."""
    good = json.loads(write_shapes(folder, n_images=6).read_text())

    def changed(edit: Any) -> dict[str, Any]:
        copy = json.loads(json.dumps(good))
        edit(copy)
        return copy

    return {
        "outside": (changed(lambda c: c["annotations"][2].update(bbox=[50, 50, 30, 30])), "annotation 3 (image '0001"),
        "missing": (changed(lambda c: c["images"][1].update(file_name="images/nope.png")), "'images/nope.png' (id 2)"),
        "category": (changed(lambda c: c["annotations"][0].update(category_id=9)), "unknown category_id 9"),
        "empty": (changed(lambda c: c.update(annotations=[])), "annotation list is empty"),
    }


@pytest.mark.parametrize("case", ["outside", "missing", "category", "empty"])
def test_bad_annotations_are_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    data, words = bad_sets(tmp_path)[case]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    for verb in (["init", str(path)], ["train", str(write_config(tmp_path, path))]):
        result = modelforge_in_process(*verb)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, (verb, result.stderr)
        assert words in lines[0] and "bad.json" in lines[0], lines[0]


def write_config(folder: Path, data: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_config(data, epochs=1)))
    return path


def test_a_run_resumed_from_a_mid_epoch_checkpoint_ends_bitwise_equal(tmp_path: Path) -> None:
    data = write_shapes(tmp_path / "data", n_images=40, seed=2)
    config = tiny_config(data, epochs=2, batch_size=8, checkpoint_every=3, keep_checkpoints=10)
    config["detection"]["image_size"] = 32
    reference = train_detector(load_config(config), tmp_path / "reference").path
    first = reference / "checkpoints" / checkpoint_name(3)  # step 3 of 4 per epoch: mid-epoch 1
    assert first in list_checkpoints(reference / "checkpoints")

    stopped = tmp_path / "stopped"  # the run as a kill at step 4 left it: files of the start, one checkpoint
    (stopped / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "environment.json", "preprocessing.json"):
        shutil.copy(reference / name, stopped / name)
    shutil.copy(first, stopped / "checkpoints" / first.name)
    environment = json.loads((stopped / "environment.json").read_text())
    environment.pop("finished_at", None)
    (stopped / "environment.json").write_text(json.dumps(environment))

    resumed = train_detector(load_config(config), resume=stopped)
    assert (stopped / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert resumed.metrics["map"] == pytest.approx(json.loads((reference / "eval.json").read_text())["map"])


def brute_force_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou: float) -> list[int]:
    """The definition, one box at a time: keep a box unless a kept better box of its class overlaps it > iou."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i)):
        overlaps = [
            float(box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0]) > iou for j in kept if labels[j] == labels[i]
        ]
        if not any(overlaps):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(6))
def test_nms_keeps_exactly_what_the_brute_force_reference_keeps(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    n = 80
    corners = torch.rand(n, 2, generator=generator) * 100
    sizes = torch.rand(n, 2, generator=generator) * 40 + 2
    boxes = torch.cat([corners, corners + sizes], dim=1)
    scores = torch.rand(n, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    for iou in (0.3, 0.5, 0.7):
        assert batched_nms(boxes, scores, labels, iou).tolist() == brute_force_nms(boxes, scores, labels, iou)
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).tolist() == []


def test_the_class_loss_makes_classes_compete_at_the_cells_that_learn_a_box() -> None:
    n_classes, side = 3, 16  # a 64-pixel input: a 16 × 16 grid of stride-4 cells
    boxes, labels = [torch.tensor([[20.0, 20.0, 44.0, 40.0]])], [torch.tensor([1])]
    raw = torch.zeros(1, n_classes + 4, side, side)
    raw[:, n_classes:] = 1.5  # some box everywhere: the class loss is what differs below
    _, plain = detection_loss(raw, boxes, labels, n_classes)
    assert plain["train_class"] == pytest.approx(np.log(n_classes), rel=1e-4)  # uniform logits: log C
    right, wrong = raw.clone(), raw.clone()
    right[:, 1], wrong[:, 2] = 3.0, 3.0  # every cell sure of the right / of a wrong class
    _, sure = detection_loss(right, boxes, labels, n_classes)
    _, mistaken = detection_loss(wrong, boxes, labels, n_classes)
    assert sure["train_class"] < 0.2 < plain["train_class"] < mistaken["train_class"]
    far = raw.clone()
    far[:, 2, :4, :4] = 9.0  # a wrong class far from the box: the heatmap's loss, not the class loss
    _, elsewhere = detection_loss(far, boxes, labels, n_classes)
    assert elsewhere["train_class"] == pytest.approx(plain["train_class"])
    assert elsewhere["train_heat"] > plain["train_heat"]


def bright_box(image: torch.Tensor) -> list[float]:
    """x1 y1 x2 y2 of the pixels brighter than 0.9."""
    ys, xs = torch.nonzero(image[0] > 0.9, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_augmentation_moves_boxes_with_the_pixels_and_drops_boxes_cropped_away() -> None:
    image = torch.zeros(1, 64, 64)
    image[:, 10:30, 20:44] = 1.0
    boxes, labels = torch.tensor([[20.0, 10.0, 44.0, 30.0]]), torch.tensor([1])
    flipped, moved = horizontal_flip(image, boxes)
    assert moved[0].tolist() == bright_box(flipped) == [20.0, 10.0, 44.0, 30.0]
    canvas, moved, kept = scale_translate(image, boxes, labels, 1.5, 6.0, -4.0)
    np.testing.assert_allclose(moved[0].tolist(), bright_box(canvas), atol=1.0)
    assert kept.tolist() == [1]
    _, gone, none = scale_translate(image, boxes, labels, 1.0, 0.0, 50.0)  # shifted off the bottom edge
    assert len(gone) == 0 and len(none) == 0
    settings = DetectionAugment(flip=True, scale=0.3, translate=0.1, jitter=0.2)
    for seed in range(5):
        out, moved, _ = augment(image, boxes, labels, settings, torch.Generator().manual_seed(seed))
        again, moved_again, _ = augment(image, boxes, labels, settings, torch.Generator().manual_seed(seed))
        assert torch.equal(out, again) and torch.equal(moved, moved_again)  # seeded: resumable
        if len(moved):
            np.testing.assert_allclose(moved[0].tolist(), bright_box((out - out.min()) / (out.max() - out.min())),
                                       atol=1.5)  # fmt: skip


def test_our_map_is_pycocotools_run_on_the_same_files(tmp_path: Path) -> None:
    import contextlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from modelforge.detection.data import read_detection_set
    from modelforge.detection.metrics import coco_metrics, ground_truth

    data = read_detection_set(write_shapes(tmp_path / "data", n_images=30, seed=4))
    rng = np.random.default_rng(0)
    detections = []
    for i, (boxes, labels) in enumerate(zip(data.boxes, data.labels, strict=True)):
        for box, label in zip(boxes, labels, strict=True):  # each true box, jittered, plus a false one
            noisy = box + rng.normal(0, 2, size=4)
            detections.append({"image_id": i + 1, "category_id": int(label) + 1, "bbox": noisy.tolist(),
                               "score": float(rng.random())})  # fmt: skip
        detections.append({"image_id": i + 1, "category_id": 1, "bbox": [1, 1, 10, 10], "score": 0.5})
    ours = coco_metrics(data, detections)
    (tmp_path / "gt.json").write_text(json.dumps(ground_truth(data)))
    (tmp_path / "dt.json").write_text(json.dumps(detections))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(tmp_path / "gt.json"))
        evaluation = COCOeval(truth, truth.loadRes(str(tmp_path / "dt.json")), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert [ours["map"], ours["map50"], ours["map75"]] == [float(v) for v in evaluation.stats[:3]]
    assert 0.1 < ours["map"] < 0.9  # jittered boxes: a middling score, not 0 or 1
    perfect = [
        {"image_id": i + 1, "category_id": int(label) + 1, "bbox": box.tolist(), "score": 1.0}
        for i, (boxes, labels) in enumerate(zip(data.boxes, data.labels, strict=True))
        for box, label in zip(boxes, labels, strict=True)
    ]
    assert coco_metrics(data, perfect)["map"] == pytest.approx(1.0)


def test_tune_optimizes_validation_map(tmp_path: Path) -> None:
    data = write_shapes(tmp_path / "data", n_images=30, seed=5)
    config = tiny_config(data, epochs=2, batch_size=8)
    config["detection"]["image_size"] = 32
    config["tune"] = {"space": {"train.lr": {"loguniform": [1e-3, 1e-2]}}, "metric": "valid_map", "trials": 2}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    result = modelforge_in_process("tune", str(path), "--out", str(tmp_path / "study"), "--sampler", "random")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "valid_map" in result.stdout + result.stderr
    config["tune"]["metric"] = "valid_loss"  # not a per-epoch metric of detection: refused in one line
    path.write_text(yaml.safe_dump(config))
    refused = modelforge_in_process("tune", str(path), "--out", str(tmp_path / "study2"))
    assert refused.returncode == 2 and "valid_map" in refused.stderr, refused.stderr


def split_layout(root: Path, layout: str) -> Path:
    """A YOLO set as exports lay it out by split: Roboflow's train/images + train/labels with a data.yaml,
    or Ultralytics' images/train + labels/train."""
    valid = "valid" if layout == "roboflow" else "val"
    for part, n, seed in (("train", 12, 0), (valid, 4, 1), ("test", 4, 2)):
        write_yolo(root / "parts" / part, n, seed=seed)
        for kind in ("images", "labels"):
            target = root / part / kind if layout == "roboflow" else root / kind / part
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(root / "parts" / part / kind, target)
    shutil.rmtree(root / "parts")
    if layout == "roboflow":  # its paths are written relative to a folder above the file
        (root / "data.yaml").write_text(
            "train: ../train/images\nval: ../valid/images\ntest: ../test/images\nnc: 2\nnames: ['square', 'disc']\n"
        )
    return root


@pytest.mark.parametrize("layout", ["roboflow", "ultralytics"])
def test_init_on_a_yolo_set_laid_out_by_split_keeps_its_parts(layout: str, tmp_path: Path) -> None:
    """The root of such a set (or its data.yaml) is detection with each part as data.train / valid / test,
    not an image classification over the part names; the run's test images are the test part's."""
    from modelforge.tasks import task_for_file

    root = split_layout(tmp_path / "set", layout)
    given = root / "data.yaml" if layout == "roboflow" else root
    assert task_for_file(given) == "detection"
    config_path = tmp_path / "config.yaml"
    result = modelforge_in_process("init", str(given), "--out", str(config_path))
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(config_path.read_text())["data"]
    parts = ("train", "valid", "test") if layout == "roboflow" else ("train", "val", "test")
    expected = [root / p / "images" for p in parts] if layout == "roboflow" else [root / "images" / p for p in parts]
    read = [(config_path.parent / data[key]).resolve() for key in ("train", "valid", "test")]
    assert read == [p.resolve() for p in expected] and "split" not in data
    run = tmp_path / "run"
    result = modelforge_in_process("train", str(config_path), "--out", str(run), "--set", "train.epochs=1")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "eval.json").read_text())["images"] == 4
