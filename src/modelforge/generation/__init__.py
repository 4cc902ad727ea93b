"""task: generation — image generators (VAE, GAN) trained from a config, sampled, and scored by a classifier."""
