"""Recurrent network architectures (trained checkpoints live in the top-level models/ folder)."""

from musicgen.models.rnn import MelodyRNN, build_model

__all__ = ["MelodyRNN", "build_model"]
