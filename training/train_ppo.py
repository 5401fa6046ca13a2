"""Train the auto-user with PPO.

    accelerate launch training/train_ppo.py --config configs/ppo_training_config.yaml \
        [--resume DIR|latest] [--debug] [--set section.key=value ...]

Plain ``python training/train_ppo.py ...`` works the same on one process. Exit codes: 0 done, or stopped by Ctrl-C
after saving a checkpoint; 2 a bad config, model or ``--resume`` checkpoint (one line naming the key or file, before
any model loads; LoRA targets as soon as the model is loaded); 3 the booking agent backend is down
(``ppo.max_failed_epochs`` epochs in a row without a usable episode; a checkpoint is saved); 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PPO training of the stateless auto-user")
    parser.add_argument("--config", default="configs/ppo_training_config.yaml", help="YAML config file")
    parser.add_argument("--resume", default=None, help="checkpoint directory, or 'latest' in the output dir")
    parser.add_argument("--debug", action="store_true", help="verbose logs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from training.config import ConfigError, load_config

    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    from agents.auto_user.models import ModelUnavailableError, is_alias, unavailable_message
    from training.checkpoint import CheckpointError
    from training.loop import AgentBackendDown, TrainingRun
    from training.ppo.policy import LoraTargetError

    try:
        run = TrainingRun(config, resume=args.resume, debug=args.debug)
    except CheckpointError as exc:
        print(f"resume error: {exc}", file=sys.stderr)
        return 2
    except LoraTargetError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except ModelUnavailableError as exc:
        print(f"model error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as exc:  # a hub id that cannot be fetched here
        if is_alias(config.model.base_model) or Path(config.model.base_model).exists():
            raise
        print(f"model error: {unavailable_message(config.model.base_model, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training started there is nothing to save
        print("interrupted before training started; nothing saved", file=sys.stderr)
        return 130
    try:
        run.run()
    except AgentBackendDown as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # the second Ctrl-C: abort without saving; checkpoints on disk stay valid
        print("aborted by a second Ctrl-C; resume from the last complete checkpoint with --resume latest",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
