"""Output folders (of the tokenize, detokenize and tokenize-dataset commands, the benchmark reports):
checked before any work, locked, written atomically.

* :func:`prepare_output` refuses an ``-o`` that is an existing file or a folder that cannot be
  created or written, before the model is loaded;
* :func:`output_lock` holds ``OUT/.audiotok.lock`` (``fcntl.flock``, non-blocking) so a second run
  into the same folder fails at once instead of interleaving files; once it holds the lock, temporary
  files left by a run that was killed (``kill -9``, power loss) are removed;
* :func:`write_atomic` writes each file under a temporary name in the same folder and renames it
  into place (``os.replace``) only when complete, with the mode an ordinary new file gets (umask);
  on failure the partial file is removed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from audiotok.errors import CommandError

LOCK_NAME = ".audiotok.lock"
TEMP_MARK = ".tmp-"  # temporary files are ".<stem>.tmp-<pid><suffix>": hidden, never listed as outputs


def prepare_output(path: str | Path) -> Path:
    """The output folder, created if missing; :class:`CommandError` if it is a file or not writable."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise CommandError(f"-o {out} is an existing file, not a folder; pass a folder (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(f"cannot create the output folder {out} ({err.strerror or err}); "
                           "choose a writable -o") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".audiotok-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CommandError(f"the output folder {out} is not writable ({err.strerror or err}); fix its "
                           "permissions or choose another -o") from None
    return out


@contextlib.contextmanager
def output_lock(out: Path, command: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``out`` for this run; a concurrent run gets a :class:`CommandError`."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): run unlocked
        yield out
        return
    lock_path = out / LOCK_NAME
    try:
        handle = open(lock_path, "a+", encoding="utf-8")
    except OSError as err:
        raise CommandError(f"cannot create the lock file {lock_path} ({err.strerror or err}); choose a "
                           "writable -o") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise CommandError(f"another audiotok run is writing into {out}"
                           + (f" ({holder})" if holder else "") + f": it holds {lock_path}. Wait for it to "
                           "finish or pass another -o") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}, audiotok {command}\n")
        handle.flush()
        remove_stale_temporaries(out)
        yield out
    finally:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def new_file_mode() -> int:
    """The mode an ordinary new file gets here: ``0o666`` minus the process umask."""
    try:  # Linux: read the umask without changing it (os.umask would, briefly, for every thread)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def give_new_file_mode(path: Path) -> None:
    """Writers that go through a private temporary file (``tempfile.mkstemp``, safetensors' own
    atomic save) leave mode ``0600``; give ``path`` the mode of an ordinary new file instead, so a
    model or checkpoint folder shared with others stays readable to them."""
    os.chmod(path, new_file_mode())


def temporary_name(target: Path) -> Path:
    """A hidden name next to ``target`` keeping its suffix (writers pick the format from it)."""
    return target.with_name(f".{target.stem}{TEMP_MARK}{os.getpid()}{target.suffix}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARK in path.name


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Delete the temporary files under ``out`` (only call this holding its lock: no run is writing
    them, so they are what a killed run left). Returns what was removed."""
    removed = []
    for path in out.rglob(".*"):
        if is_temporary(path) and path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def write_atomic(target: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``target``, then rename it onto ``target``.

    ``target`` either keeps its old content or gets the complete new file; if ``write`` raises, the
    partial temporary file is removed and the error is raised again.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        write(tmp)
        give_new_file_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target
