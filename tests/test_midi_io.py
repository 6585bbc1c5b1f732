"""Tests of the lenient MIDI reader on edge-case files, hand-built bytes and mutated files."""

from __future__ import annotations

import random
import time
from pathlib import Path

import mido
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.midi_io import MidiReadError, ReadLimits, read_score, score_from_pretty_midi
from musicgen.score import KeySignature, Score, TimeSignature

TICKS_PER_QUARTER = 480

# Pitched-note count each edge file must give, or the start of the reason it must raise.
EDGE_CASES = {
    "running_status.mid": 16,
    "running_status_across_meta.mid": 8,
    "data_byte_over_127.mid": 8,
    "notes_outside_piano_range.mid": 9,
    "header_length_8.mid": 8,
    "missing_end_of_track.mid": 8,
    "trailing_garbage.mid": 8,
    "rmid_riff_wrapped.mid": 8,
    "not_really_midi.mid": "not a MIDI file: no MThd header",
    "uppercase_extension.MID": 8,
    "events_after_end_of_track.mid": 8,
    "key_signature_out_of_range.mid": 8,
    "sequence_number_zero_length.mid": 8,
    "time_signature_huge_denominator.mid": 8,
    "time_signature_zero.mid": 8,
    "latin1_track_name.mid": 8,
    "sysex_and_escape_packets.mid": 8,
    "tempo_on_non_zero_track.mid": 8,
    "high_resolution_ppq.mid": 41,
    "note_on_velocity_zero_only.mid": 8,
    "overlapping_same_pitch.mid": 8,
    "unterminated_notes.mid": 4,
    "drums_only.mid": 0,
    "no_notes.mid": 0,
    "control_change_only.mid": 0,
    "shared_channel_program.mid": 12,
    "type0_many_channels.mid": 16,
}

# Edge files that read without error, used as seeds of the mutation test.
FUZZ_SEEDS = [
    "running_status.mid",
    "running_status_across_meta.mid",
    "sysex_and_escape_packets.mid",
    "type0_many_channels.mid",
    "shared_channel_program.mid",
    "tempo_on_non_zero_track.mid",
    "rmid_riff_wrapped.mid",
    "header_length_8.mid",
]


# --- Builders of Standard MIDI File bytes ---------------------------------------------


def variable_length(value: int) -> bytes:
    """Encode `value` as an SMF variable-length quantity, 7 bits per byte, high byte first."""
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(groups))


def event(delta: int, *message: int) -> bytes:
    return variable_length(delta) + bytes(message)


def meta(delta: int, meta_type: int, payload: bytes) -> bytes:
    return variable_length(delta) + bytes([0xFF, meta_type]) + variable_length(len(payload)) + payload


def end_of_track(delta: int = 0) -> bytes:
    return meta(delta, 0x2F, b"")


def tempo(delta: int, us_per_quarter: int) -> bytes:
    return meta(delta, 0x51, us_per_quarter.to_bytes(3, "big"))


def scale_notes(count: int, length: int = TICKS_PER_QUARTER, channel: int = 0, first_pitch: int = 60) -> bytes:
    """Return events of `count` consecutive notes of `length` ticks each, rising by semitones over two octaves."""
    events = b""
    for index in range(count):
        pitch = first_pitch + index % 24
        events += event(0, 0x90 | channel, pitch, 80) + event(length, 0x80 | channel, pitch, 64)
    return events


def chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + len(body).to_bytes(4, "big") + body


def smf(tracks: list[bytes], division: int = TICKS_PER_QUARTER, midi_format: int = 1) -> bytes:
    """Build a Standard MIDI File from track bodies (event bytes without the MTrk header)."""
    header = midi_format.to_bytes(2, "big") + len(tracks).to_bytes(2, "big") + division.to_bytes(2, "big")
    return chunk(b"MThd", header) + b"".join(chunk(b"MTrk", body) for body in tracks)


def assert_notes_valid(score: Score) -> None:
    for note in score.notes:
        assert note.end_tick > note.start_tick
        assert 0 <= note.pitch <= 127
        assert 1 <= note.velocity <= 127
        assert 0 <= note.channel <= 15
        assert 0 <= note.program <= 127


