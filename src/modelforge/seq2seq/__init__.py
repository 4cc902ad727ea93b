"""Sequence to sequence: translation and grapheme-to-phoneme with an encoder-decoder transformer."""
