"""Hyperparameter search on Optuna: search spaces in the config, resumable, parallel studies.

space.py     tune.space entries → checked paths and ranges → Optuna distributions
samplers.py  samplers (grid, random, tpe, cmaes) and pruners (none, median, hyperband) by name
storage.py   the study's database, dead-worker detection, heartbeats
study.py     plan → run workers → one normal run directory per trial
summary.py   trials.csv, best.yaml, plots, the printed table
cli.py       `modelforge tune`
"""
