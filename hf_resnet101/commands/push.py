"""`hf-resnet101 card` (render a finished run's model card again) and `hf-resnet101 push` (publish a finished
output folder to the Hub)."""

from __future__ import annotations

import argparse
import dataclasses
import pathlib


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 card OUT` and `hf-resnet101 push OUT --hub_model_id USER/NAME`."""
    from ..errors import UsageError
    from ..modeling import license_id_problem
    from ..publish.card import CardInputs, write_model_card
    from ..publish.hub import check_repo_id, push_output_dir

    if args.command == "card":
        from ..outputs import CARD_INPUTS, CONFUSION_MATRIX, MODEL_CARD, TRAINING_CURVES
        from ..train.output_folder import read_manifest, record_rewritten

        if args.hub_model_id is not None:  # the card's snippet names it for `pipeline`
            check_repo_id(args.hub_model_id)
        license_id = getattr(args, "license", None)
        if license_id is not None and (problem := license_id_problem(license_id)):
            raise UsageError(problem)
        manifest = read_manifest(pathlib.Path(args.output_dir))
        if manifest is not None and not manifest.get("finished"):
            # Its card_inputs.json may be there (a run stopped while writing its card): a card would make the
            # folder look finished.
            raise UsageError(
                f"{args.output_dir} holds a run that has not finished (by its run_manifest.json): run the same "
                "training command again; it finishes the run and writes the card."
            )
        inputs = CardInputs.load(args.output_dir)
        rewritten = [MODEL_CARD, CONFUSION_MATRIX, TRAINING_CURVES]
        if license_id is not None and license_id != inputs.license:
            inputs = dataclasses.replace(inputs, license=license_id)
            inputs.save(args.output_dir)  # a push renders the card from these again
            rewritten.append(CARD_INPUTS)
        print(f"Wrote {write_model_card(args.output_dir, inputs, repo_id=args.hub_model_id)}")
        record_rewritten(pathlib.Path(args.output_dir), rewritten)
    else:
        url = push_output_dir(
            args.output_dir,
            args.hub_model_id,
            private=args.hub_private_repo or None,
            hub_strategy=args.hub_strategy,
            announce=False,
        )
        print(f"Pushed {args.output_dir} to {url}")
