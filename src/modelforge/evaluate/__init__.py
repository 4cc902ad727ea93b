"""Evaluation: metrics (and, later, reports, explanations and fairness slices)."""
