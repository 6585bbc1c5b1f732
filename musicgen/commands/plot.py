"""musicgen plot: draw the loss curves of a training run."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run", type=click.Path(path_type=Path), metavar="RUN_DIR|CSV")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PNG",
              help="PNG to write; only with a single metrics CSV.  [default: NAME.loss.png beside NAME.metrics.csv]")
def plot(run: Path, output: Path | None) -> None:
    """Draw training and validation loss and the learning rate of a run into a PNG.

    RUN_DIR is the folder of a checkpoint written by 'musicgen train' (every *.metrics.csv
    in it is drawn), or the path of one metrics CSV.
    """
    from musicgen.plotting import PlotError, find_metrics_files, plot_metrics

    files = find_metrics_files(run)
    if output is not None and len(files) > 1:
        raise PlotError(f"{run} contains {len(files)} metrics files; give one of them instead of the folder to use --output")
    for metrics in files:
        click.echo(plot_metrics(metrics, output))
