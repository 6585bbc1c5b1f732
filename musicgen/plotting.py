"""Loss curves of a training run, drawn from its metrics CSV into a PNG with matplotlib."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from musicgen.errors import MusicgenError

logger = logging.getLogger(__name__)

METRICS_SUFFIX = ".metrics.csv"
PLOT_SUFFIX = ".loss.png"


class PlotError(MusicgenError):
    pass


def find_metrics_files(target: Path) -> list[Path]:
    """Return the metrics CSV at `target`, or every `*.metrics.csv` in the run folder `target`."""
    if not target.exists():
        raise PlotError(f"{target} not found; give a run folder or a .metrics.csv file written by 'musicgen train'")
    if target.is_file():
        return [target]
    found = sorted(target.glob(f"*{METRICS_SUFFIX}"))
    if not found:
        raise PlotError(f"no *{METRICS_SUFFIX} file in {target}; give the folder of a --output checkpoint of 'musicgen train'")
    return found


def plot_path_for(metrics: Path) -> Path:
    """Return the PNG path beside a metrics CSV: run.metrics.csv -> run.loss.png."""
    name = metrics.name
    stem = name[: -len(METRICS_SUFFIX)] if name.endswith(METRICS_SUFFIX) else metrics.stem
    return metrics.with_name(stem + PLOT_SUFFIX)


def read_metrics(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise PlotError(f"cannot read {path}: {error}") from None
    if not rows or "step" not in rows[0] or "train_loss" not in rows[0]:
        raise PlotError(f"{path} contains no training rows (columns step and train_loss); give a metrics CSV of 'musicgen train'")
    return rows


def plot_metrics(metrics: Path, output: Path | None = None) -> Path:
    """Draw training and validation loss (top) and the learning rate (bottom) against the step; return the PNG path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = read_metrics(metrics)
    output = output or plot_path_for(metrics)
    figure = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, lr_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    _draw_losses(loss_axes, rows)
    _draw_series(lr_axes, rows, "lr", None, "learning rate", "tab:gray")
    lr_axes.set_xlabel("optimizer step")
    lr_axes.set_ylabel("learning rate")
    loss_axes.set_ylabel("loss (nats per token)")
    loss_axes.set_title(metrics.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    logger.info("wrote the loss curve %s", output)
    return output


def _draw_losses(axes, rows: list[dict[str, str]]) -> None:
    # A row of kind "train" has the mean loss since the previous row. Rows of kind "epoch" and
    # "stop" end an epoch or a run and carry the validation loss. Files without the column have epoch rows only.
    _draw_series(axes, rows, "train_loss", "train", "training loss (every --log-every steps)", "tab:blue", alpha=0.5)
    _draw_series(axes, rows, "train_loss", "epoch", "training loss (epoch mean)", "tab:blue", marker="o")
    _draw_series(axes, rows, "val_loss", "epoch", "validation loss", "tab:orange", marker="s")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend()


def _draw_series(axes, rows: list[dict[str, str]], column: str, kind: str | None, label: str, color: str,
                 marker: str | None = None, alpha: float = 1.0) -> None:
    points = []
    for row in rows:
        row_kind = row.get("kind") or "epoch"
        if kind is not None and row_kind != kind and not (kind == "epoch" and row_kind == "stop"):
            continue
        value = _number(row.get(column))
        step = _number(row.get("step"))
        if value is not None and step is not None:
            points.append((step, value))
    if points:
        steps, values = zip(*points)
        axes.plot(steps, values, label=label, color=color, marker=marker, alpha=alpha, markersize=4)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None
