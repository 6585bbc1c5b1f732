"""Ingestion speed and peak memory: musicgen (cold and warm cache) against MidiTok 3, in one run.

Every measurement runs in a fresh Python process, so each peak memory is its own. The
timer covers reading and tokenizing every file of the folder, not the imports. Kinds:

- ``musicgen-<tokenizer>-cold-w<N>``: an empty cache folder, N worker processes.
- ``musicgen-<tokenizer>-warm-w<N>``: the cache the cold run left (no MIDI file is opened).
- ``miditok-remi``, ``miditok-midilike``: MidiTok's REMI and MIDI-Like with default
  settings, one file after another in one process (MidiTok 3 has no parallel folder
  tokenizer), collecting the token ids of every file.

The kinds of one round run one after another, and rounds repeat, so load from other jobs
on a shared machine spreads over all of them; the table gives the median of the rounds.

With --parsers, the script instead times parsing alone, in one process and one round after
another: musicgen's reader, mido (clip=True), pretty_midi and symusic on every file.

    python benchmarks/ingest_speed.py midi_data/oneills_1850 --rounds 3
    python benchmarks/ingest_speed.py midi_data/oneills_1850 --parsers --rounds 5
    python benchmarks/ingest_speed.py --make-transposed /tmp/transposed-10k --count 10000
    python benchmarks/ingest_speed.py /tmp/transposed-10k --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_FOLDERS = ("oneills_1850", "bach_melodies", "bach_chorales")
# Intervals used, in this order, to make transposed copies of the bundled files.
INTERVALS = (1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6)


def measure_musicgen(folder: Path, tokenizer_name: str, workers: int, cache_dir: Path) -> dict:
    from musicgen.data.ingest import IngestOptions, ingest_records
    from musicgen.tokenizer import EventTokenizer, MelodyTokenizer

    tokenizer = MelodyTokenizer() if tokenizer_name == "melody" else EventTokenizer()
    options = IngestOptions(workers=workers, cache_dir=cache_dir, show_progress=False)
    started = time.perf_counter()
    result = ingest_records(folder, tokenizer, options)
    tokens = sum(len(record.ids) for record in result.records if record.ids is not None)
    seconds = time.perf_counter() - started
    used = sum(1 for record in result.records if record.ids is not None)
    return {"seconds": seconds, "files": len(result.records), "used": used, "tokens": tokens,
            "files_read": result.files_read}


def measure_miditok(folder: Path, encoding: str) -> dict:
    import miditok

    from musicgen.data.corpus import find_midi_files

    paths = find_midi_files(folder)
    started = time.perf_counter()
    tokenizer = miditok.REMI() if encoding == "remi" else miditok.MIDILike()
    tokens, used = 0, 0
    for path in paths:
        try:
            sequences = tokenizer(path)
        except Exception:  # noqa: BLE001 - a file MidiTok cannot read counts as not used
            continue
        sequences = sequences if isinstance(sequences, list) else [sequences]
        count = sum(len(sequence.ids) for sequence in sequences)
        tokens += count
        used += count > 0
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "files": len(paths), "used": used, "tokens": tokens, "files_read": len(paths)}


def run_one(arguments: argparse.Namespace) -> None:
    """Run one measurement in this process and print it as JSON with this process's peak memory."""
    folder = Path(arguments.folder)
    kind = arguments.one
    if kind.startswith("musicgen"):
        _, tokenizer_name, _, workers = kind.split("-")
        measurement = measure_musicgen(folder, tokenizer_name, int(workers[1:]), Path(arguments.cache_dir))
    else:
        measurement = measure_miditok(folder, kind.split("-")[1])
    # ru_maxrss is in KiB on Linux. The children figure is the largest worker process.
    measurement["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measurement["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(measurement))


