"""The rows evaluation reports show, in a module without torch: ``training.evaluation`` writes the reports,
``training/seed_report.py`` and the dashboard read them and only need the names."""

from __future__ import annotations

__all__ = ["FINAL_TABLE", "FUZZING", "HEADLINE"]

#: The evaluation report's headline rows (evaluation.md), and the fuzzing rows added in adversarial mode.
HEADLINE = ["feasible_success_rate", "infeasible_ended_politely_rate", "multi_passenger_success_rate", "success_rate",
            "hallucination_rate", "hallucinations_per_episode", "reward_mean",
            "role_confusion_rate", "repetition_rate", "collapse_distinct_first_messages", "mean_turns",
            "distinct_1", "distinct_2", "pass^1", "pass^k"]
FUZZING = ["persona_fidelity", "kinds_exposed", "exposing_distinct_2", "distinct_exposing_first_messages",
           "turns_to_first_exposure", "attack_rate", "exposure_rate_when_attacking"]

#: (label, report key) of the end-of-run comparison table a training run prints.
FINAL_TABLE = [("success (feasible)", "feasible_success_rate"), ("multi-passenger", "multi_passenger_success_rate"),
               ("infeasible ended politely", "infeasible_ended_politely_rate"), ("reward", "reward_mean"),
               ("role confusion", "role_confusion_rate"), ("hallucinations / episode", "hallucinations_per_episode"),
               ("repetition", "repetition_rate"), ("distinct first messages", "collapse_distinct_first_messages"),
               ("turns", "mean_turns")]
