"""Train the auto-user with PPO.

    accelerate launch training/train_ppo.py --config configs/ppo_training_config.yaml \
        [--resume DIR|latest | --overwrite] [--debug] [--set section.key=value ...]

Plain ``python training/train_ppo.py ...`` works the same on one process. A run owns ``logging.output_dir`` while it
lives (a second run into it refuses), and a fresh run refuses a directory holding an earlier run's checkpoints or
metrics unless it resumes (``--resume``) or overwrites (``--overwrite``).

Exit codes: 0 done, or stopped by Ctrl-C after saving a checkpoint; 2 a bad config, model, ``--resume``
checkpoint or output directory (one line naming the key or file, before any model loads; LoRA targets as soon as
the model is loaded); 3 the booking agent backend is down (``ppo.max_failed_epochs`` epochs in a row without a
usable episode; a checkpoint is saved); 4 the disk is full or not writable (one line; the checkpoints already on
disk stay valid); 130 a second Ctrl-C; 143 stopped by SIGTERM (scheduler, ``docker stop``) after saving a
checkpoint: the run is not finished, continue it with ``--resume latest``.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from pathlib import Path

# Errors of the disk rather than of the run: reported in one line (exit 4) instead of a traceback.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PPO training of the stateless auto-user")
    parser.add_argument("--config", default="configs/ppo_training_config.yaml", help="YAML config file")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", default=None, help="checkpoint directory, or 'latest' in the output dir")
    start.add_argument("--overwrite", action="store_true",
                       help="start afresh in an output dir that holds an earlier run's outputs, deleting its "
                            "checkpoints, final_model, metrics, findings and reports (and TensorBoard events when "
                            "logging.tensorboard_dir is inside it); without it such a directory is refused")
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
    from agents.auto_user.models import (
        ModelUnavailableError,
        is_alias,
        silence_known_library_warnings,
        unavailable_message,
    )

    silence_known_library_warnings()
    from training.checkpoint import CheckpointError
    from training.loop import AgentBackendDown, TrainingRun
    from training.output_dir import OutputDirError
    from training.ppo.policy import LoraTargetError

    try:
        run = TrainingRun(config, resume=args.resume, debug=args.debug, overwrite=args.overwrite)
    except (ConfigError, LoraTargetError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except OutputDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CheckpointError as exc:
        print(f"resume error: {exc}", file=sys.stderr)
        return 2
    except ModelUnavailableError as exc:
        print(f"model error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as exc:  # a hub id that cannot be fetched here, or a full disk
        if exc.errno in DISK_ERRNOS:
            print(f"error: {disk_error(exc)}", file=sys.stderr)
            return 4
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
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        print(f"error: {disk_error(exc)}; the checkpoints already saved stay valid: free space and continue with "
              f"--resume latest", file=sys.stderr)
        return 4
    except KeyboardInterrupt:  # the second Ctrl-C: abort without saving; checkpoints on disk stay valid
        print("aborted by a second Ctrl-C; resume from the last complete checkpoint with --resume latest",
              file=sys.stderr)
        return 130
    if run.stop_signal == signal.SIGTERM:
        print("stopped by SIGTERM after saving a checkpoint; continue with --resume latest", file=sys.stderr)
        return 128 + signal.SIGTERM
    return 0


def disk_error(exc: OSError) -> str:
    """``cannot write FILE: No space left on device`` from an OSError, in one line."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {exc.strerror or exc}"


if __name__ == "__main__":
    sys.exit(main())