def spawn(kind: str, folder: Path, cache_dir: Path) -> dict:
    command = [sys.executable, __file__, str(folder), "--one", kind, "--cache-dir", str(cache_dir)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_rounds(folder: Path, rounds: int, workers: int, tokenizers: list[str]) -> dict[str, list[dict]]:
    """Run every kind once per round, alternating musicgen and MidiTok runs, and collect the measurements."""
    results: dict[str, list[dict]] = {}
    for round_index in range(rounds):
        cache_root = Path(tempfile.mkdtemp(prefix="musicgen-bench-cache-"))
        baselines = ["miditok-remi", "miditok-midilike"]
        kinds = []
        for index, name in enumerate(tokenizers):
            kinds += [f"musicgen-{name}-cold-w{workers}", baselines[index % 2]]
        kinds += baselines[len(tokenizers):]
        kinds += [f"musicgen-{name}-warm-w{workers}" for name in tokenizers]
        if workers != 1:
            kinds += [f"musicgen-{name}-cold-w1" for name in tokenizers]
        for kind in kinds:
            cache_dir = cache_root / kind.replace("-warm-", "-cold-").rsplit("-w", 1)[0]
            if "-cold-" in kind and cache_dir.exists():
                shutil.rmtree(cache_dir)
            measurement = spawn(kind, folder, cache_dir)
            results.setdefault(kind, []).append(measurement)
            print(f"round {round_index + 1}: {kind}: {measurement}", file=sys.stderr)
        shutil.rmtree(cache_root)
    return results


def table(results: dict[str, list[dict]], folder: Path) -> str:
    remi = statistics.median(item["files"] / item["seconds"] for item in results["miditok-remi"])
    lines = [f"Folder `{folder}`: {results['miditok-remi'][0]['files']} files. Medians of {len(results['miditok-remi'])} rounds.", "",
             "| run | files/s | tokens/s | x MidiTok REMI files/s | files used | tokens | peak RSS MiB (largest worker) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, items in results.items():
        files_per_second = statistics.median(item["files"] / item["seconds"] for item in items)
        tokens_per_second = statistics.median(item["tokens"] / item["seconds"] for item in items)
        peak = statistics.median(item["peak_mib"] for item in items)
        worker = statistics.median(item["worker_peak_mib"] for item in items)
        memory = f"{peak:.0f} ({worker:.0f})" if worker > 0 else f"{peak:.0f}"
        lines.append(f"| {kind} | {files_per_second:,.0f} | {tokens_per_second:,.0f} | {files_per_second / remi:.2f} | "
                     f"{items[0]['used']} | {items[0]['tokens']:,} | {memory} |")
    return "\n".join(lines)


def parse_with(parser: str, path: Path) -> int:
    """Parse one file with `parser` and return its note count (note-on messages for mido), or -1 on an error."""
    try:
        return _parse_with(parser, path)
    except Exception:  # noqa: BLE001 - a file the library rejects is counted, not fatal
        return -1


def _parse_with(parser: str, path: Path) -> int:
    if parser == "musicgen":
        from musicgen.midi_io import read_score

        return len(read_score(path).notes)
    if parser == "mido":
        import mido

        midi = mido.MidiFile(path, clip=True)
        return sum(1 for track in midi.tracks for message in track if message.type == "note_on" and message.velocity)
    if parser == "pretty_midi":
        import pretty_midi

        return sum(len(instrument.notes) for instrument in pretty_midi.PrettyMIDI(str(path)).instruments)
    import symusic

    return sum(len(track.notes) for track in symusic.Score(str(path)).tracks)


def parser_table(folder: Path, rounds: int) -> str:
    """Time each parser over every file of `folder`, alternating parsers within each round."""
    from musicgen.data.corpus import find_midi_files

    paths = find_midi_files(folder)
    parsers = ("musicgen", "mido", "pretty_midi", "symusic")
    for parser in parsers:  # import each library before timing
        parse_with(parser, paths[0])
    seconds: dict[str, list[float]] = {parser: [] for parser in parsers}
    counts: dict[str, list[int]] = {}
    for _ in range(rounds):
        for parser in parsers:
            started = time.perf_counter()
            counts[parser] = [parse_with(parser, path) for path in paths]
            seconds[parser].append(time.perf_counter() - started)
    ours = statistics.median(seconds["musicgen"])
    lines = [f"Parsing `{folder}` ({len(paths)} files), median of {rounds} rounds in one process.", "",
             "| parser | files/s | notes/s | time vs musicgen | files rejected | notes |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for parser in parsers:
        median = statistics.median(seconds[parser])
        notes = sum(count for count in counts[parser] if count > 0)
        rejected = sum(1 for count in counts[parser] if count < 0)
        lines.append(f"| {parser} | {len(paths) / median:,.0f} | {notes / median:,.0f} | {median / ours:.2f}x | "
                     f"{rejected} | {notes:,} |")
    return "\n".join(lines)


def make_transposed(output: Path, count: int) -> None:
    """Write `count` transposed copies of the bundled MIDI files into `output` (read with mido, clip=True)."""
    import mido

    from musicgen.constants import DRUM_CHANNEL

    sources = [path for name in BUNDLED_FOLDERS for path in sorted((REPO_ROOT / "midi_data" / name).glob("*.mid"))]
    output.mkdir(parents=True, exist_ok=True)
    written = 0
    for interval in INTERVALS:
        for source in sources:
            if written >= count:
                return
            midi = mido.MidiFile(source, clip=True)
            for track in midi.tracks:
                for index, message in enumerate(track):
                    if message.type in ("note_on", "note_off") and message.channel != DRUM_CHANNEL:
                        track[index] = message.copy(note=min(127, max(0, message.note + interval)))
            midi.save(output / f"{source.parent.name}-{source.stem}-t{interval:+d}.mid")
            written += 1


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(REPO_ROOT / "midi_data" / "oneills_1850"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--tokenizers", default="melody,event", help="musicgen tokenizers to run, comma-separated")
    parser.add_argument("--make-transposed", metavar="DIR", help="write transposed copies of the bundled files into DIR")
    parser.add_argument("--count", type=int, default=10_000, help="files for --make-transposed")
    parser.add_argument("--parsers", action="store_true", help="time parsing alone with each MIDI library")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        run_one(arguments)
        return
    if arguments.make_transposed:
        make_transposed(Path(arguments.make_transposed), arguments.count)
        print(f"wrote {arguments.count} files into {arguments.make_transposed}")
        return
    folder = Path(arguments.folder)
    if arguments.parsers:
        print(f"Machine: {machine()}\n")
        print(parser_table(folder, arguments.rounds))
        return
    results = run_rounds(folder, arguments.rounds, arguments.workers, arguments.tokenizers.split(","))
    print(f"Machine: {machine()}\n")
    print(table(results, folder))


if __name__ == "__main__":
    main()
