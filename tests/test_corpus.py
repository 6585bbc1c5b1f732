"""Checks on the bundled corpus in midi_data/ and on the exporter that builds it.

The committed files are read with mido, independently of musicgen's own MIDI reader.
Only the sample export at the end parses music21 scores (three chorales and one tune).
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import mido
import pytest

from musicgen.corpus_export import (
    BACH_CHORALES,
    BACH_MELODIES,
    EXPORT_FOLDERS,
    ONEILLS_1850,
    NoteSpan,
    export_corpus,
    list_bach_sources,
    list_oneills_sources,
    make_monophonic,
    melody_key,
    merge_ties,
    shared_phrase_fraction,
    slugify,
)

MIDI_DATA = Path(__file__).resolve().parents[1] / "midi_data"
README = MIDI_DATA / "README.md"
TICKS_PER_QUARTER = 480
SIXTEENTH_TICKS = TICKS_PER_QUARTER // 4
THIRTY_SECOND_TICKS = TICKS_PER_QUARTER // 8
# Soprano lines that Bach writes with 32nd notes. midi_data/README.md lists the same files.
THIRTY_SECOND_NOTE_MELODIES = {"bwv185.6.mid", "bwv248.64-6.mid", "bwv248.64-s.mid", "bwv36.4-2.mid", "bwv432.mid"}
SATB_NAMES = ["Soprano", "Alto", "Tenor", "Bass"]


def read_notes(midi_file: mido.MidiFile) -> list[tuple[int, int, int, int, int]]:
    """List (track, channel, pitch, start tick, end tick) of every note, sorted by start."""
    notes = []
    for track_index, track in enumerate(midi_file.tracks):
        now = 0
        sounding: dict[tuple[int, int], int] = {}
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding[(message.channel, message.note)] = now
            elif message.type in ("note_on", "note_off"):
                start = sounding.pop((message.channel, message.note))
                notes.append((track_index, message.channel, message.note, start, now))
    return sorted(notes, key=lambda item: (item[3], item[2]))


def tick_melody_key(notes: list[tuple[int, int, int, int, int]]) -> tuple[tuple[int | None, int], ...]:
    """Return (interval to the previous note, duration in ticks) for a monophonic line."""
    key = []
    for index, (_track, _channel, pitch, start, end) in enumerate(notes):
        interval = None if index == 0 else pitch - notes[index - 1][2]
        key.append((interval, end - start))
    return tuple(key)


@pytest.fixture(scope="module")
def corpus_files() -> dict[str, dict[str, mido.MidiFile]]:
    """Parse every committed .mid file once: folder name -> file name -> MidiFile."""
    files = {}
    for folder in EXPORT_FOLDERS:
        paths = sorted((MIDI_DATA / folder).glob("*.mid"))
        files[folder] = {path.name: mido.MidiFile(path) for path in paths}
    return files


def readme_table() -> dict[str, tuple[int, int]]:
    """Read the README's "| `folder/` | files | notes |" rows as folder -> (files, notes)."""
    rows = {}
    pattern = re.compile(r"^\|\s*`(\w+)/`\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|", re.MULTILINE)
    for folder, files, notes in pattern.findall(README.read_text(encoding="utf-8")):
        rows[folder] = (int(files.replace(",", "")), int(notes.replace(",", "")))
    return rows


def readme_skipped_bach_files() -> set[str]:
    """Read the output names of the chorales that the README lists as duplicates."""
    text = README.read_text(encoding="utf-8")
    return {f"{stem}.mid" for stem in re.findall(r"^\|\s*`(bwv[\w.\-]+)`\s*\|\s*`bwv", text, re.MULTILINE)}


# ---------------------------------------------------------------------------
# Committed files


def test_readme_table_lists_every_folder():
    assert set(readme_table()) == set(EXPORT_FOLDERS)


@pytest.mark.parametrize("folder", EXPORT_FOLDERS)
def test_folder_counts_match_readme(corpus_files, folder):
    expected_files, expected_notes = readme_table()[folder]
    midi_files = corpus_files[folder]
    note_count = sum(len(read_notes(midi_file)) for midi_file in midi_files.values())

    assert len(midi_files) == expected_files
    assert note_count == expected_notes


@pytest.mark.parametrize("folder", EXPORT_FOLDERS)
def test_files_have_480_ticks_tempo_and_meter(corpus_files, folder):
    for name, midi_file in corpus_files[folder].items():
        first_track = list(midi_file.tracks[0])
        tempo_ticks = [message.time for message in first_track if message.type == "set_tempo"]
        meter_count = sum(message.type == "time_signature" for message in first_track)

        assert midi_file.ticks_per_beat == TICKS_PER_QUARTER, name
        assert tempo_ticks and tempo_ticks[0] == 0, name
        assert meter_count >= 1, name


