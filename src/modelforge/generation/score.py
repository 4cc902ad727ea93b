"""Scoring generated images with a classifier run trained by the core on the same kind of data.

- mean_confidence: the classifier's mean top-class probability over the samples;
- classes_covered / class_counts: how many classes the classifier finds among the samples;
- label_agreement: share of samples labelled as the class they were generated for (conditional);
- inception_score: exp(E_x KL(p(y|x) || p(y))) with the classifier in Inception's place;
- frechet_distance: between real and generated sets, on the input of the classifier's last
  linear layer (its penultimate features), next to the same distance between two halves of the
  real images (`frechet_distance_real_halves`: what "as close as real data" looks like).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modelforge.errors import ModelforgeError


def load_classifier(path: str | Path) -> Any:
    """The classification run `generation.classifier` names, checked to take one image column."""
    from modelforge.run import load_run
    from modelforge.tasks import predicts_labels

    if not Path(path).is_dir():
        raise ModelforgeError(
            f"generation.classifier: {path} is not a run directory; train the classifier first "
            "(its example config says how) or remove generation.classifier"
        )
    run = load_run(path)
    if not predicts_labels(run.task):
        raise ModelforgeError(f"generation.classifier: {path} is a {run.task} run; scoring needs a classification run")
    images = [e.name for e in run.preprocessor.encoders if e.kind == "image"]
    if len(images) != 1 or len(run.preprocessor.encoders) != 1:
        raise ModelforgeError(f"generation.classifier: {path} must be a classifier of one image column")
    return run


def classifier_outputs(classifier: Any, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and penultimate features (input of the last nn.Linear) for data-layout images."""
    last = [m for m in classifier.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].detach().flatten(1)))
    try:
        name = classifier.preprocessor.encoders[0].name
        probabilities = classifier.outputs(pd.DataFrame({name: list(images)}))
    finally:
        hook.remove()
    return probabilities, torch.cat(captured).double().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * np.real(root)))


def score_samples(
    classifier: Any, images: np.ndarray, asked: list[str], real: np.ndarray | None = None
) -> dict[str, Any]:
    """The figures above for data-layout `images`, generated for classes `asked` ('' = unconditional)."""
    probabilities, features = classifier_outputs(classifier, images)
    classes = [str(c) for c in classifier.preprocessor.classes]
    predicted = [classes[i] for i in probabilities.argmax(1)]
    counts = pd.Series(predicted).value_counts()
    marginal = probabilities.mean(0, keepdims=True)
    kl = (probabilities * (np.log(probabilities + 1e-12) - np.log(marginal + 1e-12))).sum(1)
    result: dict[str, Any] = {
        "samples": len(images),
        "mean_confidence": float(probabilities.max(1).mean()),
        "classes_covered": len(counts),
        "classifier_classes": len(classes),
        "class_counts": {c: int(counts.get(c, 0)) for c in classes},
        "inception_score": float(np.exp(kl.mean())),
    }
    if any(asked):
        result["label_agreement"] = float(np.mean([p == a for p, a in zip(predicted, asked, strict=True)]))
    if real is not None and len(real) > 2:
        _, real_features = classifier_outputs(classifier, real)
        result["frechet_distance"] = frechet_distance(real_features, features)
        half = len(real_features) // 2
        result["frechet_distance_real_halves"] = frechet_distance(real_features[:half], real_features[half:])
    return result


def score_generator(run: Any, classifier_path: str | Path, n: int, temperature: float, real: np.ndarray) -> dict:
    """Sample n images from a GeneratorRun (classes in turn) and score them; `real` is N × C × H × W in [0, 1]."""
    classifier = load_classifier(classifier_path)
    images, asked = run.sample(n, seed=0, temperature=temperature)
    return score_samples(classifier, run.to_data_layout(images), asked, run.to_data_layout(real))
