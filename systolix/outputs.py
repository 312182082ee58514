"""Output paths of the ``systolix`` commands: checked before any work, written atomically.

Every command checks each path it will write with :func:`check_output_file` (a file) or
:func:`check_build_folder` (``compile -o``) before it reads a model, so a path it cannot write is one
line and exit code 2 at once, not a traceback after minutes of work. Files are then written under a
temporary name in the target folder and renamed on success (:func:`write_atomic`,
:func:`temporary_beside`): a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import SystolixError

__all__ = ["check_build_folder", "check_output_file", "check_output_folder", "temporary_beside", "write_atomic"]


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _check_writable_folder(folder: Path, target: Path) -> None:
    """``folder`` exists, is a folder and a file can be created in it (tried: a probe file, removed at once)."""
    if not folder.exists():
        raise SystolixError(f"{target}: folder {folder} does not exist")
    if not folder.is_dir():
        raise SystolixError(f"{target}: {folder} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as error:
        raise SystolixError(f"{target}: cannot create files in {folder} ({_reason(error)})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | os.PathLike, option: str, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Check that the file ``path`` (given with ``option``) can be written, before any work.

    Its folder must exist and accept new files, ``path`` must not be a folder or anything but a regular
    file, and it must not be one of ``inputs`` (the files the command reads).

    Raises
    ------
    SystolixError
        One line naming the path and what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        raise SystolixError(f"{path}: is a folder; {option} takes a file name")
    if path.exists() and not path.is_file():
        raise SystolixError(f"{path}: exists and is not a regular file; choose another {option}")
    for source in inputs:
        if source is not None and Path(source).exists() and path.resolve() == Path(source).resolve():
            raise SystolixError(f"{path}: {option} would overwrite an input of the command; choose another path")
    _check_writable_folder(path.parent, path)
    return path


def check_output_folder(path: str | os.PathLike, option: str) -> Path:
    """Check that the folder ``path`` exists or can be made (with its parents) and accepts new files."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SystolixError(f"{path}: exists and is not a folder; choose another {option}")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    _check_writable_folder(existing, path)
    return path


def check_build_folder(path: str | os.PathLike, option: str = "-o") -> Path:
    """Check the build folder of ``compile -o``: absent, empty or an earlier build; its parent writable."""
    from .compiler.build import MARKER

    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / MARKER).exists())):
        raise SystolixError(f"{path}: exists and is not a systolix build folder; choose another {option}")
    _check_writable_folder(path.parent, path)
    return path


@contextlib.contextmanager
def temporary_beside(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name in ``path``'s folder (same suffix), renamed to ``path`` when the block succeeds.

    The block writes the file (or not); on any exception the temporary file is removed.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if Path(tmp).is_file():
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600: the file gets the user's usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write a file via a temporary file in the same folder, so a failure leaves nothing half-written."""
    path = Path(path)
    if not path.parent.is_dir():
        raise SystolixError(f"{path}: folder {path.parent} does not exist")
    try:
        with temporary_beside(path) as tmp:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            else:
                tmp.write_text(data)
    except OSError as error:
        raise SystolixError(f"{path}: cannot be written ({_reason(error)})") from None
