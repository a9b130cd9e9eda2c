"""Publishing a finished output folder to the Hub: checks before training, the run's own outputs only, retries, a
way to push again."""

from __future__ import annotations

import fnmatch
import json
import shlex
import time
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from transformers.utils import logging

from ..errors import PushError, UsageError, did_you_mean_path
from ..modeling import has_image_processor_file, is_onnx_export
from ..outputs import (
    CARD_INPUTS,
    CHECKPOINT_COMPLETE,
    CHECKPOINT_NAME,
    IMAGE_PROCESSOR_CONFIG,
    LOCAL_ONLY,
    MODEL_CARD,
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    RUN_FILES,
    TRAINER_STATE,
    checkpoint_folders,
)
from ..train.output_folder import entries, is_finished, read_manifest, run_outputs

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
# Why a file or folder in the output folder is not pushed (it is not one of the run's outputs).
NOT_WRITTEN_BY_THE_RUN = "not written by the training run"
CHANGED_SINCE_THE_RUN = "changed since the run wrote it"
NOT_A_RUN_NAME = "not a name a training run writes"


def resolve_token(token: str | None = None) -> str | None:
    """The token to push with: the one given, else `HF_TOKEN`, else the local credential store (`hf auth login`)."""
    return token or get_token()


def check_repo_id(repo_id: str) -> None:
    """Raises a `UsageError` for a repository id the Hub would refuse, saying what one looks like."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UsageError(
            f"--hub_model_id {repo_id!r} is not a valid repository name: {error} "
            "Use USER/NAME (letters, digits, '-', '_' and '.'; no '--' or '..'), e.g. me/resnet101-birds."
        ) from error


def check_push_settings(repo_id: str | None, token: str | None = None, before_training: bool = True) -> str:
    """Checks that a push can work (before any training, when `before_training`); returns the token to push with.

    Raises:
        UsageError: when the repo id is missing or invalid, or no token is available.
    """
    pushing = "--push_to_hub" if before_training else "Pushing"
    if not repo_id:
        raise UsageError(
            f"{pushing} needs --hub_model_id USER/NAME (or NAME, under the token's user): the repository to create "
            "or update."
        )
    check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        raise UsageError(
            "--push_to_hub needs the Hub, and HF_HUB_OFFLINE is set (nothing was trained yet): unset it, or train "
            "without --push_to_hub and push the finished folder later with `hf-resnet101 push OUT --hub_model_id ID`."
            if before_training
            else "Pushing needs the Hub, and HF_HUB_OFFLINE is set: unset it, then push again."
        )
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


def new_token_advice() -> str:
    """What to do about a token the Hub rejects or that may not write: the same words before training and at a push."""
    return f"Create a token with write access at {TOKENS_PAGE}, then `hf auth login` with it or set HF_TOKEN"


def check_write_access(repo_id: str, token: str, push_again: str | None = None) -> dict | None:
    """Asks the Hub, in one `whoami` request, whether `token` is valid and may write to `repo_id`; returns the
    answer (None when the Hub could not be reached), which names the token's user.

    Run before any data is loaded, so a wrong token is found in seconds rather than after training, and again by
    each push (`push_again` is then the command that pushes the folder once the token is fixed: a plain retry
    cannot help). When the Hub cannot be reached the check is skipped with a warning (the push itself retries and,
    failing, keeps the folder).

    Raises:
        UsageError: for a token the Hub rejects, or one that cannot write to the repo, saying what to do.
    """
    if push_again:
        pushing, then = f"Pushing to {repo_id}", f"Then push again with:\n  {push_again}"
    else:
        pushing, then = f"--push_to_hub to {repo_id}", "Run again: nothing was trained yet."
    try:
        whoami = HfApi(token=token).whoami(token=token)
    except HfHubHTTPError as error:
        status = http_status(error)
        if status == 401:
            raise UsageError(
                f"The Hub rejected the token (401 Unauthorized): it is wrong, expired or revoked. "
                f"{new_token_advice()}. {then}"
            ) from error
        if not is_transient(error):
            raise
        logger.warning(f"Could not check the Hub token ({status}); the push will tell.")
        return None
    except Exception as error:
        if not is_transient(error):
            raise
        logger.warning(f"Could not reach the Hub to check the token ({type(error).__name__}); the push will tell.")
        return None
    problem = token_write_problem(whoami, repo_id)
    if problem:
        raise UsageError(f"{pushing} cannot work: {problem} ({TOKENS_PAGE}). {then}")
    return whoami


def with_namespace(repo_id: str, whoami: dict | None) -> str:
    """`NAME` as `USER/NAME` for the token's user, as the Hub (and Trainer's push_to_hub) resolves a bare name;
    a `USER/NAME`, or a bare name whose user is unknown (the Hub was not reached), as it is."""
    if "/" in repo_id or not whoami or not whoami.get("name"):
        return repo_id
    return f"{whoami['name']}/{repo_id}"


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a failed Hub request; None for a failure without an answer (no connection)."""
    response = getattr(error, "response", None) if isinstance(error, HfHubHTTPError) else None
    return getattr(response, "status_code", None)


