"""Training of the melody models: the loop over epochs and steps, validation, checkpoints and resume.

A run writes its files beside the --output checkpoint (see `musicgen.run_files`): the best
checkpoint, a last checkpoint every --save-every steps and at each epoch's end, the metrics
CSV, the settings and a loss-curve PNG. `--resume` continues from a last checkpoint with
the model, optimizer, schedule, counters and random states it stored. So a run stopped
after epoch k and resumed ends with the same weights as one that never stopped, on the
CPU, where the kernels are deterministic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from musicgen import distributed
from musicgen.checkpoint import save_checkpoint
from musicgen.conditions import cut_training_windows, evaluate
from musicgen.config import ModelConfig, TrainConfig
from musicgen.data.augment import TranspositionAugmenter
from musicgen.data.corpus import Corpus, split_by_file, token_counts
from musicgen.data.dataset import log_short_files
from musicgen.device import resolve_device
from musicgen.errors import MusicgenError
from musicgen.metrics import Evaluation, unigram_evaluation
from musicgen.models import build_model
from musicgen.precision import Precision
from musicgen.run_files import MetricsLog, RunPaths
from musicgen.run_state import RandomStates, RunState
from musicgen.scheduled_sampling import TrainingForward
from musicgen.schedules import EarlyStopping, LearningRateSchedule, teacher_forcing_ratio
from musicgen.settings import json_ready, to_toml
from musicgen.stop_requests import StopRequests
from musicgen.tokenizer import Tokenizer
from musicgen.train_records import EpochRecord, TrainResult, log_epoch, log_split

logger = logging.getLogger(__name__)


class TrainingError(MusicgenError):
    """A run that cannot start or continue as requested; the message names what to change."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    corpus: Corpus, tokenizer: Tokenizer, model_config: ModelConfig, config: TrainConfig,
    output: Path, show_progress: bool = True, augment: TranspositionAugmenter | None = None,
    resume: dict[str, Any] | None = None, init_state: dict[str, torch.Tensor] | None = None,
    settings: dict[str, Any] | None = None,
) -> TrainResult:
    """Split the corpus by file, train, and keep the best and the last checkpoint beside `output`.

    `augment` transposes training windows as they are drawn; validation files are never
    transposed. `resume` is the payload of a last checkpoint: the run continues from its
    step with its optimizer, schedules and random states (the caller checks that the
    settings match). `init_state` is a model state dict to start from instead of random
    weights (fine-tuning). `settings` are the effective command-line settings, stored in
    every checkpoint and in the run's .config.toml.
    """
    trainer = Trainer(corpus, tokenizer, model_config, config, output, show_progress, augment, settings)
    if init_state is not None:
        trainer.load_weights(init_state)
    if resume is not None:
        trainer.restore(resume)
    return trainer.fit()


