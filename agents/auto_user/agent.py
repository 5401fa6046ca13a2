"""The trained auto-user for users of the model: from a complete state string to a sampled user message.

It holds a model, a tokenizer and a sampling random stream: no history, no objective, no reset. The environment (or
your own harness) owns the conversation and formats the state; see ``BookingConversationEnvironment.format_state``.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from agents.auto_user.generation import sample_responses, stop_token_ids
from agents.auto_user.models import is_quantized_policy, load_inference_model, resolve_model
from agents.auto_user.precision import SAMPLING_CHOICES, resolve_precision, resolve_sampling


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
        seed: seeds the agent's sampling stream once, at construction: each call without ``seed=`` draws fresh
            randomness from it (a repeated question gets a new answer), and two agents with the same seed give the
            same messages for the same sequence of calls.
        device: "cpu", "cuda", or None for CUDA when available.
        model_cache_dir: where aliases are converted/built (None: the default cache).
        sampling: what to sample from, as training's ``hardware.sampling``: "auto" (a merged copy, bf16 where the
            hardware has bf16 units, else float32), "merged_bf16", "merged_float32", or "adapter" (a LoRA policy
            with its adapter layers, float32). A trained model sampled as training sampled it gives the episodes
            the training run's end-of-run comparison measured (``training.evaluation``).
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
    sampling: str = "auto"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_CHOICES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_CHOICES)}, got {self.sampling!r}")


@dataclass(frozen=True)
class _Sampling:
    """The sampling settings ``sample_responses`` reads."""

    max_query_length: int
    max_response_length: int
    temperature: float
    top_p: float
    top_k: int


class AutoUserAgent:
    """Simulated user without conversation state: ``get_action(state)`` samples the next message for ``state``.

    Randomness: each call without ``seed=`` draws its sampling seed from a ``torch.Generator`` seeded once from
    ``config.seed``, so calling again on the same state gives a fresh message (sampling every call with one fixed
    seed made a trained model repeat the same sentence to a repeated question), and a whole conversation is
    reproducible from ``config.seed``. ``seed=`` samples with exactly that seed instead, without advancing the
    stream, to replay one message.
    """

    def __init__(self, config: AutoUserConfig):
        self.config = config
        self.model = None
        self.tokenizer = None
        self._stop_ids: list[int] | None = None
        self._sampling_stream = torch.Generator().manual_seed(config.seed)
        # sample_responses seeds torch's global RNG for the length of one batch: concurrent get_action threads take
        # turns, or one thread's seeding would leak into another's sampling.
        self._sampling_lock = threading.Lock()

    @classmethod
    def from_model(cls, model: nn.Module, tokenizer: PreTrainedTokenizerBase, config: AutoUserConfig,
                   device: torch.device | str = "cpu") -> AutoUserAgent:
        """An agent over a model already in memory (e.g. a training run's merged sampling copy); ``config``'s
        sampling settings and seed apply, its ``model_name`` and ``sampling`` are only recorded."""
        agent = cls(config)
        agent._set_model(model, tokenizer, torch.device(device))
        return agent

    def initialize_model(self) -> None:
        cfg = self.config
        device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        path = resolve_model(cfg.model_name, cfg.model_cache_dir)
        merge_dtype, _ = resolve_sampling(cfg.sampling, resolve_precision("auto", device)[0],
                                          quantized=is_quantized_policy(path))
        model, tokenizer = load_inference_model(path, device, merge_dtype=merge_dtype)
        self._set_model(model, tokenizer, device)

    def _set_model(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, device: torch.device) -> None:
        cfg = self.config
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, device
        self._stop_ids = stop_token_ids(self.tokenizer, cfg.stop_at_newline)
        self._sampling = _Sampling(max_query_length=cfg.max_length, max_response_length=cfg.max_new_tokens,
                                   temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)

    def generate(self, states: list[str], seed: int | None = None):
        """(query tensors, response tensors, texts) for a batch of states.

        Args:
            states: complete state strings.
            seed: sample with exactly this seed (replay); None: the next seed of the agent's sampling stream.
        """
        if seed is None:
            seed = self._next_seed()
        with self._sampling_lock, torch.no_grad():
            if self.model is None:
                self.initialize_model()
            return sample_responses(self.model, self.tokenizer, list(states), self._sampling, self._stop_ids, seed,
                                    self.device)

    def get_actions(self, states: list[str], seed: int | None = None) -> list[str]:
        """One user message per state, generated in one batch (``seed``: as in ``generate``)."""
        return self.generate(states, seed)[2]

    async def get_action(self, state: str, seed: int | None = None) -> str:
        """The next user message for a complete state string (``seed``: as in ``generate``)."""
        # Drawn before the thread starts: concurrent calls then take seeds in the order they were made.
        seed = self._next_seed() if seed is None else seed
        return (await asyncio.to_thread(self.get_actions, [state], seed))[0]

    def _next_seed(self) -> int:
        return int(torch.randint(0, 2**62, (1,), generator=self._sampling_stream))
