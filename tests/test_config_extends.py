"""Issue 21, part 3: configs state only what differs (``extends``), and every committed result keeps the full config
it ran with (``results/<run>/training_config.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from training.config import TrainingConfig, _read_yaml_mapping, config_to_dict, load_config, save_config

CONFIGS = REPO / "configs"
RESULTS = REPO / "results"
RUN_OUTPUTS = ("training_metrics.json", "evaluation.json", "final_evaluation.json")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


MAPPING_VALUES = {"warm_start.repeat_situations"}  # config keys whose value is a mapping, not a section


def _leaves(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"ppo.iterations": 3, ...}``: every non-mapping value (or mapping-valued key's value) by its dotted key."""
    leaves: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" not in MAPPING_VALUES:
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    from training.train_ppo import main

    code = main(argv)
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _resolved(path: Path, *overrides: str) -> dict[str, Any]:
    """A config resolved through the loader, without the directory a run it starts from would have made."""
    start = _leaves(_read_yaml_mapping(path)).get("model.init_from")
    return config_to_dict(load_config(path, [*overrides, *(["model.init_from=null"] if start else [])]))


# --- the loader ---------------------------------------------------------------------------------------------------


def test_child_wins_mappings_merge_lists_replace_and_set_applies_last(tmp_path, monkeypatch) -> None:
    _write(tmp_path / "root.yaml", "fuzzing:\n  personas: [hurried, indecisive]\nenvironment:\n"
                                   "  max_conversation_length: 6\nppo:\n  iterations: 3\n  num_envs: 2\n"
                                   "logging:\n  save_every: 2\n")
    _write(tmp_path / "recipes" / "middle.yaml", "extends: ../root.yaml\nppo:\n  iterations: 5\n"
                                                 "fuzzing:\n  personas: [bargain_hunter]\n")
    child = _write(tmp_path / "recipes" / "deep" / "child.yaml", "extends: ../middle.yaml\nppo:\n  num_envs: 4\n")
    monkeypatch.chdir(tmp_path / "recipes" / "deep")  # parents resolve from the extending file, not the cwd

    config = load_config(child, ["ppo.iterations=7"])

    assert config.ppo.num_envs == 4  # the child's own value
    assert config.ppo.iterations == 7  # --set over the middle's 5 over the root's 3
    assert load_config(child).ppo.iterations == 5
    assert config.fuzzing.personas == ["bargain_hunter"]  # a list replaces, never appends
    assert config.environment.max_conversation_length == 6 and config.logging.save_every == 2  # inherited
    assert config.ppo.rollout_episodes == TrainingConfig().ppo.rollout_episodes  # nobody states it: the default


def test_saved_config_is_the_full_resolved_one_without_extends(tmp_path) -> None:
    child = _write(tmp_path / "child.yaml", f"extends: {CONFIGS / 'ppo_training_config.yaml'}\nseed: 3\n")
    config = load_config(child)
    save_config(config, tmp_path / "training_config.yaml")

    saved = yaml.safe_load((tmp_path / "training_config.yaml").read_text())
    assert "extends" not in saved and saved == config_to_dict(config)
    assert saved["ppo"]["learning_rate"] == 5.0e-4 and saved["ppo"]["seed"] == 3  # the parent's and derived values
    assert config_to_dict(load_config(tmp_path / "training_config.yaml")) == saved  # alone, it is the same run


