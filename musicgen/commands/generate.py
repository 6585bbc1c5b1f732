"""musicgen generate: write new melodies from a seed or from the conditions of a one-to-many model."""

from __future__ import annotations

from pathlib import Path

import click

from musicgen.commands.render import output_options


@click.command()
@click.option("--model", "-m", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Checkpoint from 'musicgen train'.  [default: the bundled models/bach_melody_lstm.pt]")
@click.option("--seed", "-s", default=None, metavar="SEED",
              help="Start of the melody: note names with one grid step each (\"C4 - - - E4 - - - G4:4\"; "
                   "'-' holds, R rests, C4:4 lasts 4 steps; lower case and the signs ♯ ♭ are accepted), "
                   "MIDI numbers (60,64,67), or a MIDI file (all of it, or --seed-bars). "
                   "A seed of rests only is accepted.  [default: one note drawn from the training pitches; "
                   "none for a one-to-many model]")
@click.option("--length", type=click.IntRange(min=1), default=None, metavar="STEPS",
              help="Grid steps to generate after the seed (the seed is not counted; at most 1,000,000).  [default: 8 bars]")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Bars to generate after the seed, instead of --length.")
@click.option("--seed-bars", type=click.IntRange(min=1), default=None, help="Use only the first N bars of a MIDI file seed; an opening pickup bar comes along uncounted.")
@click.option("--key", default=None, metavar="KEY",
              help="Key such as \"D minor\" or \"Bb major\": the condition of a one-to-many model trained on keys, "
                   "and the scale of --in-key.  [default: drawn from the model's keys]")
@click.option("--style", default=None, metavar="NAME",
              help="Style of a one-to-many model: the name of a sub-folder it was trained on.  [default: drawn from the model's styles]")
@click.option("--first-note", default=None, metavar="NOTE",
              help="First-note condition of a one-to-many model, as a name (D4) or MIDI number.  "
                   "[default: the seed's first note, else drawn]")
@click.option("--temperature", "-t", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Softmax temperature; lower is safer, higher is more varied, 0 takes the most likely token.")
@click.option("--top-k", type=click.IntRange(min=1), default=None, metavar="K",
              help="Draw only from the K most likely tokens at each step.  [default: all]")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None, metavar="P",
              help="Draw only from the smallest set of most likely tokens whose probability reaches P (nucleus sampling, 0 < P <= 1).  [default: all]")
@click.option("--beam-size", type=click.IntRange(1, 64), default=None, metavar="WIDTH",
              help="Beam search of this width for the most likely melodies instead of sampling; "
                   "--num of them are written (at most WIDTH), and --temperature is not used.  [default: sample]")
@click.option("--in-key", is_flag=True,
              help="Keep new notes in the scale of --key, of the one-to-many key condition, or of the key estimated from the seed.")
@click.option("--max-repeat", type=click.IntRange(min=1), default=None, metavar="N",
              help="Strike one pitch at most N times in a row (rests and holds between do not end a run).  [default: no limit]")
@click.option("--num", "-n", type=click.IntRange(1, 1024), default=1, show_default=True, help="Melodies to write, sampled in one batch.")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("generated"),
              show_default=True, help="Folder for the .mid files; existing files are never replaced.")
@click.option("--random-seed", type=int, default=None, help="Seed for sampling; the same seed gives identical files.  [default: random, logged]")
@click.option("--tempo", type=click.FloatRange(4, 1000), default=None, metavar="BPM",
              help="Tempo in quarter notes per minute, 4..1000 (a MIDI file cannot store less than 3.58).  "
                   "[default: a MIDI seed's tempo, else 120]")
@click.option("--program", default="0", show_default=True, metavar="NUMBER|NAME",
              help="General MIDI program, 0-based (0 is piano, 40 violin), or its name (\"violin\", \"Acoustic Grand Piano\").")
@click.option("--velocity", type=click.IntRange(1, 127), default=80, show_default=True, help="Velocity of every note, 1..127.")
@click.option("--stop-at-eos", is_flag=True, help="End a melody early when the model emits its end token.  [default: generate the full length]")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
@output_options
def generate(model: Path | None, wav: bool, png: bool, musicxml: bool, soundfont: Path | None, no_fluidsynth: bool,
             **options) -> None:
    """Generate melodies and write them as .mid files.

    A many-to-many model continues SEED. A one-to-many model starts from its conditions
    (--key, --style, --first-note) and needs no seed.

    \b
    Examples:
      musicgen generate --seed "C4 E4 G4" --length 64
      musicgen generate --seed 60,64,67 --num 4 --random-seed 1 --top-p 0.9
      musicgen generate --seed my_tune.mid --seed-bars 2 --bars 8 --in-key
      musicgen generate --model reels.pt --key "D major" --style oneills
    """
    from musicgen.generation import DEFAULT_MODEL, GenerateOptions
    from musicgen.generation import generate as run_generation

    written = run_generation(GenerateOptions(model=model or DEFAULT_MODEL, **options))
    for item in written:
        click.echo(str(item.path))
    formats = [name for name, wanted in (("wav", wav), ("png", png), ("musicxml", musicxml)) if wanted]
    if formats:
        from musicgen.render import render_file

        for item in written:
            if item.notes:
                for path in render_file(item.path, formats, use_fluidsynth=not no_fluidsynth, soundfont=soundfont):
                    click.echo(str(path))
    silent = [item for item in written if not item.notes]
    if silent:
        steps = written[0].generated_steps
        raise click.ClickException(f"{len(silent)} of {len(written)} files contain no notes ({steps} generated steps each)")
