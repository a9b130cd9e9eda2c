"""The `hf-resnet101` command: the things around training."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from .errors import UsageError
from .monitors import TrainingInterrupted


def exit_on_usage_error(main: Callable[..., object]) -> Callable[..., int]:
    """Turns a `UsageError` into its message on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            main(*args, **kwargs)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except TrainingInterrupted as interrupted:
            print(f"interrupted: {interrupted}", file=sys.stderr)
            return 130
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

    inspect = commands.add_parser(
        "inspect",
        help="Scan an image folder: counts, unusable files, duplicates, and the product page's advice for it.",
    )
    inspect.add_argument("data", help="Folder of class sub-folders, or a folder with train/ and validation/ in it.")
    inspect.add_argument(
        "--validation_dir", default=None, help="Validation folder (else split off or DATA/validation)."
    )
    inspect.add_argument("--train_val_split", type=float, default=0.15)
    inspect.add_argument("--seed", type=int, default=42)
    inspect.add_argument("--image_size", type=int, default=224, help="Input size for the CPU time estimate.")
    inspect.add_argument("--dedupe", action="store_true", help="Show the effect of --dedupe.")
    inspect.add_argument("--strict", action="store_true", help="Fail on any unusable file, as training would.")
    inspect.add_argument("--output", default=None, help="Also write the full report as JSON to this file.")
    add_hub_commands(commands)
    return parser


def add_hub_commands(commands) -> None:
    """`card` (render the model card again) and `push` (publish a finished output folder)."""
    card = commands.add_parser("card", help="Render README.md (the model card) and its figures again in OUT.")
    card.add_argument("output_dir", help="The output folder of a finished run.")
    card.add_argument("--hub_model_id", default=None, help="Repo id for the card's usage snippet (USER/NAME).")
    push = commands.add_parser(
        "push",
        help="Push a finished output folder to the Hub (token from HF_TOKEN or `hf auth login`).",
    )
    push.add_argument("output_dir", help="The output folder of a finished run.")
    push.add_argument("--hub_model_id", required=True, help="The repository to create or update: USER/NAME.")
    push.add_argument("--hub_private_repo", action="store_true", help="Create the repository as private.")
    push.add_argument(
        "--hub_strategy",
        default="end",
        help="Checkpoints to push too: none (end, every_save), the latest as last-checkpoint/ (checkpoint), or all "
        "(all_checkpoints).",
    )


def run_hub_command(args: argparse.Namespace) -> None:
    from .hub import push_output_dir
    from .model_card import card_text_for_repo, write_model_card

    if args.command == "card":
        print(f"Wrote {write_model_card(args.output_dir, repo_id=args.hub_model_id)}")
    else:
        url = push_output_dir(
            args.output_dir,
            args.hub_model_id,
            private=args.hub_private_repo or None,
            hub_strategy=args.hub_strategy,
            card_text=card_text_for_repo(args.output_dir, args.hub_model_id),
        )
        print(f"Pushed {args.output_dir} to {url}")


@exit_on_usage_error
def run_command(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import print_demo_report, run_demo

        print_demo_report(run_demo(args.output_dir, epochs=args.epochs, seed=args.seed))
    elif args.command in ("card", "push"):
        run_hub_command(args)
    elif args.command == "inspect":
        run_inspect(args)


def run_inspect(args: argparse.Namespace) -> None:
    import json

    from .inspection import inspect_folder

    result = inspect_folder(
        args.data,
        args.validation_dir,
        args.train_val_split,
        args.seed,
        dedupe=args.dedupe,
        strict=args.strict,
        image_size=args.image_size,
    )
    print("\n".join(result.lines))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result.report.to_dict(), f, indent=2, ensure_ascii=False)
        print(f"Full report: {args.output}")


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_command(argv))
