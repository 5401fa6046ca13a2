"""Serve the dashboard over the run directories under the given paths.

    python -m dashboard --runs ppo_training_output results/ [--host 127.0.0.1] [--port 8765]

Binds to the loopback interface unless ``--host`` says otherwise. A ``--runs`` path that is not a directory exits
with code 2 and one line naming it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, metavar="PATH",
                        help="directories holding run directories (searched a few levels deep), or runs themselves")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often the live view checks the files")
    args = parser.parse_args(argv)
    for path in args.runs:
        if not Path(path).is_dir():
            print(f"error: --runs {path}: no such directory", file=sys.stderr)
            return 2
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port}: must be 1-65535", file=sys.stderr)
        return 2
    if args.poll_seconds <= 0:
        print(f"error: --poll-seconds {args.poll_seconds}: must be > 0", file=sys.stderr)
        return 2
    import uvicorn

    from dashboard.app import create_app

    app = create_app([Path(p) for p in args.runs], poll_seconds=args.poll_seconds)
    print(f"dashboard: http://{args.host}:{args.port}/ ({len(app.state.index.runs)} runs under "
          f"{', '.join(args.runs)})", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except OSError as exc:  # the port is taken
        print(f"error: --port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
