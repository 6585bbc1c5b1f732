"""Parse a --seed given as note names, MIDI numbers or a MIDI file into grid tokens.

Text seeds take one grid step per token: a note name (C4, F#3, Bb2, E♭4; letters in
either case) or a MIDI number (60) starts a note, `-` holds the previous note one more
step, `R` is a rest step. A note may carry its length in steps after a colon: `C4:4` is
C4 plus three holds. Tokens are separated by spaces, tabs or commas.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from musicgen.errors import MusicgenError
from musicgen.midi_io import MidiReadError, read_score
from musicgen.notes import name_to_pitch, pitch_to_name
from musicgen.tokenizer.melody import MelodyTokenizer

ACCEPTED_FORMS = (
    "expected a note name like C4 or F#3 (optionally with a length in steps, C4:4), "
    "- to hold, R for a rest, MIDI numbers like 60,64,67, or a path to a MIDI file"
)
_SEPARATORS = re.compile(r"[,\s]+")
_INTEGER = re.compile(r"^[+-]?\d+$")
_MAX_TOKEN_STEPS = 1024


class SeedError(MusicgenError):
    pass


@dataclass
class Seed:
    """Grid tokens of a seed (no BOS) and the tempo and meter a MIDI seed carries."""

    ids: list[int]
    description: str
    tempo: float | None = None  # BPM of a MIDI seed's first tempo event
    time_signature: tuple[int, int] | None = None
    pickup: tuple[int, int] | None = None  # meter of a MIDI seed's opening pickup bar, such as (1, 4)

    @property
    def steps(self) -> int:
        """Tokens of the seed; on the melody grid without key tokens, its steps (see `Tokenizer.time_steps`)."""
        return len(self.ids)


def looks_like_path(text: str) -> bool:
    return text.lower().endswith((".mid", ".midi")) or os.path.sep in text or Path(text).is_file()


def parse_seed(text: str, tokenizer: MelodyTokenizer, seed_bars: int | None = None) -> Seed:
    """Turn the --seed text into a Seed; raise SeedError naming the bad token or pitch."""
    if looks_like_path(text):
        return _seed_from_midi(Path(text), tokenizer, seed_bars)
    if seed_bars is not None:
        raise SeedError("--seed-bars applies to a MIDI file seed only; drop it or give a MIDI file")
    # Text counts in melody-grid steps; the model's tokenizer re-encodes the notes when it is not that grid.
    grid = tokenizer.text_seed_grid()
    return Seed(tokenizer.encode_text_seed(_tokens_from_text(text, grid), grid), description=" ".join(text.split()))


def _tokens_from_text(text: str, tokenizer: MelodyTokenizer) -> list[int]:
    words = [word for word in _SEPARATORS.split(text.strip()) if word]
    if not words:
        raise SeedError(f"empty --seed; {ACCEPTED_FORMS}")
    ids: list[int] = []
    for position, word in enumerate(words, start=1):
        ids.extend(_word_to_ids(word, position, ids, tokenizer))
    return ids


def _word_to_ids(word: str, position: int, previous: list[int], tokenizer: MelodyTokenizer) -> list[int]:
    if word in ("R", "r"):
        return [tokenizer.rest_id]
    if word == "-":
        # A hold after a rest, or at the very start, is one more rest step.
        holding = previous and previous[-1] != tokenizer.rest_id
        return [tokenizer.hold_id if holding else tokenizer.rest_id]
    name, _, length_text = word.partition(":")
    pitch = _parse_pitch(name, word, position, tokenizer)
    length = _parse_length(length_text, word, position) if length_text else 1
    check_pitch_in_range(pitch, tokenizer)
    return [tokenizer.note_on_id(pitch)] + [tokenizer.hold_id] * (length - 1)


def _parse_pitch(name: str, word: str, position: int, tokenizer: MelodyTokenizer) -> int:
    if _INTEGER.match(name):
        pitch = int(name)
        if not 0 <= pitch <= 127:
            raise SeedError(
                f"invalid --seed token {word!r} (token {position}): MIDI pitches are 0..127 and this model's "
                f"pitch range is {_range_text(tokenizer)}; {ACCEPTED_FORMS}"
            )
        return pitch
    try:
        return name_to_pitch(name)
    except ValueError:
        raise SeedError(f"invalid --seed token {word!r} (token {position}): {ACCEPTED_FORMS}") from None


def _parse_length(text: str, word: str, position: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= _MAX_TOKEN_STEPS:
        raise SeedError(f"invalid --seed token {word!r} (token {position}): the length after ':' must be 1..{_MAX_TOKEN_STEPS} steps")
    return int(text)


def check_pitch_in_range(pitch: int, tokenizer: MelodyTokenizer) -> None:
    if not tokenizer.pitch_low <= pitch <= tokenizer.pitch_high:
        raise SeedError(
            f"seed pitch {pitch} ({pitch_to_name(pitch)}) is outside this model's pitch range {_range_text(tokenizer)}; "
            "transpose the seed or choose pitches in range"
        )


def _range_text(tokenizer: MelodyTokenizer) -> str:
    low, high = tokenizer.pitch_low, tokenizer.pitch_high
    return f"{low}..{high} ({pitch_to_name(low)}..{pitch_to_name(high)})"


def _seed_from_midi(path: Path, tokenizer: MelodyTokenizer, seed_bars: int | None) -> Seed:
    if not path.is_file():
        raise SeedError(f"seed file not found: {path}; give an existing MIDI file, or note names such as \"C4 E4 G4\"")
    try:
        score = read_score(path)
    except MidiReadError as error:
        raise SeedError(f"cannot read seed file {path}: {error}; give a valid MIDI file") from None
    pitched = score.pitched_notes
    if not pitched:
        raise SeedError(f"seed file {path.name} has no pitched notes; give a MIDI file with a melody, or note names such as \"C4 E4 G4\"")
    for note in pitched:
        check_pitch_in_range(note.pitch, tokenizer)
    signature = score.main_time_signature()
    meter = (signature.numerator, signature.denominator)
    end_tick = score.bar_end_tick(seed_bars) if seed_bars is not None else None
    ids = tokenizer.encode_seed(pitched, score.ticks_per_quarter, end_tick)
    # Six decimals keep the tempo exact to well under 1 µs per quarter note, so the output's
    # set_tempo event matches the seed's.
    pickup = score.pickup_signature()
    return Seed(ids, description=str(path), tempo=round(score.first_tempo().bpm, 6), time_signature=meter,
                pickup=(pickup.numerator, pickup.denominator) if pickup is not None else None)
