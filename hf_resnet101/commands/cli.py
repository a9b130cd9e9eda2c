"""The `hf-resnet101` command: training (`train`) and the things around it (demo, inspect, predict, evaluate, export,
card, push)."""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys
from collections.abc import Callable

from tqdm.auto import tqdm

from ..errors import UsageError
from ..train.monitors import TrainingInterrupted


def exit_on_usage_error(main: Callable[..., object]) -> Callable[..., int]:
    """Turns a `UsageError` into its message on stderr and exit status 2, instead of a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            main(*args, **kwargs)
        except UsageError as error:
            # tqdm.write clears any progress bar still on the line, so the message starts on a fresh one.
            tqdm.write(f"error: {error}", file=sys.stderr)
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

    inspect = commands.add_parser(
        "inspect",
        help="Scan an image folder: counts, unusable files, duplicates, and the recommended settings for it.",
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
    add_after_training_parsers(commands)
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
    from ..publish.card import card_text_for_repo, write_model_card
    from ..publish.hub import push_output_dir

    if args.command == "card":
        from ..outputs import CONFUSION_MATRIX, MODEL_CARD, TRAINING_CURVES
        from ..train.output_folder import record_rewritten

        print(f"Wrote {write_model_card(args.output_dir, repo_id=args.hub_model_id)}")
        record_rewritten(pathlib.Path(args.output_dir), [MODEL_CARD, CONFUSION_MATRIX, TRAINING_CURVES])
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

        if args.epochs is not None and args.epochs <= 0:
            raise UsageError(f"--epochs must be positive, got {args.epochs:g}.")
        print_demo_report(run_demo(args.output_dir, epochs=args.epochs, seed=args.seed))
    elif args.command in ("card", "push"):
        run_hub_command(args)
    elif args.command == "inspect":
        run_inspect(args)
    elif args.command in AFTER_TRAINING_COMMANDS:
        AFTER_TRAINING_COMMANDS[args.command](args)


def run_inspect(args: argparse.Namespace) -> None:
    import json

    from .inspect import inspect_folder

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


# --- After training: predict, evaluate, export --------------------------------------------------------------------

MODEL_HELP = "A training run's output folder or a Hub model id."


def add_after_training_parsers(commands) -> None:
    predict = commands.add_parser("predict", help="Classify images with a trained model (top-k labels per image).")
    predict.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    predict.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="Image files, folders (searched recursively) or .txt lists."
    )
    predict.add_argument("--top_k", type=int, default=5, help="Labels per image (default: 5).")
    predict.add_argument("--output", help="Write the rows to this .csv or .jsonl file instead of printing them.")
    predict.add_argument("--batch_size", type=int, default=8, help="Images per forward pass (default: 8).")

    evaluate = commands.add_parser(
        "evaluate", help="Measure a trained model on held-out labelled images (metrics, confusion matrix, mistakes)."
    )
    evaluate.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    evaluate.add_argument("data", metavar="DATA", nargs="?", help="A folder with one sub-folder of images per class.")
    evaluate.add_argument("--dataset_name", help="A Hub (or local) dataset instead of DATA.")
    evaluate.add_argument("--dataset_config_name")
    evaluate.add_argument("--split", default="test", help="The dataset split to evaluate on (default: test).")
    evaluate.add_argument("--image_column_name", default="image")
    evaluate.add_argument("--label_column_name", default="label")
    evaluate.add_argument("--output_dir", default="evaluation", help="Where the results go (default: evaluation).")
    evaluate.add_argument("--batch_size", type=int, default=8)
    evaluate.add_argument(
        "--ignore_unknown_classes",
        action="store_true",
        help="Leave out class folders the model was not trained on (reported) instead of stopping.",
    )
    evaluate.add_argument("--show_mistakes", type=int, default=10, help="Mistakes to print (all are written).")

    export = commands.add_parser("export", help="Export a trained model to ONNX and check it against PyTorch.")
    export.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    export.add_argument("out", metavar="OUT", help="The folder to write model.onnx and its settings to.")
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument(
        "--check_images",
        nargs="+",
        help="Images to compare ONNX Runtime with PyTorch on (default: the run's validation images from splits.csv).",
    )
    export.add_argument("--atol", type=float, default=None, help="Absolute tolerance on the logits (default 1e-4).")
    export.add_argument("--rtol", type=float, default=None, help="Relative tolerance on the logits (default 1e-3).")


def progress_bar(total: int, what: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="image", desc=what)


def run_predict(args: argparse.Namespace) -> None:
    from ..inference import load_classifier
    from .predict import check_output_path, collect_image_paths, columns_for, predict_images, write_predictions
    from .tables import format_table

    check_output_path(args.output)
    paths = collect_image_paths(args.inputs)
    classifier = load_classifier(args.model)
    with progress_bar(len(paths), "predict") as bar:
        results = predict_images(
            classifier, paths, top_k=args.top_k, batch_size=args.batch_size, on_progress=bar.update
        )
    failed = sum(result.error is not None for result in results)
    if args.output:
        written = write_predictions(results, args.output, columns_for(classifier, args.top_k))
        print(f"{len(results)} images ({failed} unreadable) -> {written}")
        return
    rows = [
        [r.source, ", ".join(f"{s['label']} {s['score']:.3f}" for s in r.scores or []), r.error or ""] for r in results
    ]
    print(format_table(["path", f"top {args.top_k}", "error"], rows))
    if failed:
        print(f"{failed} of {len(results)} images could not be read (see the error column).", file=sys.stderr)


def load_evaluation_data(args: argparse.Namespace, label_names: list[str]):
    from .evaluate import labelled_folder, labelled_hub_split

    if args.data is not None:
        return labelled_folder(args.data, label_names, args.ignore_unknown_classes)
    return labelled_hub_split(
        args.dataset_name,
        args.split,
        label_names,
        config_name=args.dataset_config_name,
        image_column=args.image_column_name,
        label_column=args.label_column_name,
        ignore_unknown=args.ignore_unknown_classes,
    )


def run_evaluate(args: argparse.Namespace) -> None:
    from ..inference import load_classifier
    from .evaluate import evaluate_model, model_label_names, write_evaluation
    from .tables import format_table

    if (args.data is None) == (args.dataset_name is None):
        raise UsageError("Give either DATA (a folder of class sub-folders) or --dataset_name, not both or neither.")
    classifier = load_classifier(args.model)
    data = load_evaluation_data(args, model_label_names(classifier))
    with progress_bar(len(data.names), "evaluate") as bar:
        evaluation = evaluate_model(classifier, data, args.batch_size, on_progress=bar.update)
    files = write_evaluation(evaluation, args.output_dir, args.model, data.description)
    print(f"{args.model} on {data.description}: {evaluation.num_images} images")
    print(format_table(["metric", "value"], list(evaluation.metrics.items())))
    print()
    columns = ["class", "precision", "recall", "f1", "support"]
    print(format_table(columns, [[row[c] for c in columns] for row in evaluation.per_class]))
    if evaluation.mistakes:
        shown = evaluation.mistakes[: args.show_mistakes]
        print(f"\nMost confident mistakes ({len(shown)} of {len(evaluation.mistakes)}):")
        columns = ["path", "true", "predicted", "score"]
        print(format_table(columns, [[row[c] for c in columns] for row in shown]))
    for name, count in evaluation.excluded_classes.items():
        print(f"left out: class {name!r} ({count} images), unknown to the model")
    if evaluation.unreadable:
        print(f"left out: {len(evaluation.unreadable)} unreadable images (listed in {files['metrics']})")
    print("\nwritten: " + ", ".join(str(path) for path in files.values()))


def run_export(args: argparse.Namespace) -> None:
    from .export import DEFAULT_ATOL, DEFAULT_RTOL, export_model

    atol = DEFAULT_ATOL if args.atol is None else args.atol
    rtol = DEFAULT_RTOL if args.rtol is None else args.rtol
    path, check = export_model(
        args.model, args.out, export_format=args.format, check_images=args.check_images, atol=atol, rtol=rtol
    )
    print(
        f"{path}: ONNX Runtime matches PyTorch on {check.images} {check.image_source} "
        f"(max |logit difference| {check.max_abs_diff:.2g}, tolerance atol={atol:g} + rtol={rtol:g}·|logit|, "
        f"top-1 agreement {check.top1_agreement:.0%})."
    )


AFTER_TRAINING_COMMANDS = {"predict": run_predict, "evaluate": run_evaluate, "export": run_export}

# --- end of after training ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # argparse would take the training options for its own
        from .train import run_train

        sys.exit(run_train(argv[1:], verbose="--verbose" in argv))
    sys.exit(run_command(argv))
