"""The event tokenizer: vocabulary, hand-made cases, round-trip properties of both tokenizers, edge files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.midi_io import MidiReadError, read_score
from musicgen.score import Note, Score
from musicgen.seed import parse_seed
from musicgen.tokenizer import (
    EventTokenizer,
    MelodyTokenizer,
    NoNotesError,
    TokenizerConfigError,
    load_tokenizer,
    tokenizer_from_dict,
)
from tests.conftest import MIDI_DATA
from tests.test_midi_io import EDGE_CASES

TPQ = 480
STEP = TPQ // 12  # one step of the event tokenizer's default 12 steps per quarter note


def note(pitch: int, start: int, steps: int, velocity: int = 80, program: int = 0, channel: int = 0) -> Note:
    """A note starting at step `start` of the default event grid and lasting `steps` steps."""
    return Note(pitch, velocity, start * STEP, (start + steps) * STEP, channel=channel, program=program)


def names(tokenizer: EventTokenizer, notes: list[Note]) -> list[str]:
    ids, _ = tokenizer.encode_notes(notes, TPQ)
    return tokenizer.token_names(ids)


# --- vocabulary and config ----------------------------------------------------------------


def test_vocabulary_layout_matches_docstring():
    tokenizer = EventTokenizer(pitch_low=60, pitch_high=71, max_shift_steps=4, velocity_bins=2)
    assert tokenizer.vocabulary == [
        "PAD", "BOS", "EOS",
        *(f"NOTE_ON_{pitch}" for pitch in range(60, 72)),
        *(f"NOTE_OFF_{pitch}" for pitch in range(60, 72)),
        "TIME_SHIFT_1", "TIME_SHIFT_2", "TIME_SHIFT_3", "TIME_SHIFT_4",
        "VELOCITY_32", "VELOCITY_96",
    ]


def test_default_vocabulary_size():
    # 3 special + 88 NOTE_ON + 88 NOTE_OFF + 48 TIME_SHIFT + 32 VELOCITY
    assert EventTokenizer().vocab_size == 259


def test_program_and_key_tokens_come_last():
    tokenizer = EventTokenizer(program_tokens=True, key_tokens=True)
    assert tokenizer.vocab_size == 259 + 128 + 24
    assert tokenizer.vocabulary[259] == "PROGRAM_0"
    assert tokenizer.vocabulary[-24:][0] == "KEY_C_major"
    assert tokenizer.vocabulary[-1] == "KEY_B_minor"


def test_velocity_bins_of_127_are_exact():
    tokenizer = EventTokenizer(velocity_bins=127)
    assert tokenizer.bin_velocities == list(range(1, 128))


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("steps_per_quarter", 0, r"`steps_per_quarter` must be in 1\.\.96 \(received 0\)"),
    ("max_shift_steps", 2000, r"`max_shift_steps` must be in 1\.\.1024 \(received 2000\)"),
    ("pitch_low", 120, r"`pitch_low` must be in 0\.\.116 \(received 120\)"),
    ("pitch_high", 30, r"`pitch_high` must be in 32\.\.127 \(received 30\)"),
    ("velocity_bins", 128, r"`velocity_bins` must be in 0\.\.127 \(received 128\)"),
    ("velocity_bins", 2.5, r"`velocity_bins` must be an integer in 0\.\.127 \(received 2\.5\)"),
    ("program_tokens", "yes", r"`program_tokens` must be true or false \(received 'yes'\)"),
    ("key_tokens", 1, r"`key_tokens` must be true or false \(received 1\)"),
])
def test_config_errors_name_setting_range_value(setting, value, message):
    with pytest.raises(TokenizerConfigError, match=message):
        EventTokenizer(**{setting: value})


def test_json_save_load_round_trip(tmp_path):
    tokenizer = EventTokenizer(steps_per_quarter=8, max_shift_steps=16, velocity_bins=8, program_tokens=True)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert load_tokenizer(path) == tokenizer
    assert EventTokenizer(steps_per_quarter=8, max_shift_steps=16, velocity_bins=8) != tokenizer


def test_unknown_config_entry_rejected():
    data = EventTokenizer().to_dict()
    data["config"]["swing"] = 0.5
    with pytest.raises(TokenizerConfigError, match="invalid event tokenizer config"):
        tokenizer_from_dict(data)


# --- hand-made encodings -----------------------------------------------------------------


def test_chord_then_rest_then_note():
    tokenizer = EventTokenizer()
    # A C major triad for a quarter note (12 steps), an eighth rest (6 steps), then E4 for a 16th (3 steps).
    chord = [note(60, 0, 12), note(64, 0, 12), note(67, 0, 12)]
    assert names(tokenizer, [*chord, note(64, 18, 3)]) == [
        "VELOCITY_78", "NOTE_ON_60", "NOTE_ON_64", "NOTE_ON_67", "TIME_SHIFT_12",
        "NOTE_OFF_60", "NOTE_OFF_64", "NOTE_OFF_67", "TIME_SHIFT_6", "NOTE_ON_64", "TIME_SHIFT_3", "NOTE_OFF_64",
    ]


def test_long_gap_uses_several_shifts():
    tokenizer = EventTokenizer(max_shift_steps=48)
    # A rest of 100 steps between the notes: 48 + 48 + 4.
    tokens = names(tokenizer, [note(60, 0, 1), note(62, 101, 1)])
    assert tokens[:4] == ["VELOCITY_78", "NOTE_ON_60", "TIME_SHIFT_1", "NOTE_OFF_60"]
    assert tokens[4:7] == ["TIME_SHIFT_48", "TIME_SHIFT_48", "TIME_SHIFT_4"]


def test_restrike_puts_off_before_on():
    tokenizer = EventTokenizer(velocity_bins=0)
    tokens = names(tokenizer, [note(60, 0, 3), note(60, 3, 3)])
    assert tokens == ["NOTE_ON_60", "TIME_SHIFT_3", "NOTE_OFF_60", "NOTE_ON_60", "TIME_SHIFT_3", "NOTE_OFF_60"]
    assert tokenizer.decode_notes(tokenizer.encode_notes([note(60, 0, 3), note(60, 3, 3)], TPQ)[0]) == [(60, 0, 3), (60, 3, 6)]


def test_velocity_token_only_on_change():
    tokenizer = EventTokenizer(velocity_bins=127)
    tokens = names(tokenizer, [note(60, 0, 1, velocity=50), note(62, 1, 1, velocity=50), note(64, 2, 1, velocity=90)])
    assert [token for token in tokens if token.startswith("VELOCITY")] == ["VELOCITY_50", "VELOCITY_90"]


def test_program_tokens_switch_between_instruments():
    tokenizer = EventTokenizer(velocity_bins=0, program_tokens=True)
    tokens = names(tokenizer, [note(60, 0, 2, program=0), note(48, 0, 2, program=33)])
    assert tokens == ["PROGRAM_0", "NOTE_ON_60", "PROGRAM_33", "NOTE_ON_48", "TIME_SHIFT_2",
                      "PROGRAM_0", "NOTE_OFF_60", "PROGRAM_33", "NOTE_OFF_48"]
    notes = tokenizer.decode_events([tokenizer.token_id(token) for token in tokens])
    assert {(decoded.pitch, decoded.program) for decoded in notes} == {(60, 0), (48, 33)}


def test_drums_left_out_and_counted():
    tokenizer = EventTokenizer()
    ids, stats = tokenizer.encode_notes([note(36, 0, 2, channel=9), note(62, 0, 2)], TPQ)
    assert tokenizer.token_names(ids) == ["VELOCITY_78", "NOTE_ON_62", "TIME_SHIFT_2", "NOTE_OFF_62"]
    assert stats.drum_notes == 1


@pytest.mark.parametrize(("notes", "reason"), [([], "no notes"), ([note(36, 0, 4, channel=9)], "drums only")])
def test_no_notes_reasons(notes, reason):
    with pytest.raises(NoNotesError, match=reason):
        EventTokenizer().encode(Score(TPQ, notes))


def test_out_of_range_pitches_fold_by_octaves():
    tokenizer = EventTokenizer(velocity_bins=0)
    ids, stats = tokenizer.encode_notes([note(12, 0, 1), note(120, 1, 1)], TPQ)
    # 12 + 1 octave = 24 (A0 is 21); 120 - 1 octave = 108 (C8).
    assert [pitch for pitch, _, _ in tokenizer.decode_notes(ids)] == [24, 108]
    assert stats.folded_notes == 2


def test_short_note_gets_one_step():
    tokenizer = EventTokenizer(velocity_bins=0)
    ids, stats = tokenizer.encode_notes([Note(60, 80, 0, 10)], TPQ)  # 10 ticks, a quarter of a step
    assert tokenizer.decode_notes(ids) == [(60, 0, 1)]
    assert stats.lengthened_notes == 1


def test_nested_same_pitch_notes_swap_ends():
    # Pairing is first-in-first-out, so a note inside a longer one of the same pitch comes back
    # with the ends swapped. The onsets and the ends, as sets, are kept.
    tokenizer = EventTokenizer(velocity_bins=0)
    ids, _ = tokenizer.encode_notes([note(60, 0, 10), note(60, 3, 2)], TPQ)
    assert tokenizer.decode_notes(ids) == [(60, 0, 5), (60, 3, 10)]


def test_decode_skips_orphan_off_and_closes_open_notes():
    tokenizer = EventTokenizer(velocity_bins=0)
    tokens = ["BOS", "NOTE_OFF_62", "NOTE_ON_60", "TIME_SHIFT_5", "NOTE_ON_64", "EOS", "NOTE_ON_67"]
    decoded = tokenizer.decode_notes([tokenizer.token_id(token) for token in tokens])
    assert decoded == [(60, 0, 5), (64, 5, 6)]


def test_decode_to_pretty_midi_seconds():
    tokenizer = EventTokenizer(velocity_bins=127)
    ids = tokenizer.encode(Score(TPQ, [note(60, 0, 12, velocity=100), note(64, 6, 6, velocity=40)]))
    midi = tokenizer.decode(ids, tempo=120)
    # At 120 BPM a quarter note (12 steps) lasts 0.5 s.
    decoded = sorted((n.pitch, round(n.start, 6), round(n.end, 6), n.velocity) for n in midi.instruments[0].notes)
    assert decoded == [(60, 0.0, 0.5, 100), (64, 0.25, 0.5, 40)]


def test_note_on_mask_and_pitch():
    tokenizer = EventTokenizer()
    ids = tokenizer.encode(Score(TPQ, [note(60, 0, 2), note(64, 0, 2)]))
    mask = tokenizer.note_on_mask(ids)
    assert mask.sum() == 2
    assert [tokenizer.pitch_of(token) for token, is_on in zip(ids, mask) if is_on] == [60, 64]
    assert not tokenizer.is_note_on(tokenizer.token_id("NOTE_OFF_60"))


def test_transposition_table_moves_notes_and_keys():
    tokenizer = EventTokenizer(key_tokens=True)
    table = tokenizer.transposition_table(3)
    assert tokenizer.vocabulary[table[tokenizer.token_id("NOTE_OFF_60")]] == "NOTE_OFF_63"
    assert tokenizer.vocabulary[table[tokenizer.token_id("KEY_A_minor")]] == "KEY_C_minor"
    assert table[tokenizer.token_id("NOTE_ON_107")] == -1
    assert table[tokenizer.token_id("TIME_SHIFT_5")] == tokenizer.token_id("TIME_SHIFT_5")


# --- round-trip properties of both tokenizers ---------------------------------------------

# Each note as (pitch, start step, length in steps, velocity, program); ticks get a jitter of
# less than half a step, which rounding must undo.
MAX_JITTER = STEP // 2 - 1


@st.composite
def monophonic_notes(draw, steps_per_quarter: int) -> list[tuple[int, int, int, int]]:
    """Notes one after another, with rests between some; as (pitch, start step, end step, velocity)."""
    count = draw(st.integers(1, 24))
    notes, time = [], draw(st.integers(0, 8))
    for _ in range(count):
        length = draw(st.integers(1, 4 * steps_per_quarter))
        notes.append((draw(st.integers(36, 96)), time, time + length, draw(st.integers(1, 127))))
        time += length + draw(st.integers(0, 2 * steps_per_quarter))
    return notes


@st.composite
def polyphonic_notes(draw) -> list[tuple[int, int, int, int, int]]:
    """Overlapping notes of up to 6 voices; notes of one pitch and program never overlap each other."""
    notes = []
    for _ in range(draw(st.integers(1, 6))):
        program = draw(st.sampled_from([0, 0, 33, 40]))
        time = draw(st.integers(0, 30))
        for _ in range(draw(st.integers(1, 10))):
            length = draw(st.integers(1, 60))
            notes.append((draw(st.integers(21, 108)), time, time + length, draw(st.integers(1, 127)), program))
            time += length + draw(st.integers(0, 20))
    # Drop a note that overlaps an earlier note of its pitch and program from another voice.
    kept: list[tuple[int, int, int, int, int]] = []
    for candidate in notes:
        pitch, start, end, _, program = candidate
        if all(not (p == pitch and prog == program and s < end and start < e) for p, s, e, _, prog in kept):
            kept.append(candidate)
    return kept


def jittered(notes, step_ticks: int, draw_jitter) -> list[Note]:
    return [Note(pitch, velocity, start * step_ticks + draw_jitter(), end * step_ticks + draw_jitter(), program=program)
            for pitch, start, end, velocity, program in notes]


@settings(max_examples=150, deadline=None)
@given(monophonic_notes(12), st.data())
def test_event_round_trip_monophonic(notes, data):
    tokenizer = EventTokenizer(velocity_bins=127)
    jitter = lambda: data.draw(st.integers(-MAX_JITTER, MAX_JITTER))  # noqa: E731
    source = jittered([(*item, 0) for item in notes], STEP, jitter)
    decoded = tokenizer.decode_events(tokenizer.encode(Score(TPQ, source)))
    assert [(n.pitch, n.start, n.end, n.velocity) for n in decoded] == notes


@settings(max_examples=150, deadline=None)
@given(polyphonic_notes(), st.integers(1, 127), st.data())
def test_event_round_trip_polyphonic(notes, bins, data):
    tokenizer = EventTokenizer(velocity_bins=bins, program_tokens=True)
    jitter = lambda: data.draw(st.integers(-MAX_JITTER, MAX_JITTER))  # noqa: E731
    decoded = tokenizer.decode_events(tokenizer.encode(Score(TPQ, jittered(notes, STEP, jitter))))
    assert sorted((n.pitch, n.start, n.end, n.program) for n in decoded) == sorted(
        (pitch, start, end, program) for pitch, start, end, _, program in notes)
    # Velocities come back within one bin width: 127 velocities share `bins` bins.
    width = -(-127 // bins)
    expected = sorted((pitch, start, program, velocity) for pitch, start, _, velocity, program in notes)
    for (pitch, start, program, velocity), got in zip(expected, sorted(decoded, key=lambda n: (n.pitch, n.start, n.program))):
        assert (got.pitch, got.start, got.program) == (pitch, start, program)
        assert abs(got.velocity - velocity) < width


@settings(max_examples=150, deadline=None)
@given(monophonic_notes(4), st.data())
def test_melody_round_trip_monophonic(notes, data):
    tokenizer = MelodyTokenizer()
    step_ticks = TPQ // 4
    jitter = lambda: data.draw(st.integers(-(step_ticks // 2 - 1), step_ticks // 2 - 1))  # noqa: E731
    source = jittered([(*item, 0) for item in notes], step_ticks, jitter)
    assert tokenizer.decode_notes(tokenizer.encode(Score(TPQ, source))) == [(p, s, e) for p, s, e, _ in notes]


def melody_rule(notes: list[tuple[int, int, int, int, int]]) -> list[tuple[int, int, int]]:
    """The highest sounding note at each step (the latest onset among equal pitches), as runs of one note."""
    end = max(e for _, _, e, _, _ in notes)
    owners = []
    for step in range(end):
        sounding = [(pitch, start, index) for index, (pitch, start, e, _, _) in enumerate(notes) if start <= step < e]
        owners.append(max(sounding)[2] if sounding else None)
    runs = []
    for step, owner in enumerate(owners):
        if owner is None:
            continue
        if step > 0 and owners[step - 1] == owner:
            runs[-1][2] = step + 1
        else:
            runs.append([notes[owner][0], step, step + 1])
    return [tuple(run) for run in runs]


@settings(max_examples=150, deadline=None)
@given(polyphonic_notes())
def test_melody_round_trip_polyphonic_keeps_highest(notes):
    # At 12 steps per quarter note the steps of the generated notes are the tokenizer's steps.
    tokenizer = MelodyTokenizer(steps_per_quarter=12, pitch_low=21, pitch_high=108)
    source = [Note(pitch, velocity, start * STEP, end * STEP) for pitch, start, end, velocity, _ in notes]
    assert tokenizer.decode_notes(tokenizer.encode(Score(TPQ, source))) == melody_rule(notes)


# --- seeds -----------------------------------------------------------------------------


def test_text_seed_counts_sixteenth_notes():
    tokenizer = EventTokenizer(velocity_bins=0)
    seed = parse_seed("C4:4 R E4:2", tokenizer)
    # A 16th note is 3 steps at 12 steps per quarter note: C4 lasts 12 steps, the rest 3.
    assert tokenizer.token_names(seed.ids) == [
        "NOTE_ON_60", "TIME_SHIFT_12", "NOTE_OFF_60", "TIME_SHIFT_3", "NOTE_ON_64", "TIME_SHIFT_6", "NOTE_OFF_64",
    ]


def test_text_seed_of_rests_shifts_time():
    tokenizer = EventTokenizer()
    assert tokenizer.token_names(parse_seed("R R R R", tokenizer).ids) == ["TIME_SHIFT_12"]


def test_midi_seed_cut_at_bars():
    tokenizer = EventTokenizer()
    path = MIDI_DATA / "bach_chorales" / "bwv1.6.mid"
    seed = parse_seed(str(path), tokenizer, seed_bars=1)
    decoded = tokenizer.decode_notes(seed.ids)
    # The chorale opens with a quarter-note pickup written as a 1/4 bar, then is in 4/4.
    assert seed.time_signature == (4, 4)
    seed_steps = tokenizer.steps_per_bar(1, 4) + tokenizer.steps_per_bar(4, 4)
    assert decoded and max(end for _, _, end in decoded) <= seed_steps
    # Time runs on to the end of the bar, so a continuation starts on the bar line.
    assert tokenizer.time_steps(seed.ids) == seed_steps


def test_key_token_starts_encoded_piece():
    tokenizer = EventTokenizer(key_tokens=True)
    ids = tokenizer.encode(MIDI_DATA / "bach_chorales" / "bwv1.6.mid")
    assert tokenizer.vocabulary[ids[0]] == "BOS"
    assert tokenizer.key_of(ids[1]) in {"F major", "D minor"}


# --- edge files ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), sorted(EDGE_CASES.items()))
def test_edge_file_event_tokens(edge_dir: Path, name: str, expected: int | str):
    """Every edge file gives one NOTE_ON per pitched note its README states, or a skip with a reason."""
    tokenizer = EventTokenizer()
    path = edge_dir / name
    if isinstance(expected, str):
        with pytest.raises(MidiReadError, match=expected):
            read_score(path)
        return
    score = read_score(path)
    if expected == 0:
        with pytest.raises(NoNotesError) as raised:
            tokenizer.encode(score)
        assert raised.value.reason in ("no notes", "drums only")
        return
    ids, stats = tokenizer.encode_with_stats(score)
    assert int(tokenizer.note_on_mask(ids).sum()) == expected
    assert stats.notes == expected
    assert len(tokenizer.decode_notes(ids)) == expected
