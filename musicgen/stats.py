"""Musical statistics of a set of MIDI files, and how much the histograms of two sets overlap.

Each file is read with `midi_io.read_score` and reduced to one melody by the melody
tokenizer's rule (the highest sounding note at each step of a 16th-note grid by default),
so generated melodies and training files are measured the same way. Units: pitches are MIDI
numbers, durations and times are grid steps, a beat is a quarter note, and a bar follows the
file's first time signature.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from musicgen.constants import DEFAULT_TIME_SIGNATURE
from musicgen.data.corpus import find_midi_files
from musicgen.errors import MusicgenError
from musicgen.midi_io import MidiReadError, read_score
from musicgen.notes import PITCH_CLASS_NAMES, pitch_to_name
from musicgen.score import Score, TimeSignature
from musicgen.tokenizer import NoMelodyError
from musicgen.tokenizer.melody import MelodyTokenizer

logger = logging.getLogger(__name__)

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
MAX_INTERVAL = 12  # semitones; larger leaps are counted in the <=-12 and >=12 bins
MAX_DURATION = 16  # steps; longer notes are counted in the >=16 bin
HISTOGRAMS = ("pitch_class_histogram", "interval_histogram", "duration_histogram")


class StatsError(MusicgenError):
    pass


@dataclass
class Melody:
    """One file's melody on the grid: notes as (pitch, start step, end step), and its bar count."""

    path: Path
    notes: list[tuple[int, int, int]]
    steps: int  # grid steps from tick 0 to the end of the last note
    bars: int  # bars begun before `steps`, under the file's time signatures
    steps_per_beat: int  # steps in a quarter note


@dataclass
class SetStats:
    """Statistics of one set of files; histograms map a bin label to its share of the set's counts."""

    folder: Path
    files: int = 0
    notes: int = 0
    lowest_pitch: int = 0
    highest_pitch: int = 0
    mean_file_range: float = 0.0  # semitones between a file's lowest and highest pitch, mean over files
    pitches_used: int = 0  # distinct pitches in the whole set
    mean_file_pitches: float = 0.0  # distinct pitches per file, mean over files
    pitch_classes_used: int = 0
    mean_file_pitch_classes: float = 0.0
    pitch_class_entropy: float = 0.0  # bits, of each file's pitch-class counts, mean over files
    scale_consistency: float = 0.0  # share of a file's notes in its best-fitting major scale, mean over files
    notes_per_bar: float = 0.0  # all notes divided by all bars
    empty_beat_rate: float = 0.0  # beats in which no note sounds, divided by all beats
    longest_repeat: int = 0  # most onsets of one pitch in a row, in any file
    mean_longest_repeat: float = 0.0
    pitch_class_histogram: dict[str, float] = field(default_factory=dict)
    interval_histogram: dict[str, float] = field(default_factory=dict)  # semitones from one note to the next
    duration_histogram: dict[str, float] = field(default_factory=dict)  # note length in grid steps
    skipped: int = 0  # files that could not be read or hold no melody

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["folder"] = str(self.folder)
        data["lowest_pitch_name"] = pitch_to_name(self.lowest_pitch)
        data["highest_pitch_name"] = pitch_to_name(self.highest_pitch)
        return data


def read_melodies(folder: Path, tokenizer: MelodyTokenizer, show_progress: bool = True) -> tuple[list[Melody], int]:
    """Read every MIDI file under `folder` as a melody; returns the melodies and the count skipped."""
    paths = [folder] if folder.is_file() else find_midi_files(folder)
    melodies, skipped = [], 0
    for path in tqdm(paths, desc=f"reading {folder.name}", unit="file", disable=not show_progress, leave=False):
        try:
            score = read_score(path)
            ids = tokenizer.encode(score, add_special_tokens=False)
        except (MidiReadError, NoMelodyError) as error:
            logger.warning("skipped %s: %s", path, error)
            skipped += 1
            continue
        bars = count_bars(score, tokenizer, len(ids))
        melodies.append(Melody(path, tokenizer.decode_notes(ids), len(ids), bars, tokenizer.steps_per_quarter))
    if not melodies:
        raise StatsError(f"no usable MIDI files in {folder} ({skipped} skipped); point to a folder of MIDI files with notes")
    return melodies, skipped


def count_bars(score: Score, tokenizer: MelodyTokenizer, steps: int) -> int:
    """Count the bars begun in the first `steps` grid steps, following every time signature change.

    A change starts a new bar; a bar cut short by a change or by the end counts as one.
    """
    signatures = sorted(score.time_signatures, key=lambda signature: signature.tick)
    if not signatures or signatures[0].tick > 0:
        # MIDI files are in 4/4 until their first time signature event.
        signatures.insert(0, TimeSignature(0, *DEFAULT_TIME_SIGNATURE))
    to_step = tokenizer.steps_per_quarter / score.ticks_per_quarter
    starts = [0] + [round(signature.tick * to_step) for signature in signatures[1:]] + [steps]
    bars = 0
    for signature, start, end in zip(signatures, starts, starts[1:]):
        if end > start:
            bars += math.ceil((min(end, steps) - start) / tokenizer.steps_per_bar(signature.numerator, signature.denominator))
        if end >= steps:
            break
    return max(bars, 1)


