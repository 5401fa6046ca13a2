"""Plot a training run's metrics into ``OUTPUT_DIR/training_results.png``.

    python training/plot_metrics.py OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from training.ppo.trainer import MINIBATCH_METRICS

UPDATE_ACCEPTED = "update/accepted"  # the PPO update guard kept the epoch's update (1) or rolled it back (0)

PANELS = [
    ("Episode reward", [("env/reward_mean", "mean episode reward"), ("eval/reward_mean", "eval reward")], None),
    ("Episode outcomes", [("env/hallucination_rate", "hallucination rate"), ("env/success_rate", "success rate")],
     (0, 1)),
    ("PPO losses", [(name, name.removeprefix("ppo/loss/")) for name in MINIBATCH_METRICS
                    if name.startswith("ppo/loss/")], None),
    ("KL to reference", [("objective/kl", "KL (nats/sequence)"), ("objective/kl_coef", "KL coefficient")], None),
    ("Policy entropy", [("ppo/policy/entropy", "entropy (nats/token)")], None),
    ("Immediate reward terms", [], None),  # one line per env/reward/<term> the run logged (see reward_term_series)
]
REWARD_TERM_PREFIX = "env/reward/"


def reward_term_series(history: list[dict]) -> list[tuple[str, str]]:
    """(metric, label) for every immediate reward term the environment reported, in first-seen order."""
    names = dict.fromkeys(key for record in history for key in record if key.startswith(REWARD_TERM_PREFIX))
    return [(key, key.removeprefix(REWARD_TERM_PREFIX).replace("_", " ")) for key in names]


def plot_training_metrics(output_dir: str | Path) -> Path:
    """Write ``training_results.png`` from ``training_metrics.json``; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output_dir = Path(output_dir)
    history = json.loads((output_dir / "training_metrics.json").read_text())
    epochs = [record["epoch"] for record in history]
    figure, axes = plt.subplots(2, 4, figsize=(20, 8.5))
    axes = axes.ravel()
    for axis, (title, series, ylim) in zip(axes, PANELS, strict=False):
        series = series or reward_term_series(history)
        for key, label in series:
            points = [(e, r[key]) for e, r in zip(epochs, history, strict=True)
                      if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        if ylim:
            axis.set_ylim(*ylim)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    lengths = [n for r in history for n in r.get("episode_lengths", [])]
    if lengths:
        axes[6].hist(lengths, bins=range(1, max(lengths) + 2), color="tab:purple", alpha=0.8, align="left")
    axes[6].set_title("Episode length distribution")
    axes[6].set_xlabel("user turns per episode")
    axes[6].set_ylabel("episodes")
    accepted = [r.get(UPDATE_ACCEPTED, math.nan) for r in history]
    axes[7].bar(epochs, [1.0] * len(accepted), color=["tab:green" if a == 1 else "tab:red" for a in accepted])
    axes[7].set_yticks([])
    axes[7].set_title(f"Update guard: {sum(a == 1 for a in accepted)} kept (green), "
                      f"{sum(a == 0 for a in accepted)} rolled back (red)")
    axes[7].set_xlabel("epoch")
    axes[7].set_ylim(0, 1.1)
    figure.suptitle(f"PPO training of the auto-user ({output_dir.name})")
    figure.tight_layout()
    path = output_dir / "training_results.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", help="a training output directory (holds training_metrics.json)")
    args = parser.parse_args(argv)
    print(plot_training_metrics(args.output_dir))


if __name__ == "__main__":
    main()
