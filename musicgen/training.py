"""Teacher-forced training of the many-to-many model, with validation and the best checkpoint."""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from musicgen.checkpoint import save_checkpoint
from musicgen.config import ModelConfig, TrainConfig
from musicgen.data.corpus import Corpus, EncodedFile, split_by_file, token_counts
from musicgen.data.dataset import cut_windows, log_short_files
from musicgen.device import resolve_device
from musicgen.metrics import Evaluation, evaluate_model, unigram_evaluation
from musicgen.models import MelodyRNN, build_model
from musicgen.tokenizer.melody import MelodyTokenizer

logger = logging.getLogger(__name__)

CSV_FIELDS = (
    "epoch", "step", "train_loss", "val_loss", "perplexity", "bits_per_note", "note_accuracy", "lr", "tokens_per_second",
)


@dataclass
class EpochRecord:
    epoch: int
    step: int
    train_loss: float
    tokens_per_second: float
    validation: Evaluation | None = None

    def row(self, lr: float) -> dict[str, str]:
        """Return a CSV row; validation columns stay empty when there is no validation set."""
        row = {"epoch": str(self.epoch), "step": str(self.step), "train_loss": f"{self.train_loss:.5f}",
               "lr": f"{lr:g}", "tokens_per_second": f"{self.tokens_per_second:.0f}"}
        if self.validation is not None:
            row.update(val_loss=f"{self.validation.loss:.5f}", perplexity=f"{self.validation.perplexity:.4f}",
                       bits_per_note=f"{self.validation.bits_per_note:.4f}",
                       note_accuracy=f"{self.validation.note_accuracy:.4f}")
        return row


