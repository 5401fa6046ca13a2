"""Supervised warm start before PPO (issue 22): TRL's ``SFTTrainer`` on verified demonstrations, saved as a policy.

PPO from the base model almost never finds the booking path, so the recipe is: verified demonstrations
(``training/demonstrations.py``: rows of ``prompt`` = the state string as the policy sees it, ``completion`` = the
user message) -> this module -> PPO with ``model.init_from`` set to this module's output directory::

    python -m training.warm_start --config configs/ppo_training_config.yaml --dataset demos/ --out warm/
    python training/train_ppo.py --set model.init_from=warm/

What the model is trained on is exactly what PPO later scores. The policy is built by
``PolicyWithValueHead.from_config`` (the same LoRA targets and rank PPO continues). Each row becomes the token
sequence of one PPO sample: the query is ``encode_query(prompt, model.max_query_length)`` (tokenized without
special tokens, cut from the LEFT, as the sampler does), and the response is the completion tokenized on its own and
closed by the token that ends a user turn (``turn_end``: a newline, where the sampler stops at
``stop_token_ids(stop_at_newline=True)``, or eos), cut to ``model.max_response_length`` tokens as the sampler cuts.
A space is put before the completion when the prompt ends without one (the plain state ends ``"User:"``; the
sampler's text is stripped, so the demonstrated message never carries it). Loss is on the response tokens only
(TRL's ``completion_only_loss`` labels), so the model learns what to say and when to stop, not the states.

Decisions:

* Value head: it keeps the policy's small random init (values ~0, as a fresh PPO run). The demonstrations are
  successes only, so a head fitted to their returns would overestimate the policy's own returns and bias the first
  advantages; PPO's value loss fits it on the policy's own first rollouts instead.
* KL reference: with LoRA, PPO's reference is the policy with its adapter disabled, i.e. the BASE model, also when
  PPO starts from this directory (``init_from``): the KL penalty pulls the policy back towards the base model and
  starts above zero. InstructGPT uses the SFT model as the reference. That needs the SFT weights as the reference's
  weights: fold this adapter into the base weights (``PolicyWithValueHead.sampling_copy(torch.float32)``, saved
  with its tokenizer) and give that directory to PPO as ``model.base_model`` with a fresh adapter (no
  ``init_from``); the policy then starts equal to its reference. This module does not do that.

Speed. TRL's defaults suit GPUs; on this project's 2-core AVX2 CPU (no bf16 units) three of them made an SFT step
of SmolLM2-135M several times slower than the compute needs. Measured per step of 8 rows of ~216 tokens (14 of them
completion), one thread, on the shared machine: TRL defaults (``bf16=True`` autocast, gradient checkpointing) did
not finish one step in 165 s (one row's forward and backward: 60-69 s in bf16 autocast, 3 s in float32); float32
with checkpointing 46-61 s; float32 without 29-39 s; and with the vocabulary projection on completion positions
only (TRL's fused LM head projects every position onto the 49k vocabulary off Triton devices) 23 s. So: precision
follows ``hardware.mixed_precision`` as PPO's (``agents.auto_user.precision``: bf16 only where the hardware has
it), checkpointing follows ``model.gradient_checkpointing`` (off), and the loss projects completion positions only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import nn

from agents.auto_user.generation import encode_query, stop_token_ids
from training.cli import OneLineParser, fail
from training.ppo.config import ModelConfig
from training.warm_start_config import WarmStartConfig

logger = logging.getLogger(__name__)

__all__ = ["METRICS_FILE", "WarmStartConfig", "WarmStartDataError", "completion_loss", "encode_rows",
           "load_demonstrations", "warm_start"]

METRICS_FILE = "warm_start_metrics.json"
REQUIRED_COLUMNS = ("prompt", "completion")


class WarmStartDataError(ValueError):
    """A demonstrations dataset that cannot be trained on; ``str()`` is one line naming the path, row or column."""


def load_demonstrations(path: str | Path) -> Any:
    """The `datasets.Dataset` saved in ``path``, checked to have string ``prompt`` and ``completion`` columns and a
    row; WarmStartDataError (one line naming the path) otherwise."""
    from datasets import Dataset, DatasetDict, load_from_disk

    source = Path(path)
    if not source.exists():
        raise WarmStartDataError(f"{source}: no such dataset directory")
    if not source.is_dir():
        raise WarmStartDataError(f"{source} is a file, not a dataset directory (save_to_disk writes a directory)")
    try:
        dataset = load_from_disk(str(source))
    except Exception as exc:  # datasets raises FileNotFoundError, ValueError, ArrowInvalid...: one line either way
        raise WarmStartDataError(f"{source} is not a saved datasets.Dataset ({type(exc).__name__}: "
                                 f"{(str(exc).strip().splitlines() or [''])[0]})") from None
    if isinstance(dataset, DatasetDict):
        raise WarmStartDataError(f"{source} holds a DatasetDict (splits {sorted(dataset)}), not one Dataset; "
                                 "give the directory of one split")
    assert isinstance(dataset, Dataset)
    check_columns(dataset, str(source))
    return dataset


def check_columns(dataset: Any, where: str) -> None:
    """Raise WarmStartDataError unless ``dataset`` has rows and string ``prompt`` / ``completion`` columns."""
    missing = [column for column in REQUIRED_COLUMNS if column not in dataset.column_names]
    if missing:
        raise WarmStartDataError(f"{where}: no {' or '.join(missing)} column (columns: "
                                 f"{', '.join(dataset.column_names) or 'none'}); a prompt/completion dataset is needed")
    for column in REQUIRED_COLUMNS:
        dtype = getattr(dataset.features[column], "dtype", None)
        if dtype not in ("string", "large_string"):
            raise WarmStartDataError(f"{where}: column {column} holds {dataset.features[column]}, not strings")
    if len(dataset) == 0:
        raise WarmStartDataError(f"{where}: the dataset has no rows")


def resolve_turn_end(turn_end: str, model_config: ModelConfig) -> str:
    """"newline" or "eos" for a ``WarmStartConfig.turn_end`` under ``model_config``'s stopping rule."""
    if turn_end == "auto":
        return "newline" if model_config.stop_at_newline else "eos"
    if turn_end == "newline" and not model_config.stop_at_newline:
        raise ValueError("turn_end: 'newline' does not end a turn when model.stop_at_newline is false; use 'eos'")
    return turn_end


