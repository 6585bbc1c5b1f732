"""Note names and MIDI pitch numbers in both directions (C4 is 60, as in scientific pitch notation)."""

from __future__ import annotations

import re

from musicgen.constants import MIDI_PITCH_MAX, MIDI_PITCH_MIN

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# One or two accidentals: '#', 'b', the Unicode sharp and flat signs, or 'x'/'##' for a double sharp.
_NOTE_NAME = re.compile(r"^([A-Ga-g])(##|bb|x|#|b|\u266f|\u266d)?(-?\d+)$")
_ACCIDENTAL_SEMITONES = {None: 0, "#": 1, "\u266f": 1, "b": -1, "\u266d": -1, "##": 2, "x": 2, "bb": -2}


def pitch_to_name(pitch: int) -> str:
    """Return the sharp spelling of a MIDI pitch, e.g. 61 -> 'C#4'."""
    octave = pitch // 12 - 1
    return f"{PITCH_CLASS_NAMES[pitch % 12]}{octave}"


def name_to_pitch(name: str) -> int:
    """Parse a note name such as 'C4', 'F#3', 'Bb2' or 'E♭4' into a MIDI pitch.

    Letters may be lower case. Raises ValueError for anything else, or for a
    note outside MIDI's 0..127.
    """
    match = _NOTE_NAME.match(name.strip())
    if match is None:
        raise ValueError(f"invalid note name {name!r}: expected a letter A-G, an optional # or b, and an octave, e.g. C4 or F#3")
    letter, accidental, octave = match.groups()
    pitch = (int(octave) + 1) * 12 + _LETTER_SEMITONES[letter.upper()] + _ACCIDENTAL_SEMITONES[accidental]
    if not MIDI_PITCH_MIN <= pitch <= MIDI_PITCH_MAX:
        raise ValueError(f"note {name!r} is MIDI pitch {pitch}, outside 0..127 (C-1..G9)")
    return pitch
