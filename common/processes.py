"""Starting worker processes from a script that has no `if __name__ == "__main__":` guard.

spawn and forkserver children run the parent's main script again to rebuild `__main__`
(multiprocessing's "preparation"), so a lesson or notebook-style script that starts workers
at top level would start itself in every worker. Where the workers need nothing from
`__main__` (their code and data come from importable modules), it is hidden while they
start, and the script runs once.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def main_hidden() -> Iterator[None]:
    """Workers started inside do not run the main script (not thread-safe: it edits
    `__main__`'s namespace for the moment of the start)."""
    namespace = vars(sys.modules["__main__"])
    saved = {name: namespace.pop(name) for name in ("__file__", "__spec__") if name in namespace}
    namespace["__spec__"] = None  # what multiprocessing reads; a missing one is an error
    try:
        yield
    finally:
        del namespace["__spec__"]
        namespace.update(saved)


def defined_in_main(*objects: Any) -> bool:
    """Whether a worker needs `__main__` to unpickle these (a class or function defined in
    the script itself: then the script needs its main guard, as with PyTorch's loader)."""
    return any(
        getattr(o, "__module__", None) == "__main__"
        or getattr(type(o), "__module__", None) == "__main__"
        for o in objects
    )
