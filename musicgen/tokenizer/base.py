"""The base class every tokenizer shares: vocabulary, special tokens, config checks and JSON form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from musicgen.errors import MusicgenError

PAD, BOS, EOS = "PAD", "BOS", "EOS"
SPECIAL_TOKENS = (PAD, BOS, EOS)


class TokenizerConfigError(MusicgenError, ValueError):
    """A tokenizer setting outside its allowed range."""


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """Return `value` if it is an integer in low..high (inclusive), else raise TokenizerConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenizerConfigError(f"`{name}` must be an integer in {low}..{high} (received {value!r})")
    if not low <= value <= high:
        raise TokenizerConfigError(f"`{name}` must be in {low}..{high} (received {value})")
    return value


class Tokenizer:
    """Vocabulary and config handling shared by all encodings.

    Ids 0, 1 and 2 are always PAD (fills short training windows; the loss ignores it),
    BOS (begins every encoded piece) and EOS (ends it). A subclass lists its other
    token names in `_encoding_tokens`, in id order, and stores its settings in `config`.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.vocabulary: list[str] = [*SPECIAL_TOKENS, *self._encoding_tokens()]
        self._ids = {token: index for index, token in enumerate(self.vocabulary)}

    def _encoding_tokens(self) -> list[str]:
        raise NotImplementedError

    @property
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def pad_id(self) -> int:
        return self._ids[PAD]

    @property
    def bos_id(self) -> int:
        return self._ids[BOS]

    @property
    def eos_id(self) -> int:
        return self._ids[EOS]

    def token_id(self, token: str) -> int:
        return self._ids[token]

    def token_names(self, ids: list[int]) -> list[str]:
        return [self.vocabulary[index] for index in ids]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form: encoding name, settings and vocabulary."""
        return {"tokenizer": self.name, "config": dict(self.config), "vocabulary": list(self.vocabulary)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({settings})"


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.to_dict()` output and check that its vocabulary matches."""
    from musicgen.tokenizer.melody import MelodyTokenizer

    classes = {MelodyTokenizer.name: MelodyTokenizer}
    kind = data.get("tokenizer")
    if kind not in classes:
        raise TokenizerConfigError(f"unknown tokenizer {kind!r}; known: {', '.join(sorted(classes))}")
    tokenizer = classes[kind](**data.get("config", {}))
    stored = data.get("vocabulary")
    if stored is not None and stored != tokenizer.vocabulary:
        raise TokenizerConfigError(
            f"stored vocabulary of {len(stored)} tokens does not match the {kind} tokenizer's "
            f"{tokenizer.vocab_size} tokens built from the same config"
        )
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    return tokenizer_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
