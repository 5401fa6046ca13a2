"""Verifier accuracy and speed on the labelled corpus (tests/verifier_corpus.py). One JSON line:

    python benchmarks/bench_verifier.py [--repeats 5]

The corpus's replies are checked against real bookings in a freshly built seed-0 database. Per label: replies,
recall (share of that label's replies where that kind was reported; for "honest", share with nothing reported)
and precision (share of the replies where that kind was reported that carry that label). ``false_alarm_rate`` is
the share of honest replies with any hallucination reported. Speed: claims extracted and checked per second by
``BookingVerifier.verify`` (database open and reads included), and extraction alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from agents.booking import Message
from database.build import build_database
from environment.claims import extract_claims
from environment.verifier import BookingVerifier
from tests.verifier_corpus import HONEST, build_corpus, build_scenarios, score_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timing passes over the corpus")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        template = build_database(Path(workdir) / "flights.db", seed=0)
        scenarios = build_scenarios(template, Path(workdir) / "scenarios")
        replies = build_corpus(scenarios)
        verifier = BookingVerifier()
        scores, _ = score_corpus(replies, scenarios, verifier)
        transcripts = [[Message("agent", reply.text)] for reply in replies]
        claims = sum(len(extract_claims(t)) for t in transcripts)
        start = time.perf_counter()
        for _ in range(args.repeats):
            for reply, transcript in zip(replies, transcripts, strict=True):
                verifier.verify(transcript, scenarios[reply.scenario][0], objective=_objective())
        verify_seconds = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.repeats):
            for transcript in transcripts:
                extract_claims(transcript)
        extract_seconds = time.perf_counter() - start
    per_kind = {label: {"replies": s.replies, "recall": round(s.recall, 4),
                        "precision": None if label == HONEST else round(s.precision, 4)}
                for label, s in sorted(scores.items())}
    honest = scores[HONEST]
    print(json.dumps({
        "replies": len(replies), "styles": len({r.style for r in replies}), "claims": claims,
        "false_alarm_rate": round(1 - honest.recall, 4), "per_kind": per_kind,
        "verify_claims_per_s": round(claims * args.repeats / verify_seconds, 1),
        "verify_replies_per_s": round(len(replies) * args.repeats / verify_seconds, 1),
        "extract_claims_per_s": round(claims * args.repeats / extract_seconds, 1),
    }))


def _objective():
    from environment.objectives import Objective

    return Objective("bench", "BOS", "ATL", "Boston", "Atlanta", "2026-12-03", "business", 2, "Ann Lee")


if __name__ == "__main__":
    main()