# --- Edge-case files ------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", list(EDGE_CASES.items()), ids=list(EDGE_CASES))
def test_edge_file_read(edge_dir: Path, name: str, expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(MidiReadError, match=expected):
            read_score(edge_dir / name)
        return
    score = read_score(edge_dir / name)
    assert len(score.pitched_notes) == expected
    assert_notes_valid(score)


def test_edge_table_covers_folder(edge_dir: Path) -> None:
    midi_names = {path.name for path in edge_dir.iterdir() if path.suffix.lower() == ".mid"}
    assert midi_names == set(EDGE_CASES)


def test_not_midi_reason_names_no_file(edge_dir: Path) -> None:
    with pytest.raises(MidiReadError) as caught:
        read_score(edge_dir / "not_really_midi.mid")
    assert caught.value.reason == "not a MIDI file: no MThd header"
    assert str(caught.value) == caught.value.reason


def test_drums_only_keeps_drum_notes(edge_dir: Path) -> None:
    score = read_score(edge_dir / "drums_only.mid")
    assert len(score.notes) == 24
    assert all(note.is_drum for note in score.notes)


def test_type0_splits_channels(edge_dir: Path) -> None:
    score = read_score(edge_dir / "type0_many_channels.mid")
    drums = [note for note in score.notes if note.is_drum]
    assert len(score.pitched_notes) == 16
    assert len(drums) == 4
    assert {note.channel for note in score.pitched_notes} == {0, 1}
    assert {note.program for note in score.pitched_notes if note.channel == 1} == {33}
    assert {note.program for note in score.pitched_notes if note.channel == 0} == {0}


def test_tempo_from_melody_track(edge_dir: Path) -> None:
    score = read_score(edge_dir / "tempo_on_non_zero_track.mid")
    durations = [
        score.tick_to_seconds(note.end_tick) - score.tick_to_seconds(note.start_tick) for note in score.notes
    ]
    assert durations[:4] == pytest.approx([0.5] * 4)
    assert durations[4:] == pytest.approx([1.0] * 4)


def test_overlapping_same_pitch_first_in_first_out(edge_dir: Path) -> None:
    score = read_score(edge_dir / "overlapping_same_pitch.mid")
    assert len(score.notes) == 8
    assert all(note.end_tick > note.start_tick for note in score.notes)
    middle_c = [(note.start_tick, note.end_tick) for note in score.notes if note.pitch == 60]
    # On at beat 0 and beat 0.5, off at beat 1 and beat 1.5, with 480 ticks per beat.
    assert middle_c == [(0, 480), (240, 720)]


def test_shared_channel_program_from_other_track(edge_dir: Path) -> None:
    score = read_score(edge_dir / "shared_channel_program.mid")
    second_track = [note for note in score.notes if note.track == 2]
    assert second_track
    assert {note.program for note in second_track} == {40}


def test_velocity_zero_notes_last_one_beat(edge_dir: Path) -> None:
    score = read_score(edge_dir / "note_on_velocity_zero_only.mid")
    assert len(score.notes) == 8
    assert {note.end_tick - note.start_tick for note in score.notes} == {score.ticks_per_quarter}


def test_high_resolution_file_keeps_ticks(edge_dir: Path) -> None:
    score = read_score(edge_dir / "high_resolution_ppq.mid")
    assert score.ticks_per_quarter == 32767
    assert len(score.notes) == 41
    assert score.end_tick > 10_000_000


def test_unterminated_notes_closed_at_track_end(edge_dir: Path) -> None:
    score = read_score(edge_dir / "unterminated_notes.mid")
    # Two closed notes of one beat, then two hanging notes closed one bar after the last onset.
    last_onset = 3 * TICKS_PER_QUARTER
    assert [note.end_tick for note in score.notes[2:]] == [last_onset + 4 * TICKS_PER_QUARTER] * 2
    assert any("closed 2 notes" in warning for warning in score.warnings)


def test_events_after_end_of_track_read(edge_dir: Path) -> None:
    score = read_score(edge_dir / "events_after_end_of_track.mid")
    assert len(score.notes) == 8
    assert any("after its end-of-track" in warning for warning in score.warnings)


def test_invalid_time_signatures_ignored(edge_dir: Path) -> None:
    zero = read_score(edge_dir / "time_signature_zero.mid")
    huge = read_score(edge_dir / "time_signature_huge_denominator.mid")
    assert zero.time_signatures == [TimeSignature(0, 4, 4)]
    assert huge.time_signatures == []
    assert huge.first_time_signature() == TimeSignature(0, 4, 4)
    assert zero.warnings
    assert huge.warnings


def test_key_signature_out_of_range_ignored(edge_dir: Path) -> None:
    score = read_score(edge_dir / "key_signature_out_of_range.mid")
    assert score.key_signatures == []
    assert score.warnings == ["ignored invalid key signature of 18 flats, mode 1 at tick 0 of track 0"]


def test_clipped_data_byte_warned(edge_dir: Path) -> None:
    score = read_score(edge_dir / "data_byte_over_127.mid")
    assert any("clipped" in warning for warning in score.warnings)


def test_bytes_source_same_as_path(edge_dir: Path) -> None:
    path = edge_dir / "shared_channel_program.mid"
    assert read_score(path.read_bytes()) == read_score(path)
    assert read_score(str(path)) == read_score(path)


# --- Hand-built files -----------------------------------------------------------------


def test_smpte_division_keeps_seconds() -> None:
    # 25 frames per second x 40 ticks per frame = 1000 ticks per second.
    division = ((256 - 25) << 8) | 40
    data = smf([tempo(0, 250_000) + scale_notes(2, length=1000) + end_of_track()], division=division)
    score = read_score(data)
    assert score.ticks_per_quarter == 500
    assert [(change.tick, change.us_per_quarter) for change in score.tempos] == [(0, 500_000)]
    assert score.tick_to_seconds(score.notes[1].end_tick) == pytest.approx(2.0)
    assert any("SMPTE" in warning for warning in score.warnings)


def test_smpte_drop_frame_keeps_seconds() -> None:
    # 29.97 frames per second x 40 ticks per frame = 1198.8 ticks per second.
    division = ((256 - 29) << 8) | 40
    score = read_score(smf([scale_notes(1, length=1199) + end_of_track()], division=division))
    assert score.ticks_per_quarter == 599
    assert score.tick_to_seconds(1199) == pytest.approx(1199 / (30 * 40 * 1000 / 1001), rel=1e-5)


def test_invalid_smpte_rate_raises() -> None:
    division = ((256 - 23) << 8) | 40
    with pytest.raises(MidiReadError, match="invalid MThd header: SMPTE"):
        read_score(smf([scale_notes(1)], division=division))


def test_division_zero_raises() -> None:
    with pytest.raises(MidiReadError, match="time division 0"):
        read_score(smf([scale_notes(1)], division=0))


def test_truncated_track_keeps_notes_read() -> None:
    data = smf([scale_notes(8) + end_of_track()])
    # Each note takes 9 bytes (4 for the on, 5 for the off with its 2-byte delta time),
    # so cutting 3 bytes into the fifth note leaves 4 whole notes.
    header_bytes = 14 + 8
    score = read_score(data[: header_bytes + 4 * 9 + 3])
    assert len(score.notes) == 4
    assert any("truncated track 0" in warning for warning in score.warnings)


def test_truncated_header_raises() -> None:
    data = smf([scale_notes(2)])
    with pytest.raises(MidiReadError, match="invalid MThd header"):
        read_score(data[:10])


def test_header_without_tracks_raises() -> None:
    with pytest.raises(MidiReadError, match="no MTrk chunk"):
        read_score(smf([])[:14])


def test_huge_delta_stops_track_at_quarter_cap() -> None:
    largest_delta = event(0x0FFFFFFF, 0xB0, 7, 100)  # the largest 4-byte delta time
    data = smf([scale_notes(4) + largest_delta * 10_000 + end_of_track()])
    started = time.monotonic()
    score = read_score(data)
    assert [note.pitch for note in score.notes] == [60, 61, 62, 63]
    assert "track 0: skipped events from quarter note 559244 on, past the limit of 200000" in score.warnings
    assert time.monotonic() - started < 1.0


def test_event_cap_raises() -> None:
    data = smf([scale_notes(200) + end_of_track()])
    with pytest.raises(MidiReadError, match="too many events"):
        read_score(data, ReadLimits(max_events=100))


def test_byte_cap_raises(tmp_path: Path) -> None:
    data = smf([scale_notes(20) + end_of_track()])
    path = tmp_path / "song.mid"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(MidiReadError, match="file is too large"):
            read_score(source, ReadLimits(max_bytes=100))


def test_time_cap_raises() -> None:
    data = smf([scale_notes(5000) + end_of_track()])
    with pytest.raises(MidiReadError, match="timed out"):
        read_score(data, ReadLimits(max_seconds=0.0))


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(MidiReadError, match="cannot read file"):
        read_score(tmp_path / "absent.mid")


def test_source_of_wrong_type_raises() -> None:
    with pytest.raises(TypeError, match="path or bytes"):
        read_score(3)  # type: ignore[arg-type]


def test_folder_path_raises(tmp_path: Path) -> None:
    with pytest.raises(MidiReadError, match="cannot read file"):
        read_score(tmp_path)


def test_running_status_across_sysex() -> None:
    sysex = event(0, 0xF0, 3, 0x7E, 0x7F, 0xF7)
    track = event(0, 0x90, 60, 80) + sysex + event(480, 60, 0) + event(0, 62, 80) + event(480, 62, 0)
    score = read_score(smf([track + end_of_track()]))
    assert [(note.pitch, note.start_tick, note.end_tick) for note in score.notes] == [(60, 0, 480), (62, 480, 960)]


def test_data_byte_without_status_stops_track() -> None:
    track = event(0, 60, 80) + scale_notes(2)
    score = read_score(smf([track + end_of_track(), scale_notes(3) + end_of_track()]))
    assert len(score.notes) == 3
    assert all(note.track == 1 for note in score.notes)
    assert any("without a status byte" in warning for warning in score.warnings)


def test_zero_length_note_dropped() -> None:
    track = event(0, 0x90, 60, 80) + event(0, 0x80, 60, 0) + scale_notes(1, first_pitch=62)
    score = read_score(smf([track + end_of_track()]))
    assert [note.pitch for note in score.notes] == [62]
    assert any("zero length" in warning for warning in score.warnings)


def test_note_off_without_note_ignored() -> None:
    track = event(0, 0x80, 64, 0) + scale_notes(1)
    score = read_score(smf([track + end_of_track()]))
    assert [(note.pitch, note.start_tick, note.end_tick) for note in score.notes] == [(60, 0, 480)]


def test_program_change_applies_from_its_tick() -> None:
    track = event(0, 0xC0, 40) + scale_notes(1) + event(0, 0xC0, 73) + scale_notes(1, first_pitch=62)
    score = read_score(smf([track + end_of_track()]))
    assert [note.program for note in score.notes] == [40, 73]


def test_valid_key_signature_recorded() -> None:
    conductor = meta(0, 0x59, bytes([0xFD, 1])) + meta(960, 0x59, bytes([2, 0])) + end_of_track()
    score = read_score(smf([conductor, scale_notes(1) + end_of_track()]))
    assert score.key_signatures == [KeySignature(0, -3, minor=True), KeySignature(960, 2, minor=False)]


def test_invalid_tempo_ignored() -> None:
    conductor = tempo(0, 0) + tempo(480, 999) + tempo(480, 1_000_000) + end_of_track()
    score = read_score(smf([conductor, scale_notes(1) + end_of_track()]))
    assert [(change.tick, change.us_per_quarter) for change in score.tempos] == [(960, 1_000_000)]
    assert any("invalid tempo of 0" in warning and "1 more" in warning for warning in score.warnings)


def test_bytes_before_header_skipped() -> None:
    data = bytes(128) + smf([scale_notes(2) + end_of_track()])
    score = read_score(data)
    assert len(score.notes) == 2
    assert "skipped 128 bytes before the MThd header" in score.warnings


def test_riff_without_data_chunk_raises() -> None:
    riff = b"RIFF" + (12).to_bytes(4, "little") + b"RMID" + b"LIST" + (0).to_bytes(4, "little")
    with pytest.raises(MidiReadError, match="without a 'data' chunk"):
        read_score(riff)


def test_unknown_chunk_skipped() -> None:
    data = smf([scale_notes(2) + end_of_track()])
    data = data[:14] + chunk(b"XFIH", b"\x01\x02\x03") + data[14:]
    assert len(read_score(data).notes) == 2


def test_format_2_tracks_start_at_zero() -> None:
    score = read_score(smf([scale_notes(2), scale_notes(2)], midi_format=2))
    assert [note.start_tick for note in score.notes] == [0, 0, 480, 480]
    assert any("format 2" in warning for warning in score.warnings)


def test_track_count_mismatch_warned() -> None:
    data = bytearray(smf([scale_notes(1) + end_of_track()]))
    data[11] = 3  # the header now declares 3 tracks
    score = read_score(bytes(data))
    assert len(score.notes) == 1
    assert any("declares 3 tracks, found 1" in warning for warning in score.warnings)


def test_repeated_warnings_grouped() -> None:
    track = b"".join(event(0, 0xB0, 7, 0xFF) for _ in range(50)) + scale_notes(1)
    score = read_score(smf([track + end_of_track()]))
    clipped = [warning for warning in score.warnings if "clipped" in warning]
    assert clipped == ["track 0: clipped data byte 0xFF to 127 (and 49 more like it)"]


# --- Agreement with pretty_midi on ordinary files -------------------------------------


def note_set(score: Score) -> list[tuple[int, int, int, bool, int]]:
    return sorted((note.pitch, note.start_tick, note.end_tick, note.is_drum, note.program) for note in score.notes)


def pretty_midi_note_set(pm: pretty_midi.PrettyMIDI) -> list[tuple[int, int, int, bool, int]]:
    return sorted(
        (note.pitch, pm.time_to_tick(note.start), pm.time_to_tick(note.end), instrument.is_drum, instrument.program)
        for instrument in pm.instruments
        for note in instrument.notes
    )


def write_band_with_pretty_midi(path: Path) -> None:
    pm = pretty_midi.PrettyMIDI(resolution=384, initial_tempo=96.0)
    parts = [(0, False, 60), (33, False, 36), (73, False, 72), (0, True, 36)]
    for program, is_drum, low in parts:
        instrument = pretty_midi.Instrument(program=program, is_drum=is_drum)
        for step in range(16):
            start = step * 0.3125
            pitch = low + (step * 5) % 12
            instrument.notes.append(pretty_midi.Note(velocity=70 + step, pitch=pitch, start=start, end=start + 0.25))
        pm.instruments.append(instrument)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0.0))
    pm.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number("E minor"), 0.0))
    pm.write(str(path))


