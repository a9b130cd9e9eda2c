"""Publishing a finished output folder to the Hub."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Checkpoints and trainer state stay local; the model, processor, card, metrics and split lists are published.
PUSH_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "runs/**", "training_args.bin", "*.pt", "*.pth"]


def push_output_dir(
    output_dir: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None, revision=None
) -> str:
    """Creates the repo if needed and uploads the output folder in one commit; returns the commit URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        commit_message="Fine-tuned with hf_resnet101",
        ignore_patterns=PUSH_IGNORE_PATTERNS,
        revision=revision,
    )
    logger.warning(f"Pushed {output_dir} to {commit.commit_url}")
    return commit.commit_url
