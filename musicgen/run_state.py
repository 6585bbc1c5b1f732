"""The state of a training run, in the form a last checkpoint stores so `--resume` can continue it exactly.

Everything here becomes tensors, numbers, strings, lists and dicts, so checkpoints load
with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class RunState:
    """Counters of a run; `epoch` is the epoch in progress, `batch` the batches of it already trained."""

    epoch: int = 1
    batch: int = 0
    step: int = 0  # optimizer steps since the run began
    seconds: float = 0.0  # training time of earlier sessions of this run
    best_loss: float = math.inf  # loss of the best checkpoint (validation, else training)
    best_record: dict[str, Any] | None = None  # EpochRecord of the best checkpoint, as `EpochRecord.to_dict`
    # Sums over the epoch in progress, so a resumed epoch reports the loss of the whole epoch.
    epoch_loss_sum: float = 0.0
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0

    def start_epoch(self) -> None:
        self.batch = 0
        self.epoch_loss_sum, self.epoch_tokens, self.epoch_seconds = 0.0, 0, 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class RandomStates:
    """The states of torch's, NumPy's and Python's global random generators (and CUDA's, if used)."""

    torch_state: torch.Tensor
    numpy_state: dict[str, Any]
    python_state: dict[str, Any]
    cuda_states: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def capture(cls) -> RandomStates:
        kind, keys, position, has_gauss, cached = np.random.get_state()
        version, python_words, gauss_next = random.getstate()
        return cls(
            torch_state=torch.get_rng_state(),
            numpy_state={"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                         "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            python_state={"version": version, "words": torch.tensor(python_words, dtype=torch.int64),
                          "gauss_next": gauss_next},
            cuda_states=list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch_state)
        numpy = self.numpy_state
        np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                             numpy["has_gauss"], numpy["cached_gaussian"]))
        python = self.python_state
        random.setstate((python["version"], tuple(int(word) for word in python["words"].tolist()), python["gauss_next"]))
        if self.cuda_states and torch.cuda.is_available() and len(self.cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(self.cuda_states)

    def to_dict(self) -> dict[str, Any]:
        return {"torch": self.torch_state, "numpy": self.numpy_state, "python": self.python_state, "cuda": self.cuda_states}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RandomStates:
        return cls(data["torch"], data["numpy"], data["python"], list(data.get("cuda", [])))
