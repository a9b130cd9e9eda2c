"""Publishing a finished output folder to the Hub: checks before training, retries, a way to push again."""

from __future__ import annotations

import fnmatch
import shlex
import time
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.utils import logging

from ..errors import PushError, UsageError
from ..modeling import is_onnx_export
from ..outputs import CHECKPOINT_NAME, LOCAL_ONLY, MODEL_CARD, MODEL_CONFIG, checkpoint_folders

logger = logging.get_logger(__name__)

HUB_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")
# Never published: the pickled training arguments (unsafe to load, and they held the token in older runs),
# TensorBoard logs, checkpoints unless the hub strategy asks for them, and the local folder's bookkeeping (the
# manifest of file sizes and times; the lock is a dot file).
# run_manifest.json and run_identity.json are for resuming on this machine: they name local paths (the model
# folder, the data), which are never published.
IGNORED_PATTERNS = ("runs/*", ".*", "*/.*")
LAST_CHECKPOINT_DIR = "last-checkpoint"
# Waits before each new attempt (seconds): five attempts in all, about 1.5 minutes, to ride out a Hub hiccup.
RETRY_WAITS_S = (2.0, 8.0, 20.0, 60.0)
RETRY_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
COMMIT_MESSAGE = "Fine-tuned with hf_resnet101"


def resolve_token(token: str | None = None) -> str | None:
    """The token to push with: the one given, else `HF_TOKEN`, else the local credential store (`hf auth login`)."""
    return token or get_token()


def check_push_settings(repo_id: str | None, token: str | None = None, before_training: bool = True) -> str:
    """Checks that a push can work (before any training, when `before_training`); returns the token to push with.

    Raises:
        UsageError: when the repo id is missing or invalid, or no token is available.
    """
    pushing = "--push_to_hub" if before_training else "Pushing"
    if not repo_id:
        raise UsageError(f"{pushing} needs --hub_model_id USER/NAME: the repository to create or update.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UsageError(
            f"--hub_model_id {repo_id!r} is not a valid repository name: {error} "
            "Use USER/NAME (letters, digits, '-', '_' and '.'; no '--' or '..'), e.g. me/resnet101-birds."
        ) from error
    resolved = resolve_token(token)
    if not resolved:
        raise UsageError(
            f"{pushing} needs a Hugging Face token with write access, and none was found. Log in once with "
            "`hf auth login` or set the HF_TOKEN environment variable, then run again"
            + (" (nothing was trained yet)." if before_training else ".")
        )
    return resolved


TOKENS_PAGE = "https://huggingface.co/settings/tokens"
READ_ONLY_ORG_ROLES = frozenset({"read"})


def fine_grained_can_write(access_token: dict, repo_id: str, namespace: str) -> bool:
    """True when a fine-grained token's scopes grant `repo.write` on the repo itself or on its namespace."""
    scopes = (access_token.get("fineGrained") or {}).get("scoped") or []
    return any(
        "repo.write" in scope.get("permissions", []) and scope.get("entity", {}).get("name") in (namespace, repo_id)
        for scope in scopes
    )


def token_write_problem(whoami: dict, repo_id: str) -> str | None:
    """Why the token that `whoami` (the Hub's `/api/whoami-v2` answer) describes cannot push to `repo_id`; None
    when it can.

    The answer names the user, their organisations with their role in each, and the token's role: `read`,
    `write`, or `fineGrained` with per-namespace permissions.
    """
    user = whoami.get("name")
    namespace = repo_id.split("/")[0] if "/" in repo_id else user
    orgs = {org.get("name"): org for org in whoami.get("orgs") or []}
    if namespace != user and namespace not in orgs:
        member_of = ", ".join(sorted(orgs)) or "none"
        return (
            f"the token belongs to {user!r}, who is not a member of {namespace!r} (organisations: {member_of}). "
            f"Use --hub_model_id {user}/{repo_id.split('/')[-1]}, or a token of a member of {namespace!r}"
        )
    if namespace in orgs and orgs[namespace].get("roleInOrg") in READ_ONLY_ORG_ROLES:
        return f"{user!r} has the read role in {namespace!r}: ask an admin of {namespace!r} for write access"
    access_token = (whoami.get("auth") or {}).get("accessToken") or {}
    role = access_token.get("role")
    if role == "read":
        return f"the token {access_token.get('displayName', '')!r} is read-only: create a token with the write role"
    if role == "fineGrained" and not fine_grained_can_write(access_token, repo_id, namespace):
        return (
            f"the fine-grained token {access_token.get('displayName', '')!r} has no write permission on "
            f"{namespace!r}: give it 'Write access to contents/settings of all repos' under {namespace}, or create "
            "a token with the write role"
        )
    return None


