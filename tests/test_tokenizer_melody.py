"""The melody grid tokenizer: hand-made cases, the melody rule, and round trips on real files."""

from __future__ import annotations

import pretty_midi
import pytest

from musicgen.midi_io import read_score, score_from_pretty_midi
from musicgen.score import Note, Score
from musicgen.tokenizer import MelodyTokenizer, NoMelodyError, TokenizerConfigError, tokenizer_from_dict
from tests.conftest import BACH_MELODIES

TPQ = 480
STEP = TPQ // 4  # one 16th-note step at 4 steps per quarter


def note(pitch: int, start_step: int, steps: int, channel: int = 0) -> Note:
    return Note(pitch, 80, start_step * STEP, (start_step + steps) * STEP, channel=channel)


def names(tokenizer: MelodyTokenizer, ids: list[int]) -> list[str]:
    return tokenizer.token_names(ids)


def test_vocabulary_layout():
    tokenizer = MelodyTokenizer(pitch_low=60, pitch_high=71)
    # 3 special tokens + REST + HOLD + 12 pitches
    assert tokenizer.vocab_size == 17
    assert tokenizer.vocabulary[:5] == ["PAD", "BOS", "EOS", "REST", "HOLD"]
    assert tokenizer.vocabulary[5] == "NOTE_ON_60"
    assert tokenizer.note_on_id(71) == 16


def test_encode_hand_made_melody():
    tokenizer = MelodyTokenizer()
    # C4 for a quarter (4 steps), a 16th rest, E4 for an eighth (2 steps)
    score = Score(TPQ, [note(60, 0, 4), note(64, 5, 2)])
    ids = tokenizer.encode(score)
    assert names(tokenizer, ids) == [
        "BOS", "NOTE_ON_60", "HOLD", "HOLD", "HOLD", "REST", "NOTE_ON_64", "HOLD", "EOS",
    ]


def test_chord_takes_highest_note():
    tokenizer = MelodyTokenizer()
    # A C major triad for a bar, then E4 F4 as quarters: G4 is held through bar 1.
    chord = [note(60, 0, 16), note(64, 0, 16), note(67, 0, 16)]
    ids, stats = tokenizer.encode_with_stats(Score(TPQ, [*chord, note(64, 16, 4), note(65, 20, 4)]), False)
    assert names(tokenizer, ids[:2]) == ["NOTE_ON_67", "HOLD"]
    assert ids[:16] == [tokenizer.note_on_id(67)] + [tokenizer.hold_id] * 15
    assert ids[16] == tokenizer.note_on_id(64)
    assert stats.chosen_steps == 16
    assert stats.notes == 3


def test_lower_note_is_struck_again_when_higher_ends():
    tokenizer = MelodyTokenizer()
    ids = tokenizer.encode(Score(TPQ, [note(60, 0, 8), note(72, 0, 4)]), add_special_tokens=False)
    assert ids == [tokenizer.note_on_id(72)] + [tokenizer.hold_id] * 3 + [tokenizer.note_on_id(60)] + [tokenizer.hold_id] * 3


def test_drums_are_never_melody():
    tokenizer = MelodyTokenizer()
    ids = tokenizer.encode(Score(TPQ, [note(36, 0, 4, channel=9), note(62, 0, 2)]), add_special_tokens=False)
    assert ids == [tokenizer.note_on_id(62), tokenizer.hold_id]


@pytest.mark.parametrize(("notes", "reason"), [([], "no notes"), ([note(36, 0, 4, channel=9)], "drums only")])
def test_no_melody_reasons(notes, reason):
    with pytest.raises(NoMelodyError, match=reason):
        MelodyTokenizer().encode(Score(TPQ, notes))


def test_out_of_range_pitches_fold_by_octaves():
    tokenizer = MelodyTokenizer(pitch_low=48, pitch_high=72)
    ids, stats = tokenizer.encode_with_stats(Score(TPQ, [note(24, 0, 1), note(100, 1, 1)]), False)
    # 24 + 2 octaves = 48; 100 - 3 octaves = 64
    assert ids == [tokenizer.note_on_id(48), tokenizer.note_on_id(64)]
    assert stats.folded_notes == 2


def test_off_grid_notes_round_to_nearest_step():
    tokenizer = MelodyTokenizer()
    # Starts 50 ticks late (under half a 120-tick step) and lasts 30 ticks: one step.
    ids = tokenizer.encode(Score(TPQ, [Note(60, 80, 50, 80)]), add_special_tokens=False)
    assert ids == [tokenizer.note_on_id(60)]


