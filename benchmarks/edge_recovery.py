"""Pitched notes recovered from each edge-case MIDI file by musicgen, pretty_midi, mido, music21 and symusic.

Each library reads every file in its own process, with a time limit per file (SIGALRM,
so Unix only). A count is the pitched (non-drum) notes the library returns:

- musicgen: `musicgen.midi_io.read_score(path).pitched_notes`.
- pretty_midi: notes of the instruments that are not drums, `pretty_midi.PrettyMIDI(path)`.
- mido: note-on messages with a velocity above 0 outside channel 10, of
  `mido.MidiFile(path, clip=True)`; mido pairs nothing, so this is an upper bound.
- music21: pitches of the notes and chords of `music21.converter.parse(path)`, drums excluded.
- symusic: notes of the tracks that are not drums, `symusic.Score(path)`.

The expected count is the one the edge folder's README gives. A second table covers files
this script builds (in a temporary folder) for faults the edge folder lacks: SMPTE timing,
a zero tempo, a huge delta time, a sysex inside running status, and a truncated track. It
also gives each library's length of the file in seconds, where the library reports one.
The script prints Markdown; the figures in docs/BENCHMARKS.md come from it.

    python benchmarks/edge_recovery.py
    python benchmarks/edge_recovery.py --edge-dir ../shared/midi/edge --timeout 10
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

LIBRARIES = ("musicgen", "pretty_midi", "mido", "music21", "symusic")
DRUM_CHANNEL = 9


class FileTimeout(Exception):
    pass


def count_musicgen(path: Path) -> tuple[int, float | None]:
    from musicgen.midi_io import read_score

    score = read_score(path)
    return len(score.pitched_notes), score.tick_to_seconds(score.end_tick)


def count_pretty_midi(path: Path) -> tuple[int, float | None]:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    return sum(len(instrument.notes) for instrument in midi.instruments if not instrument.is_drum), midi.get_end_time()


def count_mido(path: Path) -> tuple[int, float | None]:
    import mido

    midi = mido.MidiFile(path, clip=True)
    count = sum(1 for track in midi.tracks for message in track
                if message.type == "note_on" and message.velocity > 0 and message.channel != DRUM_CHANNEL)
    return count, midi.length


def count_music21(path: Path) -> tuple[int, float | None]:
    from music21 import chord, converter, note

    stream = converter.parse(str(path), forceSource=True)
    count = 0
    for element in stream.flatten().notes:
        if isinstance(element, chord.Chord):
            count += len(element.pitches)
        elif isinstance(element, note.Note):
            count += 1
    return count, None


def count_symusic(path: Path) -> tuple[int, float | None]:
    import symusic

    score = symusic.Score(str(path))
    count = sum(len(track.notes) for track in score.tracks if not track.is_drum)
    return count, symusic.Score(str(path), ttype="second").end()


def build_extra_files(folder: Path) -> dict[str, tuple[int, str]]:
    """Write files with faults the edge folder lacks; returns, per file, the expected notes and seconds."""
    from tests.test_midi_io import chunk, end_of_track, event, scale_notes, smf, tempo, variable_length

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        # 25 frames per second x 40 ticks per frame: 1000 ticks per second; 8 notes of 500 ticks last 4 s.
        "smpte_25fps.mid": (smf([scale_notes(8, length=500) + end_of_track()], division=0xE728), 8, "4"),
        # A tempo of 0 µs per quarter note, then 8 quarter notes at the default 120 BPM.
        "zero_tempo.mid": (smf([tempo(0, 0) + scale_notes(8) + end_of_track()]), 8, "4"),
        # 8 notes, then a rest of 2**27 ticks (about 19 hours at 120 BPM) before the end of the track.
        "huge_delta_time.mid": (smf([scale_notes(8) + event(2**27 - 1, 0x90, 60, 0) + end_of_track()]), 8, "4"),
        # Running status continues after a sysex message. MIDI 1.0 cancels it there, but some writers rely on it.
        "sysex_in_running_status.mid": (smf([
            event(0, 0x90, 60, 80) + variable_length(480) + bytes([60, 0])
            + variable_length(0) + bytes([0xF0, 3, 0x7E, 0x7F, 0xF7])
            + b"".join(variable_length(0) + bytes([pitch, 80]) + variable_length(480) + bytes([pitch, 0])
                       for pitch in range(62, 76, 2))
            + end_of_track()]), 8, "4"),
        # A file cut off in the middle of its only track, after 6 complete notes (9 bytes each).
        "truncated_track.mid": (smf([scale_notes(8) + end_of_track()])[: 14 + 8 + 6 * 9 + 3], 6, "3"),
    }
    for name, (data, _, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: (notes, seconds) for name, (_, notes, seconds) in files.items()}


def run_library(library: str, paths: list[Path], timeout: int) -> dict[str, tuple[str, str]]:
    """Return each file's count and seconds (as text), or a short error, reading in this process."""
    counter = globals()[f"count_{library}"]

    def on_alarm(signum, frame):
        raise FileTimeout

    signal.signal(signal.SIGALRM, on_alarm)
    results = {}
    for path in paths:
        signal.alarm(timeout)
        try:
            count, seconds = counter(path)
            results[path.name] = (str(count), "-" if seconds is None else f"{seconds:.3g}")
        except FileTimeout:
            results[path.name] = (f"timed out ({timeout} s)", "")
        except Exception as error:  # noqa: BLE001 - every failure is a result here
            results[path.name] = (f"error: {type(error).__name__}: {str(error)[:60]}", "")
        finally:
            signal.alarm(0)
    return results


