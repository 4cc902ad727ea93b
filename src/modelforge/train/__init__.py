"""Training: the readable loop, optimizers/schedules/losses by name, and the supervised recipe."""