@pytest.mark.parametrize("folder", [BACH_MELODIES, ONEILLS_1850])
def test_melodies_are_one_piano_track(corpus_files, folder):
    for name, midi_file in corpus_files[folder].items():
        channel_messages = [message for message in midi_file.tracks[0] if not message.is_meta]
        programs = [message.program for message in channel_messages if message.type == "program_change"]

        assert midi_file.type == 0, name
        assert len(midi_file.tracks) == 1, name
        assert {message.channel for message in channel_messages} == {0}, name
        assert programs == [0], name


@pytest.mark.parametrize("folder", [BACH_MELODIES, ONEILLS_1850])
def test_melodies_are_monophonic(corpus_files, folder):
    for name, midi_file in corpus_files[folder].items():
        notes = read_notes(midi_file)
        overlaps = [(a, b) for a, b in zip(notes, notes[1:]) if b[3] < a[4]]

        assert notes, name
        assert not overlaps, f"{name}: first overlap {overlaps[:1]}"


def test_bach_melodies_on_sixteenth_grid(corpus_files):
    off_grid = set()
    for name, midi_file in corpus_files[BACH_MELODIES].items():
        for _track, _channel, _pitch, start, end in read_notes(midi_file):
            if start % SIXTEENTH_TICKS or end % SIXTEENTH_TICKS:
                off_grid.add(name)
                assert start % THIRTY_SECOND_TICKS == 0, name
                assert end % THIRTY_SECOND_TICKS == 0, name

    assert off_grid == THIRTY_SECOND_NOTE_MELODIES


def test_bach_chorales_have_four_voices(corpus_files):
    for name, midi_file in corpus_files[BACH_CHORALES].items():
        notes = read_notes(midi_file)
        channels_by_track = {track: set() for track in range(len(midi_file.tracks))}
        for track, channel, _pitch, _start, _end in notes:
            channels_by_track[track].add(channel)
        track_names = [track.name for track in midi_file.tracks]

        assert midi_file.type == 1, name
        assert track_names == SATB_NAMES, name
        assert channels_by_track == {0: {0}, 1: {1}, 2: {2}, 3: {3}}, name


def test_no_channel_is_drum_channel(corpus_files):
    for folder, files in corpus_files.items():
        for name, midi_file in files.items():
            channels = {message.channel for track in midi_file.tracks for message in track if not message.is_meta}
            assert 9 not in channels, f"{folder}/{name}"


def test_bach_melody_matches_chorale_soprano(corpus_files):
    melodies = corpus_files[BACH_MELODIES]
    chorales = corpus_files[BACH_CHORALES]

    assert set(melodies) == set(chorales)
    for name, melody_file in melodies.items():
        melody = [note[2:] for note in read_notes(melody_file)]
        soprano = [note[2:] for note in read_notes(chorales[name]) if note[0] == 0]
        assert melody == soprano, name


@pytest.mark.parametrize("folder", [BACH_MELODIES, ONEILLS_1850])
def test_no_duplicates_up_to_transposition(corpus_files, folder):
    first_by_key: dict[tuple, str] = {}
    duplicates = []
    for name, midi_file in sorted(corpus_files[folder].items()):
        key = tick_melody_key(read_notes(midi_file))
        if key in first_by_key:
            duplicates.append((name, first_by_key[key]))
        first_by_key.setdefault(key, name)

    assert duplicates == []


def test_readme_duplicates_absent(corpus_files):
    skipped = readme_skipped_bach_files()

    assert len(skipped) >= 1
    assert skipped.isdisjoint(corpus_files[BACH_MELODIES])
    assert skipped.isdisjoint(corpus_files[BACH_CHORALES])


def test_file_names_are_ascii(corpus_files):
    for folder, files in corpus_files.items():
        for name in files:
            assert re.fullmatch(r"[a-z0-9.\-]+\.mid", name), f"{folder}/{name}"


# ---------------------------------------------------------------------------
# Helpers of the exporter


def test_merge_ties_keeps_tie_between_pitches():
    # Some abc transcriptions write "d-c", a tie between two pitches. Both notes must stay.
    events = [((74,), Fraction(0), Fraction(1), "start"), ((73,), Fraction(1), Fraction(1), "stop")]

    spans = merge_ties(events)

    assert spans == [NoteSpan(74, Fraction(0), Fraction(1)), NoteSpan(73, Fraction(1), Fraction(2))]


def test_merge_ties_joins_same_pitch():
    events = [((74,), Fraction(0), Fraction(1), "start"), ((74,), Fraction(1), Fraction(1, 2), "stop")]

    assert merge_ties(events) == [NoteSpan(74, Fraction(0), Fraction(3, 2))]


