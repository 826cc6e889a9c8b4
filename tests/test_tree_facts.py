"""The file's one traversal: what the index holds and the typed queries built on it."""
from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from nnlint.facts import FileFacts
from nnlint.facts.tree import TRIVIA

SOURCE = textwrap.dedent(
    """
    import torch.nn as nn  # a comment

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            y = x / x.sum(dim=1, keepdim=True)
            y /= 2
            return self.fc(y)

    def helper(a, b):
        return a / b
    """
)


def facts() -> FileFacts:
    return FileFacts("m.py", cst.parse_module(SOURCE), module_name="m")


def test_the_index_leaves_out_layout_nodes_only() -> None:
    file_facts = facts()
    walked = list(file_facts.walk())
    assert not [node for node in walked if type(node) in TRIVIA]
    # every other node libcst visits is indexed, in libcst's pre-order
    expected: list[cst.CSTNode] = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if type(node) in TRIVIA:
                return False
            expected.append(node)
            return True

    file_facts.module.visit(Collect())
    assert len(walked) == len(expected) and all(a is b for a, b in zip(walked, expected))


@pytest.mark.parametrize("types", [(cst.Call,), (cst.BinaryOperation, cst.AugAssign), (cst.FunctionDef, cst.Name)])
def test_nodes_of_is_the_filtered_walk(types: tuple[type, ...]) -> None:
    file_facts = facts()
    assert file_facts.nodes_of(*types) == [node for node in file_facts.walk() if type(node) in types]


def test_nodes_of_within_a_subtree() -> None:
    file_facts = facts()
    forward = next(node for node in file_facts.walk()
                   if isinstance(node, cst.FunctionDef) and node.name.value == "forward")
    divisions = file_facts.nodes_of(cst.BinaryOperation, cst.AugAssign, within=forward)
    assert [type(node).__name__ for node in divisions] == ["BinaryOperation", "AugAssign"]
    assert list(file_facts.calls(forward)) == [n for n in file_facts.walk(forward) if isinstance(n, cst.Call)]
    assert file_facts.nodes_of(cst.Call, within=cst.Name("not_in_this_module")) == []


def _reference_walk(module: cst.Module) -> tuple[dict[int, cst.CSTNode], dict[int, tuple[int, int]]]:
    """Parents and (enter, exit) steps from libcst's own visitor, layout nodes skipped."""
    parents: dict[int, cst.CSTNode] = {}
    order: dict[int, list[int]] = {}
    stack: list[cst.CSTNode] = []
    step = [0]

    class Reference(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if type(node) in TRIVIA:
                return False
            if stack:
                parents[id(node)] = stack[-1]
            stack.append(node)
            order[id(node)] = [step[0], -1]
            step[0] += 1
            return True

        def on_leave(self, original_node: cst.CSTNode) -> None:
            if type(original_node) in TRIVIA:
                return
            stack.pop()
            order[id(original_node)][1] = step[0]
            step[0] += 1

    module.visit(Reference())
    return parents, {key: (enter, exit_) for key, (enter, exit_) in order.items()}


def test_parents_ancestors_and_order_match_libcsts_visitor() -> None:
    file_facts = facts()
    tree = file_facts._tree
    parents, order = _reference_walk(file_facts.module)
    for node in file_facts.walk():
        assert file_facts.parent(node) is parents.get(id(node))
        assert tree.order(node) == order[id(node)]
        expected_ancestors = []
        current = parents.get(id(node))
        while current is not None:
            expected_ancestors.append(current)
            current = parents.get(id(current))
        assert list(file_facts.ancestors(node)) == expected_ancestors
        start = tree.index(node)
        assert start is not None and tree.nodes[start] is node
        assert tree.nodes[start:tree.end[start]] == list(file_facts.walk(node))


def test_a_node_of_another_module_is_unknown_not_an_error() -> None:
    file_facts = facts()
    stranger = cst.parse_expression("nn.Linear(4, 2)")
    tree = file_facts._tree
    assert tree.index(stranger) is None and tree.order(stranger) is None
    assert file_facts.parent(stranger) is None and list(file_facts.ancestors(stranger)) == []
    assert list(file_facts.walk(stranger)) == []
    assert file_facts.dataflow.definitions(cst.Name("x")) == ()
