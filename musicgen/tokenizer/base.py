"""The base class every tokenizer shares: vocabulary, special and key tokens, config checks, JSON form."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from musicgen.errors import MusicgenError
from musicgen.score import Note, Score

PAD, BOS, EOS = "PAD", "BOS", "EOS"
SPECIAL_TOKENS = (PAD, BOS, EOS)
KEY_PREFIX = "KEY_"
# The key token of a seed that has no pitched note to estimate a key from.
FALLBACK_KEY = "C major"
_PITCHED_TOKEN = re.compile(r"^(NOTE_ON|NOTE_OFF)_(\d+)$")


class TokenizerConfigError(MusicgenError, ValueError):
    """A tokenizer setting outside its allowed range."""


class NoNotesError(ValueError):
    """A score that contains no pitched note to encode; `reason` is 'no notes' or 'drums only'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class EncodeStats:
    """Counts of what encoding one score changed, for logs and corpus summaries."""

    notes: int = 0  # NOTE_ON tokens written
    folded_notes: int = 0  # notes moved by octaves into the pitch range


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """Return `value` if it is an integer in low..high (inclusive), else raise TokenizerConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenizerConfigError(f"`{name}` must be an integer in {low}..{high} (received {value!r})")
    if not low <= value <= high:
        raise TokenizerConfigError(f"`{name}` must be in {low}..{high} (received {value})")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return `value` if it is True or False, else raise TokenizerConfigError."""
    if not isinstance(value, bool):
        raise TokenizerConfigError(f"`{name}` must be true or false (received {value!r})")
    return value


def key_token(key: str) -> str:
    """Return the token name of a key name from musicgen.keys.KEY_NAMES: 'D minor' -> 'KEY_D_minor'."""
    return KEY_PREFIX + key.replace(" ", "_")


def fold_pitch(pitch: int, low: int, high: int) -> int:
    """Move `pitch` by whole octaves into low..high; the range must span at least 12 pitches."""
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


