"""Seed parsing: note names, MIDI numbers, holds, rests, MIDI files, and the errors for bad tokens."""

from __future__ import annotations

import pretty_midi
import pytest

from musicgen.notes import name_to_pitch, pitch_to_name
from musicgen.seed import SeedError, parse_seed
from musicgen.tokenizer import MelodyTokenizer
from tests.conftest import BACH_MELODIES

TOKENIZER = MelodyTokenizer()  # pitch range 36..96
ON = TOKENIZER.note_on_id
HOLD, REST = TOKENIZER.hold_id, TOKENIZER.rest_id


@pytest.mark.parametrize(("name", "pitch"), [
    ("C4", 60), ("c4", 60), ("F#3", 54), ("Bb2", 46), ("E\u266d4", 63), ("C\u266f4", 61), ("B#3", 60), ("Cb4", 59),
    ("C-1", 0), ("G9", 127),
])
def test_name_to_pitch(name, pitch):
    assert name_to_pitch(name) == pitch


@pytest.mark.parametrize("name", ["H4", "C", "C#", "X9", "G#9", "4C", ""])
def test_invalid_note_names(name):
    with pytest.raises(ValueError):
        name_to_pitch(name)


def test_pitch_to_name_round_trip():
    for pitch in range(128):
        assert name_to_pitch(pitch_to_name(pitch)) == pitch


@pytest.mark.parametrize("text", ["C4 E4 G4", "60,64,67", "60, 64 ,67", "C4  E4\tG4", "c4 e4 g4", "60 E4 g4"])
def test_spacing_and_forms_give_same_seed(text):
    assert parse_seed(text, TOKENIZER).ids == [ON(60), ON(64), ON(67)]


def test_holds_rests_and_lengths():
    seed = parse_seed("C4 - - R E4:3 -", TOKENIZER)
    assert seed.ids == [ON(60), HOLD, HOLD, REST, ON(64), HOLD, HOLD, HOLD]
    assert seed.steps == 8


def test_rest_only_seed_is_accepted():
    assert parse_seed("R R R R", TOKENIZER).ids == [REST] * 4


def test_hold_without_note_is_rest():
    assert parse_seed("- C4", TOKENIZER).ids == [REST, ON(60)]


@pytest.mark.parametrize(("text", "quoted", "position"), [
    ("\u201cC4 E4 G4\u201d", "'\u201cC4'", 1),
    ("C4 X9", "'X9'", 2),
    ("[60, -2, -2, -2, 64]", "'[60'", 1),
    ("60 128", "'128'", 2),
    ("-1", "'-1'", 1),
])
def test_bad_tokens_are_quoted_with_position(text, quoted, position):
    with pytest.raises(SeedError) as raised:
        parse_seed(text, TOKENIZER)
    message = str(raised.value)
    assert quoted in message
    assert f"(token {position})" in message
    assert "note name like C4" in message


def test_zero_length_token():
    with pytest.raises(SeedError, match=r"'C4:0' \(token 1\): the length after ':' must be 1\.\.1024 steps"):
        parse_seed("C4:0", TOKENIZER)


def test_empty_seed():
    with pytest.raises(SeedError, match="empty --seed"):
        parse_seed("  ", TOKENIZER)


@pytest.mark.parametrize("text", ["35,60", "C2 B1", "97", "C#7"])
def test_out_of_range_pitch_names_pitch_and_range(text):
    with pytest.raises(SeedError, match=r"outside this model's pitch range 36\.\.96 \(C2\.\.C7\)"):
        parse_seed(text, TOKENIZER)


def test_out_of_range_message_gives_number_and_name():
    with pytest.raises(SeedError, match=r"seed pitch 97 \(C#7\)"):
        parse_seed("60,97", TOKENIZER)


def _write_seed(path, notes, tempo=120.0, meter=(4, 4), drums=()):
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=tempo)
    midi.time_signature_changes.append(pretty_midi.TimeSignature(*meter, 0.0))
    melody = pretty_midi.Instrument(0)
    melody.notes = [pretty_midi.Note(80, pitch, start, end) for pitch, start, end in notes]
    midi.instruments.append(melody)
    if drums:
        kit = pretty_midi.Instrument(0, is_drum=True)
        kit.notes = [pretty_midi.Note(80, pitch, start, start + 0.1) for pitch, start in drums]
        midi.instruments.append(kit)
    midi.write(str(path))
    return path


def test_midi_seed_keeps_tempo_meter_and_bars(tmp_path):
    # 90 BPM waltz: D4 dotted half, then F#4 A4 D5 quarters (a quarter is 2/3 s)
    q = 60 / 90
    path = _write_seed(tmp_path / "waltz.mid", [(62, 0, 3 * q), (66, 3 * q, 4 * q), (69, 4 * q, 5 * q), (74, 5 * q, 6 * q)],
                       tempo=90, meter=(3, 4))
    seed = parse_seed(str(path), TOKENIZER)
    assert seed.steps == 24
    assert seed.tempo == pytest.approx(90, rel=1e-4)
    assert seed.time_signature == (3, 4)
    assert parse_seed(str(path), TOKENIZER, seed_bars=1).ids == [ON(62)] + [HOLD] * 11


def test_midi_seed_skips_a_pickup_signature(tmp_path):
    # A quarter-note pickup written as a 1/4 bar, then 4/4 (as the bundled Bach melodies open).
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    midi.time_signature_changes += [pretty_midi.TimeSignature(1, 4, 0.0), pretty_midi.TimeSignature(4, 4, 0.5)]
    melody = pretty_midi.Instrument(0)
    melody.notes = [pretty_midi.Note(80, 60 + index % 12, 0.5 * index, 0.5 * (index + 1)) for index in range(17)]
    midi.instruments.append(melody)
    midi.write(str(tmp_path / "pickup.mid"))

    seed = parse_seed(str(tmp_path / "pickup.mid"), TOKENIZER, seed_bars=2)
    assert seed.time_signature == (4, 4)
    assert seed.steps == 4 + 2 * 16  # the pickup quarter and two whole bars of 16th-note steps
    assert seed.ids[0] == ON(60)
    assert seed.ids[4] == ON(61)


def test_bundled_seed_with_pickup_keeps_its_meter():
    seed = parse_seed(str(BACH_MELODIES / "bwv1.6.mid"), TOKENIZER, seed_bars=1)
    assert seed.time_signature == (4, 4)
    assert seed.steps == 4 + 16


def test_midi_seed_ignores_drums(tmp_path):
    path = _write_seed(tmp_path / "drums.mid", [(64, 0, 0.5), (65, 0.5, 1.0)], drums=[(36, 0.0), (42, 0.25)])
    assert parse_seed(str(path), TOKENIZER).ids == [ON(64), HOLD, HOLD, HOLD, ON(65), HOLD, HOLD, HOLD]


def test_midi_seed_without_pitched_notes(edge_dir):
    for name in ("no_notes.mid", "drums_only.mid"):
        with pytest.raises(SeedError, match=f"seed file {name} has no pitched notes"):
            parse_seed(str(edge_dir / name), TOKENIZER)


def test_missing_seed_file(tmp_path):
    with pytest.raises(SeedError, match="seed file not found"):
        parse_seed(str(tmp_path / "nope.mid"), TOKENIZER)


def test_seed_bars_needs_midi_seed():
    with pytest.raises(SeedError, match="--seed-bars applies to a MIDI file seed only"):
        parse_seed("C4 E4", TOKENIZER, seed_bars=2)