def test_decode_notes_and_seconds():
    tokenizer = MelodyTokenizer()
    ids = tokenizer.encode(Score(TPQ, [note(60, 0, 4), note(64, 6, 2)]))
    assert tokenizer.decode_notes(ids) == [(60, 0, 4), (64, 6, 8)]
    midi = tokenizer.decode(ids, tempo=120)
    # At 120 BPM a 16th step lasts 0.125 s.
    decoded = [(n.pitch, n.start, n.end) for n in midi.instruments[0].notes]
    assert decoded == [(60, 0.0, 0.5), (64, 0.75, 1.0)]


def test_decode_stops_at_eos_and_treats_orphan_hold_as_rest():
    tokenizer = MelodyTokenizer()
    ids = [tokenizer.bos_id, tokenizer.hold_id, tokenizer.note_on_id(60), tokenizer.eos_id, tokenizer.note_on_id(62)]
    assert tokenizer.decode_notes(ids) == [(60, 1, 2)]


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("steps_per_quarter", 0, r"`steps_per_quarter` must be in 1\.\.96 \(received 0\)"),
    ("pitch_low", -1, r"`pitch_low` must be in 0\.\.116 \(received -1\)"),
    ("pitch_high", 128, r"`pitch_high` must be in 47\.\.127 \(received 128\)"),
])
def test_config_errors_name_setting_range_value(setting, value, message):
    with pytest.raises(TokenizerConfigError, match=message):
        MelodyTokenizer(**{setting: value})


def test_json_round_trip_and_inequality():
    tokenizer = MelodyTokenizer(steps_per_quarter=3, pitch_low=40, pitch_high=90)
    assert tokenizer_from_dict(tokenizer.to_dict()) == tokenizer
    assert MelodyTokenizer(steps_per_quarter=4, pitch_low=40, pitch_high=90) != tokenizer


def test_stored_vocabulary_mismatch_is_rejected():
    data = MelodyTokenizer().to_dict()
    data["vocabulary"] = data["vocabulary"][:-1]
    with pytest.raises(TokenizerConfigError, match="does not match"):
        tokenizer_from_dict(data)


def test_pretty_midi_input_matches_file_input(tmp_path):
    midi = pretty_midi.PrettyMIDI(resolution=TPQ)
    instrument = pretty_midi.Instrument(0)
    for index, pitch in enumerate([60, 62, 64, 65]):
        instrument.notes.append(pretty_midi.Note(90, pitch, index * 0.5, index * 0.5 + 0.25))
    midi.instruments.append(instrument)
    path = tmp_path / "four.mid"
    midi.write(str(path))
    tokenizer = MelodyTokenizer()
    assert tokenizer.encode(midi) == tokenizer.encode(path)
    assert tokenizer.encode(score_from_pretty_midi(midi)) == tokenizer.encode(path)


def _source_notes(tokenizer: MelodyTokenizer, path) -> list[tuple[int, float, float]]:
    """Notes of a file as (pitch, onset, end) in grid steps, not rounded."""
    score = read_score(path)
    per_step = score.ticks_per_quarter / tokenizer.steps_per_quarter
    notes = sorted(score.pitched_notes, key=lambda n: n.start_tick)
    return [(n.pitch, n.start_tick / per_step, n.end_tick / per_step) for n in notes]


BACH_FILES = sorted(BACH_MELODIES.glob("*.mid"))


@pytest.mark.parametrize("path", BACH_FILES, ids=lambda path: path.name)
def test_round_trip_bach_melodies(path, tmp_path):
    tokenizer = MelodyTokenizer()
    ids = tokenizer.encode(path)
    source = _source_notes(tokenizer, path)
    decoded = tokenizer.decode_notes(ids)
    if all(start.is_integer() and end.is_integer() for _, start, end in source):
        # On the grid, every note comes back with the same pitch, onset step and length.
        assert decoded == [(pitch, int(start), int(end)) for pitch, start, end in source]
    else:
        # A few chorales have 32nd notes. Rounding moves an onset by at most half a step, and when
        # two 32nds land on one step the higher one takes it, which delays the other by one step.
        onsets = {(pitch, start) for pitch, start, _ in source}
        for pitch, start, _ in decoded:
            assert any(p == pitch and abs(s - start) <= 1 for p, s in onsets), (pitch, start)
    # Writing the decoded melody and reading it back gives the same tokens.
    written = tmp_path / "again.mid"
    tokenizer.decode(ids, tempo=97).write(str(written))
    assert tokenizer.encode(written) == ids


def test_bundled_melodies_exist():
    assert len(BACH_FILES) > 300
