"""Tokenizers that turn MIDI notes into token ids and back."""

from musicgen.tokenizer.base import Tokenizer, TokenizerConfigError, tokenizer_from_dict
from musicgen.tokenizer.melody import MelodyTokenizer, NoMelodyError

__all__ = ["MelodyTokenizer", "NoMelodyError", "Tokenizer", "TokenizerConfigError", "tokenizer_from_dict"]
