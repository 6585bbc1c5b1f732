"""Records of a training run: one per epoch (or interval), the result of the run, and their log lines."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicgen.data.corpus import EncodedFile
from musicgen.metrics import Evaluation

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    epoch: int
    step: int
    train_loss: float
    tokens_per_second: float
    validation: Evaluation | None = None

    def row(self, lr: float, kind: str = "epoch", ratio: float = 1.0, seconds: float = 0.0) -> dict[str, str]:
        """Return a CSV row; validation columns stay empty when there is no validation set."""
        row = {"epoch": str(self.epoch), "step": str(self.step), "train_loss": f"{self.train_loss:.5f}",
               "lr": f"{lr:g}", "tokens_per_second": f"{self.tokens_per_second:.0f}", "kind": kind,
               "teacher_forcing_ratio": f"{ratio:.4f}", "seconds": f"{seconds:.3f}"}
        if self.validation is not None:
            row.update(val_loss=f"{self.validation.loss:.5f}", perplexity=f"{self.validation.perplexity:.4f}",
                       bits_per_note=f"{self.validation.bits_per_note:.4f}",
                       note_accuracy=f"{self.validation.note_accuracy:.4f}")
        return row

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        validation = Evaluation(**data["validation"]) if data.get("validation") else None
        return cls(data["epoch"], data["step"], data["train_loss"], data["tokens_per_second"], validation)


@dataclass
class TrainResult:
    checkpoint: Path
    epochs: list[EpochRecord] = field(default_factory=list)  # of this session; a resumed run's earlier ones are in its CSV
    best: EpochRecord | None = None
    baseline: Evaluation | None = None  # unigram model on the validation files
    augmentation: dict = field(default_factory=dict)  # settings of transposition augmentation, if any
    seconds: float = 0.0  # training time of the whole run, over all its sessions
    step: int = 0  # optimizer steps of the whole run
    resumed_from_step: int | None = None
    stopped_by: str | None = None  # max-minutes, max-steps, patience or signal; None when all epochs ran
    last_checkpoint: Path | None = None
    plot: Path | None = None


def log_split(train_files: list[EncodedFile], validation_files: list[EncodedFile]) -> None:
    plural = lambda count, word: f"{count} {word}{'' if count == 1 else 's'}"  # noqa: E731
    logger.info("%s, %s", plural(len(train_files), "train file"), plural(len(validation_files), "validation file"))
    if not validation_files:
        logger.warning("validation is disabled because there is only one distinct file; the best checkpoint is chosen by training loss")


def log_epoch(record: EpochRecord, baseline: Evaluation | None) -> None:
    line = f"epoch {record.epoch} | step {record.step} | train loss {record.train_loss:.4f} | {record.tokens_per_second:,.0f} tokens/s"
    if record.validation is not None:
        v = record.validation
        line += (f" | val loss {v.loss:.4f} | ppl {v.perplexity:.3f} | {v.bits_per_note:.3f} bits/note"
                 f" | note accuracy {v.note_accuracy:.3f}")
        if baseline is not None:
            line += f" (unigram {baseline.bits_per_note:.3f})"
    logger.info(line)
