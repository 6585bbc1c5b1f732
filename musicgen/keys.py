"""The 24 major and minor keys: names, scales, and the key of a melody.

`estimate_key` takes the key from the file's first key signature when that signature
fits the notes: at least 90 % of the note duration must lie on the seven pitch classes
the signature's accidentals give. The mode (major or minor) is the signature's own flag.
Otherwise, and always for notes without a signature, the key is music21's
Krumhansl-Schmuckler estimate (`Stream.analyze('krumhansl')`): the duration-weighted
pitch-class histogram is correlated with the Krumhansl-Kessler profile of every key, and
the best correlation wins.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from musicgen.errors import MusicgenError

# One spelling per key, the one with the fewer accidentals in its signature (F# major and
# C# minor have six and four sharps; Gb major and Db minor would have six and eight flats).
_MAJOR_TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_MINOR_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
MAJOR_KEYS = tuple(f"{tonic} major" for tonic in _MAJOR_TONICS)
MINOR_KEYS = tuple(f"{tonic} minor" for tonic in _MINOR_TONICS)
# Index i < 12 is the major key on pitch class i; index 12 + i is the minor key on pitch class i.
KEY_NAMES: tuple[str, ...] = MAJOR_KEYS + MINOR_KEYS

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# The natural minor scale plus the raised seventh (the leading tone), which minor-key
# melodies use at almost every cadence.
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)
_SIGNATURE_FIT = 0.9  # share of note duration that must lie on a key signature's scale

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"": 0, "#": 1, "\u266f": 1, "b": -1, "\u266d": -1, "-": -1}
_KEY_TEXT = re.compile(r"^([A-Ga-g])(#|b|\u266f|\u266d|-)?\s*(major|minor|maj|min)$", re.IGNORECASE)


class KeyNameError(MusicgenError, ValueError):
    """A key name that is not one of the 24 major and minor keys."""


def key_name(tonic_pitch_class: int, minor: bool) -> str:
    """Return the name of the key on a tonic pitch class (0 is C), e.g. (2, True) -> 'D minor'."""
    return KEY_NAMES[tonic_pitch_class % 12 + (12 if minor else 0)]


def parse_key(text: str) -> str:
    """Return the standard name of a key written as 'D minor', 'd min', 'Bb major', 'F♯ minor' or 'E- major'.

    Enharmonic spellings map to the one spelling of KEY_NAMES ('Gb major' is 'F# major').
    """
    match = _KEY_TEXT.match(" ".join(text.split()))
    if match is None:
        raise KeyNameError(f"invalid key {text!r}: expected a tonic and major or minor, one of {', '.join(KEY_NAMES)}")
    letter, accidental, mode = match.groups()
    pitch_class = _LETTERS[letter.upper()] + _ACCIDENTALS[accidental or ""]
    return key_name(pitch_class, mode.lower().startswith("min"))


def tonic_and_mode(name: str) -> tuple[int, bool]:
    """Return (tonic pitch class, is minor) of a name in KEY_NAMES."""
    index = KEY_NAMES.index(name)
    return index % 12, index >= 12


def scale_pitch_classes(name: str) -> frozenset[int]:
    """Return the pitch classes (0 is C) of a key's scale.

    A major key has its seven major-scale degrees. A minor key has the natural minor
    scale plus the raised seventh, so D minor allows C and C#.
    """
    tonic, minor = tonic_and_mode(name)
    return frozenset((tonic + degree) % 12 for degree in (_MINOR_SCALE if minor else _MAJOR_SCALE))


def estimate_key(source: Any) -> str:
    """Return the key of a melody or score as a name in KEY_NAMES, e.g. 'D minor'.

    `source` is a `musicgen.score.Score` (its first key signature is used when it fits,
    see the module docstring), a sequence of `musicgen.score.Note`, a sequence of
    (pitch, start, end) tuples in any one time unit, or a sequence of MIDI pitches
    (each weighted equally). Raises ValueError when there is no pitched note.
    """
    weights, signature = _pitch_weights(source)
    if not weights:
        raise ValueError("no pitched notes to estimate a key from")
    if signature is not None and _signature_fits(signature, weights):
        return key_name(_signature_tonic(signature), signature.minor)
    return _krumhansl_schmuckler(weights)


def _pitch_weights(source: Any) -> tuple[list[tuple[int, float]], Any]:
    """Return (MIDI pitch, duration) pairs and the first key signature, if the source has one."""
    from musicgen.score import Note, Score

    if isinstance(source, Score):
        quarter = float(source.ticks_per_quarter)
        pairs = [(note.pitch, (note.end_tick - note.start_tick) / quarter) for note in source.pitched_notes]
        return pairs, (source.key_signatures[0] if source.key_signatures else None)
    pairs = []
    for item in source:
        if isinstance(item, Note):
            pairs.append((item.pitch, float(item.end_tick - item.start_tick)))
        elif isinstance(item, Sequence):
            pitch, start, end = item[:3]
            pairs.append((int(pitch), float(end - start)))
        else:
            pairs.append((int(item), 1.0))
    return [(pitch, duration) for pitch, duration in pairs if duration > 0], None


def _signature_tonic(signature: Any) -> int:
    """Return the tonic pitch class of a key signature: each sharp moves the major tonic a fifth up."""
    major_tonic = (7 * signature.sharps_flats) % 12
    return (major_tonic + 9) % 12 if signature.minor else major_tonic


def _signature_fits(signature: Any, weights: list[tuple[int, float]]) -> bool:
    major_tonic = (7 * signature.sharps_flats) % 12
    diatonic = {(major_tonic + degree) % 12 for degree in _MAJOR_SCALE}
    total = sum(duration for _, duration in weights)
    inside = sum(duration for pitch, duration in weights if pitch % 12 in diatonic)
    return inside >= _SIGNATURE_FIT * total


def _krumhansl_schmuckler(weights: list[tuple[int, float]]) -> str:
    from music21 import note, stream

    melody = stream.Stream()
    for pitch, duration in weights:
        # Only the duration-weighted pitch classes matter, so the notes are simply appended.
        melody.append(note.Note(pitch, quarterLength=duration))
    estimate = melody.analyze("krumhansl")
    return key_name(estimate.tonic.pitchClass, estimate.mode == "minor")