def check_write_access(repo_id: str, token: str) -> None:
    """Asks the Hub, in one `whoami` request, whether `token` is valid and may write to `repo_id`.

    Run before any data is loaded, so a wrong token is found in seconds rather than after training. When the Hub
    cannot be reached the check is skipped with a warning (the push itself retries and, failing, keeps the folder).

    Raises:
        UsageError: for a token the Hub rejects, or one that cannot write to the repo, saying what to do.
    """
    try:
        whoami = HfApi(token=token).whoami(token=token)
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401:
            raise UsageError(
                f"The Hub rejected the token (401 Unauthorized): it is wrong, expired or revoked. Create a token with "
                f"write access at {TOKENS_PAGE}, then `hf auth login` or set HF_TOKEN, and run again (nothing was "
                "trained yet)."
            ) from error
        if not is_transient(error):
            raise
        logger.warning(f"Could not check the Hub token before training ({status}); the push will tell.")
        return
    except Exception as error:
        if not is_transient(error):
            raise
        logger.warning(f"Could not reach the Hub to check the token ({type(error).__name__}); the push will tell.")
        return
    problem = token_write_problem(whoami, repo_id)
    if problem:
        raise UsageError(
            f"--push_to_hub to {repo_id} cannot work: {problem} ({TOKENS_PAGE}). Nothing was trained yet."
        )


