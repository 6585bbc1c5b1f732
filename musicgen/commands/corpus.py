"""musicgen corpus: build the bundled MIDI corpus."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def corpus() -> None:
    """Build the bundled MIDI corpus from music21's public-domain corpus."""


@corpus.command("export")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("midi_data"), show_default=True,
              help="Folder to write bach_melodies/, bach_chorales/ and oneills_1850/ into.")
@click.option("--overwrite", is_flag=True, help="Replace existing .mid files.  [default: refuse]")
def corpus_export(output_dir: Path, overwrite: bool) -> None:
    """Write the Bach chorales and O'Neill's 1850 tunes from music21's corpus as MIDI files."""
    from musicgen.corpus_export import export_corpus

    counts = export_corpus(output_dir, overwrite=overwrite)
    click.echo(f"wrote {output_dir}: {counts}")