@dataclass
class TrainResult:
    checkpoint: Path
    epochs: list[EpochRecord] = field(default_factory=list)
    best: EpochRecord | None = None
    baseline: Evaluation | None = None  # unigram model on the validation files
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    corpus: Corpus, tokenizer: MelodyTokenizer, model_config: ModelConfig, config: TrainConfig,
    output: Path, show_progress: bool = True,
) -> TrainResult:
    """Split the corpus by file, train with teacher forcing, keep the best checkpoint at `output`."""
    seed_everything(config.random_seed)
    device = resolve_device(config.device)
    train_files, validation_files = split_by_file(corpus.files, config.validation_fraction, config.random_seed)
    _log_split(train_files, validation_files)
    log_short_files(corpus.files, config.seq_len)
    windows = cut_windows(train_files, config.seq_len, tokenizer.pad_id)
    counts = token_counts(train_files, tokenizer.vocab_size)

    model = build_model(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    logger.info("model: %s with %d parameters on %s; %d training windows of %d steps",
                model_config, sum(p.numel() for p in model.parameters()), device, len(windows), config.seq_len)

    result = TrainResult(checkpoint=output)
    if validation_files:
        result.baseline = unigram_evaluation(counts, validation_files, tokenizer)
        logger.info("unigram baseline on validation: %.3f bits per note", result.baseline.bits_per_note)
    output.parent.mkdir(parents=True, exist_ok=True)
    metrics_path = output.with_suffix(".metrics.csv")
    deadline = time.monotonic() + config.max_minutes * 60 if config.max_minutes > 0 else math.inf
    started = time.monotonic()
    step = 0
    with open(metrics_path, "w", newline="", encoding="utf-8") as metrics_file:
        writer = csv.DictWriter(metrics_file, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for epoch in range(1, config.epochs + 1):
            loss, tokens, seconds, step, stopped = _train_epoch(
                model, optimizer, windows, tokenizer.pad_id, config, device, step, deadline, epoch, show_progress
            )
            record = EpochRecord(epoch, step, loss, tokens / max(seconds, 1e-9))
            if validation_files:
                record.validation = evaluate_model(model, validation_files, tokenizer, device)
            _log_epoch(record, result.baseline)
            writer.writerow(record.row(config.lr))
            metrics_file.flush()
            result.epochs.append(record)
            if _is_better(record, result.best):
                result.best = record
                save_checkpoint(output, _payload(model, tokenizer, config, record, counts, corpus, train_files, validation_files, result))
            if stopped:
                logger.info("stopped after %.1f minutes (--max-minutes %g) in epoch %d", (time.monotonic() - started) / 60, config.max_minutes, epoch)
                break
    result.seconds = time.monotonic() - started
    return result


def _train_epoch(
    model: MelodyRNN, optimizer: torch.optim.Optimizer, windows: torch.Tensor, pad_id: int, config: TrainConfig,
    device: torch.device, step: int, deadline: float, epoch: int, show_progress: bool,
) -> tuple[float, int, float, int, bool]:
    """Run one pass over shuffled windows; returns mean loss, target tokens, seconds, step, and whether time ran out."""
    model.train()
    order = torch.randperm(len(windows))
    total_loss, total_tokens, stopped = 0.0, 0, False
    started = time.monotonic()
    batches = range(0, len(windows), config.batch_size)
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=not show_progress, leave=False)
    for first in bar:
        batch = windows[order[first : first + config.batch_size]].to(device)
        # Teacher forcing: the input at each step is the true previous token.
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_norm > 0:
            # Backpropagation through time multiplies the gradient by the recurrent weights once per
            # step, so over long windows it can grow without bound (exploding gradients). Capping the
            # total norm keeps one bad batch from throwing the weights far off.
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        step += 1
        tokens = int((targets != pad_id).sum())
        total_loss += loss.item() * tokens
        total_tokens += tokens
        bar.set_postfix(loss=f"{total_loss / max(total_tokens, 1):.3f}")
        if time.monotonic() > deadline:
            stopped = True
            break
    bar.close()
    return total_loss / max(total_tokens, 1), total_tokens, time.monotonic() - started, step, stopped


def _is_better(record: EpochRecord, best: EpochRecord | None) -> bool:
    if best is None:
        return True
    if record.validation is not None and best.validation is not None:
        return record.validation.loss < best.validation.loss
    return record.train_loss < best.train_loss


def _log_split(train_files: list[EncodedFile], validation_files: list[EncodedFile]) -> None:
    plural = lambda count, word: f"{count} {word}{'' if count == 1 else 's'}"  # noqa: E731
    logger.info("%s, %s", plural(len(train_files), "train file"), plural(len(validation_files), "validation file"))
    if not validation_files:
        logger.warning("validation is disabled because there is only one distinct file; the best checkpoint is chosen by training loss")


def _log_epoch(record: EpochRecord, baseline: Evaluation | None) -> None:
    line = f"epoch {record.epoch} | step {record.step} | train loss {record.train_loss:.4f} | {record.tokens_per_second:,.0f} tokens/s"
    if record.validation is not None:
        v = record.validation
        line += (f" | val loss {v.loss:.4f} | ppl {v.perplexity:.3f} | {v.bits_per_note:.3f} bits/note"
                 f" | note accuracy {v.note_accuracy:.3f}")
        if baseline is not None:
            line += f" (unigram {baseline.bits_per_note:.3f})"
    logger.info(line)


def _payload(
    model: MelodyRNN, tokenizer: MelodyTokenizer, config: TrainConfig, record: EpochRecord, counts: np.ndarray,
    corpus: Corpus, train_files: list[EncodedFile], validation_files: list[EncodedFile], result: TrainResult,
) -> dict:
    """Build the checkpoint dict from tensors and JSON-like values only, so weights_only loading works."""
    metrics = {"train_loss": record.train_loss, "tokens_per_second": record.tokens_per_second}
    if record.validation is not None:
        v = record.validation
        metrics.update(val_loss=v.loss, perplexity=v.perplexity, bits_per_note=v.bits_per_note, note_accuracy=v.note_accuracy)
    if result.baseline is not None:
        metrics["unigram_bits_per_note"] = result.baseline.bits_per_note
    return {
        "model_state": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "model_config": model.config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "train_config": config.to_dict(),
        "epoch": record.epoch,
        "step": record.step,
        "metrics": metrics,
        "best_by": "validation_loss" if record.validation is not None else "training_loss",
        "token_counts": counts.tolist(),
        "data": {"folder": str(corpus.folder), "train_files": len(train_files), "validation_files": len(validation_files),
                 "validation_names": sorted(str(f.path.relative_to(corpus.folder)) for f in validation_files)},
    }
