"""The trained auto-user for users of the model: a pure function from a complete state string to a user message.

It holds only a model and a tokenizer: no history, no objective, no reset. The environment (or your own harness)
owns the conversation and formats the state; see ``BookingConversationEnvironment.format_state``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import torch

from agents.auto_user.generation import sample_responses, stop_token_ids
from agents.auto_user.models import load_inference_model, resolve_model


@dataclass
class AutoUserConfig:
    """How to load and sample the auto-user.

    Attributes:
        model_name: ``final_model/`` or ``checkpoint-N/`` of a training run, a plain model directory, a hub id, or an
            alias (``smollm2-135m-instruct``, ``tiny-gpt2``).
        max_length: state tokens kept (truncated from the left, newest context kept).
        max_new_tokens: longest user message, in tokens.
        temperature, top_p, top_k: sampling parameters.
        stop_at_newline: a user message ends at a newline (and at eos).
        seed: sampling seed; the same state and seed always give the same message.
        device: "cpu", "cuda", or None for CUDA when available.
        model_cache_dir: where aliases are converted/built (None: the default cache).
    """

    model_name: str = "smollm2-135m-instruct"
    max_length: int = 1024
    max_new_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    stop_at_newline: bool = True
    seed: int = 0
    device: str | None = None
    model_cache_dir: str | None = None


@dataclass(frozen=True)
class _Sampling:
    """The sampling settings ``sample_responses`` reads."""

    max_query_length: int
    max_response_length: int
    temperature: float
    top_p: float
    top_k: int


class AutoUserAgent:
    """Stateless simulated user. ``get_action(state)`` depends only on ``state``, the weights and the seed."""

    def __init__(self, config: AutoUserConfig):
        self.config = config
        self.model = None
        self.tokenizer = None
        self._stop_ids: list[int] | None = None

    def initialize_model(self) -> None:
        cfg = self.config
        device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        path = resolve_model(cfg.model_name, cfg.model_cache_dir)
        self.model, self.tokenizer = load_inference_model(path, device)
        self.model.eval()
        self.device = device
        self._stop_ids = stop_token_ids(self.tokenizer, cfg.stop_at_newline)
        self._sampling = _Sampling(max_query_length=cfg.max_length, max_response_length=cfg.max_new_tokens,
                                   temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)

    def generate(self, states: list[str], seed: int | None = None):
        """(query tensors, response tensors, texts) for a batch of states, sampled with ``seed`` (default: config)."""
        if self.model is None:
            self.initialize_model()
        seed = self.config.seed if seed is None else seed
        with torch.no_grad():
            return sample_responses(self.model, self.tokenizer, list(states), self._sampling, self._stop_ids, seed,
                                    self.device)

    def get_actions(self, states: list[str]) -> list[str]:
        """One user message per state, generated in one batch."""
        return self.generate(states)[2]

    async def get_action(self, state: str) -> str:
        """The next user message for a complete state string."""
        return (await asyncio.to_thread(self.get_actions, [state]))[0]