def expected_counts() -> dict[str, int | str]:
    from tests.test_midi_io import EDGE_CASES

    return {name: (expected if isinstance(expected, int) else "skip") for name, expected in EDGE_CASES.items()}


def musicgen_handling(path: Path) -> str:
    """Describe what musicgen does with the file now: its repairs, or its skip reason."""
    from musicgen.midi_io import MidiReadError, read_score
    from musicgen.tokenizer import EventTokenizer, MelodyTokenizer, NoNotesError

    try:
        score = read_score(path)
    except MidiReadError as error:
        return f"skipped: {error.reason}"
    try:
        melody = len(MelodyTokenizer().encode(score))
        events = len(EventTokenizer().encode(score))
    except NoNotesError as error:
        return f"skipped: {error.reason}"
    repairs = "; ".join(score.warnings) if score.warnings else "read as is"
    return f"{repairs} ({melody} melody / {events} event tokens)"


def read_with_every_library(folder: Path, timeout: int) -> dict[str, dict[str, list[str]]]:
    """Run each library over the MIDI files of `folder` in its own process."""
    results = {}
    for library in LIBRARIES:
        command = [sys.executable, __file__, "--edge-dir", str(folder), "--timeout", str(timeout), "--library", library]
        completed = subprocess.run(command, capture_output=True, text=True, check=True)
        results[library] = json.loads(completed.stdout.strip().splitlines()[-1])
    return results


def midi_paths(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in (".mid", ".midi"))


def print_edge_table(folder: Path, timeout: int) -> None:
    paths = midi_paths(folder)
    results = read_with_every_library(folder, timeout)
    expected = expected_counts()
    print("| file | expected | " + " | ".join(LIBRARIES) + " | what musicgen does |")
    print("| --- | ---: | " + " | ".join("---:" for _ in LIBRARIES) + " | --- |")
    exact = dict.fromkeys(LIBRARIES, 0)
    for path in paths:
        row = [results[library][path.name][0] for library in LIBRARIES]
        want = expected.get(path.name, "?")
        for library, got in zip(LIBRARIES, row):
            exact[library] += got == str(want) or (want == "skip" and not got.isdigit())
        print(f"| `{path.name}` | {want} | " + " | ".join(row) + f" | {musicgen_handling(path)} |")
    print()
    print("Files with the expected count (or, for a file to skip, an error): "
          + ", ".join(f"{library} {count}/{len(paths)}" for library, count in exact.items()))


def print_extra_table(timeout: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="musicgen-edge-extra-") as temporary:
        folder = Path(temporary)
        expected = build_extra_files(folder)
        results = read_with_every_library(folder, timeout)
        print("| file | expected notes, seconds | " + " | ".join(LIBRARIES) + " | what musicgen does |")
        print("| --- | ---: | " + " | ".join("---:" for _ in LIBRARIES) + " | --- |")
        for path in midi_paths(folder):
            notes, seconds = expected[path.name]
            cells = [", ".join(part for part in results[library][path.name] if part) for library in LIBRARIES]
            print(f"| `{path.name}` | {notes}, {seconds} | " + " | ".join(cells) + f" | {musicgen_handling(path)} |")


def main() -> None:
    from tests.conftest import EDGE_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edge-dir", type=Path, default=EDGE_DIR)
    parser.add_argument("--timeout", type=int, default=10, help="seconds per file and library")
    parser.add_argument("--library", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.library:
        print(json.dumps(run_library(arguments.library, midi_paths(arguments.edge_dir), arguments.timeout)))
        return
    print_edge_table(arguments.edge_dir, arguments.timeout)
    print()
    print_extra_table(arguments.timeout)


if __name__ == "__main__":
    main()