BAD_CHAINS = [
    # (id, {file: content}, the file given to --config, texts the one line must contain)
    ("a cycle", {"a.yaml": "extends: b.yaml\nseed: 1\n", "b.yaml": "extends: a.yaml\nseed: 2\n"}, "a.yaml",
     ["extends:", "a cycle", "a.yaml -> ", "b.yaml -> ", "a.yaml)"]),
    ("extends itself", {"a.yaml": "extends: ./a.yaml\nseed: 1\n"}, "a.yaml", ["extends:", "a cycle"]),
    ("a cycle further up",
     {"c.yaml": "extends: a.yaml\n", "a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "c.yaml",
     ["extends:", "a cycle", "c.yaml -> "]),
    ("missing parent", {"child.yaml": "extends: nowhere/base.yaml\nseed: 1\n"}, "child.yaml",
     ["extends:", "child.yaml", "no such parent config", "nowhere/base.yaml"]),
    ("missing grandparent", {"child.yaml": "extends: mid.yaml\n", "mid.yaml": "extends: gone.yaml\n"}, "child.yaml",
     ["extends:", "mid.yaml", "no such parent config", "gone.yaml"]),
    ("parent not a path", {"child.yaml": "extends: [a.yaml, b.yaml]\n"}, "child.yaml",
     ["extends:", "child.yaml", "expected the path of a parent config"]),
    ("parent not YAML", {"child.yaml": "extends: bad.yaml\n", "bad.yaml": "ppo: [1, 2\n"}, "child.yaml",
     ["bad.yaml is not valid YAML"]),
    ("duplicate key in a parent", {"child.yaml": "extends: dup.yaml\n", "dup.yaml": "seed: 1\nseed: 2\n"},
     "child.yaml", ["dup.yaml", "duplicate key 'seed'"]),
    ("extends below the top", {"child.yaml": f"ppo:\n  extends: {CONFIGS / 'tiny_test.yaml'}\n"}, "child.yaml",
     ["ppo.extends: unknown key"]),
]


@pytest.mark.parametrize("files, given, expected", [row[1:] for row in BAD_CHAINS], ids=[r[0] for r in BAD_CHAINS])
def test_bad_chain_exits_2_with_one_line(tmp_path, capsys, files, given, expected) -> None:
    for name, text in files.items():
        _write(tmp_path / name, text)
    out = tmp_path / "out"
    code, lines = _run_main(["--config", str(tmp_path / given), "--set", f"logging.output_dir={out}"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("config error: ") and all(text in lines[0] for text in expected), lines
    assert not out.exists()


# --- the shipped configs ------------------------------------------------------------------------------------------

SHIPPED = sorted(CONFIGS.iterdir())


def test_configs_holds_the_shipped_set_only() -> None:
    assert len(SHIPPED) <= 6, [p.name for p in SHIPPED]
    assert all(p.suffix == ".yaml" for p in SHIPPED), SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_states_only_what_differs_from_its_parent(path: Path) -> None:
    own = _read_yaml_mapping(path)
    parent = own.pop("extends", None)
    reference = _leaves(_resolved(path.parent / parent) if parent else config_to_dict(TrainingConfig()))
    stated = _leaves(own)
    assert stated, f"{path.name} states nothing"
    unknown = [key for key in stated if key not in reference]
    assert not unknown, f"{path.name}: keys the config does not have: {unknown}"
    repeated = {key: value for key, value in stated.items() if reference[key] == value}
    assert not repeated, f"{path.name} repeats its {'parent' if parent else 'defaults'}: {repeated}"
    _resolved(path)  # and it loads


def test_every_child_extends_the_main_config() -> None:
    for path in SHIPPED:
        parent = _read_yaml_mapping(path).get("extends")
        assert parent in (None, "ppo_training_config.yaml"), (path.name, parent)
    assert "extends" not in _read_yaml_mapping(CONFIGS / "ppo_training_config.yaml")


def _record(run: str) -> dict[str, Any]:
    return yaml.safe_load((RESULTS / run / "training_config.yaml").read_text())


# Changes of the reward since a record that apply to every config (as the walk-away rule of round 8 did): round 9
# scores a booking that misses the objective 0.0 instead of 0.5.
REWARD_CHANGES = {"environment.verifier.partial_score"}
# Changes of the PPO update since a record that apply to every config: session 18's update guard reads the KL from
# the epoch's mini-batch forwards, where every record ran with a pass over the batch ("batch").
GUARD_CHANGES = {"ppo.kl_guard_measure"}


def test_main_config_resolves_to_the_latest_main_command_record() -> None:
    """The main recipe is what round 13 measured; when the recipe changes, a new results folder records it and this
    comparison moves there."""
    shipped = config_to_dict(load_config(CONFIGS / "ppo_training_config.yaml"))
    assert _differing(shipped, _record("main_command_v12")) == set()


def _differing(shipped: dict[str, Any], measured: dict[str, Any]) -> set[str]:
    """Keys whose values differ, leaving out the warm start's settings where both ran without it."""
    shipped, measured = _leaves(shipped), _leaves(measured)
    keys = set(shipped) | set(measured)
    if not shipped["warm_start.enabled"] and not measured["warm_start.enabled"]:
        keys = {key for key in keys if not key.startswith("warm_start.") or key == "warm_start.enabled"}
    return {key for key in keys if shipped.get(key) != measured.get(key)}


def test_45_minute_recipe_resolves_to_round_6s_record() -> None:
    shipped = config_to_dict(load_config(CONFIGS / "cooperative_45min.yaml"))
    assert _differing(shipped, _record("cooperative_v5")) == REWARD_CHANGES | GUARD_CHANGES


def test_fuzzing_recipe_is_the_measured_one_started_from_the_45_minute_model() -> None:
    differing = _differing(_resolved(CONFIGS / "fuzzing.yaml"), _record("fuzzing"))
    assert differing == {"model.init_from", *REWARD_CHANGES, *GUARD_CHANGES}, differing  # round 4's model
    start = _read_yaml_mapping(CONFIGS / "fuzzing.yaml")["model"]["init_from"]
    assert start == f"{load_config(CONFIGS / 'cooperative_45min.yaml').logging.output_dir}/final_model"


def test_persona_warm_start_fuzzer_is_the_measured_recipe() -> None:
    """configs/fuzzing_warm_start.yaml is what session 23 measured whole (warm start + PPO, 3 seeds) and session 22
    measured of its warm start alone."""
    shipped = config_to_dict(load_config(CONFIGS / "fuzzing_warm_start.yaml"))
    assert _differing(shipped, _record("fuzzing_persona_ppo")) == set()
    assert _differing(shipped, _record("fuzzing_persona_warm_start")) == set()


# --- the committed results ----------------------------------------------------------------------------------------

RUN_DIRS = sorted({path.parent for name in RUN_OUTPUTS for path in RESULTS.rglob(name)})
RECORDS = sorted(RESULTS.rglob("training_config.yaml"))


def test_every_committed_result_names_the_config_it_ran_with() -> None:
    assert RUN_DIRS, "no results found"
    missing = [str(run.relative_to(RESULTS)) for run in RUN_DIRS
               if not any((folder / "training_config.yaml").is_file()
                          for folder in (run, *run.parents) if folder.is_relative_to(RESULTS) and folder != RESULTS)]
    assert not missing, f"results without a training_config.yaml (in the folder or a recipe folder above): {missing}"


@pytest.mark.parametrize("path", RECORDS, ids=[str(p.parent.relative_to(RESULTS)) for p in RECORDS])
def test_result_config_is_full_and_loads_on_its_own(path: Path) -> None:
    written = yaml.safe_load(path.read_text())
    assert "extends" not in written
    loaded = _resolved(path)
    if written["model"]["init_from"] is not None:
        loaded["model"]["init_from"] = written["model"]["init_from"]
    assert loaded == written  # every key written out: nothing comes from a default the file does not show
