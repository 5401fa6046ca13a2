"""A Gymnasium view of the booking conversation: text observations (the policy's state) and text actions.

``BookingGymEnv`` wraps :class:`BookingConversationEnvironment` for code that speaks the standard synchronous
``reset``/``step`` API. It owns a private asyncio event loop, so it works from plain synchronous code (but must not
be stepped from inside a running event loop; async callers should use the conversation environment directly).

Reward per step: the environment's per-turn reward plus, on the last step, its terminal reward (the decomposition
of :mod:`environment.rewards`, the same one training uses)::

    r_t = immediate_weight * immediate_t                  (every user turn)
        + verifier_weight * main                          (the last step only)

so the undiscounted episode return equals the environment's ``episode_reward`` (reported in ``info`` at the end).

Nothing is registered with ``gymnasium.register``; construct the class directly.
"""

from __future__ import annotations

import asyncio
import string
from typing import Any

import gymnasium
from gymnasium import spaces

from environment.config import EnvironmentConfig
from environment.conversation import MAX_USER_MESSAGE_CHARS, BookingConversationEnvironment
from environment.objectives import Objective, generate_objectives

# Printable ASCII (string.printable already includes space, \n, \t, \r, \x0b, \x0c), printable Latin-1, and the
# typographic punctuation LLM agents like to emit. Other characters in observations are replaced by "?" so that
# every observation is inside the space.
CHARSET = "".join(dict.fromkeys(
    string.printable
    + "".join(chr(code) for code in range(0xA1, 0x100))
    + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022\u20ac"
))
_CHARSET_SET = frozenset(CHARSET)
DEFAULT_MAX_OBSERVATION_CHARS = 65_536


def to_charset(text: str) -> str:
    """``text`` with every character outside :data:`CHARSET` replaced by "?"."""
    return "".join(ch if ch in _CHARSET_SET else "?" for ch in text)


def clip_middle(text: str, max_length: int) -> str:
    """``text`` cut to ``max_length`` by dropping its middle: the objective (head) and the prompt (tail) survive."""
    if len(text) <= max_length:
        return text
    marker = "\n...\n"
    head = (max_length - len(marker)) // 2
    tail = max_length - len(marker) - head
    return text[:head] + marker + (text[-tail:] if tail else "")


class BookingGymEnv(gymnasium.Env):
    """One booking conversation per episode; observations are state strings, actions are user messages.

    Args:
        config: the conversation environment's configuration.
        objectives: objectives to sample on ``reset`` (``options={"objective": ...}`` overrides one episode).
            ``None`` generates ``config.num_objectives`` from the configured database with ``config.objectives_seed``.
        worker_id: distinguishes this environment's database working copy from its neighbours'.
        tokenizer: needed for ``config.state_template == "chat"``.
        max_observation_chars: the observation space's ``max_length``; longer states lose their middle.

    Observation: ``format_state(state)`` as a string. Action: the next user message (any string is accepted;
    the environment collapses whitespace and keeps at most ``MAX_USER_MESSAGE_CHARS`` characters).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: EnvironmentConfig, objectives: list[Objective] | None = None, worker_id: int = 0,
                 tokenizer: Any = None, max_observation_chars: int = DEFAULT_MAX_OBSERVATION_CHARS):
        super().__init__()
        self.config = config
        self.env = BookingConversationEnvironment(config, objectives, worker_id=worker_id, tokenizer=tokenizer)
        if objectives is None:
            self.env.objectives = self._default_objectives()
        self.observation_space = spaces.Text(max_length=max_observation_chars, min_length=0, charset=CHARSET)
        self.action_space = spaces.Text(max_length=MAX_USER_MESSAGE_CHARS, min_length=0, charset=CHARSET)
        self._loop: asyncio.AbstractEventLoop | None = asyncio.new_event_loop()
        self._episode_return = 0.0

    def _default_objectives(self) -> list[Objective]:
        records = generate_objectives(self.env.database.template, self.config.num_objectives,
                                      seed=self.config.objectives_seed,
                                      infeasible_fraction=self.config.infeasible_fraction)
        return [Objective.from_dict(record) for record in records]

    def _observation(self) -> str:
        return clip_middle(to_charset(self.env.format_state()), self.observation_space.max_length)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode. ``options["objective"]`` (an Objective or its dict) fixes the episode's objective."""
        super().reset(seed=seed)  # seeds self.np_random, as the Gymnasium API expects
        objective = (options or {}).get("objective")
        if isinstance(objective, dict):
            objective = Objective.from_dict(objective)
        state = self.env.reset(objective=objective, seed=seed)
        self._episode_return = 0.0
        return self._observation(), {"objective": state.objective.to_dict(), "turn": state.turn}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Send one user message; the agent answers. Returns ``(obs, reward, terminated, truncated, info)``."""
        if self._loop is None:
            raise RuntimeError("the environment is closed")
        result = self._loop.run_until_complete(self.env.step(str(action)))
        info = dict(result.info)
        terminal = float(info.get("terminal_reward", 0.0))
        reward = float(result.reward + terminal)
        self._episode_return += reward
        info.update(turn_reward=float(result.reward), terminal_reward=terminal, turn=result.state.turn)
        if result.done or result.truncated:
            info["episode_return"] = self._episode_return
        return self._observation(), reward, bool(result.done), bool(result.truncated), info

    def close(self) -> None:
        """Close the conversation environment (tool client, database copy) and the private event loop."""
        if self._loop is None:
            return
        try:
            self._loop.run_until_complete(self.env.aclose())
        finally:
            self._loop.close()
            self._loop = None
        super().close()
