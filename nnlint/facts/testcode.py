"""Is a node part of a test suite rather than of training or inference code?

Unit tests build throw-away models with random weights and run single forward passes to check
shapes or parity; rules about training quality (initialisation scale, evaluation memory) do not
apply to them. A node counts as test code when its file is a pytest/unittest file (named
``test_*.py``, ``*_test.py`` or ``conftest.py`` *and* importing pytest/unittest: an evaluation
script called ``test_net.py`` is not a test suite), or when it sits in a ``unittest.TestCase``
subclass. Function names are not consulted: training scripts name their evaluation pass
``test(model, loader)`` or ``test_epoch``, and that is exactly the code rules must check. Folders
are not consulted either: a checkout may itself live under a folder named ``test``.
"""
from __future__ import annotations

import re
from pathlib import PurePath
from typing import TYPE_CHECKING

import libcst as cst

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_TEST_FILE = re.compile(r"^(test_.*|.*_test|conftest)\.py$")
_TEST_CASES = frozenset({"unittest.TestCase", "unittest.case.TestCase", "absl.testing.absltest.TestCase",
                         "tensorflow.test.TestCase"})
_TEST_FRAMEWORKS = ("pytest", "unittest", "absl.testing")


def is_test_file(path: str) -> bool:
    return bool(_TEST_FILE.match(PurePath(path.replace("\\", "/")).name))


def in_test_code(facts: "FileFacts", node: cst.CSTNode) -> bool:
    if is_test_file(facts.path) and facts.names.imports_any(_TEST_FRAMEWORKS):
        return True
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, cst.ClassDef) and any(
                facts.names.qualname(base.value) in _TEST_CASES for base in ancestor.bases):
            return True
    return False
