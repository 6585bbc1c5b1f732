"""Polyphonic event encoding: note-on, note-off, time-shift, velocity and optional program tokens."""

from __future__ import annotations

import logging
import os
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicgen.constants import (
    DEFAULT_PROGRAM,
    DEFAULT_STEPS_PER_QUARTER,
    DEFAULT_TEMPO_BPM,
    DEFAULT_TIME_SIGNATURE,
    DEFAULT_VELOCITY,
    MIDI_PITCH_MAX,
    MIDI_VELOCITY_MAX,
    WRITE_TICKS_PER_QUARTER,
)
from musicgen.score import Note, Score
from musicgen.tokenizer.base import EncodeStats, Tokenizer, check_bool, check_int, fold_pitch

logger = logging.getLogger(__name__)

# 12 steps per quarter note resolve 16th notes (3 steps) and eighth-note triplets (4 steps).
DEFAULT_EVENT_STEPS_PER_QUARTER = 12
DEFAULT_MAX_SHIFT_STEPS = 48  # one 4/4 bar at 12 steps per quarter note
# A0..C8 (inclusive), the 88 keys of a piano.
DEFAULT_EVENT_PITCH_LOW = 21
DEFAULT_EVENT_PITCH_HIGH = 108
DEFAULT_VELOCITY_BINS = 32
PROGRAM_COUNT = 128  # General MIDI programs 0..127

# Kinds of token, looked up by id while decoding.
_SPECIAL, _NOTE_ON, _NOTE_OFF, _TIME_SHIFT, _VELOCITY, _PROGRAM, _KEY = range(7)


@dataclass
class EventStats(EncodeStats):
    """Counts of what encoding one score changed, for logs and corpus summaries."""

    drum_notes: int = 0  # notes on the drum channel, left out of the encoding
    lengthened_notes: int = 0  # notes shorter than one step after rounding, given one step


@dataclass(frozen=True)
class DecodedNote:
    pitch: int
    start: int  # time step of the onset
    end: int  # time step after the last sounding step; always greater than start
    velocity: int
    program: int


