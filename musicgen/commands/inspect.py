"""musicgen inspect: summarize a MIDI folder as training would read it."""

from __future__ import annotations

from pathlib import Path

import click

from musicgen.commands.ingest_options import IngestSetup, TokenizerSetup, ingest_options, tokenizer_options


@click.command()
@click.argument("midi_dir", type=click.Path(path_type=Path))
@tokenizer_options
@ingest_options
@click.option("--no-keys", is_flag=True, help="Skip key estimation (about 20 ms per file with music21) and the key histogram.")
@click.option("--verbose", "list_files", is_flag=True, help="Name the files behind each skip reason and each repair.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def inspect(midi_dir: Path, tokenizer_setup: TokenizerSetup, ingest_setup: IngestSetup, no_keys: bool,
            list_files: bool, no_progress: bool) -> None:
    """Summarize the MIDI files under MIDI_DIR: files read, files skipped by reason, notes,
    tokens, pitch range, key histogram and duplicates.

    Files are read as 'musicgen train' reads them, with the same tokenizer options, and
    through the same cache, so inspecting a folder first makes training start faster.

    \b
    Examples:
      musicgen inspect midi_data/oneills_1850
      musicgen inspect my_midi --tokenizer event --verbose
    """
    from musicgen.data.ingest import ingest_records
    from musicgen.data.inspection import summarize, summary_lines

    tokenizer = tokenizer_setup.build()
    options = ingest_setup.build(show_progress=not no_progress, estimate_keys=not no_keys)
    result = ingest_records(midi_dir, tokenizer, options, log_skips=False)
    for line in summary_lines(summarize(midi_dir, result, tokenizer), verbose=list_files):
        click.echo(line)
