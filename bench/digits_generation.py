"""Generators on the 8×8 digits scored by a digits classifier trained by the core (issue 10 floor:
mean confidence ≥ 0.8 with all 10 classes among the samples).

Trains the quickstart CNN classifier, then each generator of examples/digits_{vae,gan}.yaml,
samples 1000 images (the classes in turn) and prints the classifier's
figures, with the Fréchet distance between two halves of the real test images as the reference.

    .venv/bin/python bench/digits_generation.py                # vae and gan
    .venv/bin/python bench/digits_generation.py --only vae
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _machine import auto_line, print_header

import modelforge
from modelforge.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"vae": ROOT / "examples" / "digits_vae.yaml", "gan": ROOT / "examples" / "digits_gan.yaml"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(EXAMPLES), action="append", help="these generators only")
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        classifier = Path(tmp) / "classifier"
        quickstart = load_config(ROOT / "examples" / "quickstart.yaml", ["train.threads=1"])
        accuracy = modelforge.train(quickstart, classifier).metrics["accuracy"]
        print(f"classifier (quickstart cnn): test accuracy {accuracy:.4f}  {time.time() - started:.0f} s", flush=True)
        print(f"classifier: {auto_line(classifier)}", flush=True)
        for name in args.only or list(EXAMPLES):
            started = time.time()
            config = load_config(EXAMPLES[name], [f"generation.classifier={classifier}"])
            m = modelforge.train(config, Path(tmp) / name).metrics
            print(
                f"{name}: mean_confidence {m['mean_confidence']:.4f}  classes_covered {m['classes_covered']}/10"
                f"  label_agreement {m['label_agreement']:.3f}  inception_score {m['inception_score']:.2f}"
                f"  frechet {m['frechet_distance']:.2f} (real halves {m['frechet_distance_real_halves']:.2f})"
                f"  test_loss {m.get('test_loss', float('nan')):.2f}  {time.time() - started:.0f} s",
                flush=True,
            )
            print(f"{name}: {auto_line(Path(tmp) / name)}", flush=True)


if __name__ == "__main__":
    main()
