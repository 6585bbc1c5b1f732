"""Transposition of scores by semitones, and the interval that moves a key to C major or A minor."""

from __future__ import annotations

from dataclasses import replace

from musicgen.constants import MIDI_PITCH_MAX, MIDI_PITCH_MIN
from musicgen.score import KeySignature, Note, Score
from musicgen.tokenizer.base import fold_pitch

C_MAJOR, A_MINOR = "C major", "A minor"


def shift_to_c(key: str) -> int:
    """Return the interval in semitones, -6..5, that moves `key` to C major (or A minor for a minor key).

    `key` is a name in musicgen.keys.KEY_NAMES. Of the two directions, the shorter one is
    taken, and a tritone (6 semitones) moves down.
    """
    from musicgen.keys import tonic_and_mode

    tonic, minor = tonic_and_mode(key)
    target = 9 if minor else 0
    return (target - tonic + 6) % 12 - 6


def transposed_key(key: str, semitones: int) -> str:
    """Return the name of `key` moved by `semitones`, e.g. ('D minor', -5) -> 'A minor'."""
    from musicgen.keys import key_name, tonic_and_mode

    tonic, minor = tonic_and_mode(key)
    return key_name(tonic + semitones, minor)


def transpose_score(score: Score, semitones: int) -> Score:
    """Return a copy of `score` with every pitched note and key signature moved by `semitones`.

    Drum notes keep their key numbers, because those name instruments, not pitches. A pitch
    pushed outside 0..127 moves back by whole octaves.
    """
    if semitones == 0:
        return score
    notes = [note if note.is_drum else _transposed_note(note, semitones) for note in score.notes]
    signatures = [_transposed_signature(signature, semitones) for signature in score.key_signatures]
    return replace(score, notes=notes, key_signatures=signatures, warnings=list(score.warnings))


def _transposed_note(note: Note, semitones: int) -> Note:
    return replace(note, pitch=fold_pitch(note.pitch + semitones, MIDI_PITCH_MIN, MIDI_PITCH_MAX))


def _transposed_signature(signature: KeySignature, semitones: int) -> KeySignature:
    """Move a key signature: each sharp moves the major tonic a fifth (7 semitones) up."""
    major_tonic = (7 * signature.sharps_flats + semitones) % 12
    sharps = (major_tonic * 7) % 12  # 7 is its own inverse modulo 12
    # Spell with at most 6 sharps or 5 flats; F# major (6 sharps) keeps its sharps.
    return replace(signature, sharps_flats=sharps - 12 if sharps > 6 else sharps)