class EventTokenizer(Tokenizer):
    """Polyphonic notes as a stream of events, in the manner of MIDI itself.

    Time is counted in steps of 1/``steps_per_quarter`` quarter note, so the encoding does
    not depend on tempo. Vocabulary, in id order (every range inclusive):

    - ``PAD`` (0), ``BOS`` (1), ``EOS`` (2): see `Tokenizer`.
    - ``NOTE_ON_p`` for p in ``pitch_low..pitch_high``: a note of pitch p starts now.
    - ``NOTE_OFF_p`` for p in ``pitch_low..pitch_high``: the oldest sounding note of pitch p
      (of the current program, with program tokens) ends now.
    - ``TIME_SHIFT_n`` for n in ``1..max_shift_steps``: time moves on by n steps. A longer
      gap is several shifts: ``max_shift_steps`` as often as it fits, then the rest.
    - ``VELOCITY_v``, one per bin, with ``velocity_bins`` bins (0 turns them off): the
      notes from here on have velocity v. The bins split 1..127 into equal parts, and v
      is the rounded mean of the velocities in the bin; with 127 bins v is exact.
    - ``PROGRAM_n`` for n in ``0..127``, only with ``program_tokens``: the note-ons and
      note-offs from here on belong to General MIDI program n (0-based).
    - ``KEY_*`` (24 tokens, last), only with ``key_tokens`` on: the key of the piece,
      right after BOS; see `Tokenizer`.

    Encoding: onsets and ends are rounded to the nearest step, and a note shorter than one
    step after rounding gets one step. Drum notes (MIDI channel 10) are left out, and
    pitches outside the range move by whole octaves into it; both are counted. Events are
    ordered by time. At one time every NOTE_OFF comes before every NOTE_ON, so a pitch
    struck again on the step its previous note ends is two notes. A VELOCITY token comes
    before a NOTE_ON only when the bin differs from the previous note-on's, and a PROGRAM
    token before any NOTE_ON or NOTE_OFF whose program differs from the previous event's.
    An encoded piece is ``BOS``, [the key token], the events from tick 0 to the end of the
    last note, then ``EOS``.

    Decoding pairs each NOTE_OFF with the oldest open NOTE_ON of its pitch (and program),
    as the MIDI reader does. So two overlapping notes of one pitch come back intact when
    the first ends first, but a note nested inside a longer one of the same pitch comes
    back with the two ends swapped. A NOTE_OFF without an open note is ignored, and a
    note still open at EOS ends at the time reached there (one step after its onset at
    the least). Before the first VELOCITY or PROGRAM token, the velocity and program
    given to `decode` apply.
    """

    name = "event"

    def __init__(
        self,
        steps_per_quarter: int = DEFAULT_EVENT_STEPS_PER_QUARTER,
        max_shift_steps: int = DEFAULT_MAX_SHIFT_STEPS,
        pitch_low: int = DEFAULT_EVENT_PITCH_LOW,
        pitch_high: int = DEFAULT_EVENT_PITCH_HIGH,
        velocity_bins: int = DEFAULT_VELOCITY_BINS,
        program_tokens: bool = False,
        key_tokens: bool = False,
    ) -> None:
        self.steps_per_quarter = check_int("steps_per_quarter", steps_per_quarter, 1, 96)
        self.max_shift_steps = check_int("max_shift_steps", max_shift_steps, 1, 1024)
        self.pitch_low = check_int("pitch_low", pitch_low, 0, MIDI_PITCH_MAX - 11)
        # Folding by octaves needs at least 12 pitches in the range.
        self.pitch_high = check_int("pitch_high", pitch_high, pitch_low + 11, MIDI_PITCH_MAX)
        self.velocity_bins = check_int("velocity_bins", velocity_bins, 0, MIDI_VELOCITY_MAX)
        self.program_tokens = check_bool("program_tokens", program_tokens)
        self._bin_of_velocity, self.bin_velocities = _velocity_bins(self.velocity_bins)
        super().__init__(key_tokens)
        self._layout_ids()

    def _encoding_tokens(self) -> list[str]:
        pitches = range(self.pitch_low, self.pitch_high + 1)
        tokens = [f"NOTE_ON_{pitch}" for pitch in pitches]
        tokens += [f"NOTE_OFF_{pitch}" for pitch in pitches]
        tokens += [f"TIME_SHIFT_{steps}" for steps in range(1, self.max_shift_steps + 1)]
        tokens += [f"VELOCITY_{velocity}" for velocity in self.bin_velocities]
        if self.program_tokens:
            tokens += [f"PROGRAM_{program}" for program in range(PROGRAM_COUNT)]
        return tokens + self._key_token_names()

    def _layout_ids(self) -> None:
        """Store the first id of each token kind, and the kind and value of every id, for decoding."""
        self.first_note_on_id = self.token_id(f"NOTE_ON_{self.pitch_low}")
        self.first_note_off_id = self.token_id(f"NOTE_OFF_{self.pitch_low}")
        self.first_shift_id = self.token_id("TIME_SHIFT_1")
        self.first_velocity_id = self.first_shift_id + self.max_shift_steps
        self.first_program_id = self.first_velocity_id + self.velocity_bins
        self._kinds: list[int] = []
        self._values: list[int] = []
        for token in self.vocabulary:
            kind, _, value = token.rpartition("_")
            kind_code = {"NOTE_ON": _NOTE_ON, "NOTE_OFF": _NOTE_OFF, "TIME_SHIFT": _TIME_SHIFT,
                         "VELOCITY": _VELOCITY, "PROGRAM": _PROGRAM}.get(kind, _SPECIAL)
            if token.startswith("KEY_"):
                kind_code = _KEY
            self._kinds.append(kind_code)
            self._values.append(int(value) if kind_code not in (_SPECIAL, _KEY) else 0)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "steps_per_quarter": self.steps_per_quarter, "max_shift_steps": self.max_shift_steps,
            "pitch_low": self.pitch_low, "pitch_high": self.pitch_high, "velocity_bins": self.velocity_bins,
            "program_tokens": self.program_tokens, "key_tokens": self.key_tokens,
        }

    def steps_per_bar(self, numerator: int, denominator: int) -> int:
        """Return the time steps in one bar of the given meter, rounded to whole steps (at least 1)."""
        return max(1, round(numerator * 4 / denominator * self.steps_per_quarter))

    # -- encoding ------------------------------------------------------------------------

    def encode_notes(self, notes: list[Note], ticks_per_quarter: int) -> tuple[list[int], EventStats]:
        """Encode notes whose times are in ticks at `ticks_per_quarter`; returns ids without BOS/EOS."""
        return self._encode(notes, ticks_per_quarter, end_step=None)

    def encode_seed(self, notes: list[Note], ticks_per_quarter: int, end_tick: int | None = None) -> list[int]:
        """Encode seed notes: [key token], then events; with `end_tick`, cut there and shift time up to it."""
        end_step = None
        if end_tick is not None:
            end_tick = round(end_tick)
            notes = [_cut_note(note, end_tick) for note in notes if note.start_tick < end_tick]
            end_step = round(end_tick * self.steps_per_quarter / ticks_per_quarter)
        ids, _ = self._encode(notes, ticks_per_quarter, end_step)
        return self.key_prefix(notes) + ids

    def text_seed_grid(self) -> Any:
        """Return the 16th-note grid (4 steps per quarter note) that text seeds count in."""
        from musicgen.tokenizer.melody import MelodyTokenizer

        return MelodyTokenizer(DEFAULT_STEPS_PER_QUARTER, self.pitch_low, self.pitch_high)

    def _encode(self, notes: list[Note], ticks_per_quarter: int, end_step: int | None) -> tuple[list[int], EventStats]:
        stats = EventStats()
        pitched = [note for note in notes if not note.is_drum]
        stats.drum_notes = len(notes) - len(pitched)
        events = self._event_table(pitched, ticks_per_quarter, stats)
        ids: list[int] = []
        time, velocity_bin, program = 0, -1, -1
        for event_time, is_on, event_program, pitch, event_bin in events:
            self._append_shift(ids, event_time - time)
            time = event_time
            if is_on and self.velocity_bins and event_bin != velocity_bin:
                ids.append(self.first_velocity_id + event_bin)
                velocity_bin = event_bin
            if self.program_tokens and event_program != program:
                ids.append(self.first_program_id + event_program)
                program = event_program
            first = self.first_note_on_id if is_on else self.first_note_off_id
            ids.append(first + pitch - self.pitch_low)
        if end_step is not None and end_step > time:
            self._append_shift(ids, end_step - time)
        return ids, stats

    def _event_table(self, notes: list[Note], ticks_per_quarter: int, stats: EventStats) -> list[tuple[int, ...]]:
        """Return (time step, is note-on, program, pitch, velocity bin) per event, in encoding order."""
        if not notes:
            return []
        pitches = np.array([note.pitch for note in notes], dtype=np.int64)
        inside = (pitches >= self.pitch_low) & (pitches <= self.pitch_high)
        stats.folded_notes = int((~inside).sum())
        for index in np.flatnonzero(~inside):
            pitches[index] = fold_pitch(int(pitches[index]), self.pitch_low, self.pitch_high)
        scale = self.steps_per_quarter / ticks_per_quarter
        starts = np.rint(np.array([note.start_tick for note in notes]) * scale).astype(np.int64)
        ends = np.rint(np.array([note.end_tick for note in notes]) * scale).astype(np.int64)
        stats.lengthened_notes = int((ends <= starts).sum())
        ends = np.maximum(ends, starts + 1)
        stats.notes = len(notes)

        velocities = np.clip([note.velocity for note in notes], 1, MIDI_VELOCITY_MAX)
        bins = self._bin_of_velocity[velocities] if self.velocity_bins else np.zeros(len(notes), dtype=np.int64)
        programs = np.array([note.program for note in notes], dtype=np.int64) if self.program_tokens else np.zeros(len(notes), dtype=np.int64)
        count = len(notes)
        times = np.concatenate((ends, starts))
        is_on = np.concatenate((np.zeros(count, dtype=np.int64), np.ones(count, dtype=np.int64)))
        columns = (times, is_on, np.tile(programs, 2), np.tile(pitches, 2), np.tile(bins, 2))
        # Sort by time, then offs before ons, then program and pitch; lexsort's last key is the primary one.
        order = np.lexsort((columns[3], columns[2], columns[1], columns[0]))
        return list(zip(*(column[order].tolist() for column in columns)))

    def _append_shift(self, ids: list[int], steps: int) -> None:
        """Append TIME_SHIFT tokens that move time on by `steps` (nothing for 0)."""
        full, rest = divmod(steps, self.max_shift_steps)
        ids.extend([self.first_shift_id + self.max_shift_steps - 1] * full)
        if rest:
            ids.append(self.first_shift_id + rest - 1)

    # -- decoding ------------------------------------------------------------------------

    def decode_events(self, ids: list[int], velocity: int = DEFAULT_VELOCITY, program: int = DEFAULT_PROGRAM) -> list[DecodedNote]:
        """Return the notes of `ids`, sorted by onset, pitch and end; `velocity` and `program` apply until a token sets them."""
        open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
        notes: list[DecodedNote] = []
        time = 0
        for token in ids:
            kind, value = self._kinds[token], self._values[token]
            if token == self.eos_id:
                break
            if kind == _TIME_SHIFT:
                time += value
            elif kind == _VELOCITY:
                velocity = value
            elif kind == _PROGRAM:
                program = value
            elif kind == _NOTE_ON:
                open_notes[(program, value)].append((time, velocity))
            elif kind == _NOTE_OFF and open_notes[(program, value)]:
                start, start_velocity = open_notes[(program, value)].popleft()
                notes.append(DecodedNote(value, start, max(time, start + 1), start_velocity, program))
        for (note_program, pitch), waiting in open_notes.items():
            for start, start_velocity in waiting:
                notes.append(DecodedNote(pitch, start, max(time, start + 1), start_velocity, note_program))
        return sorted(notes, key=lambda note: (note.start, note.pitch, note.end, note.program))

    def decode_notes(self, ids: list[int]) -> list[tuple[int, int, int]]:
        """Return (pitch, start step, end step) for each note; steps count from the first token."""
        return [(note.pitch, note.start, note.end) for note in self.decode_events(ids)]

    def notes_from_ids(self, ids: list[int]) -> list[Note]:
        """Return the notes of `ids` as `Note`s whose ticks are time steps (ticks per quarter = steps_per_quarter)."""
        return [Note(note.pitch, note.velocity, note.start, note.end, program=note.program) for note in self.decode_events(ids)]

    def decode(
        self,
        ids: list[int],
        tempo: float = DEFAULT_TEMPO_BPM,
        time_signature: tuple[int, int] = DEFAULT_TIME_SIGNATURE,
        program: int = DEFAULT_PROGRAM,
        velocity: int = DEFAULT_VELOCITY,
    ) -> Any:
        """Decode token ids into a `pretty_midi.PrettyMIDI` at `tempo` BPM, one instrument per program."""
        import pretty_midi

        midi = pretty_midi.PrettyMIDI(resolution=WRITE_TICKS_PER_QUARTER, initial_tempo=tempo)
        midi.time_signature_changes.append(pretty_midi.TimeSignature(time_signature[0], time_signature[1], 0.0))
        seconds_per_step = 60.0 / tempo / self.steps_per_quarter
        instruments: dict[int, Any] = {}
        for note in self.decode_events(ids, velocity, program):
            if note.program not in instruments:
                instruments[note.program] = pretty_midi.Instrument(program=note.program, name=f"program {note.program}")
            instruments[note.program].notes.append(pretty_midi.Note(
                velocity=note.velocity, pitch=note.pitch, start=note.start * seconds_per_step, end=note.end * seconds_per_step,
            ))
        midi.instruments.extend(instruments[key] for key in sorted(instruments))
        return midi

    def encode_with_stats(
        self, source: str | os.PathLike | Score | Any, add_special_tokens: bool = True, key: str | None = None
    ) -> tuple[list[int], EventStats]:
        ids, stats = super().encode_with_stats(source, add_special_tokens, key)
        if stats.lengthened_notes:
            logger.debug("gave one step to %d notes shorter than a step", stats.lengthened_notes)
        return ids, stats  # type: ignore[return-value]


def _velocity_bins(count: int) -> tuple[np.ndarray, list[int]]:
    """Return the bin of each velocity 0..127 (index 0 unused) and the velocity each bin decodes to."""
    velocities = np.arange(1, MIDI_VELOCITY_MAX + 1)
    if count == 0:
        return np.zeros(MIDI_VELOCITY_MAX + 1, dtype=np.int64), []
    bins = (velocities - 1) * count // MIDI_VELOCITY_MAX
    bin_of_velocity = np.concatenate(([0], bins)).astype(np.int64)
    representatives = [int(np.rint(velocities[bins == index].mean())) for index in range(count)]
    return bin_of_velocity, representatives


def _cut_note(note: Note, end_tick: int) -> Note:
    if note.end_tick <= end_tick:
        return note
    return Note(note.pitch, note.velocity, note.start_tick, end_tick, note.channel, note.program, note.track)
