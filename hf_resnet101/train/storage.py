"""Failed writes and damaged files: recognising them, cleaning up after them, and saying so in one message.

A disk that fills up in the middle of a run surfaces as whatever the writing library raises: an `OSError` from
Python, a `SafetensorError` from safetensors ("I/O error: No space left on device (os error 28)" from 0.8,
"IoError ... No space left on device" before), or a `RuntimeError` from torch's writers ("unexpected pos 64 vs 0",
"file write failed", and "basic_ios::clear: iostream error" for the optimizer's state on a full tmpfs). These are
told apart from other errors here, so a run can stop with what failed, why, and what is still intact, instead of
a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from transformers.utils import WEIGHTS_NAME

from ..errors import UsageError
from ..outputs import MODEL_WEIGHTS, TRAINER_STATE, checkpoint_folders

# errno values that mean "this write cannot succeed until the user changes something".
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
# torch's zip writer reports a short write without an errno.
TORCH_WRITE_FAILURE = re.compile(r"unexpected pos|file write failed|PytorchStreamWriter failed|basic_ios::clear")
SAFETENSORS_IO_ERROR = re.compile(r'IoError.*?message: "([^"]+)"|I/O error: (.+?) \(os error \d+\)')


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def write_failure_reason(error: BaseException) -> str | None:
    """Why a write failed ("No space left on device", ...), or None when `error` is not a failed write."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno == errno.EFBIG:  # freeing space would not help
            return f"{link.strerror or 'File too large'} (a file-size limit: see `ulimit -f`)"
        if isinstance(link, OSError) and link.errno in WRITE_ERRNOS:
            return link.strerror or str(link)
        if type(link).__name__ == "SafetensorError" and ("IoError" in str(link) or "I/O error" in str(link)):
            match = SAFETENSORS_IO_ERROR.search(str(link))
            return next(group for group in match.groups() if group) if match else str(link)
        if isinstance(link, RuntimeError) and TORCH_WRITE_FAILURE.search(str(link)):
            return "the file could not be written in full (a full disk, a quota or a file-size limit)"
    return None


def remove_incomplete_checkpoints(output_dir: Path, is_complete: Callable[[Path], bool]) -> list[Path]:
    """Deletes the checkpoint folders a failed save left without their completion marker; returns them."""
    removed = []
    for folder in checkpoint_folders(output_dir):
        if folder.is_dir() and not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def reporting_write_failures(what: str, output_dir: Path, after: Callable[[], str] = lambda: ""):
    """Turns a failed write inside the block into a `UsageError` naming `what` failed and why.

    Args:
        what: what was being written ("a checkpoint", "the final model", ...).
        after: called only on a failed write, to clean up; returns a sentence on what is intact and what to do.
    """
    try:
        yield
    except UsageError:
        raise
    except Exception as error:
        reason = write_failure_reason(error)
        if reason is None:
            raise
        hint = after()
        raise UsageError(
            f"Could not write {what} to {output_dir}: {reason}." + (f" {hint}" if hint else "")
        ) from error


# What the messages after a failed write ask for: the cause may be the disk, a quota or a file-size limit.
MAKE_ROOM = "make room (free space, or lift the quota or file-size limit)"


# What resuming reads from a checkpoint besides the weights: the Trainer's state, and the optimizer's and learning
# rate schedule's (not written with --save_only_model). The RNG states are optional: the Trainer warns without them.
TRAINING_STATE_FILES = ("optimizer.pt", "scheduler.pt")


def missing_checkpoint_files(checkpoint: Path, save_only_model: bool = False) -> list[str]:
    """The files resuming from `checkpoint` needs that it lacks."""
    missing = [] if any((checkpoint / name).is_file() for name in (MODEL_WEIGHTS, WEIGHTS_NAME)) else [MODEL_WEIGHTS]
    needed = (TRAINER_STATE,) + (() if save_only_model else TRAINING_STATE_FILES)
    return missing + [name for name in needed if not (checkpoint / name).is_file()]


def damaged_checkpoint_files(checkpoint: Path) -> dict[str, str]:
    """The files of a checkpoint that cannot be read back, each with the reason; empty when it is sound.

    Reads every byte of torch's zip files (optimizer, scheduler, RNG states; CRC-checked) and the headers of the
    safetensors files, which is what resuming needs, without unpickling anything.
    """
    import json

    from safetensors import safe_open

    damaged = {}
    for path in sorted(checkpoint.iterdir()):
        try:
            if path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
                if bad is not None:
                    damaged[path.name] = f"{bad} fails its checksum"
            elif path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as weights:
                    weights.keys()
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except Exception as error:  # any failure to read back is damage, whatever the library raises
            damaged[path.name] = f"{type(error).__name__}: {error}".split("\n")[0][:200]
    return damaged


def current_umask() -> int:
    """The process's umask: read from /proc on Linux, else set and restored at once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_weights_to_umask(folder: Path) -> None:
    """Gives each `*.safetensors` file in `folder` the mode any other file written there gets.

    safetensors (from 0.8) writes through a temporary file created 0600 whatever the umask (safetensors issue
    #782), so a model folder shared with another user, or built into a container run as another user, had every
    file readable but its weights. Only such a file is widened; a mode the user chose is left alone.
    """
    if os.name != "posix":
        return
    mode = 0o666 & ~current_umask()
    for path in folder.glob("*.safetensors"):
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o777 == 0o600 and mode != 0o600:
                os.chmod(path, mode)
