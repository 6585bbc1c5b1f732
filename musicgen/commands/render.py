"""musicgen render: write a MIDI file as audio (WAV), a piano-roll picture (PNG) or a score (MusicXML)."""

from __future__ import annotations

from pathlib import Path

import click


def output_options(function):
    """Add the --wav, --png, --musicxml, --soundfont and --no-fluidsynth options shared with generate."""
    options = [
        click.option("--wav", is_flag=True, help="Write a WAV file (FluidSynth with a General MIDI soundfont, "
                     "else pretty_midi's sine waves), loudness-normalized."),
        click.option("--png", is_flag=True, help="Write a piano-roll PNG: bars across, pitches up, the seed in orange."),
        click.option("--musicxml", is_flag=True, help="Write a MusicXML score with key, meter and tempo, "
                     "which MuseScore and other notation programs open."),
        click.option("--soundfont", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="General MIDI .sf2 file for --wav.  [default: $MUSICGEN_SOUNDFONT, else the one installed]"),
        click.option("--no-fluidsynth", is_flag=True, help="Render --wav with pretty_midi's sine waves even when "
                     "FluidSynth is installed."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@click.argument("midi_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.mid...")
@output_options
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the outputs.  [default: beside each MIDI file]")
def render(midi_files: tuple[Path, ...], wav: bool, png: bool, musicxml: bool, soundfont: Path | None,
           no_fluidsynth: bool, output_dir: Path | None) -> None:
    """Write each MIDI file as a WAV (the default), a piano-roll PNG and/or a MusicXML score.

    Outputs take the MIDI file's name with another suffix; an existing file is never
    replaced. The PNG and the score show the melody (the highest note at each 16th-note
    step). A `.json` sidecar from 'musicgen generate' beside the file supplies the seed
    length, which both draw in another colour.

    \b
    Examples:
      musicgen render generated/melody-001.mid
      musicgen render generated/melody-001.mid --png --musicxml
    """
    from musicgen.render import render_file

    formats = [name for name, wanted in (("wav", wav), ("png", png), ("musicxml", musicxml)) if wanted] or ["wav"]
    for midi_file in midi_files:
        for path in render_file(midi_file, formats, output_dir, use_fluidsynth=not no_fluidsynth, soundfont=soundfont):
            click.echo(str(path))
