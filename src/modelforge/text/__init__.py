"""Text for language modeling: tokenizers (char, byte-level BPE), token caches, generation."""