def write_tempo_changes_with_mido(path: Path) -> None:
    """Write a format 1 file whose conductor track changes tempo twice."""
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("set_tempo", tempo=500_000, time=0),
            mido.MetaMessage("set_tempo", tempo=750_000, time=960),
            mido.MetaMessage("set_tempo", tempo=400_000, time=960),
        ]
    )
    melody = mido.MidiTrack([mido.Message("program_change", program=24, channel=2, time=0)])
    for index in range(12):
        melody.append(mido.Message("note_on", note=60 + index, velocity=90, channel=2, time=0 if index == 0 else 120))
        melody.append(mido.Message("note_off", note=60 + index, velocity=0, channel=2, time=360))
    drums = mido.MidiTrack()
    for index in range(8):
        drums.append(mido.Message("note_on", note=42, velocity=100, channel=9, time=0 if index == 0 else 360))
        drums.append(mido.Message("note_on", note=42, velocity=0, channel=9, time=120))
    midi_file = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    midi_file.tracks.extend([conductor, melody, drums])
    midi_file.save(str(path))


def test_pretty_midi_file_agrees(tmp_path: Path) -> None:
    path = tmp_path / "band.mid"
    write_band_with_pretty_midi(path)
    pm = pretty_midi.PrettyMIDI(str(path))
    score = read_score(path)
    assert score.ticks_per_quarter == 384
    assert note_set(score) == pretty_midi_note_set(pm)
    assert note_set(score_from_pretty_midi(pm)) == note_set(score)
    assert score.time_signatures == [TimeSignature(0, 3, 4)]
    assert score.key_signatures == [KeySignature(0, 1, minor=True)]
    assert score_from_pretty_midi(pm).key_signatures == score.key_signatures
    assert score.first_tempo().bpm == pytest.approx(96.0, rel=1e-5)


