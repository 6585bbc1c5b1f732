"""Schedules over the optimizer steps of a run: the learning rate and the teacher-forcing ratio."""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

# Steepness of the inverse-sigmoid decay: the ratio moves from within 1 % of its start
# (at 0 % of training) to within 1 % of its end (at 100 %), half-way at 50 %.
_SIGMOID_STEEPNESS = 10.0


class LearningRateSchedule:
    """Learning rate per optimizer step: linear warm-up, then constant, cosine or plateau.

    - warm-up: over the first `warmup_steps` steps the rate rises linearly from lr / warmup_steps to lr;
    - constant: lr for the rest of the run;
    - cosine: half a cosine from lr after warm-up down to 0 at `total_steps`;
    - plateau: lr, multiplied by `plateau_factor` each time the validation loss has not
      improved for `plateau_patience` epochs in a row (see `end_epoch`).
    """

    def __init__(self, kind: str, lr: float, warmup_steps: int, total_steps: int,
                 plateau_factor: float = 0.5, plateau_patience: int = 2) -> None:
        self.kind = kind
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)
        self.plateau_factor = plateau_factor
        self.plateau_patience = plateau_patience
        self.scale = 1.0  # product of the plateau drops so far
        self.best_loss = math.inf
        self.stalled_epochs = 0

    def lr_at(self, step: int) -> float:
        """Return the rate of the optimizer step that follows `step` completed steps."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr * self.scale

    def end_epoch(self, validation_loss: float | None) -> None:
        """Update the plateau state with an epoch's validation loss (None: no validation set)."""
        if self.kind != "plateau" or validation_loss is None:
            return
        if validation_loss < self.best_loss:
            self.best_loss = validation_loss
            self.stalled_epochs = 0
            return
        self.stalled_epochs += 1
        if self.stalled_epochs > self.plateau_patience:
            self.scale *= self.plateau_factor
            self.stalled_epochs = 0
            logger.info("validation loss has not improved for %d epochs: learning rate x %g, now %g",
                        self.plateau_patience + 1, self.plateau_factor, self.lr * self.scale)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "best_loss": self.best_loss, "stalled_epochs": self.stalled_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.best_loss = float(state["best_loss"])
        self.stalled_epochs = int(state["stalled_epochs"])


class EarlyStopping:
    """Counts epochs whose validation loss is not below the lowest so far; `patience` of them in a row stop the run."""

    def __init__(self, patience: int) -> None:
        self.patience = patience  # 0 turns early stopping off
        self.best_loss = math.inf
        self.stalled_epochs = 0

    def end_epoch(self, validation_loss: float | None) -> bool:
        """Record an epoch's validation loss (None: no validation set); return True when training should stop."""
        if validation_loss is None or not self.patience:
            return False
        if validation_loss < self.best_loss:
            self.best_loss, self.stalled_epochs = validation_loss, 0
            return False
        self.stalled_epochs += 1
        return self.stalled_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "stalled_epochs": self.stalled_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss = float(state["best_loss"])
        self.stalled_epochs = int(state["stalled_epochs"])


def teacher_forcing_ratio(schedule: str, start: float, final: float, progress: float) -> float:
    """Return the chance that a step's input is the true token, at `progress` (0..1) of the run.

    constant keeps `start`; linear moves from `start` to `final` in equal steps; inverse-sigmoid
    stays near `start` early, falls fastest half-way and flattens near `final`.
    """
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant" or start == final:
        return start
    if schedule == "linear":
        return start + (final - start) * progress
    if schedule == "inverse-sigmoid":
        return final + (start - final) * _falling_sigmoid(progress)
    raise ValueError(f"unknown teacher-forcing schedule {schedule!r}")


def _falling_sigmoid(progress: float) -> float:
    """Return a logistic curve through (0, 1) and (1, 0), steepest at 0.5."""
    def logistic(x: float) -> float:
        return 1.0 / (1.0 + math.exp(_SIGMOID_STEEPNESS * (x - 0.5)))

    return (logistic(progress) - logistic(1.0)) / (logistic(0.0) - logistic(1.0))
