"""Every seed a training run or an evaluation derives, in one place.

A run has one seed, ``TrainingConfig.seed``; everything random in training and evaluation comes from it or from
the fixed evaluation seed below, through these functions:

    what                                      seed
    torch / numpy / random (LoRA init, ...)   run_seed + process_index                       (process_seed)
    episode plan (objectives, episode seeds)  run_seed * 7919 + process_index                (plan_seed)
    the trainer's sampling stream             ppo_seed + 1000 * process_index                (trainer_seeds)
    the trainer's mini-batch shuffling        ppo_seed + 1000 * process_index + 1           (trainer_seeds)
    evaluation episodes                       EVALUATION_SEED + 1000 * repeat + objective    (evaluation_plan)
    evaluation sampling stream                EVALUATION_SEED                                (EVALUATION_SEED)

Evaluation seeds do not depend on the run's seed: the base model gives the same episodes in every run, and the
end-of-run comparison, ``evaluate.py`` and any later evaluation of a saved model play the same conversations
(``training.evaluation``). Below training, the environment derives its per-episode seeds (the booking agent's
phrasing and hallucination draws, the persona) from the episode seed it is given
(``environment.conversation.BookingConversationEnvironment.reset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["EVALUATION_SEED", "evaluation_plan", "plan_seed", "process_seed", "trainer_seeds"]

T = TypeVar("T")

#: The evaluation's episode seeds and its sampling stream start here.
EVALUATION_SEED = 20_000


def process_seed(run_seed: int, process_index: int = 0) -> int:
    """Seed of torch, numpy and ``random`` on one process (``accelerate.utils.set_seed``)."""
    return run_seed + process_index


def plan_seed(run_seed: int, process_index: int = 0) -> int:
    """Seed of the ``random.Random`` that draws each epoch's (objective, episode seed) plan on one process."""
    return run_seed * 7919 + process_index


def trainer_seeds(ppo_seed: int, process_index: int = 0) -> tuple[int, int]:
    """(sampling stream, mini-batch shuffle stream) seeds of a ``PPOTrainer``; each process samples differently."""
    sampling = ppo_seed + 1000 * process_index
    return sampling, sampling + 1


def evaluation_plan(objectives: Sequence[T], repeats: int = 1, episodes: int | None = None) -> list[tuple[T, int]]:
    """The evaluation's (objective, episode seed) pairs: each objective ``repeats`` times (the k of pass^k), objective
    by objective, cut to ``episodes`` when given. The same objectives always get the same episode seeds."""
    plan = [(objective, EVALUATION_SEED + 1000 * repeat + index)
            for index, objective in enumerate(objectives) for repeat in range(repeats)]
    return plan[:episodes] if episodes is not None else plan
