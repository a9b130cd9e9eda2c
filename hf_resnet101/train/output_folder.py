"""The output folder as a run holds it: a lock against a second run, and a manifest of the files this run wrote.

Only files that a run of this package recorded in `run_manifest.json` count as run outputs: a `README.md` or
`config.json` of the user's own is never taken for one, whatever its name (issue 12).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import UsageError
from ..outputs import LOCK, MODEL_WEIGHTS, RUN_MANIFEST

# Names a run uses only for a moment (the write probe of `check_writable`); never counted either way.
TRANSIENT_PREFIXES = (".write-probe-", f".{RUN_MANIFEST}.tmp")
# A killed run's files written after its last manifest update count as its own if no older than its start, less
# this margin for file systems with coarse timestamps.
CLOCK_MARGIN_NS = 2_000_000_000


def holder_description() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder_description().encode(), 0)


@contextlib.contextmanager
def locked_output_folder(output_dir: Path, enabled: bool = True, remove_if_left_empty: bool = False):
    """Holds an OS-level lock (`flock`, through filelock) on the folder for the whole run.

    The kernel drops the lock when its process dies, so a folder left by a `kill -9`'d run never blocks the next one.
    The lock file holds who holds it (pid, host, start) while held, and is emptied before release, so a rerun
    leaves it byte for byte as it was (and removed when the run wrote nothing else). Only the main process takes
    it: the others of a multi-process run work under its hold. `remove_if_left_empty`: the run made the folder,
    so a run stopped by a check before writing anything removes it too.

    Raises:
        UsageError: when another run holds the folder, naming it.
    """
    if not enabled:
        yield
        return
    path = output_dir / LOCK
    lock = FileLock(path, timeout=0, preserve_lock_file=True, on_acquired=_write_holder)
    try:
        lock.acquire()
    except Timeout:
        with contextlib.suppress(OSError):
            holder = path.read_text().strip()
        raise UsageError(
            f"--output_dir {output_dir} is in use by another run ({holder or 'holder unknown'}). Wait for it to "
            "finish or stop it, or choose another --output_dir."
        ) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if [p.name for p in output_dir.iterdir()] == [LOCK]:
                # A run that wrote nothing (stopped by a check) leaves nothing. filelock tolerates the unlink: a
                # peer that opened the old file notices it is gone and takes the new one.
                path.unlink()
            else:
                os.truncate(path, 0)
        lock.release()
        if remove_if_left_empty:
            with contextlib.suppress(OSError):  # not empty, or already gone: left as it is
                output_dir.rmdir()


def is_bookkeeping(name: str) -> bool:
    return name in (LOCK, RUN_MANIFEST) or name.startswith(TRANSIENT_PREFIXES)


def stamp(path: Path) -> list[int] | str:
    """What tells a file written by the run from one changed since: its size and modification time."""
    if path.is_dir():
        return "dir"
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def entries(output_dir: Path) -> dict[str, list[int] | str]:
    if not output_dir.is_dir():
        return {}
    return {p.name: stamp(p) for p in sorted(output_dir.iterdir()) if not is_bookkeeping(p.name)}


def read_manifest(output_dir: Path) -> dict | None:
    path = output_dir / RUN_MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} cannot be read ({error}): pass --overwrite_output_dir to start over.") from error


def run_outputs(output_dir: Path, manifest: dict | None) -> set[str]:
    """Names in the folder that a run of this package wrote, as its manifest records them.

    A file changed since it was recorded is no longer the run's (the user edited or replaced it). A run that was
    killed could not record its last files: those written after it started, and not there before, count as its.
    """
    if manifest is None:
        return set()
    recorded, found = manifest.get("files", {}), entries(output_dir)
    ours = {name for name, now in found.items() if name in recorded and recorded[name] in (now, "dir")}
    if not manifest.get("finished"):
        since = manifest.get("started_ns", 0) - CLOCK_MARGIN_NS
        before = set(manifest.get("foreign", []))
        ours |= {name for name, now in found.items() if name not in before and (now == "dir" or now[1] >= since)}
    return ours


def foreign_files(output_dir: Path) -> list[str]:
    """Names in the folder that no run of this package recorded writing."""
    return sorted(set(entries(output_dir)) - run_outputs(output_dir, read_manifest(output_dir)))


def is_finished(output_dir: Path) -> bool:
    manifest = read_manifest(output_dir)
    return bool(manifest and manifest.get("finished")) and (output_dir / MODEL_WEIGHTS).is_file()


def record_rewritten(output_dir: Path, names: list[str]) -> None:
    """Records again the files a command of this package rewrote in a run's folder (`hf-resnet101 card`), so the
    next run still counts them as run outputs."""
    manifest = read_manifest(output_dir)
    if manifest is None:
        return
    manifest["files"] |= {name: stamp(output_dir / name) for name in names if (output_dir / name).exists()}
    write_manifest(output_dir, manifest)


def write_manifest(output_dir: Path, manifest: dict) -> Path:
    """Written whole or not at all (a kill mid-write leaves the old file)."""
    path = output_dir / RUN_MANIFEST
    tmp = output_dir / f".{RUN_MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
    return path


class RunManifest:
    """Records, in `run_manifest.json`, the files this run wrote: those new or changed since it started, plus the
    earlier run's outputs it continues. Updated when the run starts, at each checkpoint and when it finishes."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir
        self.started_ns = time.time_ns()
        self.before = entries(output_dir)
        self.inherited = run_outputs(output_dir, read_manifest(output_dir))

    def record(self, finished: bool = False) -> Path:
        files, foreign = {}, []
        for name, now in entries(self.output_dir).items():
            if name in self.inherited or self.before.get(name) != now:
                files[name] = now
            else:
                foreign.append(name)
        manifest = {
            "written_by": "hf_resnet101",
            "started_ns": self.started_ns,
            "finished": finished,
            "files": files,
            "foreign": foreign,
        }
        return write_manifest(self.output_dir, manifest)