class Trainer:
    """One training run: the data, the model with its optimizer and schedules, and the loop."""

    def __init__(
        self, corpus: Corpus, tokenizer: Tokenizer, model_config: ModelConfig, config: TrainConfig, output: Path,
        show_progress: bool, augment: TranspositionAugmenter | None, settings: dict[str, Any] | None,
    ) -> None:
        self.ddp = distributed.context()
        self.corpus, self.tokenizer, self.config, self.augment = corpus, tokenizer, config, augment
        self.settings = settings if settings is not None else {**model_config.to_dict(), **config.to_dict()}
        self.show_progress = show_progress and self.ddp.is_main
        self.paths = RunPaths.for_checkpoint(output)

        seed_everything(config.random_seed)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = self.ddp.device or resolve_device(config.device)
        self.train_files, self.validation_files = split_by_file(corpus.files, config.validation_fraction, config.random_seed)
        log_split(self.train_files, self.validation_files)
        log_short_files(corpus.files, config.seq_len)
        # A one-to-many model also gets each window's condition row; a many-to-many model gets None.
        self.windows, self.window_conditions = cut_training_windows(
            self.train_files, config.seq_len, tokenizer.pad_id, model_config, tokenizer
        )
        self.counts = token_counts(self.train_files, tokenizer.vocab_size)
        if augment is not None:
            augment.fit(self.windows)

        self._build_optimization(model_config)
        self.state = RunState()
        self.result = TrainResult(checkpoint=output, augmentation=augment.to_dict() if augment is not None else {})
        if self.validation_files:
            self.result.baseline = unigram_evaluation(self.counts, self.validation_files, tokenizer)
            logger.info("unigram baseline on validation: %.3f bits per note", self.result.baseline.bits_per_note)
        if self.ddp.enabled:
            # The weights above came from the shared seed; dropout and sampling differ per rank.
            torch.manual_seed(config.random_seed + self.ddp.rank)

        self._pending_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self._pending_tokens = 0
        self._interval = [0.0, 0, time.monotonic()]  # loss sum, tokens and start of the current CSV interval
        self._clock = time.monotonic()

    def _build_optimization(self, model_config: ModelConfig) -> None:
        config = self.config
        self.model = build_model(model_config).to(self.device)
        if self.device.type == "cuda" and hasattr(self.model, "recurrent"):
            self.model.recurrent.flatten_parameters()  # one weight buffer, as cuDNN's RNN kernels want
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.batches_per_epoch = math.ceil(len(self.windows) / config.batch_size)
        self.total_steps = config.epochs * self.batches_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.schedule = LearningRateSchedule(config.lr_schedule, config.lr, config.warmup_steps, self.total_steps,
                                             config.plateau_factor, config.plateau_patience)
        self.early_stopping = EarlyStopping(config.patience)
        self.precision = Precision.choose(config.precision, self.device)

    # -- starting points -----------------------------------------------------------------

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Start from trained weights (fine-tuning); the optimizer and counters start fresh."""
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            detail = str(error).strip().splitlines()[0][:200]
            raise TrainingError(f"the --init-from weights do not fit this model ({detail}); use the same model shape") from None

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue the run stored in a last checkpoint: weights, optimizer, schedules, counters, random states."""
        training = payload["training_state"]
        if training.get("data_fingerprint") != self._data_fingerprint():
            raise TrainingError(
                "the training windows differ from those of the resumed run (another MIDI folder, changed files or "
                "other data settings); resume with the same data, or start a new run from its weights with --init-from"
            )
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(training["optimizer"])
        self.schedule.load_state_dict(training["schedule"])
        self.early_stopping.load_state_dict(training["early_stopping"])
        self.precision.load_state_dict(training["precision"])
        self.state = RunState.from_dict(training["run"])
        self._restore_random_states(training["random"])
        self.result.resumed_from_step = self.state.step
        if self.state.best_record is not None:
            self.result.best = EpochRecord.from_dict(self.state.best_record)
        logger.info("resuming at epoch %d, batch %d of %d, step %d", self.state.epoch, self.state.batch,
                    self.batches_per_epoch, self.state.step)

    def _restore_random_states(self, states: list[dict[str, Any]]) -> None:
        if len(states) != self.ddp.world_size:
            logger.warning("the resumed run had %d processes and this one has %d: random draws (dropout, sampling, "
                           "transposition) will not repeat those of an uninterrupted run", len(states), self.ddp.world_size)
        RandomStates.from_dict(states[min(self.ddp.rank, len(states) - 1)]).restore()

    def _data_fingerprint(self) -> str:
        digest = hashlib.sha256(self.windows.contiguous().numpy())  # hashes the buffer in place, without a copy
        digest.update(f"{len(self.train_files)}:{len(self.validation_files)}".encode())
        return digest.hexdigest()

    # -- the loop --------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train until the last epoch, a stop condition or a signal; returns what the run did."""
        self._log_start()
        started = time.monotonic()
        deadline = started + self.config.max_minutes * 60 if self.config.max_minutes > 0 else math.inf
        self.forward = distributed.wrap(TrainingForward(self.model))
        resume_step = self.result.resumed_from_step
        with MetricsLog(self.paths.metrics, self.ddp.is_main, resume_step) as self.metrics_log, StopRequests() as requests:
            while self.state.epoch <= self.config.epochs and not self.result.stopped_by:
                if self.config.max_steps and self.state.step >= self.config.max_steps:
                    self.result.stopped_by = "max-steps"  # a resumed run that already took its steps
                    break
                reason = self._train_epoch(deadline, requests)
                if self.state.batch < self.batches_per_epoch:
                    self._end_partial_epoch()
                elif self._end_epoch():
                    reason = reason or "patience"
                if reason is None and self.config.max_steps and self.state.step >= self.config.max_steps:
                    reason = "max-steps"
                self.result.stopped_by = reason
        self._log_stop()
        self.result.seconds, self.result.step = self.state.seconds, self.state.step
        self._finish()
        return self.result

    def _train_epoch(self, deadline: float, requests: StopRequests) -> str | None:
        """Train the rest of the epoch in progress; returns why it stopped early, or None."""
        self.model.train()
        order = self._epoch_order(self.state.epoch)
        size = self.config.batch_size
        bar = tqdm(total=self.batches_per_epoch, initial=self.state.batch, desc=f"epoch {self.state.epoch}",
                   unit="batch", disable=not self.show_progress, leave=False)
        self._clock = time.monotonic()
        reason = None
        for index in range(self.state.batch, self.batches_per_epoch):
            self._step(order[index * size : (index + 1) * size])
            self.state.batch += 1
            self.state.step += 1
            bar.update()
            if self.config.log_every and self.state.step % self.config.log_every == 0:
                self._write_interval_row(bar)
            if self.config.save_every and self.state.step % self.config.save_every == 0 and index + 1 < self.batches_per_epoch:
                self._flush()
                self._save_last()  # its time counts in the next flush, so the training seconds include it
            reason = self._stop_reason(deadline, requests)
            if reason is not None:
                break
        bar.close()
        self._flush()
        return reason

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """Return the window order of `epoch`, drawn from (random seed, epoch) alone.

        Every rank draws the same order, and a resumed run redraws that of the epoch it
        continues, without storing it.
        """
        seed = int(np.random.SeedSequence([self.config.random_seed % 2**64, epoch]).generate_state(1)[0])
        return torch.randperm(len(self.windows), generator=torch.Generator().manual_seed(seed))

    def _step(self, rows: torch.Tensor) -> None:
        """Train on the windows at `rows` (one global batch): forward, loss, backward, clip, update."""
        batch = self.windows[rows]
        conditions = self.window_conditions[rows] if self.window_conditions is not None else None
        if self.augment is not None:
            batch, conditions = self.augment(batch, rows, conditions)
        pad_id = self.tokenizer.pad_id
        tokens = int((batch[:, 1:] != pad_id).sum())  # targets of the whole global batch
        local, weight = distributed.shard(batch)
        local = local.to(self.device, non_blocking=True)
        if conditions is not None:
            conditions = distributed.shard(conditions)[0].to(self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr_at(self.state.step)
        with self.precision.autocast():
            logits = self.forward(local[:, :-1], conditions, self._teacher_forcing_ratio())
        loss_sum = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), local[:, 1:].reshape(-1),
                                   ignore_index=pad_id, reduction="sum")
        # Dividing by the target count of the whole global batch, times the number of ranks
        # (DDP averages over them), gives every rank the gradient of the global mean loss.
        loss = loss_sum * (weight * self.ddp.world_size / max(tokens, 1))
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        if self.config.clip_norm > 0:
            # Backpropagation through time multiplies the gradient by the recurrent weights once per
            # step, so over long windows it can grow without bound (exploding gradients). Capping the
            # total norm keeps one bad batch from throwing the weights far off.
            self.precision.unscale(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.precision.step(self.optimizer)
        self._pending_loss += loss_sum.detach() * weight
        self._pending_tokens += tokens

    def _teacher_forcing_ratio(self) -> float:
        config = self.config
        progress = self.state.step / max(self.total_steps - 1, 1)
        return teacher_forcing_ratio(config.teacher_forcing_schedule, config.teacher_forcing_ratio,
                                     config.teacher_forcing_final, progress)

    def _flush(self) -> None:
        """Move the loss of recent steps from the device into the counters (summed over ranks), and the clock."""
        loss = distributed.sum_over_ranks([float(self._pending_loss)], self.device)[0]
        self._pending_loss.zero_()
        self.state.epoch_loss_sum += loss
        self.state.epoch_tokens += self._pending_tokens
        self._interval[0] += loss
        self._interval[1] += self._pending_tokens
        self._pending_tokens = 0
        now = time.monotonic()
        self.state.epoch_seconds += now - self._clock
        self.state.seconds += now - self._clock
        self._clock = now

    def _write_interval_row(self, bar: tqdm) -> None:
        self._flush()
        loss_sum, tokens, since = self._interval
        loss = loss_sum / max(tokens, 1)
        record = EpochRecord(self.state.epoch, self.state.step, loss, tokens / max(time.monotonic() - since, 1e-9))
        self.metrics_log.write(record.row(self._current_lr(), "train", self._teacher_forcing_ratio(), self.state.seconds))
        bar.set_postfix(loss=f"{loss:.3f}")
        self._interval = [0.0, 0, time.monotonic()]

    def _current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _stop_reason(self, deadline: float, requests: StopRequests) -> str | None:
        """Return why training must stop after this step, agreed by all ranks, or None."""
        if self.config.max_steps and self.state.step >= self.config.max_steps:
            return "max-steps"
        timed_out = time.monotonic() > deadline
        signalled = requests.signal_name is not None
        if self.ddp.enabled:
            timed_out, signalled = (value > 0 for value in distributed.sum_over_ranks(
                [float(timed_out), float(signalled)], self.device))
        if signalled:
            return "signal"
        return "max-minutes" if timed_out else None

    # -- ends of epochs ------------------------------------------------------------------

    def _epoch_record(self) -> EpochRecord:
        state = self.state
        record = EpochRecord(state.epoch, state.step, state.epoch_loss_sum / max(state.epoch_tokens, 1),
                             state.epoch_tokens / max(state.epoch_seconds, 1e-9))
        if self.validation_files:
            record.validation = self._validate()
        return record

    def _end_epoch(self) -> bool:
        """Validate, log, keep the best and the last checkpoint; returns True when early stopping fires."""
        record = self._epoch_record()
        log_epoch(record, self.result.baseline)
        self.metrics_log.write(record.row(self._current_lr(), "epoch", self._teacher_forcing_ratio(), self.state.seconds))
        self.result.epochs.append(record)
        validation_loss = record.validation.loss if record.validation is not None else None
        self.schedule.end_epoch(validation_loss)
        stop = self.early_stopping.end_epoch(validation_loss)
        self._consider_best(record)
        self.state.epoch += 1
        self.state.start_epoch()
        self._save_last(record)
        return stop

    def _end_partial_epoch(self) -> None:
        """Close an epoch cut short by a stop: validate and keep the checkpoints, but leave the schedules alone.

        The plateau schedule and --patience count whole epochs only, so a resumed run
        decides as an uninterrupted one would.
        """
        record = self._epoch_record()
        log_epoch(record, self.result.baseline)
        self.metrics_log.write(record.row(self._current_lr(), "stop", self._teacher_forcing_ratio(), self.state.seconds))
        self.result.epochs.append(record)
        self._consider_best(record)
        self._save_last(record)

    def _validate(self) -> Evaluation:
        """Evaluate the validation files; under torchrun each rank takes every world_size-th file and the sums add up."""
        files = self.validation_files[self.ddp.rank :: self.ddp.world_size]
        part = evaluate(self.model, files, self.tokenizer, self.device) if files else Evaluation()
        self.model.train()
        if not self.ddp.enabled:
            return part
        nll, tokens, notes, hits = distributed.sum_over_ranks([part.nll, part.tokens, part.notes, part.note_hits], self.device)
        return Evaluation(nll, round(tokens), round(notes), round(hits))

    def _consider_best(self, record: EpochRecord) -> None:
        """Write the best checkpoint when `record` has the lowest loss yet (validation loss, else training loss)."""
        loss = record.validation.loss if record.validation is not None else record.train_loss
        if self.state.best_record is not None and not loss < self.state.best_loss:
            return
        self.state.best_loss, self.state.best_record = loss, record.to_dict()
        self.result.best = record
        if self.ddp.is_main:
            save_checkpoint(self.paths.best, self._payload(record, "best"))

    def _save_last(self, record: EpochRecord | None = None) -> None:
        """Write the last checkpoint (rank 0), with every rank's random states; call `_flush` first."""
        random_states = distributed.gather_objects(RandomStates.capture().to_dict())
        if not self.ddp.is_main:
            return
        payload = self._payload(record, "last")
        payload["training_state"] = {
            "run": self.state.to_dict(), "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "early_stopping": self.early_stopping.state_dict(),
            "precision": self.precision.state_dict(), "random": random_states, "world_size": self.ddp.world_size,
            "data_fingerprint": self._data_fingerprint(),
        }
        payload["best_checkpoint"] = self.paths.best.name
        save_checkpoint(self.paths.last, payload)
        self.result.last_checkpoint = self.paths.last

    def _payload(self, record: EpochRecord | None, kind: str) -> dict:
        """Build the checkpoint dict from tensors and JSON-like values only, so weights_only loading works."""
        metrics: dict[str, float] = {}
        if record is not None:
            metrics.update(train_loss=record.train_loss, tokens_per_second=record.tokens_per_second)
        if record is not None and record.validation is not None:
            v = record.validation
            metrics.update(val_loss=v.loss, perplexity=v.perplexity, bits_per_note=v.bits_per_note, note_accuracy=v.note_accuracy)
        if self.result.baseline is not None:
            metrics["unigram_bits_per_note"] = self.result.baseline.bits_per_note
        corpus, validation_files = self.corpus, self.validation_files
        return {
            "kind": kind,
            "model_state": {name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()},
            "model_config": self.model.config.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "train_config": self.config.to_dict(),
            "settings": json_ready(self.settings),
            "epoch": record.epoch if record is not None else self.state.epoch,
            "step": record.step if kind == "best" and record is not None else self.state.step,
            "metrics": metrics,
            "best_by": "validation_loss" if self.validation_files else "training_loss",
            "token_counts": self.counts.tolist(),
            "data": {"folder": str(corpus.folder), "train_files": len(self.train_files), "validation_files": len(validation_files),
                     "validation_names": sorted(str(f.path.relative_to(corpus.folder)) for f in validation_files),
                     **corpus.settings, **self.result.augmentation},
        }

    # -- logs and the end of the run -----------------------------------------------------

    def _log_start(self) -> None:
        parameters = sum(p.numel() for p in self.model.parameters())
        logger.info("model: %s with %d parameters on %s (%s precision); %d training windows of %d steps, "
                    "%d batches per epoch, %d steps in all", self.model.config, parameters, self.device,
                    self.precision.name, len(self.windows), self.config.seq_len, self.batches_per_epoch, self.total_steps)
        if self.config.patience and not self.validation_files:
            logger.warning("--patience %d is ignored: early stopping needs a validation set", self.config.patience)
        if self.ddp.is_main:
            self.paths.config.parent.mkdir(parents=True, exist_ok=True)
            header = "Settings of the run that wrote " + self.paths.best.name + "; reuse them with --config."
            # The output path is left out, so the file can start another run without overwriting this one.
            recipe = {name: value for name, value in json_ready(self.settings).items() if name != "output"}
            self.paths.config.write_text(to_toml(recipe, header), encoding="utf-8", errors="surrogateescape")
        if self.state.epoch > self.config.epochs:
            logger.info("the run already finished its %d epochs; raise --epochs to train further", self.config.epochs)

    def _log_stop(self) -> None:
        state, reason = self.state, self.result.stopped_by
        where = f"in epoch {state.epoch if state.batch else state.epoch - 1} at step {state.step}"
        messages = {
            "max-minutes": f"stopped after {self.config.max_minutes:g} minutes (--max-minutes) {where}",
            "max-steps": f"stopped at step {state.step} (--max-steps)",
            "signal": f"stopped on request {where}",
            "patience": f"stopped early: validation loss has not improved for {self.config.patience} epochs (--patience)",
        }
        if reason in messages:
            logger.info("%s; %s resumes it with --resume", messages[reason], self.paths.last)

    def _finish(self) -> None:
        if not self.ddp.is_main:
            return
        from musicgen.plotting import plot_metrics

        try:
            self.result.plot = plot_metrics(self.paths.metrics, self.paths.plot)
        except (MusicgenError, OSError, ValueError) as error:
            logger.warning("could not draw the loss curve %s: %s", self.paths.plot, error)
