"""A private on-disk cache of generated numba kernels: each kernel's source sits in a file
named by its sha256, which numba caches its compiled code beside (in `__pycache__`).

Nothing read back from the folder is trusted blindly: the source that runs is the one just
generated (the file only anchors numba's cache, and is rewritten if it differs); a folder that
others may write is refused, as numba's index files are pickles; files are written atomically;
a cache entry that fails to load is removed and the kernel built in memory; and the folder
keeps only the newest `MAX_CACHED_KERNELS` kernels.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import sys
import tempfile
import types
import warnings
from typing import Any

MAX_CACHED_KERNELS = 256  # the newest kept, older ones removed: an entry (its source and
# numba's index and object code) is about 60 KB, so a full cache holds about 15 MB
_warned: set[str] = set()  # folders already reported unusable, each once per process


def _ensure_private(folder: pathlib.Path) -> None:
    """Create the folder (and numba's `__pycache__` in it) for this user alone, and refuse one
    that others may write: loading a pickle they planted would run their code."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder / "__pycache__"):
        path.mkdir(mode=0o700, exist_ok=True)
        status = path.stat()
        if hasattr(os, "getuid") and status.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user (uid {status.st_uid})")
        if status.st_mode & 0o022:
            raise PermissionError(
                f"{path} is writable by other users, who could plant code "
                f"in numba's pickled index files (fix: chmod 700 {path})"
            )


def _digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _entry_text(source: str) -> str:
    header = f"# diptych fused kernel, generated; sha256 of the lines below: {_digest(source)}"
    return f"{header}\n{source}"


def _holds(path: pathlib.Path, text: str) -> bool:
    """Whether the file is intact: exactly the text its name and header promise."""
    try:
        return path.read_bytes() == text.encode()
    except FileNotFoundError:
        return False


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Write a temporary file beside `path`, then rename it over `path`: another process
    reads either the old file or the whole new one, never a half-written one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".writing-")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _remove_entry(path: pathlib.Path) -> None:
    """A kernel's source file, and numba's index and object files for it."""
    for file in [path, *(path.parent / "__pycache__").glob(f"{path.stem}.*")]:
        file.unlink(missing_ok=True)


def _age(path: pathlib.Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by another process meanwhile: as good as the oldest
        return 0.0


def _evict_oldest(folder: pathlib.Path) -> None:
    kernels = sorted(folder.glob("fused_*.py"), key=_age)
    for path in kernels[:-MAX_CACHED_KERNELS]:
        _remove_entry(path)


def entry(source: str, folder: pathlib.Path) -> pathlib.Path | None:
    """The file `source` is cached as, written (atomically) unless it holds exactly this
    source; None, with one warning per folder, when the folder cannot be used."""
    path = folder / f"fused_{_digest(source)[:16]}.py"
    try:
        _ensure_private(folder)
        text = _entry_text(source)
        if not _holds(path, text):
            _write_atomically(path, text)
            _evict_oldest(folder)
    except OSError as error:
        if str(folder) not in _warned:
            _warned.add(str(folder))
            warnings.warn(
                f"the kernel cache is not used ({error}); numba kernels are "
                "compiled in memory, in every process",
                stacklevel=5,
            )
        return None
    return path


def _define(source: str, path: pathlib.Path | None) -> Any:
    """The `kernel` function of `source`, executed from memory, never read back from the
    file: what runs is what was generated. The file (if any) anchors numba's disk cache."""
    name = f"diptych_fused_{_digest(source)[:16]}"
    module = types.ModuleType(name)
    module.__file__ = str(path) if path else f"<{name}>"
    sys.modules[name] = module  # numba's cached code refers to its globals by module name
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102
    if path is not None:
        module.kernel.enable_caching()  # what `cache=True` does, for this file
    return module.kernel


def build(source: str, folder: pathlib.Path, out: Any, args: list) -> Any:
    """The `kernel` of `source`, compiled (or loaded from the cache in `folder`) and run once
    into `out`. A cache entry that fails to load (numba's index cut short, say) is removed,
    and the kernel built again in memory: numba fails while compiling, before it writes."""
    path = entry(source, folder)
    kernel = _define(source, path)
    try:
        kernel(out, *args)
    except Exception:
        if path is None:
            raise
        _remove_entry(path)  # the next process writes it afresh
        kernel = _define(source, None)
        kernel(out, *args)
    return kernel
