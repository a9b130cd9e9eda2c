"""The `hf-resnet101` command: training (`train`) and the things around it (demo, inspect, predict, evaluate, export,
card, push)."""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from tqdm.auto import tqdm

from ..config.hardware import PRECISIONS
from ..errors import TrainingInterrupted, UsageError


def exit_on_usage_error(main: Callable[..., object]) -> Callable[..., int]:
    """Turns a `UsageError` into its message on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        # With several training processes each meets the same error: the main one says it.
        say = main_process()
        try:
            main(*args, **kwargs)
        except UsageError as error:
            if say:  # tqdm.write clears any progress bar still on the line, so the message starts on a fresh one
                tqdm.write(f"error: {error}", file=sys.stderr)
            return 2
        except TrainingInterrupted as interrupted:
            if say:
                print(f"interrupted: {interrupted}", file=sys.stderr)
            return interrupted.exit_status
        except KeyboardInterrupt:
            if say:
                print("interrupted", file=sys.stderr)
            return 130
        return 0

    return wrapper


def main_process() -> bool:
    """This process is the only one, or the first of those a launcher started (`RANK` 0)."""
    return os.environ.get("RANK", "0") == "0"


def number_type(
    convert: Callable[[str], float], accepts: Callable[[float], bool], what: str
) -> Callable[[str], float]:
    """An argparse `type`: `convert`, then `accepts` or the command's usage with "must be WHAT, got VALUE"."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int = number_type(int, lambda value: value >= 1, "a positive integer")
non_negative_int = number_type(int, lambda value: value >= 0, "0 or a positive integer")
non_negative_float = number_type(float, lambda value: value >= 0, "0 or a positive number")
fraction = number_type(float, lambda value: 0 < value < 1, "a number between 0 and 1 (exclusive)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-resnet101", description=__doc__)
    # No abbreviated flags (`--top 3` for `--top_k 3`): a later option could make one ambiguous, or change its meaning.
    sub_parser = functools.partial(argparse.ArgumentParser, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=sub_parser)
    commands.add_parser(
        "train",
        add_help=False,  # its options are the training script's (`hf-resnet101 train --help` lists them)
        help="Train: `hf-resnet101 train [ACCELERATE LAUNCH OPTIONS --] TRAINING OPTIONS`, i.e. `accelerate launch "
        "recipes/finetune.py` returning the run's own exit status (2 bad input, 130 interrupted), no traceback.",
    )
    demo = commands.add_parser(
        "demo",
        help="Fine-tune on scikit-learn's hand-written digits (ships with scikit-learn; works offline).",
    )
    demo.add_argument(
        "--output_dir", default="demo_output", help="Where the demo writes its data and model (default: demo_output)."
    )
    demo.add_argument("--epochs", type=float, default=None, help="Training epochs (default: 2).")
    demo.add_argument("--seed", type=int, default=42, help="Random seed (default: 42).")
    demo.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="Training precision, as `train --precision`: auto is fp16 on a CUDA GPU, bf16 autocast on an x86 CPU "
        "with AVX-512 BF16 or AMX, fp32 elsewhere (default: auto).",
    )

    inspect = commands.add_parser(
        "inspect",
        help="Scan an image folder: counts, unusable files, duplicates, and the recommended settings for it.",
    )
    inspect.add_argument("data", help="Folder of class sub-folders, or a folder with train/ and validation/ in it.")
    inspect.add_argument(
        "--validation_dir", default=None, help="Validation folder (else split off or DATA/validation)."
    )
    inspect.add_argument("--train_val_split", type=fraction, default=0.15)
    inspect.add_argument("--seed", type=int, default=42)
    inspect.add_argument("--image_size", type=positive_int, default=224, help="Input size for the CPU time estimate.")
    inspect.add_argument("--dedupe", action="store_true", help="Show the effect of --dedupe.")
    inspect.add_argument("--strict", action="store_true", help="Fail on any unusable file, as training would.")
    inspect.add_argument("--output", default=None, help="Also write the full report as JSON to this file.")
    add_after_training_parsers(commands)
    add_hub_commands(commands)
    return parser


def add_hub_commands(commands) -> None:
    """`card` (render the model card again) and `push` (publish a finished output folder)."""
    card = commands.add_parser("card", help="Render README.md (the model card) and its figures again in OUT.")
    card.add_argument("output_dir", help="The output folder of a finished run.")
    card.add_argument("--hub_model_id", default=None, help="Repo id for the card's usage snippet (USER/NAME).")
    card.add_argument(
        "--license",
        default=None,
        help="Change the card's license (a Hub license id: apache-2.0, mit, cc-by-nc-4.0, other, ...); kept in "
        "card_inputs.json, so a later push carries it too.",
    )
    push = commands.add_parser(
        "push",
        help="Push a finished output folder to the Hub (token from HF_TOKEN or `hf auth login`).",
    )
    push.add_argument("output_dir", help="The output folder of a finished run.")
    push.add_argument(
        "--hub_model_id", "--repo_id", required=True, help="The repository to create or update: USER/NAME."
    )
    push.add_argument("--hub_private_repo", action="store_true", help="Create the repository as private.")
    push.add_argument(
        "--hub_strategy",
        default="end",
        help="Checkpoints to push too: none (end, every_save), the latest as last-checkpoint/ (checkpoint), or all "
        "(all_checkpoints).",
    )