def test_pretty_midi_channels_agree(tmp_path: Path) -> None:
    path = tmp_path / "band.mid"
    write_band_with_pretty_midi(path)
    pm = pretty_midi.PrettyMIDI(str(path))

    def channels(score: Score) -> list[tuple[int, int, int]]:
        return sorted((note.start_tick, note.pitch, note.channel) for note in score.notes)

    assert channels(score_from_pretty_midi(pm)) == channels(read_score(path))


@pytest.mark.parametrize(
    "name",
    [
        "uppercase_extension.MID",
        "missing_end_of_track.mid",
        "note_on_velocity_zero_only.mid",
        "type0_many_channels.mid",
        "drums_only.mid",
        "running_status.mid",
    ],
)
def test_edge_file_agrees_with_pretty_midi(edge_dir: Path, name: str) -> None:
    pm = pretty_midi.PrettyMIDI(str(edge_dir / name))
    assert note_set(read_score(edge_dir / name)) == pretty_midi_note_set(pm)


@pytest.mark.parametrize(
    "key_name, sharps_flats",
    [("C major", 0), ("G major", 1), ("F# major", 6), ("Db major", -5), ("A minor", 0), ("C minor", -3)],
)
def test_pretty_midi_key_signature(key_name: str, sharps_flats: int) -> None:
    pm = pretty_midi.PrettyMIDI()
    pm.key_signature_changes.append(pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(key_name), 0.0))
    score = score_from_pretty_midi(pm)
    assert score.key_signatures == [KeySignature(0, sharps_flats, minor=key_name.endswith("minor"))]


