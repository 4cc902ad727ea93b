"""Fixtures for the training tests (the plain functions live in training_runs.py)."""

from training_runs import breast_cancer_csv, shakespeare_txt  # noqa: F401 (fixtures)
