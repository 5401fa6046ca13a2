"""The dashboard in a real headless browser (Debian's ``chromium``): each page loads against a served tiny run and
the committed ``results/fuzzing``, its JavaScript draws the curves and the findings, and a screenshot of each is
saved. Skipped, with the reason, when no chromium is installed (``run_tests.sh`` says so before the tests run)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found: the dashboard's browser test needs "
                                                          "Debian's chromium (apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tiny_two_epoch_run: Path, tmp_path: Path):
    """``python -m dashboard`` on a free loopback port over a copy of the tiny run (``runs/tiny``) and the committed
    results; yields its base URL."""
    root = tmp_path / "runs"
    shutil.copytree(tiny_two_epoch_run, root / "tiny", ignore=shutil.ignore_patterns("checkpoint-*", "tb"))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dashboard", "--runs", str(root), str(REPO / "results"),
                                "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/runs", timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def render(url: str, screenshot: Path) -> str:
    """The page's DOM after its scripts drew the view (and a 1280x900 screenshot of it). On a loaded machine the
    browser's time budget can end before the view is drawn: then once more, before failing."""
    for _ in range(2):
        result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                 "--virtual-time-budget=8000", "--window-size=1280,900", f"--screenshot={screenshot}",
                                 "--dump-dom", url], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        if 'data-rendered="' in result.stdout:
            return result.stdout
    raise AssertionError(f"{url}: the view was not drawn: {result.stdout[-1500:]}")


def test_pages_render_curves_and_findings_in_chromium(server: str, tmp_path: Path) -> None:
    pages = {
        "runs": "#/",
        "live_run": "#/run?id=runs/tiny",
        "fuzzing_run": "#/run?id=results/fuzzing",
        "findings": "#/findings?id=results/fuzzing&kind=phantom_confirmation",
        "conversation": "#/conversation?id=results/fuzzing&ref=finding-findings-0",
        "evaluations": "#/evaluations?id=results/fuzzing",
        "sample": "#/conversation?id=runs/tiny&ref=sample-2-0",
    }
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ThreadPoolExecutor(2) as pool:
        doms = dict(zip(pages, pool.map(lambda item: render(f"{server}/{item[1]}", shots / f"{item[0]}.png"),
                                        pages.items()), strict=True))
    for name, dom in doms.items():
        assert 'class="claim">error:' not in dom, (name, re.findall(r'class="claim">error:[^<]*', dom))
    assert 'href="#/run?id=runs%2Ftiny"' in doms["runs"] and "phantom_confirmation" in doms["runs"]
    for name in ("live_run", "fuzzing_run"):  # curves: one SVG path per metric, each a line through the epochs
        paths = re.findall(r'<path class="series" data-metric="([^"]+)" d="(M[^"]*)"', doms[name])
        metrics = {metric for metric, _ in paths}
        assert {"env/success_rate", "env/reward_mean", "objective/kl", "ppo/policy/entropy", "update/accepted",
                "time/rollout"} <= metrics, name
        assert any(metric.startswith("env/reward/") for metric in metrics)
        assert all(d.count("L") >= 1 for _, d in paths), name
    assert doms["findings"].count('class="finding-row"') == 17
    assert "no booking row with confirmation code JZNE56" in doms["findings"]
    assert 'ref=finding-findings-0"' in doms["findings"]
    conversation = doms["conversation"]
    assert re.search(r'class="turn agent hallucinated\s+focus" id="turn-2"', conversation)
    assert "a booking with confirmation code JZNE56" in conversation
    assert "no booking row with confirmation code JZNE56" in conversation
    assert "runs/cooperative_cpu_v4/final_model" in doms["evaluations"] and "scripted" in doms["evaluations"]
    # A sample conversation of the tiny run: each user message shows its reward terms under it.
    users = doms["sample"].count('class="turn user')
    assert users >= 1 and doms["sample"].count('class="reward-terms"') == users
    for name in pages:
        assert (shots / f"{name}.png").stat().st_size > 10_000, name