def is_transient(error: BaseException) -> bool:
    """True for failures worth another attempt: connection problems, time-outs, 5xx, 408 and 429 answers."""
    if isinstance(error, HfHubHTTPError):
        return http_status(error) in RETRY_STATUS_CODES
    if isinstance(error, OfflineModeIsEnabled):  # a ConnectionError that no retry fixes
        return False
    # httpx's TransportError covers refused connections, time-outs and dropped connections (`httpx` for
    # huggingface_hub 1.x, `httpx2` for 2.x).
    transport = any(
        cls.__name__ == "TransportError" and cls.__module__.startswith("httpx") for cls in type(error).__mro__
    )
    return transport or isinstance(error, (ConnectionError, TimeoutError))


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def publishable_files(output_dir: Path, hub_strategy: str) -> list[tuple[Path, str]]:
    """Every (local file, path in the repo) pair a push may upload, before asking which are the run's outputs.

    All files but the local-only ones (`outputs.LOCAL_ONLY`, dot files, TensorBoard logs); checkpoints by
    `hub_strategy`: `end` and `every_save` push none (this package pushes once, after training), `checkpoint`
    pushes the latest one as `last-checkpoint/` (what `--resume_from_checkpoint` needs), `all_checkpoints` every one.

    Raises:
        UsageError: for an unknown strategy.
    """
    if hub_strategy not in HUB_STRATEGIES:
        raise UsageError(f"--hub_strategy must be one of {', '.join(HUB_STRATEGIES)}, got {hub_strategy!r}.")
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


def run_output_names(output_dir: Path, manifest: dict | None) -> set[str]:
    """The names at the top of the folder that are the run's outputs: the only ones a push publishes.

    With a `run_manifest.json`, those it records (`train.output_folder.run_outputs`): anything added since (an
    `evaluate` or `export` folder, notes) or changed since is the user's, and may name local paths. A folder
    written before manifests existed has none: there the names a training run writes (`outputs.RUN_FILES`) and
    its checkpoint folders count, and any other name does not.
    """
    if manifest is not None:
        return run_outputs(output_dir, manifest)
    return {name for name in entries(output_dir) if name in RUN_FILES or CHECKPOINT_NAME.match(name)}


def why_not_pushed(name: str, manifest: dict | None) -> str:
    """Why a name at the top of the folder is not one of the run's outputs, in the words of the push's warning."""
    if manifest is None:
        return NOT_A_RUN_NAME
    return CHANGED_SINCE_THE_RUN if name in manifest.get("files", {}) else NOT_WRITTEN_BY_THE_RUN


def push_selection(output_dir: str | Path, hub_strategy: str = "end") -> tuple[list[tuple[Path, str]], dict[str, str]]:
    """What a push uploads, as (local file, path in the repo) pairs, and what it leaves out of the folder's other
    files: each name at the top of the folder (a folder's with a trailing `/`) with why.

    Raises:
        UsageError: for an unknown strategy.
    """
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir)
    outputs = run_output_names(output_dir, manifest)
    pushed, left_out = [], {}
    for local, in_repo in publishable_files(output_dir, hub_strategy):
        name = local.relative_to(output_dir).parts[0]
        if name in outputs:
            pushed.append((local, in_repo))
        else:
            left_out[f"{name}/" if (output_dir / name).is_dir() else name] = why_not_pushed(name, manifest)
    return pushed, left_out


def files_to_push(output_dir: str | Path, hub_strategy: str = "end") -> list[tuple[Path, str]]:
    """The (local file, path in the repo) pairs a push uploads: the run's own outputs (`run_output_names`), the
    final model, processor, card, plots and metrics, and checkpoints by `hub_strategy`."""
    return push_selection(output_dir, hub_strategy)[0]


