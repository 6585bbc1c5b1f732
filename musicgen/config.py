"""Settings of the model and of a training run, checked when built and stored in checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from musicgen.errors import MusicgenError

CELLS = ("lstm", "gru", "rnn")
LR_SCHEDULES = ("constant", "cosine", "plateau")
TEACHER_FORCING_SCHEDULES = ("constant", "linear", "inverse-sigmoid")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(MusicgenError, ValueError):
    """A setting outside its allowed range; the message names the setting and the value."""


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in {low}..{high} (received {value})")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (received {value!r})")


@dataclass
class ModelConfig:
    """Shape of the many-to-many next-token model: embedding -> recurrent layers -> linear."""

    vocab_size: int
    cell: str = "lstm"  # lstm, gru, or rnn (the tanh Elman cell)
    embedding_size: int = 64
    hidden_size: int = 256
    layers: int = 2
    dropout: float = 0.2  # between recurrent layers and before the output layer

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ConfigError(f"cell must be one of {', '.join(CELLS)} (received {self.cell!r})")
        _check_range("vocab_size", self.vocab_size, 4, 65_535)
        _check_range("embedding_size", self.embedding_size, 1, 8192)
        _check_range("hidden_size", self.hidden_size, 1, 8192)
        _check_range("layers", self.layers, 1, 16)
        _check_range("dropout", self.dropout, 0.0, 0.9)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**_known_fields(cls, data))


@dataclass
class TrainConfig:
    """Settings of one training run; units are given beside each field."""

    epochs: int = 20
    seq_len: int = 128  # tokens (grid steps) per training window
    batch_size: int = 64  # windows per batch
    lr: float = 2e-3  # Adam learning rate
    clip_norm: float = 1.0  # maximum gradient norm; 0 turns clipping off
    validation_fraction: float = 0.1  # share of files held out, split by file
    max_minutes: float = 0.0  # wall-clock limit on training; 0 means no limit
    random_seed: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    lr_schedule: str = "constant"  # constant, cosine (to 0 at the last step) or plateau
    warmup_steps: int = 0  # optimizer steps of linear warm-up from 0 to lr
    plateau_factor: float = 0.5  # plateau schedule: lr multiplier when validation loss stalls
    plateau_patience: int = 2  # plateau schedule: epochs without improvement before lr drops
    weight_decay: float = 0.0  # AdamW decoupled weight decay per step, as a fraction of lr
    patience: int = 0  # epochs without a lower validation loss before training stops; 0 turns it off
    max_steps: int = 0  # optimizer steps after which training stops; 0 means no limit
    save_every: int = 200  # optimizer steps between writes of the last checkpoint; 0: end of epoch only
    log_every: int = 50  # optimizer steps between rows of training loss in the metrics CSV
    teacher_forcing_ratio: float = 1.0  # chance that a step's input is the true token (at the start)
    teacher_forcing_schedule: str = "constant"  # constant, linear or inverse-sigmoid decay
    teacher_forcing_final: float = 0.5  # ratio that the decaying schedules reach at the last step
    precision: str = "auto"  # auto (bf16 or fp16 autocast on CUDA, fp32 on CPU), fp32, bf16 or fp16
    threads: int = 0  # CPU threads of torch; 0 keeps torch's own choice (one per core, shared among DDP ranks)

    def __post_init__(self) -> None:
        _check_range("epochs", self.epochs, 1, 100_000)
        _check_range("seq_len", self.seq_len, 2, 100_000)
        _check_range("batch_size", self.batch_size, 1, 1_000_000)
        if not 0 < self.lr <= 10:
            raise ConfigError(f"lr must be in (0, 10] (received {self.lr})")
        _check_range("clip_norm", self.clip_norm, 0.0, 1e6)
        _check_range("validation_fraction", self.validation_fraction, 0.0, 0.9)
        _check_range("max_minutes", self.max_minutes, 0.0, 1e7)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_range("warmup_steps", self.warmup_steps, 0, 10_000_000)
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"plateau_factor must be in (0, 1) (received {self.plateau_factor})")
        _check_range("plateau_patience", self.plateau_patience, 0, 1000)
        _check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        _check_range("patience", self.patience, 0, 100_000)
        _check_range("max_steps", self.max_steps, 0, 10**12)
        _check_range("save_every", self.save_every, 0, 10**12)
        _check_range("log_every", self.log_every, 0, 10**12)
        _check_range("teacher_forcing_ratio", self.teacher_forcing_ratio, 0.0, 1.0)
        _check_choice("teacher_forcing_schedule", self.teacher_forcing_schedule, TEACHER_FORCING_SCHEDULES)
        _check_range("teacher_forcing_final", self.teacher_forcing_final, 0.0, 1.0)
        if self.teacher_forcing_schedule != "constant" and self.teacher_forcing_final > self.teacher_forcing_ratio:
            raise ConfigError(
                f"teacher_forcing_final ({self.teacher_forcing_final}) must not exceed teacher_forcing_ratio "
                f"({self.teacher_forcing_ratio}), because the {self.teacher_forcing_schedule} schedule decays"
            )
        _check_choice("precision", self.precision, PRECISIONS)
        _check_range("threads", self.threads, 0, 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**_known_fields(cls, data))


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {field.name for field in fields(cls)}
    return {key: value for key, value in data.items() if key in names}
