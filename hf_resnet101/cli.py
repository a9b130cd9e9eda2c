"""The `hf-resnet101` command: the things around training (the demo, for now)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from .errors import UsageError


def exit_on_usage_error(main: Callable[..., object]) -> Callable[..., int]:
    """Turns a `UsageError` into its message on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            main(*args, **kwargs)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return 0

    return wrapper


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-resnet101", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="Fine-tune on scikit-learn's hand-written digits (ships with scikit-learn; works offline).",
    )
    demo.add_argument("--output_dir", default="demo_output", help="Where the demo writes its data and model.")
    demo.add_argument("--epochs", type=float, default=None, help="Training epochs (default: 3 offline, 2 online).")
    demo.add_argument("--seed", type=int, default=42)
    return parser


@exit_on_usage_error
def run_command(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import print_demo_report, run_demo

        print_demo_report(run_demo(args.output_dir, epochs=args.epochs, seed=args.seed))


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(argv))
