"""Save and load checkpoints: plain tensors and JSON-like values only, written atomically."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from musicgen import __version__
from musicgen.errors import MusicgenError
from musicgen.models import MelodyRNN, build_model, model_config_from_dict
from musicgen.tokenizer import Tokenizer, TokenizerConfigError, tokenizer_from_dict

logger = logging.getLogger(__name__)

FORMAT = "musicgen-checkpoint"
FORMAT_VERSION = 1
DIGEST_KEY = "sha256"


class CheckpointError(MusicgenError):
    pass


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` through a temporary file and a rename.

    A crash mid-write leaves the previous file at `path` untouched, because
    os.replace swaps the names in one step on POSIX and Windows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "musicgen_version": __version__, **payload}
    payload[DIGEST_KEY] = payload_digest(payload)
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
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to disk, where the system allows it (not on Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def payload_digest(payload: dict[str, Any]) -> str:
    """Return the SHA-256 of every value in `payload` but the digest itself, tensors by their bytes.

    torch.load does not check the CRC of the tensor data in the zip file, so a flipped
    byte there would load as a wrong weight without this digest.
    """
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in payload.items() if key != DIGEST_KEY})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor{tuple(value.shape)}{value.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _feed(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


def read_checkpoint(path: Path, verify: bool = False) -> dict[str, Any]:
    """Load a checkpoint's dict with weights_only=True (no pickled objects) onto the CPU.

    A payload that does not match its stored digest raises CheckpointError when `verify`
    is set, as for resume and fine-tuning, where wrong weights would waste a run. Otherwise
    it logs a warning, because a checkpoint edited by hand no longer matches either.
    """
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}; give the path of a checkpoint written by 'musicgen train'")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of a checkpoint file written by 'musicgen train'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} is not a musicgen checkpoint, or is truncated or damaged ({first_line[:120]}); "
            "give a file written by 'musicgen train'"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a musicgen checkpoint (no '{FORMAT}' marker); give a file written by 'musicgen train'")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format_version']}, newer than this musicgen "
            f"{__version__} reads ({FORMAT_VERSION}); upgrade musicgen"
        )
    # Checkpoints written before the digest existed have none and are taken as they are.
    if DIGEST_KEY in payload and payload[DIGEST_KEY] != payload_digest(payload):
        if verify:
            raise CheckpointError(
                f"{path} is damaged: its contents do not match the SHA-256 digest stored in it; "
                "use another checkpoint of the run (the best one, or an older copy)"
            )
        logger.warning("%s does not match the SHA-256 digest stored in it: it was changed after training or is damaged", path)
    return payload


def load_model(path: Path, device: torch.device) -> tuple[MelodyRNN, Tokenizer, dict[str, Any]]:
    """Rebuild the model and tokenizer stored in a checkpoint; returns them with the full payload."""
    payload = read_checkpoint(path)
    try:
        tokenizer = tokenizer_from_dict(payload["tokenizer"])
        model = build_model(model_config_from_dict(payload["model_config"]))
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
