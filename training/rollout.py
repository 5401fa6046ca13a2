"""Rollout collection: ``num_envs`` conversations stepped concurrently, one batched generation per turn."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from agents.booking import Message
from agents.tool_client import ToolCall
from environment.conversation import BookingConversationEnvironment, ConversationState, EpisodeOutcome
from environment.objectives import Objective

logger = logging.getLogger(__name__)
GenerateFn = Callable[[list[str]], tuple[list[torch.Tensor], list[torch.Tensor], list[str]]]
ScriptFn = Callable[[ConversationState], str]  # a scripted user: the next message from the environment's state


@dataclass
class EpisodeRecord:
    """One finished conversation: the policy's (query, response) per user turn, its rewards and its outcome."""

    objective: Objective
    episode_seed: int | None = None  # the seed env.reset got: the same policy samples replay the episode
    queries: list[torch.Tensor] = field(default_factory=list)
    responses: list[torch.Tensor] = field(default_factory=list)
    step_rewards: list[float] = field(default_factory=list)
    reward_components: list[dict[str, float]] = field(default_factory=list)
    tool_calls: list[tuple[ToolCall, ...]] = field(default_factory=list)  # per user turn, the agent's calls
    state_complete: list[bool] = field(default_factory=list)
    transcript: list[Message] = field(default_factory=list)
    outcome: EpisodeOutcome | None = None  # set when the episode ends (every record `collect` returns has one)
    truncated: bool = False

    @property
    def hallucinated(self) -> bool:
        return self.outcome is not None and self.outcome.hallucinated

    @property
    def user_messages(self) -> list[str]:
        return [m.text for m in self.transcript if m.role == "user"]


@dataclass
class RolloutStats:
    errors: int = 0
    last_error: str | None = None  # first line of the latest error, for the one-line "backend down" message
    generation_seconds: float = 0.0
    environment_seconds: float = 0.0
    generated_tokens: int = 0


class RolloutCollector:
    """Runs episodes on a fixed set of environments, batching the policy's generation across them.

    ``generate`` samples the policy's messages from the state strings; a ``script`` (a scripted user, e.g. the
    fuzzing baseline's attackers) is given the environment's state instead, and its records hold empty tensors.
    """

    def __init__(self, envs: Sequence[BookingConversationEnvironment], generate: GenerateFn | None = None,
                 script: ScriptFn | None = None):
        if (generate is None) == (script is None):
            raise ValueError("give exactly one of generate or script")
        self.envs = list(envs)
        self.generate = generate
        self.script = script

    async def collect(self, episodes: Sequence[tuple[Objective, int]], description: str = "rollout",
                      progress: bool = True) -> tuple[list[EpisodeRecord], RolloutStats]:
        """Play one episode per (objective, seed); return the finished records (errored episodes dropped)."""
        pending = list(episodes)[::-1]
        stats = RolloutStats()
        records: list[EpisodeRecord] = []
        active: dict[int, EpisodeRecord] = {}
        bar = tqdm(total=len(pending), desc=description, unit="episode", disable=not progress, leave=False)

        def start(slot: int) -> None:
            if pending:
                objective, seed = pending.pop()
                self.envs[slot].reset(objective=objective, seed=seed)
                active[slot] = EpisodeRecord(objective=objective, episode_seed=seed)

        for slot in range(len(self.envs)):
            start(slot)
        while active:
            slots = sorted(active)
            prompts = [self.envs[slot].format_state() for slot in slots]
            complete = [self.envs[slot].state_is_complete(prompt) for slot, prompt in zip(slots, prompts,
                                                                                                  strict=True)]
            began = time.perf_counter()
            if self.script is not None:
                texts = [self.script(self.envs[slot].state) for slot in slots]
                queries = responses = [torch.zeros(0, dtype=torch.long)] * len(slots)
            else:
                queries, responses, texts = self.generate(prompts)
            stats.generation_seconds += time.perf_counter() - began
            stats.generated_tokens += sum(len(r) for r in responses)
            began = time.perf_counter()
            results = await asyncio.gather(*(self.envs[slot].step(text) for slot, text in zip(slots, texts,
                                                                                              strict=True)),
                                           return_exceptions=True)
            stats.environment_seconds += time.perf_counter() - began
            for slot, is_complete, query, response, result in zip(slots, complete, queries, responses, results,
                                                                  strict=True):
                record = active[slot]
                if isinstance(result, BaseException) or result.error is not None:
                    reason = result if isinstance(result, BaseException) else result.error
                    logger.warning("episode dropped after an environment error: %s", str(reason).splitlines()[0])
                    stats.errors += 1
                    stats.last_error = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
                    del active[slot]
                    bar.update(1)
                    start(slot)
                    continue
                record.queries.append(query)
                record.responses.append(response)
                record.step_rewards.append(result.reward)
                record.reward_components.append(result.reward_components)
                record.tool_calls.append(result.tool_calls)  # described only where shown (ToolCall.describe)
                record.state_complete.append(is_complete)
                if result.done or result.truncated:
                    record.outcome, record.truncated = result.outcome, result.truncated
                    record.transcript = list(result.state.history)
                    records.append(record)
                    del active[slot]
                    bar.update(1)
                    start(slot)
        bar.close()
        return records, stats


def episode_plan(objectives: Sequence[Objective], count: int, rng: random.Random) -> list[tuple[Objective, int]]:
    """``count`` (objective, episode seed) pairs drawn with ``rng``."""
    return [(rng.choice(list(objectives)), rng.randrange(2**31)) for _ in range(count)]
