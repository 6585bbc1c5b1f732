"""Recurrent network architectures (trained checkpoints live in the top-level models/ folder).

Two model shapes exist: many-to-many (`MelodyRNN`: a token sequence in, the next token at
every step out) and one-to-many (`OneToManyRNN`: a condition sets the start state and
the network unrolls a melody from it). A stored model config says which one it is by
its "mode" entry; configs without one are many-to-many.
"""

from __future__ import annotations

from typing import Any

from musicgen.config import ModelConfig
from musicgen.models.one_to_many import MODE as ONE_TO_MANY
from musicgen.models.one_to_many import CONDITION_KINDS, FixedCondition, OneToManyConfig, OneToManyRNN
from musicgen.models.rnn import MelodyRNN

MANY_TO_MANY = "many-to-many"
MODES = (MANY_TO_MANY, ONE_TO_MANY)


def build_model(config: ModelConfig) -> MelodyRNN:
    """Build the model the config describes: one-to-many for a OneToManyConfig, else many-to-many."""
    if isinstance(config, OneToManyConfig):
        return OneToManyRNN(config)
    return MelodyRNN(config)


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a stored model config, choosing its class by the "mode" entry."""
    mode = data.get("mode", MANY_TO_MANY)
    if mode == ONE_TO_MANY:
        return OneToManyConfig.from_dict(data)
    if mode != MANY_TO_MANY:
        raise ValueError(f"unknown model mode {mode!r}; expected one of {', '.join(MODES)}")
    return ModelConfig.from_dict(data)


__all__ = [
    "CONDITION_KINDS", "FixedCondition", "MANY_TO_MANY", "MODES", "MelodyRNN", "ONE_TO_MANY", "OneToManyConfig",
    "OneToManyRNN", "build_model", "model_config_from_dict",
]