def left_out_note(left_out: dict[str, str], output_dir: Path, repo_id: str) -> str | None:
    """The one warning line that names the files a push left out and why; None when it left out none."""
    if not left_out:
        return None
    by_reason: dict[str, list[str]] = {}
    for name, reason in sorted(left_out.items()):
        by_reason.setdefault(reason, []).append(name)
    groups = "; ".join(f"{reason}: {', '.join(names)}" for reason, names in by_reason.items())
    upload = shlex.join(["hf", "upload", repo_id, f"{output_dir}/NAME", "NAME"])
    return f"Not pushed, {groups} — upload them yourself with `{upload}` if you mean to share them."


def is_checkpoint_folder(folder: Path) -> bool:
    """A checkpoint of a run rather than its output folder: marked complete by the run, or named `checkpoint-STEP`
    without the manifest a run's own folder has."""
    if (folder / CHECKPOINT_COMPLETE).is_file():
        return True
    return bool(CHECKPOINT_NAME.match(folder.name)) and read_manifest(folder) is None


# What `pipeline` loads from the repo: pushed only as the run wrote them, or not at all.
MODEL_FILES = {
    MODEL_CONFIG: "model config",
    MODEL_WEIGHTS: "model weights",
    IMAGE_PROCESSOR_CONFIG: "image processor settings",
}


def pipeline_files(output_dir: Path) -> dict[str, str]:
    """`MODEL_FILES` as the folder's model has them: a timm model's preprocessing is in its config.json."""
    if has_image_processor_file(output_dir):
        return MODEL_FILES
    return {name: what for name, what in MODEL_FILES.items() if name != IMAGE_PROCESSOR_CONFIG}


def check_pushable(output_dir: Path, repo_id: str) -> None:
    """Refuses, before anything reaches the Hub, a folder that is not a finished run's output: an export, a
    checkpoint, a folder without the model's config, weights or image processor settings, a run that has not
    finished, and a run whose model files were changed since it wrote them (the push would publish a card for other
    weights, or leave out a changed preprocessor_config.json and publish a model `pipeline` cannot load).

    Raises:
        UsageError: saying what the folder is and what to push instead.
    """
    if not output_dir.is_dir():
        raise UsageError(
            f"{output_dir} {'is not a folder' if output_dir.exists() else 'does not exist'}: give the output folder "
            f"of a finished run.{did_you_mean_path(output_dir)}"
        )
    if is_onnx_export(output_dir):
        raise UsageError(
            f"{output_dir} is an ONNX export: no PyTorch weights for `pipeline`, and no model card. Push the training "
            f"run's output folder it was exported from; to add the export to that repo, upload it beside the model: "
            f"hf upload {repo_id} {shlex.quote(str(output_dir))} onnx"
        )
    if is_checkpoint_folder(output_dir):
        raise UsageError(
            f"{output_dir} is a checkpoint of a run, not its finished output: push {output_dir.parent} (the run's "
            f"folder) once it has finished, or use --hub_strategy checkpoint there to push its latest checkpoint "
            f"with it as {LAST_CHECKPOINT_DIR}/."
        )
    model_files = pipeline_files(output_dir)
    for name, what in model_files.items():
        if not (output_dir / name).is_file():
            raise UsageError(
                f"{output_dir} holds no {what} ({name}): give the output folder of a finished run; a run stopped "
                "early finishes when you run the same training command again."
            )
    manifest = read_manifest(output_dir)
    if manifest is None:
        return
    if not manifest.get("finished"):
        raise UsageError(
            f"{output_dir} holds a run that has not finished (by its run_manifest.json): a run stopped early "
            "finishes when you run the same training command again; push it then."
        )
    changed = [name for name in model_files if name not in run_outputs(output_dir, manifest)]
    if changed:
        raise UsageError(
            f"{', '.join(changed)} in {output_dir} changed since the run wrote them (run_manifest.json records "
            "another size or time): push a finished run's folder as it left it (copy folders with `cp -a`, which "
            "keeps file times), or upload your own files with `hf upload`."
        )


def push_again_command(output_dir: str | Path, repo_id: str, private: bool | None, hub_strategy: str) -> str:
    """The exact `hf-resnet101 push` command that retries a failed push."""
    words = ["hf-resnet101", "push", str(output_dir), "--hub_model_id", repo_id]
    if private:
        words.append("--hub_private_repo")
    if hub_strategy in ("checkpoint", "all_checkpoints"):  # the others push the same files
        words += ["--hub_strategy", hub_strategy]
    return shlex.join(words)


