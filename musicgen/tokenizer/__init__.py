"""Tokenizers that turn MIDI notes into token ids and back: the melody grid and the event stream."""

from musicgen.tokenizer.base import (
    NoNotesError,
    Tokenizer,
    TokenizerConfigError,
    load_tokenizer,
    tokenizer_classes,
    tokenizer_from_dict,
)
from musicgen.tokenizer.event import EventTokenizer
from musicgen.tokenizer.melody import MelodyTokenizer, NoMelodyError

__all__ = [
    "EventTokenizer", "MelodyTokenizer", "NoMelodyError", "NoNotesError", "Tokenizer", "TokenizerConfigError",
    "load_tokenizer", "tokenizer_classes", "tokenizer_from_dict",
]
