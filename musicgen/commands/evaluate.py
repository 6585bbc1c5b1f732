"""musicgen evaluate: score a trained model on held-out files beside n-gram baselines."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("midi_dir", type=click.Path(path_type=Path))
@click.option("--model", "-m", "model_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="PATH", help="Checkpoint from 'musicgen train'.")
@click.option("--train-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The folder the model was trained on, if it moved.  [default: the folder stored in the checkpoint]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def evaluate(midi_dir: Path, model_path: Path, train_dir: Path | None, as_json: bool, device: str,
             no_progress: bool) -> None:
    """Score a model on held-out MIDI files beside unigram and Kneser-Ney n-gram baselines.

    When MIDI_DIR is the model's training folder, the held-out files are the checkpoint's
    validation files; otherwise they are all files of MIDI_DIR. The baselines are fitted on
    the model's own training files (its training folder minus its validation files).

    \b
    Metrics, over whole files:
      NLL/token      mean negative log-likelihood per token, in nats
      perplexity     exp(NLL/token)
      bits/note      NLL of the files in bits divided by their notes (comparable across tokenizers)
      note accuracy  share of note onsets whose pitch the model ranks first among all pitches

    \b
    Examples:
      musicgen evaluate --model models/bach_melody_lstm.pt midi_data/bach_melodies
      musicgen evaluate --model my_model.pt my_other_tunes --json
    """
    from musicgen.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(model_path, midi_dir, train_dir, device, show_progress=not no_progress)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report))


def format_report(report) -> str:
    """Render an EvaluationReport as a header and a fixed-width table."""
    if report.held_out_source == "validation":
        source = f"the checkpoint's {len(report.held_out)} validation files in {report.midi_dir}"
    else:
        source = f"all {len(report.held_out)} files of {report.midi_dir}"
    notes = sum(f.notes for f in report.held_out)
    lines = [
        f"model: {report.model_path}",
        f"held out: {source} ({notes} notes)",
        f"baselines fitted on: {len(report.training)} training files of {report.training_folder}",
    ]
    if report.duplicates_of_training:
        lines.append(f"warning: {report.duplicates_of_training} held-out files repeat a training file's melody")
    if report.conditioned_on:
        lines.append(f"note: the model is given each held-out file's own {', '.join(report.conditioned_on)}")
    lines += ["", f"{'':<16}{'NLL/token':>10}{'perplexity':>12}{'bits/note':>11}{'note acc.':>11}"]
    rows = [("model", report.model), ("unigram", report.unigram)]
    rows += [(f"Kneser-Ney n={order}", result) for order, result in report.ngrams.items()]
    best = f"Kneser-Ney n={report.best_ngram_order}" if report.ngrams else None
    for name, result in rows:
        mark = "  <- best n-gram" if name == best else ""
        lines.append(f"{name:<16}{result.loss:>10.4f}{result.perplexity:>12.3f}{result.bits_per_note:>11.3f}"
                     f"{result.note_accuracy:>11.3f}{mark}")
    if report.ngrams:
        lines += ["", f"bits per note, model / best n-gram: {report.ratio_to_best_ngram:.3f}"]
    return "\n".join(lines)