def push_failure_advice(error: BaseException, output_dir: Path, again: str) -> str:
    """What to do after a push failed for good. A plain retry is offered only for failures that pass (connection
    problems, time-outs, 5xx); a refused token gets the token advice; the folder is said to hold a finished run
    only when it does."""
    state = "holds the finished run, unchanged" if is_finished(output_dir) else "is unchanged (a push only reads it)"
    status = http_status(error)
    if status in (401, 403):
        advice = (
            f"The Hub refused the token ({status}): it is wrong, expired or revoked, or may not write to this repo. "
            f"{new_token_advice()}. Then push again with"
        )
    elif is_transient(error):
        advice = "Push it again with"
    else:
        advice = "Pushing it again as it is fails the same way: fix what the error says, then push with"
    return f"The output folder {state}. {advice}:\n  {again}"


def published_content(local: Path, in_repo: str) -> str | bytes:
    """What is uploaded for a file: the file itself, except a Trainer state, whose `best_model_checkpoint` the
    Trainer records as a local absolute path (`/home/me/runs/birds/checkpoint-500`): that is published as the
    checkpoint's folder name, so nothing local reaches the Hub."""
    if Path(in_repo).name != TRAINER_STATE:
        return str(local)
    state = json.loads(local.read_text())
    if state.get("best_model_checkpoint"):
        state["best_model_checkpoint"] = Path(state["best_model_checkpoint"]).name
    return (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()


def _push_once(
    api: HfApi, repo_id: str, private: bool | None, files: list[tuple[Path, str]], card_text: str | None
) -> str:
    # The repo id the Hub answers is the one to commit to: a bare NAME is created under the token's user.
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    if private and not api.model_info(repo_id).private:
        # The Hub keeps an existing repository's visibility: the push goes on, but the user asked for privacy.
        logger.warning(
            f"{repo_id} already exists and is public: --hub_private_repo makes only new repositories private, so "
            "this push is public too. Make it private in its settings on the Hub, or push to a new name."
        )
    # Operations are rebuilt on every attempt: they remember upload state from the previous one.
    operations = [
        CommitOperationAdd(path_in_repo=in_repo, path_or_fileobj=published_content(local, in_repo))
        for local, in_repo in files
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
    announce: bool = True,
) -> str:
    """Creates the repo if needed and uploads the run's outputs in one commit; returns the commit URL, which is
    logged unless not `announce` (the push command prints it itself).

    Only a finished run's folder is pushed (`check_pushable`), and of it only the run's own outputs
    (`push_selection`); what else is there is named in one warning. The token is checked first (`whoami`), which
    also tells the user a bare `NAME` belongs to. The card is rendered again when the folder's names another repo.
    Transient failures (connection errors, time-outs, 5xx including on the commit call) are retried with growing
    waits. The output folder is only read, so a failed push leaves it as it was.

    Raises:
        UsageError: for a folder that is not a finished run's, a missing or refused token, or an invalid repo id.
        PushError: when the push still fails after the retries, or fails for good (e.g. no write access); the
            message says what to do, and holds the command that pushes the folder again.
    """
    from .card import card_text_for_repo  # the card's plotting libraries load only for a push

    output_dir = Path(output_dir)
    check_pushable(output_dir, repo_id)
    token = check_push_settings(repo_id, token, before_training=False)
    files, left_out = push_selection(output_dir, hub_strategy)
    whoami = check_write_access(
        repo_id, token, push_again=push_again_command(output_dir, repo_id, private, hub_strategy)
    )
    repo_id = with_namespace(repo_id, whoami)
    again = push_again_command(output_dir, repo_id, private, hub_strategy)
    # A README.md edited by hand is left out like any changed file; the repo still gets the run's card.
    card_text = card_text_for_repo(output_dir, repo_id, always=MODEL_CARD in left_out)
    if note := left_out_note(left_out, output_dir, repo_id):
        if MODEL_CARD in left_out and card_text is not None:
            note += f" The card pushed as {MODEL_CARD} is rendered again from {CARD_INPUTS}."
        logger.warning(note)
    api = HfApi(token=token)
    attempts = len(RETRY_WAITS_S) + 1
    for attempt in range(1, attempts + 1):
        try:
            commit_url = _push_once(api, repo_id, private, files, card_text)
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise PushError(
                    f"Pushing {output_dir} to {repo_id} failed after {attempt} attempt(s): "
                    f"{type(error).__name__}: {error}\n{push_failure_advice(error, output_dir, again)}"
                ) from error
            wait = RETRY_WAITS_S[attempt - 1]
            logger.warning(
                f"Push attempt {attempt} of {attempts} to {repo_id} failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}); retrying in {wait:g} s."
            )
            time.sleep(wait)
        else:
            if announce:
                logger.warning(f"Pushed {output_dir} to {commit_url}")
            return commit_url
