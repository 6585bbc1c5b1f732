"""musicgen models: list the trained models shipped in the repository's models/ folder."""

from __future__ import annotations

from pathlib import Path

import click

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"


@click.command("models")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), default=SHIPPED_MODELS,
              help="Folder of checkpoints to list.  [default: the shipped models/ folder]")
def models(folder: Path) -> None:
    """List the trained models: shape, training data and held-out bits per note.

    The Kneser-Ney columns come from the NAME.evaluation.json that
    'scripts/model_card.py card' writes beside each checkpoint; models/README.md contains
    their full cards.
    """
    from musicgen.model_list import describe_models

    rows = describe_models(folder)
    if not rows:
        raise click.ClickException(f"no checkpoints (*.pt) in {folder}")
    header = ("name", "mode", "cell", "size", "trained on", "bits/note", "best KN", "ratio")
    table = [header] + [tuple(row) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    click.echo(f"\nDetails: {folder / 'README.md'}")
