"""Numeric precision of training: fp32, or mixed precision with bf16 or fp16 autocast."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from musicgen.config import ConfigError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """Autocast and, for fp16, the gradient scaler that keeps small gradients from rounding to zero.

    Under autocast the matrix products and recurrent layers run in the low-precision type
    while the weights, the optimizer state and the loss stay in fp32. bf16 has fp32's
    exponent range and needs no scaler; fp16 does.
    """

    name: str  # fp32, bf16 or fp16
    device_type: str  # cpu or cuda
    scaler: Any = None  # torch.amp.GradScaler for fp16

    @classmethod
    def choose(cls, requested: str, device: torch.device) -> Precision:
        """Resolve --precision for `device`: auto is bf16 (else fp16) autocast on CUDA and fp32 on the CPU."""
        name = requested
        if requested == "auto" and device.type != "cuda":
            name = "fp32"
        elif requested == "auto":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if name == "fp16" and device.type != "cuda":
            raise ConfigError("precision fp16 needs a CUDA device; use --precision bf16 or fp32 on the CPU")
        scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None
        return cls(name, device.type, scaler)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.name])

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the fp16 loss scale, so clipping measures their true norm."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Take the optimizer step; with fp16 the scaler skips steps whose gradients overflowed."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scaler": self.scaler.state_dict() if self.scaler is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
