"""One traversal of a module that every fact and rule reuses."""
from __future__ import annotations

import libcst as cst


class TreeIndex(cst.CSTVisitor):
    """One traversal of the module: pre-order node list, subtree extents, parents, calls."""

    def __init__(self) -> None:
        self.nodes: list[cst.CSTNode] = []
        self.position: dict[cst.CSTNode, int] = {}
        self.end: dict[int, int] = {}
        self.parents: dict[cst.CSTNode, cst.CSTNode] = {}
        self.calls: list[cst.Call] = []
        self._stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.position[node] = len(self.nodes)
        self.nodes.append(node)
        if self._stack:
            self.parents[node] = self._stack[-1]
        if isinstance(node, cst.Call):
            self.calls.append(node)
        self._stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self._stack.pop()
        self.end[self.position[original_node]] = len(self.nodes)
