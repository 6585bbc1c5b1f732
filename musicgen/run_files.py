"""The files of a training run, all named after the --output checkpoint, and its metrics CSV.

For `--output runs/bach/model.pt` the run folder is runs/bach/ and holds:

- model.pt: the best checkpoint (lowest validation loss), the one `generate` loads;
- model.last.pt: the last checkpoint with optimizer and random states, for `--resume`;
- model.metrics.csv: one row per --log-every steps and per epoch;
- model.loss.png: the loss curves, drawn at the end of the run;
- model.config.toml: every effective setting, usable again with `--config`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from musicgen.plotting import METRICS_SUFFIX, PLOT_SUFFIX

CSV_FIELDS = (
    "epoch", "step", "train_loss", "val_loss", "perplexity", "bits_per_note", "note_accuracy", "lr", "tokens_per_second",
    "kind", "teacher_forcing_ratio", "seconds",
)


@dataclass(frozen=True)
class RunPaths:
    best: Path
    last: Path
    metrics: Path
    plot: Path
    config: Path

    @classmethod
    def for_checkpoint(cls, output: Path) -> RunPaths:
        suffix = output.suffix or ".pt"
        return cls(
            best=output,
            last=output.with_name(f"{output.stem}.last{suffix}"),
            metrics=output.with_suffix(METRICS_SUFFIX),
            plot=output.with_suffix(PLOT_SUFFIX),
            config=output.with_suffix(".config.toml"),
        )


class MetricsLog:
    """Appends rows to the metrics CSV and flushes each one, so a killed run keeps its rows.

    A resumed run drops the rows after the step it resumes from (written after its last
    checkpoint) and appends from there. When `enabled` is False (ranks other than 0) it writes nothing.
    """

    def __init__(self, path: Path, enabled: bool = True, resume_step: int | None = None) -> None:
        self.path = path
        self.enabled = enabled
        self.resume_step = resume_step
        self._stream: IO[str] | None = None
        self._writer: csv.DictWriter | None = None

    def __enter__(self) -> MetricsLog:
        if not self.enabled:
            return self
        rows_kept = self._rows_to_keep()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write the kept rows to a new file first, so a crash here cannot lose the old ones.
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows_kept)
        os.replace(temporary, self.path)
        self._stream = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._stream, fieldnames=CSV_FIELDS, extrasaction="ignore")
        return self

    def _rows_to_keep(self) -> list[dict[str, str]]:
        if self.resume_step is None or not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as stream:
            rows = list(csv.DictReader(stream))
        return [row for row in rows if row.get("step", "").isdigit() and int(row["step"]) <= self.resume_step]

    def write(self, row: dict[str, str]) -> None:
        if self._writer is None or self._stream is None:
            return
        self._writer.writerow(row)
        self._stream.flush()

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
