"""Files a run writes for the user: checked before the work starts, and complete or absent, never partial.

Every output (the edited video, the side-by-side video, the report) is first written under a temporary name in
its destination folder and renamed into place once complete (a rename within one folder is atomic), so a
crash, a full disk or a kill leaves nothing half-written at the destination. Problems with a destination
(a folder where a file is expected, no permission, no space) become `OutputError` with the path and the cause.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import JoyGenError, OutputError

PARTIAL_SUFFIX = ".partial"  # temporary names: .{name}.{random}.partial beside the destination


def sha256_of(path: str | Path) -> str:
    """sha256 of a file's content, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def os_error_text(exc: OSError) -> str:
    """What went wrong, for a person: "no space left on device", "permission denied", ..."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the device; free some space or write somewhere else"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; choose a folder you can write to"
    if exc.errno == errno.EROFS:
        return "the file system is read-only; choose a folder you can write to"
    return (exc.strerror or str(exc)).lower()


def work_folder_error(exc: OSError, folder: str | Path) -> JoyGenError:
    """A failure to write in the run's private work folder, said in words with where to put it instead."""
    return JoyGenError(
        f"cannot write in the work folder '{folder}': {os_error_text(exc).split(';')[0]}; free some space there, "
        "or put the work folder elsewhere (--work-dir, or the TMPDIR environment variable)"
    )


def check_output(path: str | Path, what: str = "output") -> Path:
    """Fail early, before any work, if ``path`` cannot become a file: create its folder, check it is writable.

    Raises:
        OutputError: ``path`` is an existing folder, or its folder cannot be created or written to.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(
            f"the {what} '{path}' is a folder; give a file name, e.g. '{path / 'edited.mp4'}'"
            if what == "output"
            else f"the {what} '{path}' is a folder; give a file name"
        )
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write the {what} '{path}': '{folder}' is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create the folder of the {what} '{path}': {os_error_text(exc)}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {what} '{path}': permission denied on '{folder}'")
    return path


def _partial_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def place_file(made: str | Path, dest: str | Path, what: str = "output") -> Path:
    """Move a finished file to ``dest`` so that ``dest`` appears complete or not at all.

    The file is copied (or renamed, on the same file system) to a temporary name beside ``dest`` and then
    renamed over it; on any failure the temporary copy is removed and ``dest`` is left as it was.

    Raises:
        OutputError: naming ``dest`` and the cause (no space, no permission, ...).
    """
    made, dest = Path(made), check_output(dest, what)
    tmp = _partial_name(dest)
    try:
        try:
            os.rename(made, tmp)  # same file system: no copy
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(made, tmp)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"could not write the {what} '{dest}': {os_error_text(exc)}") from None
    made.unlink(missing_ok=True)
    return dest


def write_text(dest: str | Path, text: str, what: str = "file") -> Path:
    """Write ``text`` to ``dest`` complete or not at all (see `place_file`)."""
    dest = check_output(dest, what)
    tmp = _partial_name(dest)
    try:
        tmp.write_text(text)
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"could not write the {what} '{dest}': {os_error_text(exc)}") from None
    return dest


@contextmanager
def work_folder(work_dir: str | Path | None) -> Iterator[Path]:
    """The run's private folder (a new temporary one unless given, then deleted); a full disk there is said
    in words."""
    own = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="joygen-")) if own else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise work_folder_error(exc, work) from None
        raise
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
