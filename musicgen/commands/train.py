"""musicgen train: learn a melody model from a MIDI folder."""

from __future__ import annotations

from pathlib import Path

import click

from musicgen.commands.ingest_options import IngestSetup, TokenizerSetup, ingest_options, tokenizer_options
from musicgen.commands.train_settings import TrainCommand
from musicgen.commands.train_options import run_options


@click.command(cls=TrainCommand)
@click.argument("midi_dir", type=click.Path(path_type=Path), required=False)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Checkpoint file to write (the best epoch by validation loss). Its folder is the run folder: "
                   "NAME.last.pt, NAME.metrics.csv, NAME.loss.png and NAME.config.toml are written beside it. "
                   "Required unless --resume is given.")
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint at --output.  [default: refuse]")
@click.option("--cell", type=click.Choice(["lstm", "gru", "rnn"]), default="lstm", show_default=True,
              help="Recurrent cell; rnn is the tanh Elman cell.")
@click.option("--mode", type=click.Choice(["many-to-many", "one-to-many"]), default="many-to-many", show_default=True,
              help="many-to-many continues a seed; one-to-many unrolls a melody from a condition (--condition).")
@click.option("--condition", default=None, metavar="KINDS",
              help="Conditions of a one-to-many model, comma-separated: key, style (the sub-folder of MIDI_DIR), "
                   "first-note.  [default: key,style]")
@click.option("--condition-start-only", is_flag=True,
              help="Give a one-to-many model its condition through the start state only, not also at every step.")
@click.option("--epochs", type=click.IntRange(1, 100_000), default=20, show_default=True, help="Passes over the training windows.")
@click.option("--hidden-size", type=click.IntRange(1, 8192), default=256, show_default=True, help="Units per recurrent layer.")
@click.option("--layers", type=click.IntRange(1, 16), default=2, show_default=True, help="Stacked recurrent layers.")
@click.option("--embedding-size", type=click.IntRange(1, 8192), default=64, show_default=True, help="Size of the token embedding.")
@click.option("--dropout", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Dropout between layers (fraction).")
@click.option("--seq-len", type=click.IntRange(2, 100_000), default=128, show_default=True,
              help="Training window length in grid steps (tokens).")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=64, show_default=True, help="Windows per batch.")
