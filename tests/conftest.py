"""Shared fixtures: a real flight database built once per test session."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from database.build import build_database


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed-0 database, built once into a session temp dir (never the repo's default file)."""
    return build_database(tmp_path_factory.mktemp("db") / "flights.db", seed=0)


@pytest.fixture
def db_copy(template_db: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the template for one test."""
    destination = tmp_path / "flights.db"
    source = sqlite3.connect(template_db)
    target = sqlite3.connect(destination)
    source.backup(target)
    source.close()
    target.close()
    return destination


def table_contents(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, for before/after comparisons."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall() for table in tables}
    finally:
        conn.close()


@pytest.fixture(autouse=True, scope="session")
def _single_torch_thread() -> None:
    """Tiny models run fastest on one thread, and tests must not fight each other (or a training run) for cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def _fresh_accelerate_state() -> None:
    """Each test module starts with accelerate's process-wide state unset. An in-process ``SFTTrainer`` in bf16 (the
    warm start's "auto" on a bf16 CPU) leaves it set, and the next module's ``Accelerator`` would inherit it and
    autocast every forward it prepares in bf16, so exact float32 comparisons of another module would fail."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


REPO = Path(__file__).resolve().parents[1]


def train_command(out: Path, template_db: Path, model_cache: Path, *settings: str) -> list[str]:
    """``train_ppo.py`` on the tiny config, writing only under ``out`` (database and model cache given)."""
    import sys

    values = [f"logging.output_dir={out}", f"logging.tensorboard_dir={out / 'tb'}",
              f"model.model_cache_dir={model_cache}", f"environment.db_path={template_db}",
              f"environment.workdir={out / 'work'}", "hardware.num_threads=1", *settings]
    return [sys.executable, str(REPO / "training" / "train_ppo.py"), "--config",
            str(REPO / "configs" / "tiny_test.yaml"), *[item for value in values for item in ("--set", value)]]


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-model-cache")


@pytest.fixture(scope="session")
def tiny_two_epoch_run(tmp_path_factory: pytest.TempPathFactory, template_db: Path, tiny_model_cache: Path) -> Path:
    """Output dir of a real 2-epoch tiny run (checkpoint-1, checkpoint-2, final_model); copy before changing it."""
    import subprocess

    out = tmp_path_factory.mktemp("two-epochs") / "out"
    result = subprocess.run(train_command(out, template_db, tiny_model_cache, "evaluation.eval_every=0"),
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def objectives(template_db: Path) -> list:
    """The training side of the default objectives over the session's database (demonstrator tests)."""
    from environment.config import EnvironmentConfig
    from environment.objectives import load_objectives

    return load_objectives(EnvironmentConfig(db_path=str(template_db)))[0]


@pytest.fixture(scope="module")
def db_facts(template_db: Path) -> tuple:
    """(airport lookup, the database's today) of the session's database."""
    from agents.nlu import airport_lookup
    from database import FlightDatabase

    with FlightDatabase(template_db, read_only=True) as db:
        return airport_lookup(db.list_airports()), db.today()


# The modules that take longest (training runs in subprocesses), run first: under pytest-xdist (run_tests.sh, one
# module per worker at a time) a long module left for last would run alone while the other workers idle.
SLOWEST_MODULES = ("test_training_pipeline", "test_run_lifecycle", "test_warm_start_stage", "test_checkpoints",
                   "test_config_validation", "test_run_resilience", "test_evaluation_and_plots", "test_warm_start",
                   "test_fuzzing", "test_dashboard", "test_demonstrations", "test_model_dirs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the rest keep their order