def test_make_monophonic_keeps_highest_and_cuts():
    spans = [
        NoteSpan(60, Fraction(0), Fraction(2)),
        NoteSpan(64, Fraction(0), Fraction(2)),
        NoteSpan(62, Fraction(1), Fraction(3)),
    ]

    melody = make_monophonic(spans)

    assert melody == [NoteSpan(64, Fraction(0), Fraction(1)), NoteSpan(62, Fraction(1), Fraction(3))]


def test_melody_key_ignores_transposition():
    line = [NoteSpan(60, Fraction(0), Fraction(1)), NoteSpan(64, Fraction(1), Fraction(3, 2))]
    transposed = [NoteSpan(pitch=span.pitch + 5, start=span.start, end=span.end) for span in line]
    slower = [NoteSpan(60, Fraction(0), Fraction(2)), NoteSpan(64, Fraction(2), Fraction(3))]

    assert melody_key(line) == melody_key(transposed)
    assert melody_key(line) != melody_key(slower)


def test_shared_phrase_fraction_bounds():
    line = [NoteSpan(60 + step % 5, Fraction(step), Fraction(step + 1)) for step in range(20)]
    transposed = [NoteSpan(span.pitch + 2, span.start, span.end) for span in line]
    other = [NoteSpan(60 + (step * 7) % 12, Fraction(step), Fraction(step + 1)) for step in range(20)]

    assert shared_phrase_fraction(line, transposed) == 1.0
    assert shared_phrase_fraction(line, other) == 0.0
    assert shared_phrase_fraction(line, []) == 0.0


def test_slugify_titles():
    assert slugify("Lamentation of Owen Roe O'Neill, The") == "lamentation-of-owen-roe-oneill-the"
    assert slugify("Caoine na hÉireann") == "caoine-na-heireann"
    assert slugify("?!") == "untitled"


# ---------------------------------------------------------------------------
# Export into a temporary folder


def test_export_rejects_existing_files_without_overwrite(tmp_path):
    existing = tmp_path / BACH_CHORALES / "old.mid"
    existing.parent.mkdir()
    existing.write_bytes(b"not rewritten")

    with pytest.raises(FileExistsError) as error:
        export_corpus(tmp_path, show_progress=False, bach_sources=[], oneills_sources=[])

    assert "old.mid" in str(error.value)
    assert "--overwrite" in str(error.value)
    assert existing.read_bytes() == b"not rewritten"


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory) -> tuple[Path, dict]:
    """Export BWV 1.6, the duplicate pair BWV 326/327 and O'Neill's one-tune file 0731-0731.abc."""
    output_dir = tmp_path_factory.mktemp("sample_export")
    bach = [path for path in list_bach_sources() if path.stem in ("bwv1.6", "bwv326", "bwv327")]
    tunes = [path for path in list_oneills_sources() if path.name == "0731-0731.abc"]
    report = export_corpus(output_dir, show_progress=False, workers=1, bach_sources=bach, oneills_sources=tunes)
    return output_dir, report


def test_sample_export_report(sample_export):
    _output_dir, report = sample_export

    assert report["files"] == {BACH_MELODIES: 2, BACH_CHORALES: 2, ONEILLS_1850: 1}
    assert report["duplicates_skipped"] == [{"skipped": "bach/bwv327.mxl", "duplicate_of": "bach/bwv326.mxl"}]
    assert report["failed"] == []


def test_sample_export_skips_duplicate_in_both_folders(sample_export):
    output_dir, _report = sample_export

    for folder in (BACH_MELODIES, BACH_CHORALES):
        names = sorted(path.name for path in (output_dir / folder).glob("*.mid"))
        assert names == ["bwv1.6.mid", "bwv326.mid"], folder


def test_sample_export_matches_committed_files(sample_export):
    # A failure here means the exporter or music21 changed: rebuild midi_data and its README.
    output_dir, _report = sample_export
    exported = sorted(output_dir.glob("*/*.mid"))

    assert len(exported) == 5
    for path in exported:
        committed = MIDI_DATA / path.parent.name / path.name
        assert committed.is_file(), committed
        assert path.read_bytes() == committed.read_bytes(), path.name


def test_export_overwrite_removes_stale_files(tmp_path):
    stale = tmp_path / ONEILLS_1850 / "9999-stale.mid"
    stale.parent.mkdir()
    stale.write_bytes(b"")

    report = export_corpus(tmp_path, overwrite=True, show_progress=False, bach_sources=[], oneills_sources=[])

    assert not stale.exists()
    assert report["files"] == {BACH_MELODIES: 0, BACH_CHORALES: 0, ONEILLS_1850: 0}
