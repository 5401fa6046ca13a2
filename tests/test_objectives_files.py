"""Issue 25, item A: a user's objectives file (``environment.objectives_file``, ``evaluation.eval_objectives_file``,
``evaluate.py --objectives``) is checked field by field as it is read; a bad one is refused with one line naming the
file, the line and the field, and the entry points exit 2 before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from environment.objectives import Objective, ObjectivesFileError, generate_objectives, load_objectives_jsonl
from tests.conftest import REPO

TINY = str(REPO / "configs" / "tiny_test.yaml")
GOOD = {"objective_id": "obj-1", "origin": "BOS", "destination": "LAX", "origin_city": "Boston",
        "destination_city": "Los Angeles", "date": "2026-12-10", "cabin": "economy", "passengers": 1,
        "passenger_name": "Ann Lee"}


def _line(**changes: object) -> str:
    """A valid objective line with ``changes`` applied (a value of ``...`` drops the field)."""
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


GOOD_LINE = _line()

# (id, file content: str (written as UTF-8) or bytes, line the message names (None: the file), text after
# "path:line: ", value the message shows or None)
BAD_FILES = [
    ("text a number", _line(text=5), 1, "text: expected a string", "(got 5)"),
    ("text 2 MB", _line(text="x" * 2_000_000), 1, "text: longer than 4000 characters", None),
    ("passengers a word", GOOD_LINE + "\n" + _line(passengers="two"), 2, "passengers: expected an integer", "'two'"),
    ("passengers zero", _line(passengers=0), 1, "passengers: expected an integer from 1 to 9", "(got 0)"),
    ("passengers a hundred", _line(passengers=100), 1, "passengers: expected an integer from 1 to 9", "(got 100)"),
    ("passengers a bool", _line(passengers=True), 1, "passengers: ", "(got True)"),
    ("passengers a float", _line(passengers=2.0), 1, "passengers: ", "(got 2.0)"),
    ("passengers nested", _line(passengers=[[[[1]]]]), 1, "passengers: ", "[[[[1]]]]"),
    ("cabin a number", _line(cabin=5), 1, "cabin: expected one of economy, business, first", "(got 5)"),
    ("cabin unknown", _line(cabin="premium"), 1, "cabin: expected one of", "'premium'"),
    ("date a word", _line(date="x"), 1, "date: expected a date, YYYY-MM-DD", "(got 'x')"),
    ("date not on the calendar", _line(date="2026-02-30"), 1, "date: expected a real calendar date", "2026-02-30"),
    ("date a number", _line(date=20261210), 1, "date: expected a date", "20261210"),
    ("objective_id a list", _line(objective_id=["a", "b"]), 1, "objective_id: expected a non-empty string or an "
     "integer", "['a', 'b']"),
    ("objective_id empty", _line(objective_id=" "), 1, "objective_id: expected a non-empty string", None),
    ("objective_id a bool", _line(objective_id=False), 1, "objective_id: ", "(got False)"),
    ("origin a city", _line(origin="Boston"), 1, "origin: expected a 3-letter IATA code", "'Boston'"),
    ("destination missing", _line(destination=...), 1, "destination: missing", None),
    ("passenger name unbookable", _line(passenger_name="R2D2"), 1, "passenger_name: ", "'R2D2'"),
    ("kind unknown", _line(kind="easy"), 1, "kind: expected one of feasible, multi_passenger", "'easy'"),
    ("feasible a word", _line(feasible="yes"), 1, "feasible: expected true or false", "'yes'"),
    ("budget negative", _line(budget=-5), 1, "budget: expected a positive number or null", "(got -5)"),
    ("budget a string", _line(budget="100"), 1, "budget: ", "'100'"),
    ("flexible days negative", _line(flexible_days=-1), 1, "flexible_days: expected an integer from 0", "(got -1)"),
    ("unknown field", _line(bogus=1), 1, "'bogus': unknown objective field", None),
    ("nested too deeply", '{"objective_id": ' + "[" * 100_000, 1, "not valid JSON (nested too deeply)", None),
    ("not JSON", GOOD_LINE + "\n\n" + '{"origin": "BOS"', 3, "not valid JSON", None),
    ("a list line", GOOD_LINE + "\n" + json.dumps([GOOD]), 2, "expected a JSON object of objective fields, got list",
     None),
    ("a string line", json.dumps("BOS to LAX"), 1, "expected a JSON object of objective fields, got str", None),
    ("binary", bytes(range(256)) * 4, 1, "not a text file", None),
    ("not UTF-8", (GOOD_LINE + "\n" + _line(passenger_name="Zoe Muller").replace("Muller", "Müller")).encode(
        "latin-1"), 2, "not UTF-8 text (byte 0xfc)", None),
    ("empty", "\n  \n", None, "holds no objectives", None),
]


@pytest.mark.parametrize("content, line, problem, shown", [row[1:] for row in BAD_FILES], ids=[r[0] for r in BAD_FILES])
def test_bad_objectives_file_gives_one_line_naming_file_line_and_field(tmp_path, content, line, problem,
                                                                       shown) -> None:
    path = tmp_path / "objectives.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ObjectivesFileError) as raised:
        load_objectives_jsonl(path)
    message = str(raised.value)
    assert "\n" not in message and len(message) < 300, message
    where = f"{path}:{line}: " if line else f"{path}: "
    assert message.startswith(where + problem), message
    assert shown is None or shown in message, message
    assert isinstance(raised.value, ValueError)  # callers that catch ValueError still do


def test_missing_file_and_directory_are_named(tmp_path) -> None:
    for path, problem in ((tmp_path / "nope.jsonl", "no such file"), (tmp_path, "is a directory")):
        with pytest.raises(ObjectivesFileError, match="^" + str(path) + ": " + problem):
            load_objectives_jsonl(path)


def test_file_with_bom_free_text_and_generated_records_loads(tmp_path, template_db) -> None:
    generated = generate_objectives(template_db, 3, seed=0)
    free = {**GOOD, "objective_id": 7, "passengers": 2, "cabin": "business", "budget": 900, "flexible_days": 1,
            "kind": "budget", "text": "Two of you, Boston to LA in business\u2028on December 10; keep it under $900."}
    lines = [json.dumps(free), "", json.dumps({k: v for k, v in generated[0].items() if k != "text"}),
             *(json.dumps(record) for record in generated)]
    path = tmp_path / "mine.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    loaded = load_objectives_jsonl(path)
    assert len(loaded) == 5
    assert loaded[0] == Objective(**{**free, "objective_id": "7"})  # an integer id is kept as its string
    assert loaded[1] == Objective.from_dict(generated[0])  # text generated when absent
    assert loaded[2:] == [Objective.from_dict(record) for record in generated]


BAD_LINE = _line(passengers="two")


@pytest.mark.parametrize("key", ["environment.objectives_file", "evaluation.eval_objectives_file"])
def test_config_refuses_a_bad_objectives_file_with_one_line(tmp_path, template_db, capsys, key) -> None:
    from training.train_ppo import main

    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD_LINE + "\n" + BAD_LINE + "\n")
    out = tmp_path / "out"
    code = main(["--config", TINY, "--set", f"logging.output_dir={out}", "--set", f"environment.db_path={template_db}",
                 "--set", f"{key}={path}"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == f"config error: {key}: {path}:2: passengers: expected an integer from 1 to 9 (got 'two')"
    assert not out.exists()


@pytest.mark.parametrize("content", [_line(text=5), None], ids=["text a number", "a directory"])  # were tracebacks
def test_evaluate_refuses_a_bad_objectives_file_before_loading_a_model(tmp_path, template_db, content) -> None:
    path = tmp_path / "bad.jsonl"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content + "\n")
    result = subprocess.run([sys.executable, str(REPO / "training" / "evaluate.py"), "--model", "base", "--config",
                             TINY, "--episodes", "1", "--seeds", "1", "--objectives", str(path), "--out",
                             str(tmp_path / "out"), "--set", f"environment.db_path={template_db}",
                             "--set", f"model.model_cache_dir={tmp_path / 'models'}"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and str(path) in lines[0], lines
    assert not (tmp_path / "models").exists() and not (tmp_path / "out").exists()  # no model was built or loaded
