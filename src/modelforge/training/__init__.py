"""Training: the readable loop, optimizers/schedules/losses by name, and the task recipes.

The Python entry point is `modelforge.train(config, out)` (src/modelforge/api.py); this package
holds the parts it hands a config to.
"""
