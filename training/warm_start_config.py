"""The ``warm_start`` section of a training config: the supervised stage before PPO (issue 22).

Kept apart from ``training/warm_start.py`` (which imports torch and TRL) so that a config is read and checked before
any model library loads.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from environment.demonstrators import SITUATIONS

__all__ = ["KL_REFERENCES", "TURN_ENDS", "WarmStartConfig"]

TURN_ENDS = ("auto", "newline", "eos")
KL_REFERENCES = ("warm_start", "base")


@dataclass
class WarmStartConfig:
    """Supervised fine-tuning of the policy on verified demonstrations before PPO (TRL ``SFTConfig`` names).

    In a training config (section ``warm_start``) with `enabled`, ``train_ppo.py`` plays the demonstrators
    (``training/demonstrations.py``) on training objectives, fine-tunes a fresh LoRA adapter on the verified
    conversations with TRL's ``SFTTrainer`` (``training/warm_start.py``), and starts PPO from the result; the run's
    output directory keeps all three under ``warm_start/`` and the final comparison gets a "warm start" column.
    ``python -m training.warm_start`` runs the supervised step alone.

    Prompt and completion lengths are not settings here: prompts are cut to ``model.max_query_length`` tokens from
    the left and completions to ``model.max_response_length`` tokens, as the policy's sampler does.

    Parameters:
        enabled (`bool`, defaults to `False`):
            Run the warm start before PPO (``train_ppo.py``). Ignored when ``model.init_from`` is set.
        demonstration_episodes (`int`, defaults to `200`):
            Conversations the demonstrators play on training objectives; only verified ones become rows (about 5
            user turns each). Ignored when `dataset_path` is set.
        kl_reference (`str`, defaults to `"warm_start"`):
            What PPO's KL penalty measures against. `"warm_start"` (InstructGPT): the warm-started adapter is folded
            into a float32 copy of the base weights (``warm_start/merged``), PPO trains a fresh adapter on it, and
            the policy starts equal to its reference (KL 0), so the penalty keeps PPO near what the demonstrations
            taught. `"base"`: PPO continues the warm-started adapter and its reference is the base model (adapter
            disabled): the penalty starts high and pulls the policy back towards the base model, which almost never
            books.
        dataset_path (`str` or `None`, defaults to `None`):
            Directory of a `datasets.Dataset` saved with `save_to_disk` (``training/demonstrations.py --out``), with
            string columns ``prompt`` and ``completion``, used instead of playing demonstrations.
        max_steps (`int`, defaults to `-1`):
            Optimizer steps to train; `-1` trains `num_train_epochs` epochs instead.
        num_train_epochs (`float`, defaults to `1.0`):
            Passes over the training rows when `max_steps` is `-1`.
        learning_rate (`float`, defaults to `2e-4`):
            AdamW learning rate of the LoRA weights (linear decay to 0, TRL's default schedule).
        per_device_train_batch_size (`int`, defaults to `8`):
            Rows per forward/backward pass.
        gradient_accumulation_steps (`int`, defaults to `1`):
            Passes accumulated per optimizer step.
        group_by_length (`bool`, defaults to `False`):
            Batch rows of similar length (``training.warm_start.length_grouped_order``): the rows are shuffled,
            sorted by length within windows of 8 batches, cut into batches, and the batches shuffled, so a batch
            pads little and the batch order stays random (transformers' own ``group_by_length`` sampler serves each
            window longest first, which a run of fewer steps than rows would skew towards long rows). Rows are
            right-padded to the longest of their batch, and the demonstrations' prompts run from 147 to 333
            tokens: in random batches of 8, a quarter of the tokens computed were padding.
        eval_fraction (`float`, defaults to `0.1`):
            Share of the objectives (``objective_id`` column; rows when there is none) held out to measure the
            completion loss before and after training; they are not trained on. `0` holds nothing out (and skips
            the two measuring passes, which cost as much as a tenth of the training on CPU).
        turn_end (`str`, defaults to `"auto"`):
            Token that closes each completion so the model learns to stop: `"newline"` (a line break, where the
            sampler stops when ``model.stop_at_newline``), `"eos"` (the tokenizer's eos token), or `"auto"`:
            newline when ``model.stop_at_newline``, else eos. With ``environment.state_template: chat``, `"eos"` is
            the chat model's own end of turn (``<|im_end|>`` for SmolLM2), which the sampler also stops at.
        mixed_precision (`str` or `None`, defaults to `None`):
            `"auto"` (bf16 autocast only where the CPU has bf16 units or the GPU supports it), `"bf16"` or `"no"`;
            `None`: ``hardware.mixed_precision`` in a training config, `"auto"` alone.
        seed (`int` or `None`, defaults to `None`):
            Seeds the demonstrations, the LoRA initialisation, the held-out split and the order of the rows; `None`:
            the training config's ``seed`` (0 alone).
        logging_steps (`int`, defaults to `10`):
            Optimizer steps between two logged training losses.
        repeat_situations (`dict[str, int]`, defaults to `{}`):
            How many times a training row appears when its ``situation`` column (``training/demonstrations.py``)
            is a key here: ``correction`` (the agent assumed a detail the goal does not have), ``unusual_opening``
            (the first message on a goal with such a detail), ``persona_move`` (the message that made a persona's
            move); every other row appears once. A few dozen steps see a row once or not at all, and such turns are
            a few percent of the rows: measured on the main recipe's 40 steps, the warm start corrected an assumed
            party size in 0 of 30 probed states with every row once and in 10 of 30 with corrections repeated 4
            times and unusual openings 3 times (docs/experiments.md, round 13). Rows held out by `eval_fraction`
            are never repeated.
        expert_iteration_rounds (`int`, defaults to `0`):
            Expert iteration (ReST-EM) after the supervised step: each round samples the warm-started policy on
            `expert_iteration_episodes` training objectives, keeps the conversations the verifier passes (the
            demonstrations' rule) and fine-tunes a fresh adapter, as the supervised step did, on the demonstrations
            plus every round's kept turns (``training/expert_iteration.py``). PPO starts from the last round's
            policy. Each round costs the sampling plus one more supervised step.
        expert_iteration_episodes (`int`, defaults to `48`):
            Conversations each expert iteration round samples.
    """

    enabled: bool = False
    demonstration_episodes: int = 200
    kl_reference: Literal["warm_start", "base"] = "warm_start"
    dataset_path: str | None = None
    max_steps: int = -1
    num_train_epochs: float = 1.0
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    group_by_length: bool = False
    eval_fraction: float = 0.1
    turn_end: Literal["auto", "newline", "eos"] = "auto"
    mixed_precision: Literal["auto", "bf16", "no"] | None = None
    seed: int | None = None
    logging_steps: int = 10
    repeat_situations: dict[str, int] = dataclasses.field(default_factory=dict)
    expert_iteration_rounds: int = 0
    expert_iteration_episodes: int = 48

    def __post_init__(self) -> None:
        def require(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        def integer(name: str) -> bool:
            value = getattr(self, name)
            return isinstance(value, int) and not isinstance(value, bool)

        def number(name: str) -> bool:
            value = getattr(self, name)
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

        for name in ("demonstration_episodes", "max_steps", "per_device_train_batch_size",
                     "gradient_accumulation_steps", "logging_steps", "expert_iteration_rounds",
                     "expert_iteration_episodes"):
            require(integer(name), name, "an integer")
        require(isinstance(self.enabled, bool), "enabled", "true or false")
        require(isinstance(self.group_by_length, bool), "group_by_length", "true or false")
        require(self.demonstration_episodes > 0, "demonstration_episodes", "> 0")
        require(self.kl_reference in KL_REFERENCES, "kl_reference", f"one of {KL_REFERENCES}")
        require(self.max_steps == -1 or self.max_steps > 0, "max_steps", "> 0, or -1 to train num_train_epochs")
        require(number("num_train_epochs") and self.num_train_epochs > 0, "num_train_epochs", "a finite number > 0")
        require(number("learning_rate") and self.learning_rate > 0, "learning_rate", "a finite number > 0")
        require(self.per_device_train_batch_size > 0, "per_device_train_batch_size", "> 0")
        require(self.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "> 0")
        require(number("eval_fraction") and 0.0 <= self.eval_fraction < 1.0, "eval_fraction", "in [0, 1)")
        require(self.turn_end in TURN_ENDS, "turn_end", f"one of {TURN_ENDS}")
        require(self.mixed_precision in ("auto", "bf16", "no", None), "mixed_precision",
                "'auto', 'bf16', 'no' or null")
        require(self.seed is None or (integer("seed") and 0 <= self.seed < 2**31), "seed", "in [0, 2**31 - 1]")
        require(self.logging_steps > 0, "logging_steps", "> 0")
        unknown = sorted(set(self.repeat_situations) - set(SITUATIONS))
        require(not unknown, "repeat_situations", f"keyed by {', '.join(SITUATIONS)} (unknown: {', '.join(unknown)})")
        require(all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.repeat_situations.values()),
                "repeat_situations", "a mapping to integers >= 1")
        require(self.expert_iteration_rounds >= 0, "expert_iteration_rounds", ">= 0")
        require(self.expert_iteration_episodes > 0, "expert_iteration_episodes", "> 0")