class Tokenizer:
    """Vocabulary, key tokens and config handling shared by all encodings.

    Ids 0, 1 and 2 are always PAD (fills short training windows; the loss ignores it),
    BOS (begins every encoded piece) and EOS (ends it). A subclass lists its other
    token names in `_encoding_tokens`, in id order, and stores its settings in `config`.

    With ``key_tokens`` on, the vocabulary has 24 tokens ``KEY_<tonic>_<mode>``, one per
    name in `musicgen.keys.KEY_NAMES` (``KEY_C_major`` .. ``KEY_B_minor``; tonics spelled as
    there, e.g. ``KEY_F#_minor``, ``KEY_Bb_major``). Each encoding's docstring gives their ids. An
    encoded piece then begins ``BOS KEY_<key of the piece>``, so a model can be conditioned
    on the key it starts with.
    """

    name: ClassVar[str] = ""

    def __init__(self, key_tokens: bool = False) -> None:
        self.key_tokens = check_bool("key_tokens", key_tokens)
        self.vocabulary: list[str] = [*SPECIAL_TOKENS, *self._encoding_tokens()]
        self._ids = {token: index for index, token in enumerate(self.vocabulary)}
        self.key_ids = frozenset(index for index, token in enumerate(self.vocabulary) if token.startswith(KEY_PREFIX))
        self._pitch_of_id = np.full(len(self.vocabulary), -1, dtype=np.int64)
        for index, token in enumerate(self.vocabulary):
            match = _PITCHED_TOKEN.match(token)
            if match is not None:
                self._pitch_of_id[index] = int(match.group(2))
        self.note_on_table = np.array([token.startswith("NOTE_ON_") for token in self.vocabulary])
        self.note_on_ids = np.flatnonzero(self.note_on_table)
        # Time steps each token moves the music on by: how --length and --bars count a melody.
        self.step_table = np.array([self._token_steps(token) for token in self.vocabulary], dtype=np.int64)
        self._transposition_tables: dict[int, np.ndarray] = {}

    def _encoding_tokens(self) -> list[str]:
        """Return the token names after the special tokens, in id order, key tokens included."""
        raise NotImplementedError

    def _token_steps(self, token: str) -> int:
        """Return the time steps `token` moves on by: n for TIME_SHIFT_n, else 0."""
        kind, _, value = token.rpartition("_")
        return int(value) if kind == "TIME_SHIFT" else 0

    def time_steps(self, ids: list[int]) -> int:
        """Return how many time steps the tokens `ids` last."""
        return int(self.step_table[np.asarray(ids, dtype=np.int64)].sum()) if len(ids) else 0

    def _key_token_names(self) -> list[str]:
        """Return the 24 key token names with key_tokens on, else none."""
        if not self.key_tokens:
            return []
        from musicgen.keys import KEY_NAMES

        return [key_token(key) for key in KEY_NAMES]

    @property
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def forbidden_after(self) -> dict[int, list[int]]:
        """Return, for some tokens, the tokens that an encoded piece never has right after them.

        Sampling masks these so that a generated melody re-tokenizes to the same ids. The
        base encoding forbids nothing.
        """
        return {}

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

    # -- note-on tokens, for metrics and sampling ----------------------------------------

    def is_note_on(self, token: int) -> bool:
        return bool(self.note_on_table[token])

    def note_on_mask(self, ids: np.ndarray) -> np.ndarray:
        """Return a boolean array, True where `ids` contains a NOTE_ON token (a note onset)."""
        return self.note_on_table[np.asarray(ids, dtype=np.int64)]

    def pitch_of(self, token: int) -> int:
        """Return the MIDI pitch of a NOTE_ON or NOTE_OFF token id."""
        pitch = int(self._pitch_of_id[token])
        if pitch < 0:
            raise ValueError(f"token {token} ({self.vocabulary[token]}) carries no pitch")
        return pitch

    # -- key tokens ----------------------------------------------------------------------

    def key_token_id(self, key: str) -> int:
        """Return the id of the key token of a name in musicgen.keys.KEY_NAMES, e.g. 'D minor'."""
        if not self.key_tokens:
            raise ValueError("this tokenizer has no key tokens (key_tokens is off)")
        return self._ids[key_token(key)]

    def key_of(self, token: int) -> str | None:
        """Return the key name of a key token id, or None for any other token."""
        name = self.vocabulary[token]
        if not name.startswith(KEY_PREFIX):
            return None
        return name[len(KEY_PREFIX) :].replace("_", " ")

    def key_prefix(self, source: Score | list[Note] | list[int], key: str | None = None) -> list[int]:
        """Return [the key token] to put after BOS, or [] without key tokens.

        The key is `key` when given, else estimated from the pitched notes of `source` with
        musicgen.keys.estimate_key; a source without pitched notes gets FALLBACK_KEY.
        """
        if not self.key_tokens:
            return []
        if key is None:
            from musicgen.keys import estimate_key

            try:
                key = estimate_key(source)
            except ValueError:
                key = FALLBACK_KEY
        return [self.key_token_id(key)]

    # -- transposition -------------------------------------------------------------------

    def transposition_table(self, semitones: int) -> np.ndarray:
        """Return, for every id, the id of the same token moved by `semitones`, or -1 when out of range.

        NOTE_ON and NOTE_OFF tokens change pitch, key tokens change tonic, and every other
        token maps to itself. A piece can be transposed only if no id of it maps to -1.
        """
        table = self._transposition_tables.get(semitones)
        if table is None:
            table = np.array([self._transposed_id(token, semitones) for token in self.vocabulary], dtype=np.int64)
            self._transposition_tables[semitones] = table
        return table

    def _transposed_id(self, token: str, semitones: int) -> int:
        match = _PITCHED_TOKEN.match(token)
        if match is not None:
            return self._ids.get(f"{match.group(1)}_{int(match.group(2)) + semitones}", -1)
        key = self.key_of(self._ids[token])
        if key is not None:
            from musicgen.keys import key_name, tonic_and_mode

            tonic, minor = tonic_and_mode(key)
            return self._ids[key_token(key_name(tonic + semitones, minor))]
        return self._ids[token]

    # -- encoding, shared by the encodings -----------------------------------------------

    def encode(self, source: str | os.PathLike | Score | Any, add_special_tokens: bool = True) -> list[int]:
        """Encode a MIDI file path, a `Score` or a `pretty_midi.PrettyMIDI` into token ids."""
        ids, _ = self.encode_with_stats(source, add_special_tokens)
        return ids

    def encode_with_stats(
        self, source: Any, add_special_tokens: bool = True, key: str | None = None
    ) -> tuple[list[int], EncodeStats]:
        """Encode the pitched notes of `source`; with special tokens: BOS, [key token], tokens, EOS.

        Raises NoNotesError for a score without pitched notes. `key` (a name in
        musicgen.keys.KEY_NAMES) sets the key token; without it the key is estimated.
        """
        score = as_score(source)
        pitched = score.pitched_notes
        if not pitched:
            raise NoNotesError("drums only" if score.notes else "no notes")
        ids, stats = self.encode_notes(pitched, score.ticks_per_quarter)
        if add_special_tokens:
            ids = [self.bos_id, *self.key_prefix(score, key), *ids, self.eos_id]
        return ids, stats

    def encode_notes(self, notes: list[Note], ticks_per_quarter: int) -> tuple[list[int], EncodeStats]:
        """Encode pitched notes whose times are in ticks at `ticks_per_quarter`; returns ids without BOS/EOS."""
        raise NotImplementedError

    def encode_seed(self, notes: list[Note], ticks_per_quarter: int, end_tick: int | None = None) -> list[int]:
        """Encode the notes of a seed for generation: [key token], then tokens, without BOS.

        With `end_tick`, the seed stops there: later onsets are dropped and longer notes cut.
        """
        raise NotImplementedError

    def text_seed_grid(self) -> Any:
        """Return the MelodyTokenizer whose grid steps a text seed ('C4 - - E4:2') counts in."""
        raise NotImplementedError

    def encode_text_seed(self, grid_ids: list[int], grid: Any) -> list[int]:
        """Encode a text seed parsed into ids of `grid` (the tokenizer from `text_seed_grid`)."""
        notes = grid.notes_from_ids(grid_ids)
        if grid is self:
            return self.key_prefix(notes) + list(grid_ids)
        return self.encode_seed(notes, grid.steps_per_quarter, end_tick=len(grid_ids))

    # -- decoding ------------------------------------------------------------------------

    def decode_notes(self, ids: list[int]) -> list[tuple[int, int, int]]:
        """Return (pitch, start step, end step) for each note, in time steps of this encoding."""
        raise NotImplementedError

    def decode(self, ids: list[int], **settings: Any) -> Any:
        """Decode token ids into a `pretty_midi.PrettyMIDI`."""
        raise NotImplementedError

    # -- config and JSON -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form: encoding name, settings and vocabulary."""
        return {"tokenizer": self.name, "config": dict(self.config), "vocabulary": list(self.vocabulary)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({settings})"


def tokenizer_classes() -> dict[str, type[Tokenizer]]:
    """Return the tokenizer classes by their `name`: 'melody' and 'event'."""
    from musicgen.tokenizer.event import EventTokenizer
    from musicgen.tokenizer.melody import MelodyTokenizer

    return {MelodyTokenizer.name: MelodyTokenizer, EventTokenizer.name: EventTokenizer}


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.to_dict()` output and check that its vocabulary matches."""
    classes = tokenizer_classes()
    kind = data.get("tokenizer")
    if kind not in classes:
        raise TokenizerConfigError(f"unknown tokenizer {kind!r}; known: {', '.join(sorted(classes))}")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise TokenizerConfigError(f"tokenizer config must be a JSON object (received {config!r})")
    try:
        tokenizer = classes[kind](**config)
    except TypeError as error:
        raise TokenizerConfigError(f"invalid {kind} tokenizer config {config!r}: {error}") from None
    stored = data.get("vocabulary")
    if stored is not None and stored != tokenizer.vocabulary:
        raise TokenizerConfigError(
            f"stored vocabulary of {len(stored)} tokens does not match the {kind} tokenizer's "
            f"{tokenizer.vocab_size} tokens built from the same config"
        )
    return tokenizer


def load_tokenizer(path: str | Path) -> Tokenizer:
    return tokenizer_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def as_score(source: Any) -> Score:
    """Accept a path, a Score or a PrettyMIDI and return a Score."""
    if isinstance(source, Score):
        return source
    if isinstance(source, (str, os.PathLike)):
        from musicgen.midi_io import read_score

        return read_score(source)
    from musicgen.midi_io import score_from_pretty_midi

    return score_from_pretty_midi(source)
