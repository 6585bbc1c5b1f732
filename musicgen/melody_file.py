"""Read a MIDI file's melody on the grid, with the seed length, tempo and meter of its sidecar.

`musicgen generate` writes a `.json` sidecar beside each `.mid` file. It gives the number
of seed steps at the start, the grid and the meter. A file without a sidecar is read with
the default grid and its own tempo and time signatures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from musicgen.constants import DEFAULT_STEPS_PER_QUARTER, DEFAULT_TIME_SIGNATURE
from musicgen.errors import MusicgenError
from musicgen.midi_io import MidiReadError, read_score
from musicgen.score import Score
from musicgen.tokenizer import NoMelodyError
from musicgen.tokenizer.melody import MelodyTokenizer

logger = logging.getLogger(__name__)


class MelodyFileError(MusicgenError):
    pass


@dataclass
class MelodyFile:
    """A melody as (pitch, start step, end step) notes, with what drawing and engraving it needs."""

    path: Path
    notes: list[tuple[int, int, int]]
    steps_per_quarter: int
    # (start step, numerator, denominator) of each time signature, sorted; the first starts at step 0.
    time_signatures: list[tuple[int, int, int]]
    tempo_bpm: float
    seed_steps: int = 0  # the first steps that came from the seed, not the model
    key_signature: tuple[int, bool] | None = None  # (sharps, or flats when negative; minor) of the file
    key_name: str | None = None  # the sidecar's "key", such as "Bb major": the key a model was asked for

    @property
    def time_signature(self) -> tuple[int, int]:
        """The meter in force for the most steps, such as 4/4 after a 1/4 pickup bar."""
        ends = [start for start, _, _ in self.time_signatures[1:]] + [max(self.steps, self.time_signatures[-1][0] + 1)]
        spans = [(end - start, (numerator, denominator))
                 for (start, numerator, denominator), end in zip(self.time_signatures, ends)]
        return max(spans, key=lambda span: span[0])[1]

    @property
    def steps_per_bar(self) -> int:
        """Steps in one bar of the main meter."""
        numerator, denominator = self.time_signature
        return max(1, round(numerator * 4 / denominator * self.steps_per_quarter))

    @property
    def first_bar_step(self) -> int:
        """Step where the first full bar of the main meter begins: after a pickup, else 0.

        NOTE: bar lines drawn every `steps_per_bar` from here drift after a later change of meter.
        """
        main = self.time_signature
        start = next(start for start, numerator, denominator in self.time_signatures
                     if (numerator, denominator) == main)
        return start % self.steps_per_bar

    @property
    def steps(self) -> int:
        return max((end for _, _, end in self.notes), default=0)


def read_sidecar(midi_path: Path) -> dict:
    """Return the settings in the `.json` beside `midi_path`, or {} when there is none or it is unreadable."""
    sidecar = midi_path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        settings = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        logger.warning("ignored %s: %s", sidecar, error)
        return {}
    return settings if isinstance(settings, dict) else {}


def read_melody_file(midi_path: Path) -> MelodyFile:
    """Read the melody of `midi_path` by the melody tokenizer's rule (the highest note at each step)."""
    if not midi_path.is_file():
        raise MelodyFileError(f"MIDI file not found: {midi_path}; check the path")
    settings = read_sidecar(midi_path)
    steps_per_quarter = _int_setting(settings, "steps_per_quarter", DEFAULT_STEPS_PER_QUARTER)
    tokenizer = MelodyTokenizer(steps_per_quarter=steps_per_quarter, pitch_low=0, pitch_high=127)
    try:
        score = read_score(midi_path)
        ids = tokenizer.encode(score, add_special_tokens=False)
    except (MidiReadError, NoMelodyError) as error:
        raise MelodyFileError(f"cannot read a melody from {midi_path}: {error}") from None
    meter = _meter_setting(settings)
    # A melody that opens with a pickup bar has its signatures in the file itself.
    signatures = [(0, *meter)] if meter and not settings.get("pickup") else _time_signatures(score, steps_per_quarter)
    key = score.key_signatures[0] if score.key_signatures else None
    return MelodyFile(
        path=midi_path, notes=tokenizer.decode_notes(ids), steps_per_quarter=steps_per_quarter,
        time_signatures=signatures, tempo_bpm=float(settings.get("tempo_bpm") or score.first_tempo().bpm),
        seed_steps=_int_setting(settings, "seed_steps", 0),
        key_signature=(key.sharps_flats, key.minor) if key is not None else None,
        key_name=settings.get("key") if isinstance(settings.get("key"), str) else None,
    )


def _time_signatures(score: Score, steps_per_quarter: int) -> list[tuple[int, int, int]]:
    """Return (start step, numerator, denominator) of each time signature; 4/4 until the first one."""
    signatures = []
    for signature in sorted(score.time_signatures, key=lambda item: item.tick):
        step = round(signature.tick * steps_per_quarter / score.ticks_per_quarter)
        if signatures and signatures[-1][0] == step:
            signatures.pop()  # the later of two signatures at one step wins
        signatures.append((step, signature.numerator, signature.denominator))
    if not signatures or signatures[0][0] > 0:
        signatures.insert(0, (0, *DEFAULT_TIME_SIGNATURE))
    return signatures


def _int_setting(settings: dict, name: str, default: int) -> int:
    value = settings.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _meter_setting(settings: dict) -> tuple[int, int] | None:
    """Parse a sidecar's "time_signature" such as "3/4"; None when absent or malformed."""
    text = settings.get("time_signature")
    if not isinstance(text, str) or "/" not in text:
        return None
    numerator, _, denominator = text.partition("/")
    if numerator.isdigit() and denominator.isdigit() and int(numerator) > 0 and int(denominator) > 0:
        return int(numerator), int(denominator)
    return None
