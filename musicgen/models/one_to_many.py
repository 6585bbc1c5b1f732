"""One-to-many model: a condition (key, style, first note) sets the start state, then the RNN unrolls.

Each condition value has a learned embedding. The embeddings of the model's condition
kinds are concatenated and mapped by one linear layer and tanh to the initial state of
every recurrent layer: h0, and also c0 for an LSTM. From that state the decoder reads BOS
and predicts the melody one token at a time, exactly like the many-to-many model, and is
trained the same way with teacher forcing.

By default (`condition_each_step`) a second linear map of the same embeddings is also
added to the token embedding at every step, because a start state alone fades within a
few dozen steps unless the network learns to keep it. This was measured with the style
test of tests/test_one_to_many.py (40 Bach and 40 O'Neill files, LSTM of 64 units, 8
epochs, training seeds 1 to 3). With the start state alone, melodies asked for in the
Bach style had an onset pitch histogram nearer the O'Neill files. With the condition at
every step too, it was nearer the Bach files. `condition_each_step=False` (`musicgen train
--condition-start-only`) gives the start-state-only model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from musicgen.config import ConfigError, ModelConfig
from musicgen.keys import KEY_NAMES
from musicgen.models.rnn import MelodyRNN, State

MODE = "one-to-many"
# The recurrent state, or (recurrent state, per-step condition input); see OneToManyRNN.start_state.
ConditionedState = State | tuple[State, torch.Tensor]
CONDITION_KINDS = ("key", "style", "first-note")


@dataclass
class OneToManyConfig(ModelConfig):
    """The many-to-many shape plus the condition kinds and the known values of each kind.

    Each list contains the values seen in the training files, and a value's position in
    its list is its embedding row. Keys follow the order of `musicgen.keys.KEY_NAMES`,
    styles are sub-folder names in sorted order, first notes are MIDI pitches.
    """

    conditions: list[str] = field(default_factory=lambda: ["key", "style"])
    keys: list[str] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    first_notes: list[int] = field(default_factory=list)
    condition_each_step: bool = True  # also add the condition to every step's input

    def __post_init__(self) -> None:
        super().__post_init__()
        self.conditions = list(self.conditions)
        unknown = [kind for kind in self.conditions if kind not in CONDITION_KINDS]
        if not self.conditions or unknown or len(set(self.conditions)) != len(self.conditions):
            raise ConfigError(
                f"conditions must be distinct values from {', '.join(CONDITION_KINDS)} (received {','.join(self.conditions)!r})"
            )
        for kind in self.conditions:
            if not self.known_values(kind):
                raise ConfigError(f"a model conditioned on {kind} needs at least one known {kind} value")
        bad_keys = [name for name in self.keys if name not in KEY_NAMES]
        if bad_keys:
            raise ConfigError(f"unknown key names {bad_keys}; expected names such as 'D minor'")

    def known_values(self, kind: str) -> list[Any]:
        """Return the values of one condition kind that the model was trained on."""
        return {"key": self.keys, "style": self.styles, "first-note": self.first_notes}[kind]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mode": MODE}


class OneToManyRNN(MelodyRNN):
    """MelodyRNN whose start state comes from a condition instead of zeros.

    `forward(tokens, state)` is the many-to-many forward, so generation carries the
    state step by step as before. A caller builds the first state with
    `start_state(conditions)`, where `conditions` has shape (batch, kinds) and contains
    each kind's embedding row in the order of `config.conditions`.
    """

    config: OneToManyConfig

    def __init__(self, config: OneToManyConfig) -> None:
        super().__init__(config)
        self.condition_embeddings = nn.ModuleList(
            nn.Embedding(len(config.known_values(kind)), config.embedding_size) for kind in config.conditions
        )
        condition_size = len(config.conditions) * config.embedding_size
        parts = 2 if config.cell == "lstm" else 1  # an LSTM starts from h0 and c0
        self.to_state = nn.Linear(condition_size, parts * config.layers * config.hidden_size)
        self.to_input = nn.Linear(condition_size, config.embedding_size) if config.condition_each_step else None

    def start_state(self, conditions: torch.Tensor) -> ConditionedState:
        """Map condition rows (batch, kinds) to the start state.

        That is the recurrent state, (layers, batch, hidden) per part, or with
        `condition_each_step` the pair (recurrent state, per-step input of shape
        (1, batch, embedding)). Every tensor keeps the batch in dimension 1, so code that
        reorders the batch of a state (beam search) treats all parts alike.
        """
        embedded = torch.cat([embedding(conditions[:, index]) for index, embedding in enumerate(self.condition_embeddings)], dim=-1)
        batch = conditions.shape[0]
        state = torch.tanh(self.to_state(embedded))  # (B, parts * L * H)
        state = state.view(batch, -1, self.config.layers, self.config.hidden_size).permute(1, 2, 0, 3)  # (parts, L, B, H)
        recurrent = (state[0].contiguous(), state[1].contiguous()) if self.config.cell == "lstm" else state[0].contiguous()
        if self.to_input is None:
            return recurrent
        return recurrent, self.to_input(embedded).unsqueeze(0)

    def forward(self, tokens: torch.Tensor, state: ConditionedState | None = None) -> tuple[torch.Tensor, ConditionedState]:
        """Map tokens (batch, time) to logits (batch, time, vocab) and the state after the last step."""
        if state is None:
            raise ValueError("a one-to-many model needs its start state: pass start_state(conditions) as `state`")
        if self.to_input is None:
            return super().forward(tokens, state)
        recurrent, step_input = state
        embedded = self.embedding(tokens) + step_input.transpose(0, 1)  # (B, T, E) + (B, 1, E)
        hidden, recurrent = self.recurrent(embedded, recurrent)
        logits = self.output(self.dropout(hidden))
        return logits, (recurrent, step_input)


class FixedCondition(nn.Module):
    """A one-to-many model seen as a model that starts every batch from one fixed condition.

    Code written for the many-to-many model, which calls `model(tokens)` with no state
    (such as `musicgen.metrics.evaluate_model`), can then run a one-to-many model.
    """

    def __init__(self, model: OneToManyRNN, condition_row: list[int]) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.register_buffer("row", torch.tensor([condition_row], dtype=torch.long), persistent=False)
        self.train(model.training)

    def forward(self, tokens: torch.Tensor, state: ConditionedState | None = None) -> tuple[torch.Tensor, ConditionedState]:
        if state is None:
            state = self.model.start_state(self.row.to(tokens.device).expand(tokens.shape[0], -1))
        return self.model(tokens, state)
