"""Write a melody as a MusicXML score through music21: key, meter and tempo set, notes spelled in the key.

The key is the one a one-to-many model was asked for (the sidecar's "key"), else the file's
first key signature when it has one, else music21's estimate from
the notes (`Stream.analyze("key")`, the Krumhansl-Schmuckler method). A pitch of the
key's scale takes the scale's spelling, such as B-flat in F major. Any other pitch gets a
sharp in a key with sharps or none, and a flat in a key with flats. Seed notes are
coloured like the seed in the piano roll.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from musicgen.melody_file import MelodyFile
from musicgen.new_file import write_new_file
from musicgen.pianoroll import SEED_COLOUR


def write_musicxml(melody: MelodyFile, path: Path) -> Path:
    """Engrave `melody` into a new MusicXML file at `path`; raises FileExistsError if it exists."""
    score = build_score(melody)
    return write_new_file(path, lambda temporary: score.write("musicxml", fp=str(temporary)))


def build_score(melody: MelodyFile):
    """Return a music21 Score with one part: the melody's notes and rests, barred and tied."""
    from music21 import metadata, meter, note, stream, tempo

    part = stream.Part()
    part.partName = "Melody"
    quarters = lambda steps: Fraction(steps, melody.steps_per_quarter)  # noqa: E731
    for start, numerator, denominator in melody.time_signatures:
        part.insert(quarters(start), meter.TimeSignature(f"{numerator}/{denominator}"))
    key = choose_key(melody)
    part.insert(0, key)
    part.insert(0, tempo.MetronomeMark(number=round(melody.tempo_bpm, 2), referent=1.0))
    position = 0
    for pitch, start, end in sorted(melody.notes, key=lambda item: item[1]):
        if start > position:
            part.insert(quarters(position), note.Rest(quarterLength=quarters(start - position)))
        element = note.Note(spell(pitch, key), quarterLength=quarters(end - start))
        if start < melody.seed_steps:
            element.style.color = SEED_COLOUR
        part.insert(quarters(start), element)
        position = end
    score = stream.Score()
    score.metadata = metadata.Metadata(title=melody.path.stem, composer="musicgen")
    score.insert(0, part)
    return score.makeNotation()


def choose_key(melody: MelodyFile):
    """Return the key requested at generation, else the file's key signature, else an estimate from the notes."""
    from music21 import key, note, stream

    requested = _parse_key_name(melody.key_name) if melody.key_name else None
    if requested is not None:
        return requested
    if melody.key_signature is not None:
        sharps, minor = melody.key_signature
        return key.KeySignature(sharps).asKey("minor" if minor else "major")
    notes = stream.Stream()
    for pitch, start, end in melody.notes:
        notes.append(note.Note(pitch, quarterLength=Fraction(end - start, melody.steps_per_quarter)))
    analysis = notes.analyze("key")
    estimate = key.Key(analysis.tonic.name, analysis.mode)
    if abs(estimate.sharps) > 6:
        # Prefer the enharmonic key with fewer accidentals: B major (5 sharps) over C-flat major (7 flats).
        estimate = key.Key(estimate.tonic.getEnharmonic().name, estimate.mode)
    return estimate


def _parse_key_name(name: str):
    """Return the music21 Key of a name such as "Bb major" or "F# minor", or None if it is not one."""
    from music21 import key
    from music21.exceptions21 import Music21Exception

    parts = name.split()
    if len(parts) != 2 or parts[1].lower() not in ("major", "minor") or not parts[0][:1].upper() in "ABCDEFG":
        return None
    tonic = parts[0][0].upper() + parts[0][1:].replace("b", "-")
    try:
        return key.Key(tonic, parts[1].lower())
    except (Music21Exception, ValueError):
        return None


def spell(midi_pitch: int, key) -> "music21.pitch.Pitch":  # noqa: F821
    """Return a music21 Pitch for `midi_pitch` spelled in `key`."""
    from music21 import pitch

    names = {scale_pitch.pitchClass: scale_pitch.name for scale_pitch in key.pitches}
    if midi_pitch % 12 in names:
        spelled = pitch.Pitch(names[midi_pitch % 12])
    else:
        spelled = pitch.Pitch(midi=midi_pitch)  # music21 spells black keys with a sharp
        if key.sharps < 0 and spelled.accidental is not None and spelled.accidental.alter > 0:
            spelled = spelled.getEnharmonic()
    # Setting the octave from the MIDI number would be wrong for B# and C-flat, so shift the
    # spelled name by whole octaves until it sounds at `midi_pitch`.
    spelled.octave = 4
    spelled.octave += (midi_pitch - round(spelled.ps)) // 12
    return spelled