def is_transient(error: BaseException) -> bool:
    """True for failures worth another attempt: connection problems, time-outs, 5xx, 408 and 429 answers."""
    if isinstance(error, HfHubHTTPError):
        response = getattr(error, "response", None)
        return response is not None and response.status_code in RETRY_STATUS_CODES
    # httpx's TransportError covers refused connections, time-outs and dropped connections (`httpx` for
    # huggingface_hub 1.x, `httpx2` for 2.x).
    transport = any(
        cls.__name__ == "TransportError" and cls.__module__.startswith("httpx") for cls in type(error).__mro__
    )
    return transport or isinstance(error, (ConnectionError, TimeoutError))


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def files_to_push(output_dir: str | Path, hub_strategy: str = "end") -> list[tuple[Path, str]]:
    """The (local file, path in the repo) pairs a push uploads.

    The final model, processor, card, plots, metrics and split lists always; checkpoints by `hub_strategy`:
    `end` and `every_save` push none (this package pushes once, after training), `checkpoint` pushes the latest
    one as `last-checkpoint/` (what `--resume_from_checkpoint` needs), `all_checkpoints` pushes every one.

    Raises:
        UsageError: for an unknown strategy.
    """
    if hub_strategy not in HUB_STRATEGIES:
        raise UsageError(f"--hub_strategy must be one of {', '.join(HUB_STRATEGIES)}, got {hub_strategy!r}.")
    output_dir = Path(output_dir)
    checkpoints = checkpoint_folders(output_dir)
    pushed_checkpoints = {
        "checkpoint": {c: LAST_CHECKPOINT_DIR for c in checkpoints[-1:]},
        "all_checkpoints": {c: c.name for c in checkpoints},
    }.get(hub_strategy, {})
    pairs = []
    for path in sorted(p for p in output_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(output_dir).as_posix()
        if path.name in LOCAL_ONLY or _matches(relative, IGNORED_PATTERNS):
            continue
        top = output_dir / relative.split("/")[0]
        if CHECKPOINT_NAME.match(top.name) and top.is_dir():
            if top not in pushed_checkpoints:
                continue
            relative = f"{pushed_checkpoints[top]}/{path.relative_to(top).as_posix()}"
        pairs.append((path, relative))
    return pairs


def push_again_command(output_dir: str | Path, repo_id: str, private: bool | None, hub_strategy: str) -> str:
    """The exact `hf-resnet101 push` command that retries a failed push."""
    words = ["hf-resnet101", "push", str(output_dir), "--hub_model_id", repo_id]
    if private:
        words.append("--hub_private_repo")
    if hub_strategy in ("checkpoint", "all_checkpoints"):  # the others push the same files
        words += ["--hub_strategy", hub_strategy]
    return shlex.join(words)


def _push_once(
    api: HfApi, output_dir: Path, repo_id: str, private: bool | None, hub_strategy: str, card_text: str | None
) -> str:
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    # Operations are rebuilt on every attempt: they remember upload state from the previous one.
    operations = [
        CommitOperationAdd(path_in_repo=in_repo, path_or_fileobj=str(local))
        for local, in_repo in files_to_push(output_dir, hub_strategy)
        if not (card_text is not None and in_repo == MODEL_CARD)
    ]
    if card_text is not None:
        operations.append(CommitOperationAdd(path_in_repo=MODEL_CARD, path_or_fileobj=card_text.encode()))
    commit = api.create_commit(repo_id, operations=operations, commit_message=COMMIT_MESSAGE, repo_type="model")
    return commit.commit_url


def push_output_dir(
    output_dir: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    hub_strategy: str = "end",
    card_text: str | None = None,
) -> str:
    """Creates the repo if needed and uploads the output folder in one commit; returns the commit URL.

    Transient failures (connection errors, time-outs, 5xx including on the commit call) are retried with growing
    waits. The output folder is only read, so a failed push leaves it as it was. `card_text` replaces the folder's
    README.md in the repo (a card rendered for this repo id).

    Raises:
        UsageError: for a missing token or an invalid repo id.
        PushError: when the push still fails after the retries, or fails for good (e.g. no write access); the
            message holds the command that pushes the folder again.
    """
    output_dir = Path(output_dir)
    if is_onnx_export(output_dir):
        raise UsageError(
            f"{output_dir} is an ONNX export: no PyTorch weights for `pipeline`, and no model card. Push the training "
            f"run's output folder it was exported from; to add the export to that repo, upload it beside the model: "
            f"hf upload {repo_id} {shlex.quote(str(output_dir))} onnx"
        )
    if not (output_dir / MODEL_CONFIG).is_file():
        raise UsageError(f"{output_dir} holds no config.json: give the output folder of a finished training run.")
    token = check_push_settings(repo_id, token, before_training=False)
    files_to_push(output_dir, hub_strategy)  # fails early on an unknown strategy
    api = HfApi(token=token)
    attempts = len(RETRY_WAITS_S) + 1
    for attempt in range(1, attempts + 1):
        try:
            commit_url = _push_once(api, output_dir, repo_id, private, hub_strategy, card_text)
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise PushError(
                    f"Pushing {output_dir} to {repo_id} failed after {attempt} attempt(s): "
                    f"{type(error).__name__}: {error}\nThe output folder is complete and unchanged. "
                    f"Push it again with:\n  {push_again_command(output_dir, repo_id, private, hub_strategy)}"
                ) from error
            wait = RETRY_WAITS_S[attempt - 1]
            logger.warning(
                f"Push attempt {attempt} of {attempts} to {repo_id} failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}); retrying in {wait:g} s."
            )
            time.sleep(wait)
        else:
            logger.warning(f"Pushed {output_dir} to {commit_url}")
            return commit_url
