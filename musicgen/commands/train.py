"""musicgen train: learn a melody model from a MIDI folder."""

from __future__ import annotations

from pathlib import Path

import click

from musicgen.constants import DEFAULT_PITCH_HIGH, DEFAULT_PITCH_LOW, DEFAULT_STEPS_PER_QUARTER


@click.command()
@click.argument("midi_dir", type=click.Path(path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Checkpoint file to write (the best epoch by validation loss); a .metrics.csv is written beside it.")
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint at --output.  [default: refuse]")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True,
              help="Recurrent cell; rnn is the tanh Elman cell.")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=20, show_default=True, help="Passes over the training windows.")
@click.option("--hidden-size", type=click.IntRange(1, 8192), default=256, show_default=True, help="Units per recurrent layer.")
@click.option("--layers", type=click.IntRange(1, 16), default=2, show_default=True, help="Stacked recurrent layers.")
@click.option("--embedding-size", type=click.IntRange(1, 8192), default=64, show_default=True, help="Size of the token embedding.")
@click.option("--dropout", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Dropout between layers (fraction).")
@click.option("--seq-len", type=click.IntRange(2, 100_000), default=128, show_default=True,
              help="Training window length in grid steps (tokens).")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=64, show_default=True, help="Windows per batch.")
@click.option("--lr", type=click.FloatRange(0, 10, min_open=True), default=2e-3, show_default=True, help="Adam learning rate.")
@click.option("--clip-norm", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Maximum gradient norm; 0 turns clipping off.")
@click.option("--validation-fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="Share of files held out for validation (split by file).")
@click.option("--max-minutes", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Stop training after this many minutes of wall time and keep the best checkpoint; 0 means no limit.")
@click.option("--random-seed", type=int, default=0, show_default=True, help="Seed for the split, initial weights and batch order.")
@click.option("--steps-per-quarter", type=click.IntRange(1, 96), default=DEFAULT_STEPS_PER_QUARTER, show_default=True,
              help="Grid steps per quarter note (4 is a 16th-note grid).")
@click.option("--pitch-low", type=click.IntRange(0, 116), default=DEFAULT_PITCH_LOW, show_default=True,
              help="Lowest MIDI pitch in the vocabulary; lower notes move up by octaves.")
@click.option("--pitch-high", type=click.IntRange(11, 127), default=DEFAULT_PITCH_HIGH, show_default=True,
              help="Highest MIDI pitch in the vocabulary; higher notes move down by octaves.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def train(midi_dir: Path, output: Path, overwrite: bool, no_progress: bool, steps_per_quarter: int,
          pitch_low: int, pitch_high: int, cell: str, hidden_size: int, layers: int, embedding_size: int,
          dropout: float, **train_options) -> None:
    """Train a many-to-many melody model on the MIDI files under MIDI_DIR.

    Files are read recursively; a file that cannot be used is skipped with its reason.
    Training uses teacher forcing: at each step the input is the true previous token.
    """
    from musicgen.config import ModelConfig, TrainConfig
    from musicgen.data.corpus import encode_folder
    from musicgen.device import resolve_device
    from musicgen.tokenizer import MelodyTokenizer
    from musicgen.training import train as run_training

    if output.exists() and not overwrite:
        raise click.ClickException(f"{output} already exists; pass --overwrite to replace it or choose another --output")
    config = TrainConfig(**train_options)
    resolve_device(config.device)  # fail on a bad --device before reading any file
    tokenizer = MelodyTokenizer(steps_per_quarter, pitch_low, pitch_high)
    corpus = encode_folder(midi_dir, tokenizer, show_progress=not no_progress)
    model_config = ModelConfig(tokenizer.vocab_size, cell, embedding_size, hidden_size, layers, dropout)
    result = run_training(corpus, tokenizer, model_config, config, output, show_progress=not no_progress)
    best = result.best
    summary = f"wrote {output} (epoch {best.epoch} of {len(result.epochs)}, {result.seconds:.0f} s)"
    if best.validation is not None and result.baseline is not None:
        summary += (f"; validation {best.validation.bits_per_note:.3f} bits per note,"
                    f" unigram baseline {result.baseline.bits_per_note:.3f}")
    click.echo(summary)
