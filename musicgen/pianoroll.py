"""Draw a melody as a piano roll PNG: time in bars across, pitch names up, the seed in its own colour."""

from __future__ import annotations

from pathlib import Path

from musicgen.melody_file import MelodyFile
from musicgen.new_file import write_new_file
from musicgen.notes import pitch_to_name

SEED_COLOUR = "#e66101"  # orange
GENERATED_COLOUR = "#5e3c99"  # purple; the pair stays apart for colour-blind readers
DPI = 100
MAX_LABELLED_PITCHES = 36  # wider ranges label only the C of each octave and the pitches used


def write_piano_roll(melody: MelodyFile, path: Path) -> Path:
    """Draw `melody` into a new PNG file at `path`; raises FileExistsError if it exists."""
    figure = draw_piano_roll(melody)
    return write_new_file(path, lambda temporary: figure.savefig(temporary, format="png", dpi=DPI))


def draw_piano_roll(melody: MelodyFile):
    """Return a matplotlib Figure of the melody, drawn with the Agg backend (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    steps_per_bar = melody.steps_per_bar
    origin = melody.first_bar_step  # x = 0 is where bar 1 begins; a pickup lies left of it
    bars = max(1, -(-(max(melody.steps, melody.seed_steps) - origin) // steps_per_bar))
    pitches = [pitch for pitch, _, _ in melody.notes] or [60]
    low, high = min(pitches) - 1, max(pitches) + 1
    figure = Figure(figsize=(min(4 + 1.2 * bars, 40), min(2 + 0.18 * (high - low), 16)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for pitch, start, end in melody.notes:
        colour = SEED_COLOUR if start < melody.seed_steps else GENERATED_COLOUR
        axes.add_patch(_note_rectangle(pitch, (start - origin) / steps_per_bar, (end - start) / steps_per_bar, colour))
    if melody.seed_steps:
        axes.axvline((melody.seed_steps - origin) / steps_per_bar, color=SEED_COLOUR, linestyle="--", linewidth=1)
        axes.legend(handles=[Patch(color=SEED_COLOUR, label="seed"), Patch(color=GENERATED_COLOUR, label="generated")],
                    loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes.set_xlim(-origin / steps_per_bar, bars)
    axes.set_ylim(low - 0.5, high + 0.5)
    axes.set_xticks(range(bars + 1))
    axes.set_xticklabels([str(bar + 1) for bar in range(bars + 1)])
    axes.set_xlabel(f"bar ({melody.time_signature[0]}/{melody.time_signature[1]}, {melody.tempo_bpm:g} BPM)")
    labelled = _labelled_pitches(low, high, set(pitches))
    axes.set_yticks(labelled)
    axes.set_yticklabels([pitch_to_name(pitch) for pitch in labelled])
    axes.grid(axis="x", color="#999999", linewidth=0.6)
    axes.set_title(melody.path.name)
    figure.tight_layout()
    return figure


def _note_rectangle(pitch: int, start_bar: float, length_bars: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((start_bar, pitch - 0.4), length_bars, 0.8, facecolor=colour, edgecolor="black", linewidth=0.4)


def _labelled_pitches(low: int, high: int, used: set[int]) -> list[int]:
    if high - low <= MAX_LABELLED_PITCHES:
        return list(range(low, high + 1))
    return [pitch for pitch in range(low, high + 1) if pitch % 12 == 0 or pitch in used]