def set_stats(folder: Path, melodies: list[Melody], skipped: int = 0) -> SetStats:
    """Compute every statistic of a set of melodies."""
    stats = SetStats(folder, files=len(melodies), skipped=skipped)
    pitches = [pitch for melody in melodies for pitch, _, _ in melody.notes]
    stats.notes = len(pitches)
    stats.lowest_pitch, stats.highest_pitch = min(pitches), max(pitches)
    stats.pitches_used = len(set(pitches))
    stats.pitch_classes_used = len({pitch % 12 for pitch in pitches})
    per_file = [_file_stats(melody) for melody in melodies]
    for name in ("mean_file_range", "mean_file_pitches", "mean_file_pitch_classes", "pitch_class_entropy",
                 "scale_consistency", "mean_longest_repeat"):
        setattr(stats, name, sum(values[name] for values in per_file) / len(per_file))
    stats.longest_repeat = max(int(values["mean_longest_repeat"]) for values in per_file)
    bars = sum(melody.bars for melody in melodies)
    stats.notes_per_bar = stats.notes / bars
    beats = sum(math.ceil(melody.steps / melody.steps_per_beat) for melody in melodies)
    stats.empty_beat_rate = sum(_empty_beats(melody) for melody in melodies) / beats
    stats.pitch_class_histogram = _shares(Counter(PITCH_CLASS_NAMES[pitch % 12] for pitch in pitches),
                                          PITCH_CLASS_NAMES)
    stats.interval_histogram = _shares(Counter(_intervals(melodies)), INTERVAL_BINS)
    stats.duration_histogram = _shares(Counter(_durations(melodies)), DURATION_BINS)
    return stats


def _file_stats(melody: Melody) -> dict[str, float]:
    pitches = [pitch for pitch, _, _ in melody.notes]
    classes = Counter(pitch % 12 for pitch in pitches)
    entropy = -sum(count / len(pitches) * math.log2(count / len(pitches)) for count in classes.values())
    return {
        "mean_file_range": max(pitches) - min(pitches),
        "mean_file_pitches": len(set(pitches)),
        "mean_file_pitch_classes": len(classes),
        "pitch_class_entropy": entropy,
        "scale_consistency": scale_consistency(pitches),
        "mean_longest_repeat": longest_run(pitches),
    }


def longest_run(pitches: list[int]) -> int:
    """Return the length of the longest run of consecutive onsets of one pitch."""
    best = length = 1
    for previous, current in zip(pitches, pitches[1:]):
        length = length + 1 if current == previous else 1
        best = max(best, length)
    return best


def scale_consistency(pitches: list[int]) -> float:
    """Return the largest share of `pitches` that lie in one major scale.

    A natural minor scale has the pitch classes of its relative major, so the 12 major
    scales cover the 24 major and minor keys.
    """
    classes = Counter(pitch % 12 for pitch in pitches)
    best = max(sum(classes[(tonic + step) % 12] for step in MAJOR_SCALE) for tonic in range(12))
    return best / len(pitches)


def _empty_beats(melody: Melody) -> int:
    """Count the beats of a melody in which no note sounds at any step."""
    sounding = [False] * math.ceil(melody.steps / melody.steps_per_beat)
    for _, start, end in melody.notes:
        for beat in range(start // melody.steps_per_beat, (end - 1) // melody.steps_per_beat + 1):
            sounding[beat] = True
    return sounding.count(False)


INTERVAL_BINS = [f"<={-MAX_INTERVAL}", *(str(step) for step in range(1 - MAX_INTERVAL, MAX_INTERVAL)), f">={MAX_INTERVAL}"]
DURATION_BINS = [*(str(step) for step in range(1, MAX_DURATION)), f">={MAX_DURATION}"]


def _intervals(melodies: list[Melody]) -> list[str]:
    """Return the bin label of the interval from each note to the next, within each file."""
    labels = []
    for melody in melodies:
        for (previous, _, _), (current, _, _) in zip(melody.notes, melody.notes[1:]):
            interval = max(-MAX_INTERVAL, min(MAX_INTERVAL, current - previous))
            labels.append(INTERVAL_BINS[interval + MAX_INTERVAL])
    return labels


def _durations(melodies: list[Melody]) -> list[str]:
    return [DURATION_BINS[min(end - start, MAX_DURATION) - 1] for melody in melodies for _, start, end in melody.notes]


def _shares(counts: Counter, bins: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Return each bin's share of the total count, in bin order (0 for empty bins)."""
    total = sum(counts.values())
    return {label: counts[label] / total if total else 0.0 for label in bins}


def histogram_overlap(first: dict[str, float], second: dict[str, float]) -> float:
    """Return the overlap of two histograms of shares: the sum over bins of the smaller share, 0..1."""
    return sum(min(first.get(label, 0.0), second.get(label, 0.0)) for label in set(first) | set(second))


def compare(first: SetStats, second: SetStats) -> dict[str, float]:
    """Return the overlap of each histogram of two sets."""
    return {name: histogram_overlap(getattr(first, name), getattr(second, name)) for name in HISTOGRAMS}


def folder_stats(folder: Path, tokenizer: MelodyTokenizer | None = None, show_progress: bool = True) -> SetStats:
    """Read a folder (or one MIDI file) and compute its statistics."""
    if not folder.exists():
        raise StatsError(f"MIDI folder not found: {folder}; check the path")
    melodies, skipped = read_melodies(folder, tokenizer or MelodyTokenizer(), show_progress)
    return set_stats(folder, melodies, skipped)
