"""Imports run one way: database -> agents -> environment -> training (every import, also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["database", "agents", "environment", "training"]  # a package may import only itself and those before it
ENTRY_POINTS = ["training", "benchmarks", "mcp-server"]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def test_no_package_imports_a_layer_above_it() -> None:
    upward = []
    for rank, package in enumerate(LAYERS):
        allowed = set(LAYERS[: rank + 1])
        for path in sorted((REPO / package).rglob("*.py")):
            for imported in sorted(_imported_packages(path) - allowed):
                upward.append(f"{path.relative_to(REPO)} imports {imported}")
    assert upward == []


def test_the_checker_sees_function_level_imports(tmp_path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from training.ppo import PPOTrainer\n    import environment.rewards\n")
    assert _imported_packages(module) == {"training", "environment"}


def test_entry_points_do_not_patch_sys_path() -> None:
    patched = [str(p.relative_to(REPO)) for folder in ENTRY_POINTS for p in (REPO / folder).rglob("*.py")
               if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()]
    assert patched == []


def test_public_api_of_the_auto_user() -> None:
    from agents.auto_user import AutoUserAgent, AutoUserConfig

    assert AutoUserAgent(AutoUserConfig(model_name="tiny-gpt2")).model is None


def test_console_scripts_resolve_and_answer_help() -> None:
    """Every command in pyproject's [project.scripts] names an importable main(), and the installed script runs
    (``--help`` exits 0) without the repository on sys.path."""
    import importlib
    import subprocess
    import sys
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"auto-user-train", "auto-user-evaluate"} <= set(scripts)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name
    binary = Path(sys.executable).parent / "auto-user-evaluate"  # run_tests.sh reinstalls when pyproject changes
    assert binary.exists(), f"{binary} is not installed: pip install -e ."
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0 and "--compare" in result.stdout, result.stderr[-2000:]
