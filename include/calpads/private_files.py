"""Files that hold student data: owner-only (0600) from their first byte, and whole or absent.

The one home of the rule "work and report files are private and appear whole or not at all":
- ``open_private(path)``: a file opened for writing with mode 0600 whatever the umask, also when it
  already existed with wider permissions (``os.open``'s mode only applies to a new file);
- ``write_private(path, data)`` and ``replacing(path)``: write ``.<name>.partial`` beside the target,
  then rename it over the target (atomic on one file system), so a reader never sees half a file and
  a failed write leaves the old file (or none) and no temporary file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
log = logging.getLogger(__name__)


def partial_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed into place (hidden, same folder)."""
    return path.with_name(f".{path.name}.partial")


def open_private(path: str | os.PathLike[str], mode: str = "wb", file_mode: int = FILE_MODE, **kw: Any) -> IO[Any]:
    """``open(path, mode)`` for writing, the file created (or truncated) with ``file_mode`` (0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, file_mode)
    try:
        os.fchmod(fd, file_mode)   # an existing file keeps its old mode otherwise
        return os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def replacing(path: Path, mode: str = "wb", file_mode: int = FILE_MODE, *, sync: bool = False,
              **kw: Any) -> Iterator[IO[Any]]:
    """A private file handle whose content replaces ``path`` when the block ends without an error."""
    tmp = partial_path(path)
    try:
        with open_private(tmp, mode, file_mode, **kw) as fh:
            yield fh
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: bytes | str, file_mode: int = FILE_MODE, *, sync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8, line ends as given) to ``path`` whole or not at all, mode 0600."""
    if isinstance(data, str):
        with replacing(path, "w", file_mode, sync=sync, encoding="utf-8", newline="") as fh:
            fh.write(data)
    else:
        with replacing(path, "wb", file_mode, sync=sync) as fh:
            fh.write(data)
    return path


def create_private(path: str | os.PathLike[str]) -> None:
    """Make sure ``path`` exists owner-only: create it empty with 0600, or take the group's and others' bits
    off one we own (a file of another owner is left alone). A missing folder is left alone too: whoever
    opens the file next reports it, naming the file."""
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
        os.chmod(path, FILE_MODE)
        return
    except FileExistsError:
        pass
    except OSError as exc:   # a read-only folder: the next open reports it
        log.warning("Could not create %s owner-only: %s", path, exc.strerror)
        return
    st = os.stat(path)
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, FILE_MODE)
        log.info("Made %s readable by its owner only (it held group/other permissions)", path)
