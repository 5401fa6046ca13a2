"""Supervised warm start (training/warm_start.py) on tiny offline models: what is trained, that it learns, that the
saved policy loads where PPO and the auto-user load policies, and that a PPO run starts from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from agents.auto_user.agent import AutoUserAgent, AutoUserConfig
from agents.auto_user.generation import encode_query, stop_token_ids
from agents.auto_user.models import resolve_model
from agents.auto_user.precision import resolve_precision
from agents.auto_user.tiny_models import build_tiny_model
from tests.conftest import REPO, train_command
from training.config import PolicyModelConfig
from training.ppo.config import ModelConfig
from training.ppo.policy import PolicyWithValueHead
from training.warm_start import (
    METRICS_FILE,
    WarmStartConfig,
    WarmStartDataError,
    build_trainer,
    completion_loss,
    encode_rows,
    length_grouped_order,
    main,
    repeated_rows,
    warm_start,
)

CITIES = ["London", "Paris", "Tokyo", "Dublin", "Boston", "Denver"]


def demo_rows(cities: list[str] = CITIES) -> list[dict]:
    """A state-like prompt per city (ending "User:", as the plain state) and the message that answers it."""
    return [{"prompt": f"Objective: fly to {city}.\nConversation:\nAgent: Where would you like to go?\nUser:",
             "completion": f"To {city}, please.", "objective_id": f"obj-{city}", "turn": 1} for city in cities]


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "gpt2", "gpt2", seed=0)


def _model_config(path: Path, **overrides: object) -> ModelConfig:
    settings: dict = {"base_model": str(path), "lora_r": 4, "lora_alpha": 8, "max_query_length": 64,
                      "max_response_length": 12}
    return ModelConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def warm_dir(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Path) -> Path:
    """A warm start on four training objectives (two more held out), long enough to learn them by heart."""
    warm = WarmStartConfig(max_steps=80, learning_rate=3e-2, per_device_train_batch_size=4, eval_fraction=0.34,
                           logging_steps=20, seed=0)
    return warm_start(_model_config(tiny_gpt2), warm, Dataset.from_list(demo_rows() * 2),
                      tmp_path_factory.mktemp("warm") / "policy", device="cpu")


def _tokenizer(path: Path):
    from agents.auto_user.models import load_tokenizer

    return load_tokenizer(str(path))


def test_rows_become_ppo_samples(tiny_gpt2: Path) -> None:
    tokenizer, config = _tokenizer(tiny_gpt2), _model_config(tiny_gpt2, max_query_length=12, max_response_length=8)
    long_prompt = "Objective: fly to London on a morning flight with a window seat near the front.\nUser:"
    examples, counts = encode_rows(tokenizer, [{"prompt": long_prompt, "completion": "  Yes, book it.  "}], config,
                                   "newline")
    (example,) = examples
    query = encode_query(tokenizer, long_prompt, 12).tolist()
    response = example["input_ids"][len(query):]
    assert example["input_ids"][: len(query)] == query  # the query the sampler builds, cut from the left
    assert example["completion_mask"] == [0] * len(query) + [1] * len(response)
    assert counts == {"prompts_truncated": 1, "completions_truncated": 0}
    assert tokenizer.decode(response) == " Yes, book it.\n"  # a space after "User:", the message, the turn end
    stops = set(stop_token_ids(tokenizer, stop_at_newline=True))
    assert response[-1] in stops and not stops & set(response[:-1])

    (with_eos,), _ = encode_rows(tokenizer, [{"prompt": "User: ", "completion": "Hi"}], config, "eos")
    response = [t for t, m in zip(with_eos["input_ids"], with_eos["completion_mask"], strict=True) if m]
    assert response[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(response[:-1]) == "Hi"  # the prompt ends in a space: none added

    (cut,), counts = encode_rows(tokenizer, [{"prompt": "User:", "completion": "one two three four five six seven "
                                                                               "eight nine ten"}], config, "newline")
    assert sum(cut["completion_mask"]) == config.max_response_length and counts["completions_truncated"] == 1


@pytest.mark.parametrize(("completion", "match"), [("First line\nsecond line", "row 1: completion 'First line"),
                                                   ("   ", "row 1: completion is empty")])
def test_completion_the_policy_could_not_produce_is_refused(tiny_gpt2: Path, completion: str, match: str) -> None:
    rows = [{"prompt": "User:", "completion": "Fine."}, {"prompt": "User:", "completion": completion}]
    with pytest.raises(WarmStartDataError, match=match):
        encode_rows(_tokenizer(tiny_gpt2), rows, _model_config(tiny_gpt2), "newline")


def test_loss_is_on_the_completion_only_and_equals_trl_loss(tiny_gpt2: Path, tmp_path: Path) -> None:
    from trl import SFTTrainer

    torch.manual_seed(0)
    policy = PolicyWithValueHead.from_config(_model_config(tiny_gpt2))
    examples, _ = encode_rows(policy.tokenizer, demo_rows()[:4], policy.model_config, "newline")
    trainer = build_trainer(policy, examples, WarmStartConfig(max_steps=1), str(tmp_path), "no")
    for row, example in zip(trainer.train_dataset, examples, strict=True):  # the labels TRL built
        mask = torch.tensor(example["completion_mask"]) == 1
        labels, ids = torch.tensor(row["labels"]), torch.tensor(row["input_ids"])
        assert (labels[~mask] == -100).all() and torch.equal(labels[mask], ids[mask])
    # TRL's GPU defaults (bf16 autocast, gradient checkpointing) cost 20x / +40 % on a CPU without bf16 units.
    assert trainer.args.bf16 is False and trainer.args.gradient_checkpointing is False
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    projected: list[int] = []
    head = policy.pretrained_model.get_output_embeddings()
    hook = head.register_forward_hook(lambda module, args, output: projected.append(args[0].shape[0]))
    ours = trainer.compute_loss(policy.pretrained_model, dict(batch))
    hook.remove()
    assert projected == [int((batch["labels"][:, 1:] != -100).sum())]  # the vocabulary sees completion positions only
    trl = SFTTrainer.compute_loss(trainer, policy.pretrained_model, dict(batch))  # TRL's fused, all-position head
    assert torch.allclose(ours, trl, atol=1e-5), (ours, trl)
    assert completion_loss(policy.pretrained_model, examples, policy.tokenizer.pad_token_id) == pytest.approx(
        float(ours.detach()), abs=1e-5)


def test_warm_start_learns_the_demonstrations(warm_dir: Path, tiny_gpt2: Path) -> None:
    metrics = json.loads((warm_dir / METRICS_FILE).read_text())
    assert metrics["rows_train"] == 8 and metrics["rows_eval"] == 4  # 2 of 6 objectives held out, both their rows
    assert metrics["steps"] == 80 and [entry["step"] for entry in metrics["train_loss"]] == [20, 40, 60, 80]
    assert metrics["eval_completion_loss_after"] < metrics["eval_completion_loss_before"]
    assert metrics["precision"] == resolve_precision("auto", torch.device("cpu"))[0]
    assert metrics["turn_end"] == "newline"
    assert metrics["prompts_truncated"] == metrics["completions_truncated"] == 0

    policy = PolicyWithValueHead.from_pretrained(warm_dir)
    trained_cities = [row for row in demo_rows() if row["objective_id"] not in _held_out_ids(metrics, warm_dir)]
    examples, _ = encode_rows(policy.tokenizer, trained_cities, policy.model_config, "newline")
    after = completion_loss(policy.pretrained_model, examples, policy.tokenizer.pad_token_id)
    with policy.pretrained_model.disable_adapter():  # the base model: where PPO would otherwise start
        before = completion_loss(policy.pretrained_model, examples, policy.tokenizer.pad_token_id)
    assert before - after > 0.3, (before, after)  # nats per token; the tiny model cannot sharpen much further



def _greedy(policy: PolicyWithValueHead, prompt: str) -> str:
    """The policy's greedy response to ``prompt``, decoded with its turn end (queries and stops as the sampler's)."""
    settings = policy.model_config
    query = encode_query(policy.tokenizer, prompt, settings.max_query_length)[None]
    out = policy.sampling_copy(torch.float32).generate(
        query, attention_mask=torch.ones_like(query), do_sample=False, max_new_tokens=settings.max_response_length,
        eos_token_id=stop_token_ids(policy.tokenizer, True), pad_token_id=policy.tokenizer.pad_token_id)
    return policy.tokenizer.decode(out[0, query.shape[1]:])


def test_greedy_response_becomes_the_demonstrated_message(tiny_gpt2: Path, tmp_path: Path) -> None:
    """After a few seconds of warm start, the greedy answer to a training state is the demonstrated message, ended
    where a user turn ends. (One message for every state: a 64-wide model learns it quickly, copying a city from
    the state takes it far longer.)"""
    rows = [dict(row, completion="Yes, book it please.") for row in demo_rows()]
    policy = PolicyWithValueHead.from_config(_model_config(tiny_gpt2))
    assert _greedy(policy, rows[0]["prompt"]) != " Yes, book it please.\n"
    out = warm_start(_model_config(tiny_gpt2), WarmStartConfig(max_steps=60, learning_rate=1e-2, eval_fraction=0.0),
                     Dataset.from_list(rows), tmp_path / "w", device="cpu")
    assert _greedy(PolicyWithValueHead.from_pretrained(out), rows[1]["prompt"]) == " Yes, book it please.\n"


def _held_out_ids(metrics: dict, warm_dir: Path) -> set[str]:
    """The objectives the warm start held out: its split is seeded, so redo it."""
    from training.warm_start import split_rows

    dataset = Dataset.from_list(demo_rows() * 2)
    _, held = split_rows(dataset, metrics["config"]["eval_fraction"], metrics["config"]["seed"])
    return {dataset[i]["objective_id"] for i in held}


def test_saved_policy_loads_as_policy_and_auto_user(warm_dir: Path) -> None:
    adapter = load_file(str(warm_dir / "adapter_model.safetensors"))
    lora_b = {name: tensor for name, tensor in adapter.items() if "lora_B" in name}
    assert lora_b and all(tensor.abs().max() > 0 for tensor in lora_b.values())  # PEFT starts lora_B at zero
    policy = PolicyWithValueHead.from_pretrained(warm_dir)
    assert policy.is_peft and policy.model_config.lora_r == 4 and policy.model_config.init_from is None
    agent = AutoUserAgent(AutoUserConfig(model_name=str(warm_dir), max_length=64, max_new_tokens=8, device="cpu"))
    (message,) = agent.get_actions([demo_rows()[0]["prompt"]])
    assert isinstance(message, str)


@pytest.mark.parametrize(("overrides", "match"), [
    ({"max_steps": 0}, "max_steps must be > 0, or -1"), ({"learning_rate": float("nan")}, "learning_rate must be"),
    ({"eval_fraction": 1.0}, "eval_fraction must be in"), ({"turn_end": "tab"}, "turn_end must be one of"),
    ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be > 0"),
    ({"mixed_precision": "fp8"}, "mixed_precision must be"), ({"group_by_length": "yes"}, "group_by_length must be"),
    ({"repeat_situations": {"corrections": 2}}, "repeat_situations must be keyed by correction"),
    ({"repeat_situations": {"correction": 0}}, "repeat_situations must be a mapping to integers >= 1")])
def test_config_checks_name_the_field(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WarmStartConfig(**overrides)


def test_length_grouped_order_pads_less_and_keeps_any_prefix_random() -> None:
    """``warm_start.group_by_length``: a permutation of the rows; batches of similar length (padding, with the
    demonstrations' spread of lengths, falls from a quarter of the tokens to under a tenth); the first batches, all
    a short run trains on, are short and long alike, unlike a longest-first sampler; the same seed, the same order."""
    import random

    rng = random.Random(1)
    lengths = [rng.randint(147, 333) for _ in range(500)]

    def padding(order: list[int]) -> float:
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
        return 1 - sum(lengths) / padded

    grouped = length_grouped_order(lengths, batch_size=8, seed=0)
    shuffled = list(range(500))
    random.Random(0).shuffle(shuffled)
    assert sorted(grouped) == list(range(500))
    assert padding(grouped) < 0.1 < 0.2 < padding(shuffled), (padding(grouped), padding(shuffled))
    first = [lengths[i] for i in grouped[:320]]  # the main command's 40 steps of 8
    assert min(first) < 180 and max(first) > 300
    assert grouped == length_grouped_order(lengths, batch_size=8, seed=0) != length_grouped_order(lengths, 8, 1)


def test_rare_situations_are_repeated_in_the_training_rows_only() -> None:
    """``warm_start.repeat_situations``: a row whose ``situation`` is a key appears that many times among the
    training rows; other rows once; a dataset without the column (a user's own) is left as it is."""
    from datasets import Dataset

    dataset = Dataset.from_dict({"prompt": ["a", "b", "c", "d"], "completion": ["w", "x", "y", "z"],
                                 "situation": ["", "correction", "unusual_opening", "correction"]})
    rows = repeated_rows(dataset, [0, 1, 2], {"correction": 4, "unusual_opening": 2})  # row 3 held out
    assert rows == [0, 1, 1, 1, 1, 2, 2]
    assert repeated_rows(dataset, [0, 1, 2], {}) == [0, 1, 2]
    assert repeated_rows(dataset.remove_columns("situation"), [0, 1, 2], {"correction": 4}) == [0, 1, 2]


def _cli_args(tmp_path: Path, cache: Path, *extra: str) -> list[str]:
    return ["--config", str(REPO / "configs" / "tiny_test.yaml"), "--set", f"model.model_cache_dir={cache}",
            "--out", str(tmp_path / "out"), *extra]


@pytest.mark.parametrize(("case", "expected"), [
    ("missing", "--dataset: {tmp}/nowhere: no such dataset directory"),
    ("not_a_dataset", "--dataset: {tmp}/junk is not a saved datasets.Dataset"),
    ("no_completion", "--dataset: {tmp}/texts: no completion column (columns: prompt, text)"),
    ("zero_steps", "--max-steps must be > 0, or -1 to train num_train_epochs, got 0"),
    ("bad_number", "argument --learning-rate: expected a number, got 'fast'"),
    ("bad_fraction", "--eval-fraction must be in [0, 1), got 2.0"),
    ("out_is_file", "--out: {tmp}/out is a file, not a directory"),
    ("out_not_empty", "--out: {tmp}/out is not empty (pass --overwrite to write into it)"),
    ("multi_line_completion", "--dataset: dataset row 1: completion 'Two\\nlines' holds a turn-ending token"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, tiny_model_cache: Path, capsys: pytest.CaptureFixture,
                                          case: str, expected: str) -> None:
    good = tmp_path / "demos"
    Dataset.from_list(demo_rows()).save_to_disk(str(good))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    Dataset.from_dict({"prompt": ["User:"], "text": ["Hi"]}).save_to_disk(str(tmp_path / "texts"))
    dataset = {"missing": tmp_path / "nowhere", "not_a_dataset": tmp_path / "junk",
               "no_completion": tmp_path / "texts"}.get(case, good)
    extra = {"zero_steps": ["--max-steps", "0"], "bad_number": ["--learning-rate", "fast"],
             "bad_fraction": ["--eval-fraction", "2"]}.get(case, [])
    if case == "out_is_file":
        (tmp_path / "out").write_text("")
    if case == "out_not_empty":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "adapter_model.safetensors").write_text("an earlier model")
    if case == "multi_line_completion":
        dataset = tmp_path / "two_lines"
        Dataset.from_list([{"prompt": "User:", "completion": "Fine."}, {"prompt": "User:", "completion": "Two\nlines"}]
                          ).save_to_disk(str(dataset))
    resolve_model("tiny-gpt2", tiny_model_cache)  # built once, before the output under test
    capsys.readouterr()  # the saves' and the build's progress bars
    with pytest.raises(SystemExit) as exit_info:
        main(_cli_args(tmp_path, tiny_model_cache, "--dataset", str(dataset), *extra))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warm_start: error: "), err
    assert expected.format(tmp=tmp_path) in err, err


def test_ppo_run_starts_from_the_warm_start(tmp_path: Path, template_db: Path, tiny_model_cache: Path) -> None:
    demos = tmp_path / "demos"
    Dataset.from_list(demo_rows() * 2).save_to_disk(str(demos))
    warm = tmp_path / "warm"
    # The config's warm_start section is read (--set), a flag overrides it (--logging-steps).
    result = subprocess.run([sys.executable, "-m", "training.warm_start", "--dataset", str(demos),
                             "--set", "warm_start.max_steps=20", "--set", "warm_start.learning_rate=1e-2",
                             "--set", "warm_start.logging_steps=50", "--logging-steps", "5",
                             *_cli_args(tmp_path, tiny_model_cache)[:-2], "--out", str(warm)],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(warm) and summary["steps"] == 20
    used = json.loads((warm / METRICS_FILE).read_text())["config"]
    assert (used["learning_rate"], used["logging_steps"]) == (1e-2, 5)
    assert summary["eval_completion_loss_after"] < summary["eval_completion_loss_before"]

    out = tmp_path / "ppo"
    run = subprocess.run(train_command(out, template_db, tiny_model_cache, f"model.init_from={warm}",
                                       "evaluation.eval_every=0"),
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"starting from the trained policy in {warm}" in run.stderr
    start = load_file(str(warm / "adapter_model.safetensors"))
    after = load_file(str(out / "checkpoint-1" / "adapter_model.safetensors"))
    lora_b = [name for name in start if "lora_B" in name]
    moved_from_warm = sum(float((after[n] - start[n]).norm()) for n in lora_b)
    distance_from_zero = sum(float(after[n].norm()) for n in lora_b)
    # One PPO epoch moves the adapter a little from where it started: the warm start's, not a fresh (zero) lora_B.
    assert moved_from_warm < 0.5 * distance_from_zero, (moved_from_warm, distance_from_zero)
    assert json.loads((warm / "policy_config.json").read_text())["model_config"]["base_model"] == \
        json.loads((out / "checkpoint-1" / "policy_config.json").read_text())["model_config"]["base_model"]


def test_model_section_with_cache_resolves_alias(tmp_path: Path, tiny_model_cache: Path) -> None:
    """An alias base model is resolved in the model section's cache and recorded as the path PPO resolves."""
    config = PolicyModelConfig(base_model="tiny-gpt2", model_cache_dir=str(tiny_model_cache), lora_r=4, lora_alpha=8,
                               max_query_length=64, max_response_length=8)
    out = warm_start(config, WarmStartConfig(max_steps=2, eval_fraction=0.0), Dataset.from_list(demo_rows()[:2]),
                     tmp_path / "w", device="cpu")
    recorded = json.loads((out / "policy_config.json").read_text())["model_config"]["base_model"]
    assert recorded == str(tiny_model_cache / "tiny-gpt2")
    assert json.loads((out / METRICS_FILE).read_text())["eval_completion_loss_before"] is None