# Each command's module, imported only when the command runs: `hf-resnet101 --help` needs none of the stack.
COMMAND_MODULES = {
    "demo": "demo",
    "inspect": "inspect",
    "predict": "predict",
    "evaluate": "evaluate",
    "export": "export",
    "card": "push",
    "push": "push",
}


@exit_on_usage_error
def run_command(argv: list[str] | None = None, whole_process: bool = False) -> None:
    """Runs one command; `whole_process`: this process was started for it (its start-up is the command's)."""
    args = parse_command_line(build_parser(), argv)
    args.whole_process = whole_process
    importlib.import_module(f".{COMMAND_MODULES[args.command]}", __package__).run_command(args)


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The command's options; an unknown flag is an error of the command's own parser (its usage, exit status 2)
    that names the closest real flag, as the training options do. Flags are spelt out in full there too."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        from ..config.parser import check_unknown_flags

        command = subcommand_parser(parser, args.command)
        try:
            check_unknown_flags(unknown, command._option_string_actions)
        except UsageError as error:
            command.error(str(error))
    return args


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[name]


MODEL_HELP = "A training run's output folder or a Hub model id."
RUN_MODEL_HELP = (
    "A training run's output folder, a Hub model id, or a folder written by `export` (run with ONNX Runtime on the "
    "CPU, fp32)."
)


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="The model's precision: auto is fp16 on a CUDA GPU (channels-last, the tensor cores' layout), bf16 on an "
        "x86 CPU with AVX-512 BF16 or AMX, fp32 elsewhere, as training's auto; an ONNX export runs in fp32 "
        "(default: auto).",
    )


def add_after_training_parsers(commands) -> None:
    predict = commands.add_parser("predict", help="Classify images with a trained model (top-k labels per image).")
    predict.add_argument("model", metavar="MODEL", help=RUN_MODEL_HELP)
    predict.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="Image files, folders (searched recursively) or .txt lists."
    )
    predict.add_argument("--top_k", type=positive_int, default=5, help="Labels per image (default: 5).")
    predict.add_argument("--output", help="Write the rows to this .csv or .jsonl file instead of printing them.")
    predict.add_argument("--batch_size", type=positive_int, default=8, help="Images per forward pass (default: 8).")
    add_precision_option(predict)

    evaluate = commands.add_parser(
        "evaluate", help="Measure a trained model on held-out labelled images (metrics, confusion matrix, mistakes)."
    )
    evaluate.add_argument("model", metavar="MODEL", help=RUN_MODEL_HELP)
    evaluate.add_argument("data", metavar="DATA", nargs="?", help="A folder with one sub-folder of images per class.")
    evaluate.add_argument("--dataset_name", help="A Hub (or local) dataset instead of DATA.")
    evaluate.add_argument("--dataset_config_name")
    evaluate.add_argument("--split", default="test", help="The dataset split to evaluate on (default: test).")
    evaluate.add_argument("--image_column_name", default="image")
    evaluate.add_argument("--label_column_name", default="label")
    evaluate.add_argument("--output_dir", default="evaluation", help="Where the results go (default: evaluation).")
    evaluate.add_argument("--batch_size", type=positive_int, default=8, help="Images per forward pass (default: 8).")
    evaluate.add_argument(
        "--ignore_unknown_classes",
        action="store_true",
        help="Leave out class folders the model was not trained on (reported) instead of stopping.",
    )
    evaluate.add_argument(
        "--show_mistakes", type=non_negative_int, default=10, help="Mistakes to print (all are written)."
    )
    add_precision_option(evaluate)

    export = commands.add_parser("export", help="Export a trained model to ONNX and check it against PyTorch.")
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument("out", metavar="OUT", help="The folder to write model.onnx and its settings to.")
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument(
        "--check_images",
        nargs="+",
        help="Images to compare ONNX Runtime with PyTorch on (default: the run's validation images from splits.csv).",
    )
    export.add_argument(
        "--atol", type=non_negative_float, default=None, help="Absolute tolerance on the logits (default 1e-4)."
    )
    export.add_argument(
        "--rtol", type=non_negative_float, default=None, help="Relative tolerance on the logits (default 1e-3)."
    )


def end_process(status: int) -> NoReturn:
    """Ends this process with `status`, its garbage collected first and the rest frozen.

    Python's exit otherwise runs the cyclic collector, more than once, over every object the libraries made (about
    half a million with torch, transformers and datasets loaded): measured on a 2-core AMD EPYC, 1.9 s from the
    end of a training run to the process's exit, 0.3 s frozen. Collecting here, while every module still exists,
    runs the finalizers of what is garbage; what is frozen is still freed as its references go. Call it only where
    the process ends: a frozen object in a cycle is never collected.
    """
    gc.collect()
    gc.freeze()
    sys.exit(status)


def main(argv: list[str] | None = None) -> NoReturn:
    """`hf-resnet101 ...`; with `argv` None, the process's own command line, which the process ends with."""
    own_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # argparse would take the training options for its own
        from .train import run_train

        try:
            status = run_train(argv[1:], verbose="--verbose" in argv)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
    else:
        status = run_command(argv, whole_process=own_command_line)
    if own_command_line:
        end_process(status)
    sys.exit(status)
