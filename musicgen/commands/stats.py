"""musicgen stats: musical statistics of one or two sets of MIDI files."""

from __future__ import annotations

import json
from pathlib import Path

import click

# (attribute, label, format) of each number shown in the table.
ROWS = (
    ("files", "files", "{:d}"),
    ("notes", "notes", "{:d}"),
    ("lowest_pitch", "lowest pitch", None),
    ("highest_pitch", "highest pitch", None),
    ("mean_file_range", "range per file (semitones)", "{:.1f}"),
    ("pitches_used", "pitches used", "{:d}"),
    ("mean_file_pitches", "pitches per file", "{:.1f}"),
    ("pitch_classes_used", "pitch classes used", "{:d}"),
    ("mean_file_pitch_classes", "pitch classes per file", "{:.1f}"),
    ("pitch_class_entropy", "pitch-class entropy (bits)", "{:.3f}"),
    ("scale_consistency", "scale consistency", "{:.3f}"),
    ("notes_per_bar", "notes per bar", "{:.2f}"),
    ("empty_beat_rate", "empty-beat rate", "{:.3f}"),
    ("longest_repeat", "longest repeated pitch", "{:d}"),
    ("mean_longest_repeat", "longest repeat per file", "{:.2f}"),
)


@click.command()
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON instead of tables.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def stats(dir_a: Path, dir_b: Path | None, as_json: bool, no_progress: bool) -> None:
    """Print musical statistics of the MIDI files in DIR_A, and of DIR_B beside them.

    Each file is reduced to its melody (the highest sounding note at each 16th-note step).
    With two sets, each histogram also gets its overlap between the sets: the sum over
    bins of the smaller share, from 0 (nothing shared) to 1 (identical).

    \b
    Examples:
      musicgen stats midi_data/bach_melodies
      musicgen stats midi_data/bach_melodies generated
    """
    from musicgen.stats import compare, folder_stats

    sets = [folder_stats(dir_a, show_progress=not no_progress)]
    if dir_b is not None:
        sets.append(folder_stats(dir_b, show_progress=not no_progress))
    overlaps = compare(*sets) if len(sets) == 2 else None
    if as_json:
        report = {"sets": [item.to_dict() for item in sets]}
        if overlaps is not None:
            report["overlap"] = overlaps
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(format_stats(sets, overlaps))


def format_stats(sets, overlaps: dict[str, float] | None) -> str:
    """Render the statistics as a table of numbers and one table per histogram."""
    from musicgen.notes import pitch_to_name

    names = ["A", "B"][: len(sets)]
    lines = [f"{name}: {item.folder}" + (f" ({item.skipped} files skipped)" if item.skipped else "")
             for name, item in zip(names, sets)]
    lines += ["", f"{'':<30}" + "".join(f"{name:>10}" for name in names)]
    for attribute, label, form in ROWS:
        values = [getattr(item, attribute) for item in sets]
        cells = [pitch_to_name(value) if form is None else form.format(value) for value in values]
        lines.append(f"{label:<30}" + "".join(f"{cell:>10}" for cell in cells))
    for attribute, title in (("pitch_class_histogram", "pitch class"), ("interval_histogram", "interval (semitones)"),
                             ("duration_histogram", "note length (steps)")):
        header = f"{title:<30}" + "".join(f"{name:>10}" for name in names)
        if overlaps is not None:
            header += f"   overlap {overlaps[attribute]:.3f}"
        lines += ["", header]
        histograms = [getattr(item, attribute) for item in sets]
        for label in histograms[0]:
            shares = [histogram[label] for histogram in histograms]
            if any(shares):
                lines.append(f"{label:<30}" + "".join(f"{share:>10.3f}" for share in shares))
    return "\n".join(lines)
