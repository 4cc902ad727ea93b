"""Data: readers, features (fitted preprocessing), splits and in-memory batching."""
