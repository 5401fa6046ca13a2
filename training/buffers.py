"""Dual replay buffers of turn samples: adversarial (conversations with a hallucination) and normal (verified).

Buffers hold token ids and scores only; they never touch models. Replayed samples are re-scored by the current
policy inside ``PPOTrainer.step`` (old log-probs are recomputed there), and PPO's clipped ratio bounds the
off-policy step.
"""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path
from typing import NamedTuple


class TurnSample(NamedTuple):
    """One user turn as a PPO sample: the complete state (query), the user message (response), its score."""

    query: list[int]
    response: list[int]
    score: float


class ReplayBuffer:
    """A bounded FIFO of turn samples."""

    def __init__(self, capacity: int):
        self.samples: deque[TurnSample] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self.samples)

    def extend(self, samples: list[TurnSample]) -> None:
        self.samples.extend(samples)

    def sample(self, count: int, rng: random.Random) -> list[TurnSample]:
        if not self.samples or count <= 0:
            return []
        return rng.sample(list(self.samples), min(count, len(self.samples)))


class DualReplayBuffer:
    """Adversarial and normal buffers, mixed at ``adversarial_ratio`` when replaying."""

    def __init__(self, capacity: int, adversarial_ratio: float, seed: int = 0):
        self.normal, self.adversarial = ReplayBuffer(capacity), ReplayBuffer(capacity)
        self.adversarial_ratio = adversarial_ratio
        self.rng = random.Random(seed)

    def add_episode(self, samples: list[TurnSample], hallucinated: bool) -> None:
        (self.adversarial if hallucinated else self.normal).extend(samples)

    def replay(self, count: int) -> list[TurnSample]:
        """``count`` samples, ``adversarial_ratio`` of them from the adversarial buffer when it has enough."""
        from_adversarial = min(round(count * self.adversarial_ratio), len(self.adversarial))
        from_normal = min(count - from_adversarial, len(self.normal))
        from_adversarial = min(count - from_normal, len(self.adversarial))  # fill up from the other when short
        return self.adversarial.sample(from_adversarial, self.rng) + self.normal.sample(from_normal, self.rng)

    def state_dict(self) -> dict:
        return {
            "normal": [s._asdict() for s in self.normal.samples],
            "adversarial": [s._asdict() for s in self.adversarial.samples],
            "adversarial_ratio": self.adversarial_ratio,
            "rng_state": _rng_to_json(self.rng.getstate()),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("normal", "adversarial"):
            buffer: ReplayBuffer = getattr(self, name)
            buffer.samples.clear()
            buffer.extend([TurnSample(**item) for item in state[name]])
        self.rng.setstate(_rng_from_json(state["rng_state"]))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.state_dict()))

    def load(self, path: str | Path) -> None:
        self.load_state_dict(json.loads(Path(path).read_text()))


def _rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss
