"""Choose the torch device: a CUDA GPU where one exists, else the CPU."""

from __future__ import annotations

import torch

from musicgen.errors import MusicgenError


class DeviceError(MusicgenError):
    pass


def resolve_device(name: str = "auto") -> torch.device:
    """Return the device for `name`: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown --device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} requested but no CUDA device is available; use --device cpu or omit --device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name} requested but only {torch.cuda.device_count()} CUDA devices exist")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported --device {name!r}; use auto, cpu, cuda or cuda:N")
    return device
