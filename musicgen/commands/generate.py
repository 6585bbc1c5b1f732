"""musicgen generate: write new melodies from a seed."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--model", "-m", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Checkpoint from 'musicgen train'.  [default: the bundled models/bach_melody_lstm.pt]")
@click.option("--seed", "-s", default=None, metavar="SEED",
              help="Start of the melody: note names with one grid step each (\"C4 - - - E4 - - - G4:4\"; "
                   "'-' holds, R rests, C4:4 lasts 4 steps; lower case and the signs ♯ ♭ are accepted), "
                   "MIDI numbers (60,64,67), or a MIDI file (all of it, or --seed-bars). "
                   "A seed of rests only is accepted.  [default: one note drawn from the training pitches]")
@click.option("--length", type=click.IntRange(min=1), default=None, metavar="STEPS",
              help="Grid steps to generate after the seed (the seed is not counted; at most 1,000,000).  [default: 8 bars]")
@click.option("--bars", type=click.IntRange(min=1), default=None, help="Bars to generate after the seed, instead of --length.")
@click.option("--seed-bars", type=click.IntRange(min=1), default=None, help="Use only the first N bars of a MIDI file seed.")
@click.option("--temperature", "-t", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Softmax temperature; lower is safer, higher is more varied, 0 takes the most likely token.")
@click.option("--num", "-n", type=click.IntRange(1, 1024), default=1, show_default=True, help="Melodies to write, sampled in one batch.")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("generated"),
              show_default=True, help="Folder for the .mid files; existing files are never replaced.")
@click.option("--random-seed", type=int, default=None, help="Seed for sampling; the same seed gives identical files.  [default: random, logged]")
@click.option("--tempo", type=click.FloatRange(1, 1000), default=None, metavar="BPM",
              help="Tempo in quarter notes per minute.  [default: a MIDI seed's tempo, else 120]")
@click.option("--program", type=click.IntRange(0, 127), default=0, show_default=True, help="General MIDI program, 0-based (0 is piano).")
@click.option("--velocity", type=click.IntRange(1, 127), default=80, show_default=True, help="Velocity of every note, 1..127.")
@click.option("--stop-at-eos", is_flag=True, help="End a melody early when the model emits its end token.  [default: generate the full length]")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
def generate(model: Path | None, **options) -> None:
    """Generate melodies that begin with SEED and write them as .mid files.

    \b
    Examples:
      musicgen generate --seed "C4 E4 G4" --length 64
      musicgen generate --seed 60,64,67 --num 4 --random-seed 1
      musicgen generate --seed my_tune.mid --seed-bars 2 --bars 8
    """
    from musicgen.generation import DEFAULT_MODEL, GenerateOptions
    from musicgen.generation import generate as run_generation

    written = run_generation(GenerateOptions(model=model or DEFAULT_MODEL, **options))
    for item in written:
        click.echo(str(item.path))
    silent = [item for item in written if not item.notes]
    if silent:
        steps = written[0].generated_steps
        raise click.ClickException(f"{len(silent)} of {len(written)} files contain no notes ({steps} generated steps each)")
