"""nnlint: a linter for neural-network code.

Static half: ``nnlint path/`` or :func:`lint_paths` / :func:`lint_source`.
Runtime half: ``with nnlint.monitor(model, optimizer): ...`` (needs torch).

Importing this package imports neither torch nor libcst; both halves load lazily.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnlint.findings import Edit, Finding, Fix, Related

__version__ = "0.1.0"

__all__ = [
    "Edit",
    "Finding",
    "Fix",
    "Related",
    "Monitor",
    "TrainingError",
    "__version__",
    "lint_paths",
    "lint_source",
    "monitor",
]

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.engine import lint_paths, lint_source
    from nnlint.runtime import Monitor, TrainingError, monitor

_LAZY = {
    "lint_source": "nnlint.engine",
    "lint_paths": "nnlint.engine",
    "monitor": "nnlint.runtime",
    "Monitor": "nnlint.runtime",
    "TrainingError": "nnlint.runtime",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'nnlint' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