@click.option("--lr", type=click.FloatRange(0, 10, min_open=True), default=2e-3, show_default=True, help="AdamW learning rate (the peak, after warm-up).")
@click.option("--clip-norm", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Maximum gradient norm; 0 turns clipping off.")
@click.option("--validation-fraction", type=click.FloatRange(0, 0.9), default=0.1, show_default=True,
              help="Share of files held out for validation (split by file).")
@click.option("--max-minutes", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Stop training after this many minutes of wall time, writing the last checkpoint; 0 means no limit.")
@click.option("--random-seed", type=int, default=0, show_default=True, help="Seed for the split, initial weights and batch order.")
@run_options
@tokenizer_options
@ingest_options
@click.option("--transpose", default=None, metavar="LOW,HIGH",
              help="Transposition augmentation: each training window moves by a random interval of LOW..HIGH "
                   "semitones each time it is drawn (e.g. --transpose=-5,6); a key condition moves with it; validation files "
                   "never move.  [default: off]")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def train(midi_dir: Path, output: Path, overwrite: bool, no_progress: bool, tokenizer_setup: TokenizerSetup,
          ingest_setup: IngestSetup, transpose: str | None, cell: str, hidden_size: int, layers: int, embedding_size: int,
          dropout: float, mode: str, condition: str | None, condition_start_only: bool,
          preset: str | None, config: Path | None, resume: Path | None, init_from: Path | None, **train_options) -> None:
    """Train a melody model on the MIDI files under MIDI_DIR (many-to-many, or one-to-many with --mode).

    Files are read recursively; a file that cannot be used is skipped with its reason.
    Training uses teacher forcing (at each step the input is the true previous token), or
    scheduled sampling with --teacher-forcing-ratio below 1. Settings come from the command
    line, then --config, then --preset, then the defaults; --resume continues a stopped run.
    """
    from musicgen import distributed
    from musicgen.commands.train_settings import INIT_KEY, RESUME_KEY, log_settings, stored_settings
    from musicgen.config import ModelConfig, TrainConfig
    from musicgen.data.augment import TranspositionAugmenter, parse_interval_range
    from musicgen.data.corpus import require_midi_files
    from musicgen.data.ingest import ingest_folder
    from musicgen.device import resolve_device
    from musicgen.training import train as run_training

    ctx = click.get_current_context()
    if midi_dir is None:
        raise click.UsageError("Missing argument 'MIDI_DIR'.")
    if output is None:
        raise click.UsageError("Missing option '--output' (or give --resume LAST_CHECKPOINT).")
    resumed = ctx.meta.get(RESUME_KEY)
    _check_outputs(output, overwrite, resume if resumed is not None else None, resumed)
    condition_kinds = _condition_kinds(mode, condition)
    if condition_start_only and not condition_kinds:
        raise click.UsageError("--condition-start-only applies to --mode one-to-many only")
    if transpose is not None and "first-note" in condition_kinds:
        raise click.UsageError("--transpose cannot be combined with --condition first-note: a window's first note "
                               "may lie outside it; use key or style conditions")
    interval_range = parse_interval_range(transpose) if transpose is not None else None
    config = TrainConfig(**train_options)
    resolve_device(config.device)  # fail on a bad --device before reading any file
    ctx.with_resource(distributed.session(config.device))  # joins torchrun's process group until the command ends
    require_midi_files(midi_dir)  # a missing or empty folder fails here, before the settings are logged
    log_settings(ctx)
    tokenizer = tokenizer_setup.build()
    corpus = ingest_folder(midi_dir, tokenizer, ingest_setup.build(show_progress=not no_progress))
    model_config = ModelConfig(tokenizer.vocab_size, cell, embedding_size, hidden_size, layers, dropout)
    if condition_kinds:
        from musicgen.conditions import conditioned_config, label_files

        label_files(corpus, tokenizer, condition_kinds, show_progress=not no_progress)
        model_config = conditioned_config(model_config, condition_kinds, corpus.files, tokenizer,
                                          each_step=not condition_start_only, all_keys=interval_range is not None)
    augment = TranspositionAugmenter(tokenizer, *interval_range) if interval_range is not None else None
    if augment is not None and "key" in condition_kinds:
        augment.transpose_keys(model_config.conditions.index("key"), model_config.keys)
    init = ctx.meta.get(INIT_KEY) if resumed is None else None
    if init is not None and tokenizer.to_dict() != init["tokenizer"]:
        raise click.ClickException(
            f"the tokenizer of this run ({tokenizer!r}) differs from that of --init-from {init_from}; "
            "fine-tuning needs the same tokenizer settings"
        )
    result = run_training(corpus, tokenizer, model_config, config, output, show_progress=not no_progress, augment=augment,
                          resume=resumed, init_state=init["model_state"] if init is not None else None,
                          settings=stored_settings(ctx))
    if distributed.context().is_main:
        click.echo(_summary(output, result))


def _check_outputs(output: Path, overwrite: bool, resume: Path | None, resumed: dict | None) -> None:
    """Reject a run that would replace the checkpoints of another run without --overwrite."""
    from musicgen.run_files import RunPaths

    own_output = resumed is not None and output == resume.parent / resumed["best_checkpoint"]
    if output.exists() and not overwrite and not own_output:
        raise click.ClickException(f"{output} already exists; pass --overwrite to replace it or choose another --output")
    last = RunPaths.for_checkpoint(output).last
    if last.exists() and not overwrite and resumed is None:
        raise click.ClickException(f"{last} exists from an earlier run; continue it with --resume {last}, "
                                   "or pass --overwrite to start over")


def _summary(output: Path, result) -> str:
    """Return the line that ends a run: the best checkpoint, its scores, and how to resume an early stop."""
    best = result.best
    last_epoch = result.epochs[-1].epoch if result.epochs else best.epoch
    summary = f"wrote {output} (epoch {best.epoch} of {last_epoch}, step {result.step}, {result.seconds:.0f} s)"
    if best.validation is not None and result.baseline is not None:
        summary += (f"; validation {best.validation.bits_per_note:.3f} bits per note,"
                    f" unigram baseline {result.baseline.bits_per_note:.3f}")
    if result.stopped_by in ("max-minutes", "max-steps", "signal") and result.last_checkpoint is not None:
        summary += f"; continue with: musicgen train --resume {result.last_checkpoint}"
    return summary


def _condition_kinds(mode: str, condition: str | None) -> list[str]:
    """Return the condition kinds of a one-to-many run, or [] for many-to-many."""
    from musicgen.conditions import parse_condition_kinds

    if mode == "many-to-many":
        if condition is not None:
            raise click.UsageError("--condition applies to --mode one-to-many only; add --mode one-to-many or drop --condition")
        return []
    return parse_condition_kinds(condition if condition is not None else "key,style")
