"""musicgen stats on hand-built sets, whose every statistic is worked out by hand below."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pretty_midi
import pytest

from musicgen.cli import cli
from musicgen.stats import folder_stats, histogram_overlap, scale_consistency

from test_evaluate import one_line_error

# At 120 BPM a 16th-note step is 0.125 s.
STEP = 0.125


def write_melody(path: Path, notes: list[tuple[int, int, int]], signatures=((4, 4, 0),)) -> Path:
    """Write notes given as (pitch, start step, end step), with (numerator, denominator, start step) meters."""
    midi = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    midi.time_signature_changes = [pretty_midi.TimeSignature(n, d, step * STEP) for n, d, step in signatures]
    instrument = pretty_midi.Instrument(program=0)
    instrument.notes = [pretty_midi.Note(velocity=80, pitch=p, start=s * STEP, end=e * STEP) for p, s, e in notes]
    midi.instruments.append(instrument)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


@pytest.fixture
def hand_set(tmp_path) -> Path:
    """Two one-bar files in 4/4.

    one.mid: C4 quarter, C4 quarter, E4 half.
    two.mid: G4 quarter, a quarter rest, G4 quarter, F#4 eighth, F4 eighth.
    """
    folder = tmp_path / "set_a"
    write_melody(folder / "one.mid", [(60, 0, 4), (60, 4, 8), (64, 8, 16)])
    write_melody(folder / "two.mid", [(67, 0, 4), (67, 8, 12), (66, 12, 14), (65, 14, 16)])
    return folder


def test_hand_built_set(hand_set):
    stats = folder_stats(hand_set, show_progress=False)
    assert (stats.files, stats.notes, stats.skipped) == (2, 7, 0)
    assert (stats.lowest_pitch, stats.highest_pitch) == (60, 67)
    assert stats.mean_file_range == pytest.approx((4 + 2) / 2)
    assert stats.pitches_used == 5  # C4 E4 F4 F#4 G4
    assert stats.mean_file_pitches == pytest.approx((2 + 3) / 2)
    assert stats.pitch_classes_used == 5
    # one.mid: classes C 2, E 1 -> H(2/3, 1/3); two.mid: G 2, F# 1, F 1 -> H(1/2, 1/4, 1/4) = 1.5 bits.
    one_entropy = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert stats.pitch_class_entropy == pytest.approx((one_entropy + 1.5) / 2)
    # one.mid lies in C major; at most 3 of two.mid's 4 notes share a major scale (F# and F never do).
    assert stats.scale_consistency == pytest.approx((1.0 + 0.75) / 2)
    assert stats.notes_per_bar == pytest.approx(7 / 2)
    # 8 beats, and only the second beat of two.mid is silent.
    assert stats.empty_beat_rate == pytest.approx(1 / 8)
    assert stats.longest_repeat == 2
    assert stats.mean_longest_repeat == pytest.approx(2.0)
    expected_classes = {"C": 2 / 7, "E": 1 / 7, "F": 1 / 7, "F#": 1 / 7, "G": 2 / 7}
    assert {k: v for k, v in stats.pitch_class_histogram.items() if v} == pytest.approx(expected_classes)
    # Intervals: 0, +4 in one.mid; 0, -1, -1 in two.mid.
    assert {k: v for k, v in stats.interval_histogram.items() if v} == pytest.approx({"0": 2 / 5, "4": 1 / 5, "-1": 2 / 5})
    # Lengths in steps: 4, 4, 8 and 4, 4, 2, 2.
    assert {k: v for k, v in stats.duration_histogram.items() if v} == pytest.approx({"2": 2 / 7, "4": 4 / 7, "8": 1 / 7})


def test_pickup_bar_counts_as_a_bar(tmp_path):
    # A 1/4 pickup, then 4/4 for 2 bars: 3 bars and 9 quarter notes.
    notes = [(60, step, step + 4) for step in range(0, 36, 4)]
    folder = tmp_path / "pickup"
    write_melody(folder / "p.mid", notes, signatures=((1, 4, 0), (4, 4, 4)))
    stats = folder_stats(folder, show_progress=False)
    assert stats.notes_per_bar == pytest.approx(9 / 3)
    assert stats.longest_repeat == 9


def test_long_leaps_and_notes_go_to_end_bins(tmp_path):
    folder = tmp_path / "leaps"
    write_melody(folder / "l.mid", [(48, 0, 20), (72, 20, 21), (50, 21, 22)])
    stats = folder_stats(folder, show_progress=False)
    assert stats.interval_histogram[">=12"] == pytest.approx(0.5)
    assert stats.interval_histogram["<=-12"] == pytest.approx(0.5)
    assert stats.duration_histogram[">=16"] == pytest.approx(1 / 3)
    # 22 steps are 6 beats begun; the melody sounds in all of them.
    assert stats.empty_beat_rate == 0.0


def test_scale_consistency_of_chromatic_run():
    # A major scale contains 7 of the 12 pitch classes.
    assert scale_consistency(list(range(60, 72))) == pytest.approx(7 / 12)


def test_histogram_overlap():
    assert histogram_overlap({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == pytest.approx(1.0)
    assert histogram_overlap({"a": 1.0}, {"b": 1.0}) == 0.0
    assert histogram_overlap({"a": 0.25, "b": 0.75}, {"a": 0.5, "c": 0.5}) == pytest.approx(0.25)


def test_two_sets_json(runner, hand_set, tmp_path):
    write_melody(tmp_path / "set_b" / "one.mid", [(60, 0, 4), (60, 4, 8), (64, 8, 16)])
    result = runner.invoke(cli, ["stats", "--json", "--no-progress", str(hand_set), str(tmp_path / "set_b")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [item["files"] for item in report["sets"]] == [2, 1]
    # Set A has C 2/7 and E 1/7; set B has C 2/3 and E 1/3.
    assert report["overlap"]["pitch_class_histogram"] == pytest.approx(3 / 7)
    assert report["sets"][0]["lowest_pitch_name"] == "C4"


def test_table_output(runner, hand_set):
    result = runner.invoke(cli, ["stats", "--no-progress", str(hand_set)])
    assert result.exit_code == 0, result.output
    assert "empty-beat rate" in result.stdout
    assert "overlap" not in result.stdout


def test_folder_without_melodies(runner, tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"not a midi file")
    line = one_line_error(runner.invoke(cli, ["stats", str(tmp_path)]))
    assert "no usable MIDI files" in line
    assert "1 skipped" in line


def test_missing_folder(runner, tmp_path):
    line = one_line_error(runner.invoke(cli, ["stats", str(tmp_path / "nope")]))
    assert "not found" in line
    assert "nope" in line
