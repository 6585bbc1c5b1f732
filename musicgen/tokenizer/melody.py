"""Monophonic melody on a time grid: one token per step (note-on, hold or rest)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicgen.constants import (
    DEFAULT_PITCH_HIGH,
    DEFAULT_PITCH_LOW,
    DEFAULT_PROGRAM,
    DEFAULT_STEPS_PER_QUARTER,
    DEFAULT_TEMPO_BPM,
    DEFAULT_TIME_SIGNATURE,
    DEFAULT_VELOCITY,
    MIDI_PITCH_MAX,
    WRITE_TICKS_PER_QUARTER,
)
from musicgen.score import Note, Score
from musicgen.tokenizer.base import EncodeStats, NoNotesError, Tokenizer, check_int, fold_pitch

logger = logging.getLogger(__name__)

HOLD, REST = "HOLD", "REST"


# The name this error had before the event tokenizer shared it.
NoMelodyError = NoNotesError


@dataclass
class MelodyStats(EncodeStats):
    """What encoding one score had to decide, for logs and corpus summaries."""

    chosen_steps: int = 0  # steps where more than one pitched note sounded


class MelodyTokenizer(Tokenizer):
    """One melody line on a grid of `steps_per_quarter` steps per quarter note.

    Vocabulary, in id order:

    - ``PAD`` (0), ``BOS`` (1), ``EOS`` (2): see `Tokenizer`.
    - ``REST`` (3): no note sounds during this step.
    - ``HOLD`` (4): the note sounding in the previous step goes on through this step.
    - ``KEY_*`` (5..28), only with ``key_tokens`` on: the key of the piece, right after
      BOS; see `Tokenizer`.
    - ``NOTE_ON_p`` (5 onward, or 29 onward with key tokens), for every pitch p in
      ``pitch_low..pitch_high`` (inclusive): a note of pitch p starts at this step. They
      come last, so every id from the first NOTE_ON up is a note-on.

    A note that starts at step s and lasts d steps is ``NOTE_ON_p`` followed by d - 1 ``HOLD``
    tokens. Onsets and ends are rounded to the nearest step; a note shorter than one step
    after rounding still gets one step. An encoded piece is ``BOS``, one token per step from
    tick 0 to the end of the last note, then ``EOS``.

    Melody rule for polyphonic or multi-track input: at each step the highest sounding
    pitched (non-drum) note is the melody. When that note changes between two steps, the
    new one gets a ``NOTE_ON`` even if it started earlier (it is struck again). Steps where
    more than one note sounded are counted and logged at debug level. Pitches outside the
    range are moved by whole octaves into it and counted. Drum notes (MIDI channel 10) are
    never melody.
    """

    name = "melody"

    def __init__(
        self,
        steps_per_quarter: int = DEFAULT_STEPS_PER_QUARTER,
        pitch_low: int = DEFAULT_PITCH_LOW,
        pitch_high: int = DEFAULT_PITCH_HIGH,
        key_tokens: bool = False,
    ) -> None:
        self.steps_per_quarter = check_int("steps_per_quarter", steps_per_quarter, 1, 96)
        self.pitch_low = check_int("pitch_low", pitch_low, 0, MIDI_PITCH_MAX - 11)
        # Folding by octaves needs at least 12 pitches in the range.
        self.pitch_high = check_int("pitch_high", pitch_high, pitch_low + 11, MIDI_PITCH_MAX)
        super().__init__(key_tokens)
        self.rest_id = self.token_id(REST)
        self.hold_id = self.token_id(HOLD)
        self.first_note_on_id = self.token_id(f"NOTE_ON_{self.pitch_low}")
        self.last_note_on_id = self.token_id(f"NOTE_ON_{self.pitch_high}")

    def _encoding_tokens(self) -> list[str]:
        notes = [f"NOTE_ON_{pitch}" for pitch in range(self.pitch_low, self.pitch_high + 1)]
        return [REST, HOLD, *self._key_token_names(), *notes]

    @property
    def config(self) -> dict[str, Any]:
        return {"steps_per_quarter": self.steps_per_quarter, "pitch_low": self.pitch_low, "pitch_high": self.pitch_high,
                "key_tokens": self.key_tokens}

    def _token_steps(self, token: str) -> int:
        """Return 1 for REST, HOLD and NOTE_ON tokens (one grid step each), else 0."""
        return 1 if token in (REST, HOLD) or token.startswith("NOTE_ON_") else 0

    def forbidden_after(self) -> dict[int, list[int]]:
        """HOLD extends a sounding note, so it never follows REST, BOS or a key token.

        Decoding reads such a HOLD as a rest, and the file written from it would
        re-tokenize as REST, not as the sampled ids.
        """
        return {token: [self.hold_id] for token in (self.rest_id, self.bos_id, *sorted(self.key_ids))}

    # -- token helpers -------------------------------------------------------------------

    def note_on_id(self, pitch: int) -> int:
        if not self.pitch_low <= pitch <= self.pitch_high:
            raise ValueError(f"pitch {pitch} is outside this tokenizer's range {self.pitch_low}..{self.pitch_high}")
        return self.first_note_on_id + pitch - self.pitch_low

    def is_note_on(self, token: int) -> bool:
        return self.first_note_on_id <= token <= self.last_note_on_id

    def pitch_of(self, token: int) -> int:
        return token - self.first_note_on_id + self.pitch_low

    def steps_per_bar(self, numerator: int, denominator: int) -> int:
        """Return the steps in one bar of the given meter, rounded to whole steps (at least 1)."""
        return max(1, round(numerator * 4 / denominator * self.steps_per_quarter))

    # -- encoding ------------------------------------------------------------------------

    def encode_with_stats(
        self, source: str | os.PathLike | Score | Any, add_special_tokens: bool = True, key: str | None = None
    ) -> tuple[list[int], MelodyStats]:
        ids, stats = super().encode_with_stats(source, add_special_tokens, key)
        if stats.chosen_steps:
            logger.debug("melody rule chose the highest of several notes at %d steps", stats.chosen_steps)
        return ids, stats  # type: ignore[return-value]

    def encode_notes(self, notes: list[Note], ticks_per_quarter: int) -> tuple[list[int], MelodyStats]:
        """Quantize notes onto the grid and apply the melody rule; returns ids without BOS/EOS."""
        stats = MelodyStats()
        pitches = np.array([self._fold(note.pitch, stats) for note in notes], dtype=np.int64)
        scale = self.steps_per_quarter / ticks_per_quarter
        starts = np.rint(np.array([note.start_tick for note in notes]) * scale).astype(np.int64)
        ends = np.rint(np.array([note.end_tick for note in notes]) * scale).astype(np.int64)
        ends = np.maximum(ends, starts + 1)

        total_steps = int(ends.max())
        owner = np.full(total_steps, -1, dtype=np.int64)
        sounding = np.zeros(total_steps + 1, dtype=np.int64)
        # Later writes win, so writing notes from low to high pitch (ties by onset) leaves the
        # highest sounding note, and the latest onset among equal pitches, at each step.
        for index in np.lexsort((starts, pitches)):
            owner[starts[index] : ends[index]] = index
            sounding[starts[index]] += 1
            sounding[ends[index]] -= 1
        stats.chosen_steps = int((np.cumsum(sounding)[:-1] > 1).sum())

        ids = np.full(total_steps, self.rest_id, dtype=np.int64)
        has_note = owner >= 0
        ids[has_note] = self.hold_id
        previous = np.concatenate(([-1], owner[:-1]))
        onset = has_note & (owner != previous)
        ids[onset] = self.first_note_on_id + pitches[owner[onset]] - self.pitch_low
        stats.notes = int(onset.sum())
        return ids.tolist(), stats

    def _fold(self, pitch: int, stats: MelodyStats) -> int:
        """Move a pitch by whole octaves into the range, counting the move."""
        if self.pitch_low <= pitch <= self.pitch_high:
            return pitch
        stats.folded_notes += 1
        return fold_pitch(pitch, self.pitch_low, self.pitch_high)

    # -- seeds ---------------------------------------------------------------------------

    def encode_seed(self, notes: list[Note], ticks_per_quarter: int, end_tick: int | None = None) -> list[int]:
        """Encode seed notes on the grid: [key token], then the melody steps, cut at `end_tick` if given.

        A seed shorter than `end_tick` is not padded with rests.
        """
        ids, stats = self.encode_notes(notes, ticks_per_quarter)
        if stats.chosen_steps:
            logger.info("the seed has several notes sounding at %d steps; the melody takes the highest note at each",
                        stats.chosen_steps)
        if end_tick is not None:
            ids = ids[: round(end_tick * self.steps_per_quarter / ticks_per_quarter)]
        return self.key_prefix(notes) + ids

    def text_seed_grid(self) -> MelodyTokenizer:
        return self

    def notes_from_ids(self, ids: list[int]) -> list[Note]:
        """Return the notes of grid ids as `Note`s whose ticks are grid steps (ticks per quarter = steps_per_quarter)."""
        return [Note(pitch, DEFAULT_VELOCITY, start, end) for pitch, start, end in self.decode_notes(ids)]

    # -- decoding ------------------------------------------------------------------------

    def decode_notes(self, ids: list[int]) -> list[tuple[int, int, int]]:
        """Return (pitch, start step, end step) for each note; steps count from the first grid token.

        BOS, PAD and key tokens are skipped, decoding stops at EOS, and a HOLD with no note
        before it is read as a rest.
        """
        notes: list[tuple[int, int, int]] = []
        current: list[int] | None = None
        step = 0
        for token in ids:
            if token in (self.bos_id, self.pad_id) or token in self.key_ids:
                continue
            if token == self.eos_id:
                break
            if self.is_note_on(token):
                current = [self.pitch_of(token), step, step + 1]
                notes.append(current)  # type: ignore[arg-type]
            elif token == self.hold_id and current is not None:
                current[2] = step + 1
            else:
                current = None
            step += 1
        return [tuple(note) for note in notes]  # type: ignore[misc]

    def decode(
        self,
        ids: list[int],
        tempo: float = DEFAULT_TEMPO_BPM,
        time_signature: tuple[int, int] = DEFAULT_TIME_SIGNATURE,
        program: int = DEFAULT_PROGRAM,
        velocity: int = DEFAULT_VELOCITY,
    ) -> Any:
        """Decode token ids into a one-instrument `pretty_midi.PrettyMIDI` at `tempo` BPM."""
        import pretty_midi

        midi = pretty_midi.PrettyMIDI(resolution=WRITE_TICKS_PER_QUARTER, initial_tempo=tempo)
        midi.time_signature_changes.append(pretty_midi.TimeSignature(time_signature[0], time_signature[1], 0.0))
        instrument = pretty_midi.Instrument(program=program, name="melody")
        seconds_per_step = 60.0 / tempo / self.steps_per_quarter
        for pitch, start, end in self.decode_notes(ids):
            instrument.notes.append(
                pretty_midi.Note(velocity=velocity, pitch=pitch, start=start * seconds_per_step, end=end * seconds_per_step)
            )
        midi.instruments.append(instrument)
        return midi