def test_pretty_midi_in_memory_converted() -> None:
    pm = pretty_midi.PrettyMIDI(resolution=220, initial_tempo=100.0)
    piano = pretty_midi.Instrument(program=5)
    # At 100 BPM a quarter note lasts 0.6 s, which is 220 ticks.
    piano.notes.append(pretty_midi.Note(velocity=80, pitch=60, start=0.6, end=1.2))
    piano.notes.append(pretty_midi.Note(velocity=80, pitch=62, start=1.2, end=1.2))
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=90, pitch=36, start=0.0, end=0.3))
    pm.instruments.extend([piano, drums])
    score = score_from_pretty_midi(pm)
    assert [(note.pitch, note.start_tick, note.end_tick, note.channel, note.program) for note in score.notes] == [
        (36, 0, 110, 9, 0),
        (60, 220, 440, 0, 5),
    ]
    assert all(type(note.start_tick) is int for note in score.notes)
    assert [(change.tick, change.us_per_quarter) for change in score.tempos] == [(0, 600_000)]
    assert score.warnings == ["dropped 1 note of zero length"]


def test_tempo_changes_agree(tmp_path: Path) -> None:
    path = tmp_path / "tempo.mid"
    write_tempo_changes_with_mido(path)
    pm = pretty_midi.PrettyMIDI(str(path))
    score = read_score(path)
    assert note_set(score) == pretty_midi_note_set(pm)
    assert [(change.tick, change.us_per_quarter) for change in score.tempos] == [
        (0, 500_000),
        (960, 750_000),
        (1920, 400_000),
    ]
    expected_starts = sorted(note.start for instrument in pm.instruments for note in instrument.notes)
    starts = sorted(score.tick_to_seconds(note.start_tick) for note in score.notes)
    assert starts == pytest.approx(expected_starts, abs=1e-6)
    from_pm = score_from_pretty_midi(pm)
    assert [(change.tick, change.us_per_quarter) for change in from_pm.tempos] == [
        (change.tick, change.us_per_quarter) for change in score.tempos
    ]


