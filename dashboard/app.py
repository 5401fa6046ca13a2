"""The dashboard's web app: pages, a JSON API over the run directories, and one live stream per run.

Read-only: nothing here writes into a run directory. ``{run_id}`` is an id from ``GET /api/runs`` (a root's label
and the path below it, e.g. ``results/fuzzing``); any other id, an encoded ``..`` or an absolute path included, is
a 404 (``dashboard.runs``).

Endpoints (every ``GET /api/...`` answers JSON):

- ``GET /``: the single page (runs, run, findings, conversation and evaluation views; ``static/``).
- ``GET /api/runs``: every run: id, state (running / finished / interrupted / failed), epochs, wall time, mode,
  the last epoch's headline metrics, findings per kind, the final comparison table.
- ``GET /api/runs/{run_id}``: that summary, plus the run's resolved ``training_config.yaml``.
- ``GET /api/runs/{run_id}/metrics``: the per-epoch records of ``training_metrics.json`` (each epoch's sample
  conversations replaced by ``sample_count``).
- ``GET /api/runs/{run_id}/conversations[?epoch=N]``: the epochs' sample conversations, parsed: objective, outcome,
  turns, hallucinations and the ``ref`` of each.
- ``GET /api/runs/{run_id}/conversations/{ref}``: one conversation turn by turn, each finding on the agent message
  that made the claim, with the claim and the database's truth (``dashboard.views``).
- ``GET /api/runs/{run_id}/findings[?kind=&persona=&model=&epoch=&source=]``: the findings passing the filters,
  grouped by kind and triggering user message, with the values each filter takes.
- ``GET /api/runs/{run_id}/evaluations``: the evaluation reports (``final_evaluation.json``, ``evaluation.json``)
  side by side, one column per model.
- ``WS /ws/runs/{run_id}``: JSON messages whenever the run's files change (checked every ``poll_seconds``):
  ``{"type": "metrics", "initial": bool, "rows": [...]}`` (every row first, then new or rewritten ones),
  ``{"type": "conversations", "conversations": [...]}`` (those rows' sample conversations),
  ``{"type": "findings", "total": N}`` and ``{"type": "state", "run": summary}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from dashboard import views
from dashboard.runs import (
    CONFIG_FILE,
    LOCK_NAME,
    METRICS_FILE,
    Run,
    RunIndex,
    config_of,
    findings_files,
    metrics_rows,
    summary,
)

STATIC = Path(__file__).parent / "static"


def _watched(run: Run) -> tuple:
    """Size and modification time of every file the live view shows: any change means something to send."""
    names = [METRICS_FILE, LOCK_NAME, CONFIG_FILE, *findings_files(run), "final_evaluation.json", "evaluation.json"]
    stamps = []
    for name in names:
        path = run.file(name)
        stat = path.stat() if path is not None else None
        stamps.append((name, stat.st_size, stat.st_mtime_ns) if stat else (name, None, None))
    return tuple(stamps)


def create_app(roots: list[Path], poll_seconds: float = 1.0) -> FastAPI:
    """The app serving the run directories under ``roots`` (each an existing directory)."""
    index = RunIndex(roots)
    app = FastAPI(title="auto-user dashboard", docs_url="/api/docs", redoc_url=None)
    app.state.index = index
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def run_or_404(run_id: str) -> Run:
        run = index.get(run_id)
        if run is None:
            raise HTTPException(status_code=404, detail=f"no run {run_id!r} under the dashboard's --runs paths")
        return run

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        return {"roots": {label: str(path) for label, path in index.roots.items()},
                "runs": [summary(run) for run in index.refresh().values()]}

    # The routes with a suffix come before the bare one: a run id is a path and may hold slashes.
    @app.get("/api/runs/{run_id:path}/metrics")
    def run_metrics(run_id: str) -> dict[str, Any]:
        return {"run": run_id, "rows": views.metrics(run_or_404(run_id))}

    @app.get("/api/runs/{run_id:path}/conversations/{ref}")
    def run_conversation(run_id: str, ref: str) -> dict[str, Any]:
        found = views.conversation(run_or_404(run_id), ref)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no conversation {ref!r} in run {run_id!r}")
        return found

    @app.get("/api/runs/{run_id:path}/conversations")
    def run_conversations(run_id: str, epoch: int | None = None) -> dict[str, Any]:
        return {"run": run_id, "conversations": views.conversations(run_or_404(run_id), epoch)}

    @app.get("/api/runs/{run_id:path}/findings")
    def run_findings(run_id: str, kind: str | None = None, persona: str | None = None, model: str | None = None,
                     epoch: str | None = None, source: str | None = Query(None)) -> dict[str, Any]:
        filters = {"kind": kind, "persona": persona, "model": model, "epoch": epoch, "source": source}
        return {"run": run_id, **views.findings(run_or_404(run_id), filters)}

    @app.get("/api/runs/{run_id:path}/evaluations")
    def run_evaluations(run_id: str) -> dict[str, Any]:
        return {"run": run_id, "evaluations": views.evaluations(run_or_404(run_id))}

    @app.get("/api/runs/{run_id:path}")
    def run_detail(run_id: str) -> dict[str, Any]:
        run = run_or_404(run_id)
        return {**summary(run), "config": config_of(run)}

    @app.websocket("/ws/runs/{run_id:path}")
    async def live(websocket: WebSocket, run_id: str) -> None:
        run = index.get(run_id)
        await websocket.accept()
        if run is None:
            await websocket.send_json({"type": "error", "detail": f"no run {run_id!r}"})
            await websocket.close(code=4404)
            return
        closed = asyncio.Event()

        async def read_until_closed() -> None:  # the client sends nothing; this notices when it goes
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            closed.set()

        reader = asyncio.create_task(read_until_closed())
        sent_rows: dict[int, str] = {}  # epoch -> the row as last sent, to send only new or rewritten rows
        sent_findings, seen = -1, None
        try:
            while not closed.is_set():
                stamps = await asyncio.to_thread(_watched, run)
                if stamps != seen:
                    seen = stamps
                    rows = await asyncio.to_thread(metrics_rows, run)
                    fresh = [row for row in rows if sent_rows.get(row["epoch"]) != json.dumps(row, default=str)]
                    if fresh or not sent_rows:
                        await websocket.send_json({"type": "metrics", "initial": not sent_rows,
                                                   "rows": [views.strip_samples(row) for row in fresh]})
                        conversations = [sample for row in fresh for sample in views.samples_of(row)]
                        if conversations:
                            await websocket.send_json({"type": "conversations", "conversations": conversations})
                        sent_rows.update({row["epoch"]: json.dumps(row, default=str) for row in fresh})
                    total = (await asyncio.to_thread(views.findings, run, {}))["total"]
                    if total != sent_findings:
                        await websocket.send_json({"type": "findings", "total": total})
                        sent_findings = total
                    await websocket.send_json({"type": "state", "run": await asyncio.to_thread(summary, run)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), timeout=poll_seconds)
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client went while a message was on its way
        finally:
            reader.cancel()

    return app
