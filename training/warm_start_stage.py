"""The warm start as the first stage of a training run: demonstrations -> ``SFTTrainer`` -> the policy PPO starts from.

With ``warm_start.enabled``, ``train_ppo.py`` calls `prepare_warm_start` before it builds the policy. Everything the
stage makes stays in the run's output directory, so a user can inspect it and a resumed run reuses it::

    <output_dir>/warm_start/demonstrations/   the verified demonstrations (a datasets.Dataset; prompt, completion,
                                              objective, verifier score, demonstrator), unless dataset_path is set
    <output_dir>/warm_start/policy/           the warm-started policy (LoRA adapter + value head): loads in
                                              AutoUserAgent and as model.init_from; warm_start_metrics.json
    <output_dir>/warm_start/expert_iteration/round-N/{samples,policy}/
                                              warm_start.expert_iteration_rounds: the policy's own verified turns
                                              of round N and the policy fine-tuned on them (training/
                                              expert_iteration.py); PPO starts from the last round's policy
    <output_dir>/warm_start/merged/           kl_reference "warm_start" only: the adapter folded into a float32 copy
                                              of the base weights, PPO's base model and KL reference

Each directory is written beside its final name and moved into place with a manifest (``training.checkpoint.
save_directory``), so a run killed mid-stage redoes only the unfinished part. Demonstrations come from training
objectives only (``training.demonstrations.training_objectives``): the held-out objectives the run is evaluated on
never appear in them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.auto_user.model_files import MANIFEST_NAME
from training import checkpoint as ckpt
from training.config import TrainingConfig
from training.demonstrations import collect_demonstrations, save_rows, training_objectives
from training.warm_start import METRICS_FILE, load_demonstrations, warm_start

logger = logging.getLogger(__name__)

__all__ = ["WARM_START_DIR", "WarmStartOutcome", "prepare_warm_start"]

WARM_START_DIR = "warm_start"
EXPERT_ITERATION_DIR = "expert_iteration"  # under WARM_START_DIR: round-N/{samples,policy}
SUMMARY_FILE = "summary.json"  # a round's sampling summary, beside its rows


@dataclass(frozen=True)
class WarmStartOutcome:
    """Where the stage's products are, and what PPO should build its policy from."""

    policy_dir: Path  # the warm-started policy (adapter + value head)
    reference_dir: Path | None  # the merged weights PPO trains a fresh adapter on (kl_reference "warm_start")
    metrics: dict[str, Any]  # warm_start_metrics.json (with the played demonstrations' summary)

    def model_overrides(self) -> dict[str, Any]:
        """The ``model`` fields PPO's policy is built with: a fresh adapter on the merged weights, or the warm
        adapter continued on the base model."""
        if self.reference_dir is not None:
            return {"base_model": str(self.reference_dir), "init_from": None}
        return {"init_from": str(self.policy_dir)}


