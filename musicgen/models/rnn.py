"""Many-to-many next-token model: embedding -> RNN, LSTM or GRU layers -> linear over the vocabulary."""

from __future__ import annotations

import torch
from torch import nn

from musicgen.config import ModelConfig

# The LSTM's state is a pair (h, c); the RNN's and GRU's state is h alone. Each has shape
# (layers, batch, hidden_size).
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

_RECURRENT_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class MelodyRNN(nn.Module):
    """Read a token sequence and give next-token logits at every step.

    Training feeds the true sequence (teacher forcing); generation feeds one token at a
    time and carries `state` between calls, so each new token costs one step of the
    recurrence, whatever the length of the melody so far.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        recurrent_class = _RECURRENT_LAYERS[config.cell]
        extra = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        self.recurrent = recurrent_class(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
            **extra,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, config.vocab_size)

    def init_state(self, batch_size: int) -> State:
        """Return the all-zero start state for `batch_size` sequences."""
        shape = (self.config.layers, batch_size, self.config.hidden_size)
        zeros = torch.zeros(shape, device=self.output.weight.device)
        return (zeros, zeros.clone()) if self.config.cell == "lstm" else zeros

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Map tokens (batch, time) to logits (batch, time, vocab) and the state after the last step."""
        embedded = self.embedding(tokens)  # (B, T, E)
        hidden, state = self.recurrent(embedded, state)  # (B, T, H)
        logits = self.output(self.dropout(hidden))  # (B, T, V)
        return logits, state


def build_model(config: ModelConfig) -> MelodyRNN:
    return MelodyRNN(config)


def detach_state(state: State) -> State:
    """Cut the graph behind a state so backpropagation stops at the window boundary."""
    if isinstance(state, tuple):
        return tuple(part.detach() for part in state)  # type: ignore[return-value]
    return state.detach()
