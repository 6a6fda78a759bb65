"""Writing files so that a crash or an interruption never leaves half of one.

Every file of a run folder is either appended to whole rows at a time, or written here: to a
temporary file beside the target (same folder, same file system), flushed to disk, then renamed
over the target, which readers see as the old file or the whole new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; renamed into place when the block ends well.

    The temporary name keeps the suffix, so writers that pick a format by it (matplotlib, PIL) work.
    On an exception the temporary file is removed and `path` stays as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to `path` in one piece (see `replacing`)."""
    with replacing(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
