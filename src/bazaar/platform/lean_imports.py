"""Keeping a dependency's optional extras out of processes that never use them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(module: str) -> Iterator[None]:
    """While the block imports, `import module` fails as if it were not installed, so that
    a library that imports it only in case (`try: import module except ImportError`)
    goes without. Afterwards it imports as usual. Nothing changes if it is loaded already."""
    if module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        if sys.modules.get(module, ...) is None:
            del sys.modules[module]
