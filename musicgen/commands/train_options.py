"""Options of `musicgen train` that steer the run: presets and config files, resume and fine-tuning,
schedules, stopping, checkpoints, scheduled sampling and precision."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from musicgen.config import LR_SCHEDULES, PRECISIONS, TEACHER_FORCING_SCHEDULES
from musicgen.settings import PRESETS

_CHECKPOINT = click.Path(dir_okay=False, path_type=Path)

_RUN_OPTIONS = [
    click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
                 help="Named set of model and schedule settings (see the README); other options override it."),
    click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
                 help="TOML or YAML file of settings named like the options (hidden_size = 512); "
                      "options on the command line override it, and it overrides --preset."),
    click.option("--resume", type=_CHECKPOINT, default=None, metavar="CHECKPOINT",
                 help="Continue the run of a last checkpoint (NAME.last.pt) from its step, with its settings; "
                      "--epochs, --max-minutes, --max-steps and --device may change."),
    click.option("--init-from", type=_CHECKPOINT, default=None, metavar="CHECKPOINT",
                 help="Start from the weights of a trained checkpoint (fine-tuning); model shape and tokenizer come from it."),
    click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="constant", show_default=True,
                 help="constant; cosine: decay to 0 at the last step; plateau: multiply by --plateau-factor after "
                      "--plateau-patience epochs without a lower validation loss."),
    click.option("--warmup-steps", type=click.IntRange(0, 10_000_000), default=0, show_default=True,
                 help="Optimizer steps over which the learning rate rises linearly to --lr."),
    click.option("--plateau-factor", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.5,
                 show_default=True, help="Learning-rate multiplier of the plateau schedule."),
    click.option("--plateau-patience", type=click.IntRange(0, 1000), default=2, show_default=True,
                 help="Epochs without improvement before the plateau schedule lowers the learning rate."),
    click.option("--weight-decay", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                 help="AdamW decoupled weight decay (fraction of the weights removed per step, times the learning rate)."),
    click.option("--patience", type=click.IntRange(0, 100_000), default=0, show_default=True,
                 help="Stop after this many epochs without a lower validation loss; 0 turns early stopping off."),
    click.option("--max-steps", type=click.IntRange(0), default=0, show_default=True,
                 help="Stop after this many optimizer steps in all (a resumed run counts its earlier steps); 0 means no limit."),
    click.option("--save-every", type=click.IntRange(0), default=200, show_default=True,
                 help="Write the last checkpoint every this many optimizer steps (and at each epoch's end), so a killed "
                      "run loses at most this many; 0 writes it at epoch ends only."),
    click.option("--log-every", type=click.IntRange(0), default=50, show_default=True,
                 help="Add a training-loss row to the metrics CSV every this many optimizer steps; 0: epoch rows only."),
    click.option("--teacher-forcing-ratio", type=click.FloatRange(0, 1), default=1.0, show_default=True,
                 help="Chance that a step's input is the true previous token rather than the model's own sample "
                      "(scheduled sampling); 1 is pure teacher forcing, the fastest."),
    click.option("--teacher-forcing-schedule", type=click.Choice(TEACHER_FORCING_SCHEDULES), default="constant",
                 show_default=True, help="How the ratio moves from --teacher-forcing-ratio to --teacher-forcing-final "
                                         "over the run's steps."),
    click.option("--teacher-forcing-final", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                 help="Ratio the linear and inverse-sigmoid schedules reach at the last step."),
    click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                 help="auto: bf16 autocast on CUDA GPUs that support it, else fp16 with loss scaling, fp32 on the CPU; "
                      "bf16 also works on the CPU."),
    click.option("--threads", type=click.IntRange(0, 1024), default=0, show_default=True,
                 help="CPU threads for torch; 0 keeps torch's choice (one per core). On cores shared with other "
                      "jobs, 1 is often much faster."),
]


def run_options(function: Callable) -> Callable:
    """Add the run options to a click command."""
    for option in reversed(_RUN_OPTIONS):
        function = option(function)
    return function