# --- Mutated and random files ---------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Damage `data` by bit flips, truncation, inserted random bytes or an overwritten span."""
    mutated = bytearray(data)
    choice = rng.randrange(4)
    if choice == 0:
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(mutated))
            mutated[position] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del mutated[rng.randrange(len(mutated)) :]
    elif choice == 2:
        position = rng.randrange(len(mutated) + 1)
        mutated[position:position] = rng.randbytes(rng.randint(1, 16))
    else:
        position = rng.randrange(len(mutated))
        span = rng.randint(1, 8)
        mutated[position : position + span] = rng.randbytes(span)
    return bytes(mutated)


def test_mutated_files_read_or_raise(edge_dir: Path) -> None:
    rng = random.Random(20240521)
    seeds = [(edge_dir / name).read_bytes() for name in FUZZ_SEEDS]
    limits = ReadLimits(max_seconds=5.0)
    outcomes = {"read": 0, "raised": 0}
    started = time.monotonic()
    for _ in range(2000):
        data = mutate(rng.choice(seeds), rng)
        try:
            score = read_score(data, limits)
        except MidiReadError as error:
            assert error.reason
            assert "\n" not in error.reason
            outcomes["raised"] += 1
            continue
        assert_notes_valid(score)
        outcomes["read"] += 1
    assert outcomes["read"] > 0
    assert outcomes["raised"] > 0
    assert time.monotonic() - started < 20.0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=2))
def test_random_track_bytes_read_or_raise(body: bytes, midi_format: int) -> None:
    data = smf([body], midi_format=midi_format)
    try:
        score = read_score(data, ReadLimits(max_seconds=5.0))
    except MidiReadError as error:
        assert error.reason
        return
    assert_notes_valid(score)
