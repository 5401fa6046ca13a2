"""Issue 14, item 7: every class of bad config found by probing exits 2 with one line naming the key or file, before
any model loads. The config table runs ``train_ppo.main`` in-process; --resume and LoRA targets need a process."""

from __future__ import annotations

import json
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
    ("negative evaluation environments", "evaluation.num_envs=-1", "evaluation.num_envs must be >= 0"),
    ("unknown goal check placement", "environment.goal_check_placement=top",
     "environment.goal_check_placement must be one of"),
    ("repeats not a mapping", "warm_start.repeat_situations=[4]", "warm_start.repeat_situations: expected a mapping"),
    ("a repeat count not an integer", "warm_start.repeat_situations={correction: many}",
     "warm_start.repeat_situations.correction: expected int"),
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
    ("duplicate keys", b"ppo:\n  iterations: 1\n  iterations: 50\n", "duplicate key 'iterations' (line 3)"),
    ("duplicate sections", b"ppo:\n  iterations: 1\nppo:\n  iterations: 2\n", "duplicate key 'ppo'"),
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


# --- issue 21: renamed keys -----------------------------------------------------------------------------------------

# old key -> a value that was valid under it
OLD_VALUES = {"ppo.max_epochs": 2, "environment.reward.objective": "adversarial", "environment.personas": ["hurried"],
              "buffer.novelty_bonus": 0.1, "buffer.novelty_memory": 8}


def _nested(dotted: str, value: object) -> dict:
    *sections, key = dotted.split(".")
    data: dict = {key: value}
    for section in reversed(sections):
        data = {section: data}
    return data


def test_every_renamed_key_has_a_test_value() -> None:
    from training.config import RENAMED

    assert set(RENAMED) == set(OLD_VALUES)


@pytest.mark.parametrize("old", sorted(OLD_VALUES))
@pytest.mark.parametrize("where", ["file", "parent file", "--set"])
def test_old_key_exits_2_with_one_line_naming_the_new_key(tmp_path, capsys, old, where) -> None:
    from training.config import RENAMED

    out = tmp_path / "out"
    argv = ["--config", TINY, "--set", f"logging.output_dir={out}"]
    if where == "--set":
        argv += ["--set", f"{old}={json.dumps(OLD_VALUES[old])}"]
        source = f"--set {old}="
    else:
        old_file = tmp_path / "old.yaml"
        old_file.write_text(f"extends: {TINY}\n" + yaml.safe_dump(_nested(old, OLD_VALUES[old])))
        config = old_file
        if where == "parent file":
            config = tmp_path / "child.yaml"
            config.write_text("extends: old.yaml\nseed: 1\n")
        argv[1] = str(config)
        source = str(old_file)
    code, lines = _run_main(argv, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"config error: {old} was renamed to {RENAMED[old]} ("), lines
    assert source in lines[0], lines
    assert not out.exists()  # failed before anything was written or loaded


def test_mode_and_fuzzing_set_the_environment_and_are_what_a_saved_config_holds(tmp_path) -> None:
    from training.config import config_to_dict, load_config, save_config

    config = load_config(TINY, ["mode=adversarial", "fuzzing.personas=[hurried, flight_number]",
                                "fuzzing.novelty_bonus=0.2", "fuzzing.novelty_memory=5"])
    assert config.environment.reward.objective == "adversarial"  # what the environment reads
    assert config.environment.personas == ["hurried", "flight_number"]
    assert (config.fuzzing.novelty_bonus, config.fuzzing.novelty_memory) == (0.2, 5)
    assert load_config(TINY).environment.reward.objective == "cooperative" and not load_config(TINY).fuzzing.personas
    saved = config_to_dict(config)
    assert saved["mode"] == "adversarial" and saved["fuzzing"]["personas"] == ["hurried", "flight_number"]
    assert "personas" not in saved["environment"] and "objective" not in saved["environment"]["reward"]
    save_config(config, tmp_path / "training_config.yaml")
    assert config_to_dict(load_config(tmp_path / "training_config.yaml")) == saved  # the saved file loads as is


@pytest.mark.parametrize("setting, expected", [
    ("mode=chaos", "mode: expected one of ['cooperative', 'adversarial'], got 'chaos'"),
    ("fuzzing.personas=[sneaky]", "fuzzing.personas: unknown persona(s) sneaky"),
    ("fuzzing.novelty_bonus=-1", "fuzzing.novelty_bonus must be >= 0"),
    ("fuzzing.novelty_memory=0", "fuzzing.novelty_memory must be >= 1"),
    ("ppo.iterations=0", "ppo.iterations must be >= 1"),
])
def test_new_keys_are_validated_under_their_own_names(setting, expected) -> None:
    from training.config import ConfigError, load_config

    with pytest.raises(ConfigError) as raised:
        load_config(TINY, [setting])
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_training_and_the_auto_user_default_to_the_same_base_model() -> None:
    from agents.auto_user.agent import AutoUserConfig
    from training.config import PolicyModelConfig
    from training.ppo.config import ModelConfig

    assert ModelConfig().base_model == PolicyModelConfig().base_model == AutoUserConfig().model_name \
        == "smollm2-135m-instruct"
