"""One summary line per checkpoint in a folder, for `musicgen models`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from musicgen.checkpoint import CheckpointError, read_checkpoint

logger = logging.getLogger(__name__)


def describe_models(folder: Path) -> list[list[str]]:
    """Return [name, mode, cell, size, data folder, bits/note, best KN bits/note, ratio] per checkpoint.

    Bits per note are on the checkpoint's validation files: the model's own from its
    evaluation JSON when there is one, else from the metrics stored at training time.
    """
    rows = []
    for path in sorted(folder.glob("*.pt")):
        try:
            payload = read_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipped %s", error)
            continue
        config = payload.get("model_config", {})
        shape = f"{config.get('layers', '?')}x{config.get('hidden_size', '?')}"
        mode = config.get("mode", "many-to-many")
        conditions = config.get("conditions") or []
        if conditions:
            mode += f" ({', '.join(conditions)})"
        evaluation = _read_evaluation(path.with_suffix(".evaluation.json"))
        bits = evaluation.get("model_bits") or payload.get("metrics", {}).get("bits_per_note")
        rows.append([
            path.name, mode, f"{config.get('cell', '?')} {shape}", f"{path.stat().st_size / 1e6:.1f} MB",
            str(payload.get("data", {}).get("folder", "?")), _number(bits), _number(evaluation.get("ngram_bits")),
            _number(evaluation.get("ratio")),
        ])
    return rows


def _read_evaluation(path: Path) -> dict[str, float]:
    """Read the model's and the best n-gram's bits per note from an evaluate --json file."""
    if not path.is_file():
        return {}
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        metrics = report["metrics"]
        return {"model_bits": metrics["model"]["bits_per_note"],
                "ngram_bits": metrics[f"kneser-ney-{report['best_ngram_order']}"]["bits_per_note"],
                "ratio": report["ratio_to_best_ngram"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("ignored %s: %s", path, error)
        return {}


def _number(value: float | None) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"