def _complete(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def prepare_warm_start(config: TrainingConfig, model_path: str, output_dir: Path,
                       device: torch.device | str) -> WarmStartOutcome:
    """Run (or reuse, when a previous run of this output directory finished them) the warm start's three steps.

    Args:
        config: The run's config; its ``warm_start`` section must be enabled.
        model_path: The resolved base model directory (``resolve_model(config.model.base_model)``).
        output_dir: The run's output directory.
        device: Where the supervised step trains.
    """
    warm = config.warm_start
    root = output_dir / WARM_START_DIR
    root.mkdir(parents=True, exist_ok=True)
    policy_dir, merged_dir = root / "policy", root / "merged"
    model_config = dataclasses.replace(config.model, base_model=model_path, init_from=None)
    demo_summary: dict[str, Any] = {}

    def train(dataset: Any, out: Path, notes: dict[str, Any]) -> None:
        def write(tmp: Path) -> None:
            warm_start(model_config, warm, dataset, tmp, device)
            if notes:  # what the rows came from, beside what they taught
                metrics = json.loads((tmp / METRICS_FILE).read_text())
                (tmp / METRICS_FILE).write_text(json.dumps({**metrics, **notes}, indent=2))

        start = time.perf_counter()
        ckpt.save_directory(out, write)
        logger.info("warm start: supervised step done in %.0f s -> %s", time.perf_counter() - start, out)

    if _complete(policy_dir):
        logger.info("warm start: reusing %s", policy_dir)
    else:
        dataset = _demonstrations(config, model_path, root, demo_summary)
        train(dataset, policy_dir, {"demonstrations": demo_summary} if demo_summary else {})
    if warm.expert_iteration_rounds:
        policy_dir = _expert_iteration(config, root, policy_dir, train)
    metrics = json.loads((policy_dir / METRICS_FILE).read_text())
    reference_dir = None
    if warm.kl_reference == "warm_start":
        if not _complete(merged_dir):
            ckpt.save_directory(merged_dir, lambda tmp: _merge(policy_dir, tmp))
            logger.info("warm start: adapter folded into float32 base weights -> %s (PPO's KL reference)", merged_dir)
        reference_dir = merged_dir
    return WarmStartOutcome(policy_dir, reference_dir, metrics)


def _expert_iteration(config: TrainingConfig, root: Path, policy_dir: Path,
                      train: Callable[[Any, Path, dict[str, Any]], None]) -> Path:
    """Run (or reuse) the expert iteration rounds after the supervised step; the last round's policy directory.

    Round N keeps ``<root>/expert_iteration/round-N/samples`` (the kept rows, a Dataset, and ``summary.json``) and
    ``round-N/policy`` (a fresh adapter fine-tuned on the demonstrations plus rounds 1..N's rows). A round that kept
    nothing trains nothing: the previous policy goes on."""
    from datasets import concatenate_datasets

    from training.expert_iteration import sample_policy

    warm = config.warm_start
    seed = config.seed if warm.seed is None else warm.seed
    demonstrations = load_demonstrations(warm.dataset_path or root / "demonstrations")
    sampled, summaries = [], []
    for round_index in range(1, warm.expert_iteration_rounds + 1):
        round_dir = root / EXPERT_ITERATION_DIR / f"round-{round_index}"
        samples_dir, round_policy = round_dir / "samples", round_dir / "policy"
        round_dir.mkdir(parents=True, exist_ok=True)
        if not _complete(samples_dir):
            result = sample_policy(config, policy_dir, training_objectives(config), warm.expert_iteration_episodes,
                                   seed, round_index)
            logger.info("expert iteration round %d: kept %d of %d conversations of %s (%d user turns)", round_index,
                        result.kept, result.played, policy_dir, len(result.rows))

            def write_samples(tmp: Path, result: Any = result) -> None:
                save_rows(result.rows, tmp)
                (tmp / SUMMARY_FILE).write_text(json.dumps(result.summary(), indent=2) + "\n")

            ckpt.save_directory(samples_dir, write_samples)
        summaries.append(json.loads((samples_dir / SUMMARY_FILE).read_text()))
        rows = load_demonstrations(samples_dir)
        if len(rows) == 0:
            logger.info("expert iteration round %d kept nothing: %s goes on", round_index, policy_dir)
            continue
        sampled.append(rows)
        if not _complete(round_policy):
            train(concatenate_datasets([demonstrations, *sampled]), round_policy,
                  {"expert_iteration": list(summaries)})
        policy_dir = round_policy
    return policy_dir


def _demonstrations(config: TrainingConfig, model_path: str, root: Path, summary: dict[str, Any]) -> Any:
    """The configured dataset, or demonstrations played now on training objectives and saved under ``root``."""
    warm = config.warm_start
    if warm.dataset_path is not None:
        logger.info("warm start: demonstrations from %s", warm.dataset_path)
        return load_demonstrations(warm.dataset_path)
    from agents.auto_user.models import load_tokenizer_checked

    out = root / "demonstrations"
    tokenizer = load_tokenizer_checked(model_path)  # states fitted to the policy's query budget, as in rollouts
    run = asyncio.run(collect_demonstrations(config, training_objectives(config), warm.demonstration_episodes,
                                             warm.seed, tokenizer))
    summary.update(run.summary())
    logger.info("warm start: %d of %d demonstration episodes verified (%d user turns) in %.0f s",
                summary["kept"], summary["episodes"], summary["rows"], run.seconds)
    if not run.rows:
        raise RuntimeError("warm start: no demonstration episode was verified; check the booking agent backend")
    ckpt.save_directory(out, lambda tmp: save_rows(run.rows, tmp))
    return load_demonstrations(out)


def _merge(policy_dir: Path, out: Path) -> None:
    """Fold the warm-started adapter into a float32 copy of its base weights, saved as a plain causal LM."""
    from training.ppo.policy import PolicyWithValueHead

    policy = PolicyWithValueHead.from_pretrained(policy_dir, device="cpu")
    merged = policy.sampling_copy(torch.float32)
    merged.save_pretrained(out)
    policy.tokenizer.save_pretrained(out)
