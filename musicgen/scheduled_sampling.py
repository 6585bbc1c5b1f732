"""The training forward pass: teacher forcing, or scheduled sampling that mixes in the model's own samples.

Teacher forcing feeds the true previous token at every step, so the whole window runs
through the recurrent layers in one call (cuDNN or oneDNN runs all steps in one kernel).
At generation time the model reads its own samples instead, and it has never learned to
recover from its own mistakes: the gap between the two (exposure bias) shows up as drift
and loops in long melodies. Scheduled sampling (Bengio et al., 2015, "Scheduled Sampling
for Sequence Prediction with Recurrent Neural Networks") closes the gap: with probability
1 - ratio, the input at a step is a token drawn from the model's own distribution at the
previous step.

The trade-off: a ratio below 1 must run the window one step at a time, because each
input depends on the previous output. On 2 CPU cores that made a training step several
times slower than the whole-window call (see docs/BENCHMARKS.md). Gradients do not flow
through the draw, and a low ratio early in training feeds the model noise it cannot yet
predict, which is why the ratio usually starts at 1 and decays (`musicgen.schedules`).
"""

from __future__ import annotations

import torch
from torch import nn

from musicgen.models.rnn import State


def unroll_with_own_samples(
    model: nn.Module, inputs: torch.Tensor, ratio: float, state: State | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` over `inputs` (batch, time) one step at a time, feeding its own samples at random.

    At step 0 the input is the true token. At each later step, each sequence independently
    gets the true token with probability `ratio`, else a token drawn (with torch's global
    generator) from the model's softmax at the previous step. Returns the logits
    (batch, time, vocab) and the tokens that were fed (batch, time).
    """
    batch, steps = inputs.shape
    fed = torch.empty_like(inputs)
    step_logits = []
    token = inputs[:, 0]
    sampled = token
    for step in range(steps):
        if step > 0:
            keep_true = torch.rand(batch, device=inputs.device) < ratio
            token = torch.where(keep_true, inputs[:, step], sampled)
        fed[:, step] = token
        logits, state = model(token.unsqueeze(1), state)  # logits: (batch, 1, vocab)
        step_logits.append(logits)
        probabilities = torch.softmax(logits[:, 0].detach().float(), dim=-1)
        sampled = torch.multinomial(probabilities, 1).squeeze(1)
    return torch.cat(step_logits, dim=1), fed


class TrainingForward(nn.Module):
    """The model's forward pass as training runs it, in one module so DistributedDataParallel can wrap it.

    With `ratio` 1 (pure teacher forcing) the whole window goes through the model in one
    call; below 1 it runs `unroll_with_own_samples`. A one-to-many model starts each
    window from the state its condition row maps to.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, conditions: torch.Tensor | None = None, ratio: float = 1.0) -> torch.Tensor:
        """Map inputs (batch, time) to logits (batch, time, vocab)."""
        state = None if conditions is None else self.model.start_state(conditions)
        if ratio >= 1.0:
            logits, _ = self.model(inputs, state)
            return logits
        logits, _ = unroll_with_own_samples(self.model, inputs, ratio, state)
        return logits
