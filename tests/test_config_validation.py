"""Issue 14, item 7: every class of bad config found by probing exits 2 with one line naming the key or file, before
any model loads. The config table runs ``train_ppo.main`` in-process; --resume and LoRA targets need a process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, train_command

TINY = str(REPO / "configs" / "tiny_test.yaml")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    """Real files of each bad kind, by placeholder name."""
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "malformed.jsonl").write_text('{"origin": "BOS"\n')
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "text.db").write_text("id,name\n1,flight\n")
    return {name: str(tmp_path / name) for name in ("a-file", "a-dir", "empty.jsonl", "malformed.jsonl",
                                                     "binary.bin", "text.db")}


# (id, --set value with {placeholders} (or a tuple of them), text the one line must contain)
BAD_SETTINGS = [
    ("--set value not YAML", "ppo.learning_rate=[1, 2", "--set ppo.learning_rate"),
    ("--set duplicate keys", "ppo={mini_batch_size: 2, mini_batch_size: 4}", "duplicate key 'mini_batch_size'"),
    ("section null", "ppo=null", "ppo: expected a mapping"),
    ("section a number", "buffer=5", "buffer: expected a mapping"),
    ("infinite coefficient", "environment.reward.verifier_weight=.inf",
     "environment.reward.verifier_weight: expected a finite number"),
    ("infinite learning rate", "ppo.learning_rate=.inf", "ppo.learning_rate: expected a finite number"),
    ("nan time budget", "ppo.max_train_minutes=.nan", "ppo.max_train_minutes: expected a finite number"),
    ("negative num_threads", "hardware.num_threads=-2", "hardware.num_threads must be >= 0"),
    ("negative seed", "seed=-1", "seed: a seed must be in"),
    ("seed beyond numpy", "seed=4294967296", "seed: a seed must be in"),
    ("environment seed out of range", "environment.seed=-5", "environment.seed: a seed must be in"),
    ("db seed out of range", "environment.db_seed=99999999999", "environment.db_seed: a seed must be in"),
    ("output dir is a file", "logging.output_dir={a-file}", "logging.output_dir: "),
    ("output dir under a file", "logging.output_dir={a-file}/out", "logging.output_dir: "),
    ("tensorboard dir is a file", "logging.tensorboard_dir={a-file}", "logging.tensorboard_dir: "),
    ("workdir is a file", "environment.workdir={a-file}", "environment.workdir: "),
    ("model cache is a file", "model.model_cache_dir={a-file}", "model.model_cache_dir: "),
    ("objectives file empty", "environment.objectives_file={empty.jsonl}", "environment.objectives_file: "),
    ("objectives file malformed", "environment.objectives_file={malformed.jsonl}", "malformed.jsonl:1"),
    ("objectives file a directory", "environment.objectives_file={a-dir}", "environment.objectives_file: "),
    ("objectives file binary", "environment.objectives_file={binary.bin}", "environment.objectives_file: "),
    ("eval objectives malformed", "evaluation.eval_objectives_file={malformed.jsonl}", "evaluation.eval_objectives"),
    ("database not a database", "environment.db_path={text.db}", "environment.db_path: "),
    ("database a directory", "environment.db_path={a-dir}", "environment.db_path: "),
    ("unknown plain placeholder", "environment.plain_template='{objective} {mood}'", "{mood}"),
    ("history in system template", "environment.system_template='{history}'", "environment.system_template"),
    ("unbalanced brace", "environment.plain_template='{objective'", "environment.plain_template"),
    ("negative agent timeout", "environment.agent.openai.timeout_seconds=-1",
     "environment.agent.openai.timeout_seconds"),
    ("zero agent timeout", "environment.agent.openai.timeout_seconds=0", "environment.agent.openai.timeout_seconds"),
    ("negative agent retries", "environment.agent.openai.max_retries=-1", "environment.agent.openai.max_retries"),
    ("negative tool rounds", "environment.agent.openai.max_tool_rounds=0", "environment.agent.openai.max_tool_rounds"),
    ("negative failed-epoch limit", "ppo.max_failed_epochs=-1", "ppo.max_failed_epochs"),
    ("unknown sampling source", "hardware.sampling=fast", "hardware.sampling: expected one of"),
    ("merged sampling of a 4-bit base", ("hardware.sampling=merged_bf16", "model.use_quantization=true"),
     "hardware: sampling 'merged_bf16' needs an unquantized base"),
]

# (id, config file content (bytes) or a placeholder, text the one line must contain)
BAD_FILES = [
    ("a list", b"- ppo\n- model\n", "must be a YAML mapping"),
    ("a scalar", b"just some words\n", "must be a YAML mapping"),
    ("empty", b"", "is empty"),
    ("only comments", b"# the whole job, by default\n", "is empty"),
    ("duplicate keys", b"ppo:\n  max_epochs: 1\n  max_epochs: 50\n", "duplicate key 'max_epochs' (line 3)"),
    ("duplicate sections", b"ppo:\n  max_epochs: 1\nppo:\n  max_epochs: 2\n", "duplicate key 'ppo'"),
    ("invalid YAML", b"ppo: [1, 2\n", "is not valid YAML"),
    ("section null", b"environment:\nmodel:\n  lora_r: 4\n", "environment: expected a mapping"),
    ("section a number", b"environment: 5\n", "environment: expected a mapping"),
    ("binary", bytes(range(256)), "is not a text file"),
    ("a directory", "{a-dir}", "is a directory"),
]


def _run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    from training.train_ppo import main

    code = main(argv)
    stderr = capsys.readouterr().err
    return code, [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("setting, expected", [row[1:] for row in BAD_SETTINGS], ids=[r[0] for r in BAD_SETTINGS])
def test_bad_setting_exits_2_with_one_line(tmp_path, files, template_db, capsys, setting, expected) -> None:
    out = tmp_path / "out"
    argv = ["--config", TINY, "--set", f"logging.output_dir={out}", "--set", f"logging.tensorboard_dir={out}/tb",
            "--set", f"environment.db_path={template_db}"]
    for assignment in setting if isinstance(setting, tuple) else (setting,):  # a tuple: settings that clash
        for name, path in files.items():
            assignment = assignment.replace("{" + name + "}", path)
        argv += ["--set", assignment]
    code, lines = _run_main(argv, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("config error: ") and expected in lines[0], lines
    assert not out.exists()  # failed before anything was written or loaded


@pytest.mark.parametrize("content, expected", [row[1:] for row in BAD_FILES], ids=[r[0] for r in BAD_FILES])
def test_bad_config_file_exits_2_with_one_line(tmp_path, files, capsys, content, expected) -> None:
    if isinstance(content, str):
        config = Path(files[content.strip("{}")])
    else:
        config = tmp_path / "config.yaml"
        config.write_bytes(content)
    out = tmp_path / "out"
    code, lines = _run_main(["--config", str(config), "--set", f"logging.output_dir={out}"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("config error: ") and expected in lines[0], lines
    assert str(config) in lines[0] or expected.split(":")[0] in ("environment", "ppo"), lines  # the file or the key
    assert not out.exists()


def test_every_shipped_config_still_loads() -> None:
    from training.config import ConfigError, load_config

    for path in sorted((REPO / "configs").glob("*.yaml")):
        start = (yaml.safe_load(path.read_text()).get("model") or {}).get("init_from")
        if start and not (REPO / start).is_dir():  # made by another run (a fuzzing run starts from a cooperative one)
            with pytest.raises(ConfigError, match="model.init_from: no such directory"):
                load_config(path, [f"model.init_from={REPO / start}"])
            load_config(path, ["model.init_from=null"])
        else:
            load_config(path)


def _train(tmp_path: Path, template_db: Path, model_cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(train_command(tmp_path / "out", template_db, model_cache) + list(extra),
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def _gutted_checkpoint(out: Path) -> str:
    """A checkpoint whose manifest verifies but whose trainer_state.json lacks its keys."""
    from agents.auto_user.model_files import write_manifest

    checkpoint = out / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    for name in ("buffer.json", "trainer_state.json"):
        (checkpoint / name).write_text("{}")
    write_manifest(checkpoint)
    return str(checkpoint)


BAD_RESUMES = [
    ("no such directory", lambda out: str(out / "nope"), "no such checkpoint directory"),
    ("a file", lambda out: (out.mkdir(parents=True), (out / "f").write_text("x"), str(out / "f"))[-1],
     "is not a directory"),
    ("latest with no checkpoint", lambda out: "latest", "no complete checkpoint"),
    ("a directory without COMPLETE", lambda out: (out.joinpath("c").mkdir(parents=True), str(out / "c"))[-1],
     "not a complete checkpoint"),
    ("trainer state without keys", _gutted_checkpoint, "trainer_state.json lacks epoch"),
]


@pytest.mark.parametrize("make, expected", [row[1:] for row in BAD_RESUMES], ids=[r[0] for r in BAD_RESUMES])
def test_bad_resume_exits_2_with_one_line_before_the_model_loads(tmp_path, template_db, tiny_model_cache, make,
                                                                 expected) -> None:
    resume = make(tmp_path / "out")
    result = _train(tmp_path, template_db, tiny_model_cache, "--resume", resume)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("resume error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "policy base model" not in result.stderr


@pytest.mark.parametrize("targets", ["[q_proj]", "[c_attn, c_projection]"], ids=["none match", "one of two"])
def test_lora_targets_that_match_nothing_exit_2_once_the_model_is_known(tmp_path, template_db, tiny_model_cache,
                                                                        targets) -> None:
    result = _train(tmp_path, template_db, tiny_model_cache, "--set", f"model.lora_target_modules={targets}")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 1 and "model.lora_target_modules" in errors[0] and "c_attn" in errors[0], errors
    assert "Traceback" not in result.stderr and not (tmp_path / "out" / "checkpoint-1").exists()