def encode_rows(tokenizer: Any, rows: Any, model_config: ModelConfig, turn_end: str) -> tuple[list[dict], dict]:
    """Token sequences of prompt/completion rows as PPO samples (query + response, see the module docstring).

    Args:
        tokenizer: The policy's tokenizer.
        rows: A Dataset (or list of dicts) with ``prompt`` and ``completion``.
        model_config: Its ``max_query_length``, ``max_response_length`` and ``stop_at_newline`` apply.
        turn_end: "newline" or "eos" (see ``resolve_turn_end``).

    Returns:
        Examples ``{"input_ids": [...], "completion_mask": [0]*query + [1]*response}`` and counts
        ``{"prompts_truncated": n, "completions_truncated": n}``.

    Raises:
        WarmStartDataError: A completion that is empty or holds a turn-ending token before its end (the policy
            would have stopped there), naming the row.
    """
    stops = set(stop_token_ids(tokenizer, model_config.stop_at_newline))
    examples, counts = [], {"prompts_truncated": 0, "completions_truncated": 0}
    for index, row in enumerate(rows):
        prompt, message = row["prompt"], row["completion"].strip()
        if not message:
            raise WarmStartDataError(f"dataset row {index}: completion is empty")
        query = encode_query(tokenizer, prompt, model_config.max_query_length).tolist()
        counts["prompts_truncated"] += len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) > len(query)
        text = (" " if prompt and not prompt[-1].isspace() else "") + message
        if turn_end == "newline":
            response = tokenizer(text + "\n", add_special_tokens=False)["input_ids"]
        else:
            response = [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        early = [i for i, token in enumerate(response[:-1]) if token in stops]
        if early:
            raise WarmStartDataError(f"dataset row {index}: completion {message[:60]!r} holds a turn-ending token "
                                     f"({tokenizer.decode([response[early[0]]])!r}) before its end; the policy "
                                     "stops there")
        if len(response) > model_config.max_response_length:
            response = response[: model_config.max_response_length]  # the sampler's cut: no end token then
            counts["completions_truncated"] += 1
        examples.append({"input_ids": query + response, "completion_mask": [0] * len(query) + [1] * len(response)})
    return examples, counts


def split_rows(dataset: Any, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) row indices: whole objectives (``objective_id``; rows without it) held out by ``seed``."""
    n = len(dataset)
    groups = list(dataset["objective_id"]) if "objective_id" in dataset.column_names else list(range(n))
    keys = sorted(set(groups), key=str)
    random.Random(seed).shuffle(keys)
    held = min(len(keys) - 1, max(1, round(eval_fraction * len(keys)))) if eval_fraction > 0 else 0
    held_out = set(keys[:held])
    return [i for i in range(n) if groups[i] not in held_out], [i for i in range(n) if groups[i] in held_out]


def repeated_rows(dataset: Any, rows: list[int], repeats: dict[str, int]) -> list[int]:
    """``rows`` with each row whose ``situation`` is a key of ``repeats`` listed that many times (in place, so the
    trainer's shuffle spreads the copies); a dataset without the column (a user's own) is returned unchanged."""
    if not repeats or "situation" not in dataset.column_names:
        return rows
    situations = dataset["situation"]
    return [i for i in rows for _ in range(repeats.get(situations[i], 1))]


def completion_targets(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, V) at the N positions whose next token is a completion token (label != -100), and those tokens.

    Runs the backbone over every position (the prompt is context) but the vocabulary projection only where a loss
    is taken: the same numbers as the full forward's shifted logits at those positions. Models whose head scales or
    caps the logits (``logit_scale``, ``final_logit_softcapping``) take the full forward instead.
    """
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    targets = labels[:, 1:]  # (B, L-1): the token each position predicts
    mask = targets != -100
    config = lm.config.get_text_config()
    if getattr(config, "logit_scale", None) is not None or getattr(config, "final_logit_softcapping", None):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1]
        return logits[mask].float(), targets[mask]
    hidden = lm.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    logits = lm.get_output_embeddings()(hidden[:, :-1][mask])  # (N, V)
    return logits.float(), targets[mask]


