"""Save and load checkpoints: plain tensors and JSON-like values only, written atomically."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from musicgen import __version__
from musicgen.config import ModelConfig
from musicgen.errors import MusicgenError
from musicgen.models import MelodyRNN, build_model
from musicgen.tokenizer import Tokenizer, TokenizerConfigError, tokenizer_from_dict

FORMAT = "musicgen-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(MusicgenError):
    pass


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` through a temporary file and a rename.

    A crash mid-write leaves the previous file at `path` untouched, because
    os.replace swaps the names in one step on POSIX and Windows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "musicgen_version": __version__, **payload}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(payload, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint's dict with weights_only=True (no pickled objects) onto the CPU."""
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}; give the path of a checkpoint written by 'musicgen train'")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of a checkpoint file written by 'musicgen train'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} is not a musicgen checkpoint ({first_line[:120]}); give a file written by 'musicgen train'"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a musicgen checkpoint (no '{FORMAT}' marker); give a file written by 'musicgen train'")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format_version']}, newer than this musicgen "
            f"{__version__} reads ({FORMAT_VERSION}); upgrade musicgen"
        )
    return payload


def load_model(path: Path, device: torch.device) -> tuple[MelodyRNN, Tokenizer, dict[str, Any]]:
    """Rebuild the model and tokenizer stored in a checkpoint; returns them with the full payload."""
    payload = read_checkpoint(path)
    try:
        tokenizer = tokenizer_from_dict(payload["tokenizer"])
        model = build_model(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["model_state"])
    except (KeyError, TypeError, TokenizerConfigError, RuntimeError, ValueError) as error:
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is an incompatible musicgen checkpoint ({detail}); retrain it with this version") from error
    if model.config.vocab_size != tokenizer.vocab_size:
        raise CheckpointError(
            f"{path}: model vocabulary {model.config.vocab_size} does not match tokenizer vocabulary {tokenizer.vocab_size}"
        )
    model.to(device).eval()
    return model, tokenizer, payload