def length_grouped_order(lengths: list[int], batch_size: int, seed: int, window_batches: int = 8) -> list[int]:
    """A random order of the rows whose consecutive batches of ``batch_size`` hold rows of similar length: PPO's
    ``optimizer_step_chunks`` with ``group_by_length`` (windows of ``window_batches`` batches sorted by length, then
    the batches shuffled, the one short batch last), so any prefix of the order (a run of ``max_steps`` steps) draws
    short and long alike."""
    from training.ppo.batching import optimizer_step_chunks

    generator = torch.Generator().manual_seed(seed)
    batches = optimizer_step_chunks(lengths, batch_size, generator, group_by_length=True, window_steps=window_batches)
    # The trainer cuts the flat order into batches again: the one short batch goes last, or every later batch would
    # straddle two of these.
    batches.sort(key=lambda batch: len(batch) < batch_size)
    return [index for batch in batches for index in batch.tolist()]


def _pad(examples: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask and labels (-100 outside the completion)."""
    length = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        ids = torch.tensor(e["input_ids"])
        input_ids[i, : len(ids)], attention_mask[i, : len(ids)] = ids, 1
        labels[i, : len(ids)] = torch.where(torch.tensor(e["completion_mask"]) == 1, ids, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@torch.no_grad()
def completion_loss(model: nn.Module, examples: list[dict], pad_id: int, batch_size: int = 8) -> float | None:
    """Mean negative log-likelihood (nats per completion token) of ``encode_rows`` examples under ``model``."""
    if not examples:
        return None
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in _pad(examples[start : start + batch_size], pad_id).items()}
        logits, targets = completion_targets(model, **batch)
        total += float(F.cross_entropy(logits, targets, reduction="sum"))
        count += targets.numel()
    model.train(was_training)
    return total / count


def _sft_trainer_class() -> type:
    from trl import SFTTrainer

    class CompletionHeadSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer whose loss projects only the completion positions onto the vocabulary (see
        ``completion_targets``); same loss, token count and train metrics as TRL's ``nll`` loss."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if model.training else "eval"
            logits, targets = completion_targets(model, inputs["input_ids"], inputs["attention_mask"],
                                                 inputs["labels"])
            tokens = targets.numel() if num_items_in_batch is None else num_items_in_batch
            loss = F.cross_entropy(logits, targets, reduction="sum") / torch.as_tensor(tokens).clamp(min=1)
            with torch.no_grad():
                if targets.numel():
                    log_probs = logits.log_softmax(-1)
                    entropy = -(log_probs.exp() * log_probs).sum(-1).mean()
                    self._metrics[mode]["entropy"].append(float(entropy))
                    self._metrics[mode]["mean_token_accuracy"].append(
                        float((logits.argmax(-1) == targets).float().mean()))
            if mode == "train":
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, None) if return_outputs else loss

    return CompletionHeadSFTTrainer


def build_trainer(policy: Any, examples: list[dict], warm: WarmStartConfig, trainer_dir: str, precision: str) -> Any:
    """The SFT trainer over ``policy.pretrained_model`` (its LoRA weights train) and the tokenized examples."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig

    class LogLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                logger.info("warm start step %d/%d: loss %.4f", state.global_step, state.max_steps, logs["loss"])

    device = next(policy.pretrained_model.parameters()).device
    if warm.group_by_length:  # served in this order by the sequential sampler (see WarmStartConfig.group_by_length)
        lengths = [len(example["input_ids"]) for example in examples]
        examples = [examples[i] for i in length_grouped_order(lengths, warm.per_device_train_batch_size,
                                                               warm.seed or 0)]
    args = SFTConfig(
        output_dir=trainer_dir, report_to="none", push_to_hub=False, save_strategy="no", eval_strategy="no",
        max_steps=warm.max_steps, num_train_epochs=warm.num_train_epochs, learning_rate=warm.learning_rate,
        per_device_train_batch_size=warm.per_device_train_batch_size,
        gradient_accumulation_steps=warm.gradient_accumulation_steps, logging_steps=warm.logging_steps,
        seed=warm.seed or 0, data_seed=warm.seed or 0, use_cpu=device.type == "cpu", disable_tqdm=True,
        # TRL's GPU defaults cost much on a CPU (module docstring): precision as PPO's, checkpointing as the model's.
        bf16=precision == "bf16", gradient_checkpointing=policy.model_config.gradient_checkpointing,
        completion_only_loss=True, max_length=None, packing=False, dataloader_num_workers=0,
        train_sampling_strategy="sequential" if warm.group_by_length else "random",
    )
    trainer = _sft_trainer_class()(model=policy.pretrained_model, args=args,
                                   train_dataset=Dataset.from_list(examples), processing_class=policy.tokenizer)
    trainer.remove_callback(PrinterCallback)  # losses go to this module's logger and warm_start_metrics.json
    trainer.add_callback(LogLoss())
    return trainer


def warm_start(model_config: ModelConfig, warm_config: WarmStartConfig, dataset: Any = None,
               output_dir: str | Path = "warm_start_output", device: torch.device | str | None = None) -> Path:
    """Fine-tune a fresh policy on demonstrations and save it where ``model.init_from`` and ``AutoUserAgent`` load it.

    Args:
        model_config: The PPO run's ``model`` section (``ModelConfig`` or ``PolicyModelConfig``: an alias base
            model is resolved in its ``model_cache_dir``). ``init_from`` is ignored: the adapter starts fresh.
        warm_config: Warm start settings.
        dataset: A prompt/completion ``datasets.Dataset``, or the directory of a saved one; ``None``:
            ``warm_config.dataset_path``.
        output_dir: Directory for the policy (``PolicyWithValueHead.save_pretrained``) and ``warm_start_metrics.json``.
        device: Training device; default CUDA when available, else CPU.

    Returns:
        ``output_dir``.

    Raises:
        WarmStartDataError: The dataset is missing, not a Dataset, lacks prompt/completion columns or has a bad row.
        ValueError: ``turn_end`` "newline" with ``model.stop_at_newline`` false.
    """
    from accelerate.utils import set_seed
    from datasets import Dataset, disable_progress_bars

    from agents.auto_user.model_files import write_manifest
    from agents.auto_user.models import load_tokenizer_checked, resolve_model
    from agents.auto_user.precision import resolve_precision
    from training.ppo.policy import PolicyWithValueHead
    from training.seeds import process_seed

    start = time.perf_counter()
    # Alone, the section's "follow the training config" values mean: seed 0, precision as the hardware allows.
    warm_config = dataclasses.replace(warm_config, seed=warm_config.seed or 0,
                                      mixed_precision=warm_config.mixed_precision or "auto")
    if dataset is None:
        if warm_config.dataset_path is None:
            raise WarmStartDataError("dataset_path: no dataset given")
        dataset = warm_config.dataset_path
    if not isinstance(dataset, Dataset):
        dataset = load_demonstrations(dataset)
    check_columns(dataset, "dataset")
    turn_end = resolve_turn_end(warm_config.turn_end, model_config)
    if model_config.init_from is not None:
        logger.warning("model.init_from %s is ignored: the warm start trains a fresh adapter", model_config.init_from)
    disable_progress_bars()  # TRL maps the dataset with progress bars; the metrics file is the record
    out = Path(output_dir)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # The recorded base model is the resolved path, as the PPO run resolves it (training/loop.py checks they match).
    path = resolve_model(model_config.base_model, getattr(model_config, "model_cache_dir", None))
    policy_config = dataclasses.replace(model_config, base_model=path, init_from=None)
    tokenizer = load_tokenizer_checked(path)  # rows are checked before the model loads
    examples, counts = encode_rows(tokenizer, dataset, policy_config, turn_end)
    train_rows, eval_rows = split_rows(dataset, warm_config.eval_fraction, warm_config.seed)
    train_rows = repeated_rows(dataset, train_rows, warm_config.repeat_situations)
    train_examples, eval_examples = [examples[i] for i in train_rows], [examples[i] for i in eval_rows]
    pad_id = tokenizer.pad_token_id

    set_seed(process_seed(warm_config.seed))  # LoRA initialisation draws from the global RNG
    policy = PolicyWithValueHead.from_config(policy_config, device=device)
    precision, why = resolve_precision(warm_config.mixed_precision, device)
    logger.info("warm start on %s: %d rows (%d held out); precision %s (%s)", path, len(dataset), len(eval_rows),
                precision, why)
    eval_before = completion_loss(policy.pretrained_model, eval_examples, pad_id)

    with tempfile.TemporaryDirectory(prefix="warm-start-trainer-") as trainer_dir:
        trainer = build_trainer(policy, train_examples, warm_config, trainer_dir, precision)
        train_start = time.perf_counter()
        result = trainer.train()
        train_seconds = time.perf_counter() - train_start
        history = [{key: entry[key] for key in ("step", "loss", "learning_rate", "grad_norm", "entropy",
                                                   "mean_token_accuracy") if key in entry}
                   for entry in trainer.state.log_history if "loss" in entry]
        steps = trainer.state.global_step
        del trainer
    policy.pretrained_model.eval()
    eval_after = completion_loss(policy.pretrained_model, eval_examples, pad_id)

    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    tokens = sum(len(e["input_ids"]) for e in train_examples)
    metrics = {
        "train_loss": history,
        "train_loss_mean": float(result.training_loss),
        "eval_completion_loss_before": eval_before,
        "eval_completion_loss_after": eval_after,
        "rows": len(dataset), "rows_train": len(train_rows), "rows_eval": len(eval_rows), **counts,
        "rows_per_situation": dict(Counter(dataset["situation"])) if "situation" in dataset.column_names else {},
        "steps": steps,
        "seconds": round(time.perf_counter() - start, 2),
        "train_seconds": round(train_seconds, 2),
        "seconds_per_step": round(train_seconds / max(steps, 1), 3),
        "mean_tokens_per_row": round(tokens / len(train_examples), 1),
        "precision": precision, "turn_end": turn_end, "base_model": path,
        "config": dataclasses.asdict(warm_config),
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    write_manifest(out)  # last, as checkpoints: loading then verifies every file's bytes (check_model_dir)
    return out


def _fail(message: str) -> NoReturn:
    fail("warm_start", message)


def main(argv: list[str] | None = None) -> None:
    """``python -m training.warm_start --config CONFIG --dataset DIR --out DIR [--set KEY=VALUE ...]``: one JSON line
    of metrics on stdout; bad input is one line on stderr and exit status 2."""
    parser = OneLineParser("warm_start", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a training config (YAML): its model and warm_start "
                                                          "sections are used, the flags below override the latter")
    parser.add_argument("--dataset", required=True, help="directory of a saved prompt/completion Dataset")
    parser.add_argument("--out", required=True, help="directory for the warm-started policy (model.init_from)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, as train_ppo.py --set")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    defaults = WarmStartConfig()
    for field in dataclasses.fields(WarmStartConfig):
        if field.name in ("dataset_path", "seed", "mixed_precision", "enabled", "demonstration_episodes",
                          "kl_reference", "repeat_situations"):
            continue  # --dataset; the config's seed and hardware.mixed_precision; a mapping: --set; train_ppo.py's
        kind = {int: int, float: float}.get(type(getattr(defaults, field.name)), str)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=_typed(kind), default=None,
                            metavar=kind.__name__.upper(), help=f"default: the config's warm_start.{field.name}")
    parser.add_argument("--seed", type=_typed(int), default=None,
                        help="default: the config's warm_start.seed (its seed when unset)")
    args = parser.parse_args(argv)
    from training.config import ConfigError, load_config

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        _fail(f"--out: {out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        _fail(f"--out: {out} is not empty (pass --overwrite to write into it)")
    try:
        config = load_config(args.config, args.set)
    except ConfigError as exc:
        _fail(f"config error: {exc}")
    settings = {name: value for name, value in vars(args).items()
                if name in {f.name for f in dataclasses.fields(WarmStartConfig)} and value is not None}
    try:
        warm = dataclasses.replace(config.warm_start, dataset_path=args.dataset, **settings)
        resolve_turn_end(warm.turn_end, config.model)
        dataset = load_demonstrations(args.dataset)
    except WarmStartDataError as exc:
        _fail(f"--dataset: {exc}")
    except ValueError as exc:  # a field check names its field first: name the flag that set it
        name, _, rest = str(exc).partition(" ")
        _fail(f"--{name.rstrip(':').replace('_', '-')}{':' if name.endswith(':') else ''} {rest}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if config.hardware.num_threads:
        torch.set_num_threads(config.hardware.num_threads)
    from agents.auto_user.models import ModelUnavailableError
    from training.ppo.policy import LoraTargetError

    try:
        result = warm_start(config.model, warm, dataset, out, device="cpu" if config.hardware.cpu else None)
    except WarmStartDataError as exc:
        _fail(f"--dataset: {exc}")
    except (ModelUnavailableError, LoraTargetError) as exc:  # one line each, naming the key or directory
        _fail(str(exc).splitlines()[0])
    metrics = json.loads((result / METRICS_FILE).read_text())
    print(json.dumps({"out": str(result), **{key: metrics[key] for key in (
        "rows_train", "rows_eval", "steps", "train_loss_mean", "eval_completion_loss_before",
        "eval_completion_loss_after", "seconds_per_step", "seconds")}}))


def _typed(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got "
                                             f"{text!r}") from None

    return parse if kind in (int, float) else str


if __name__ == "__main__":
    main()
