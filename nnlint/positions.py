"""Line/column ranges of reported nodes, computed only for the statements that hold them.

libcst's ``PositionProvider`` (through ``MetadataWrapper``) regenerates the whole module
with position tracking and then walks it again: on a large file that is over a second
for a single finding. Positions inside a top-level statement depend only on where the
statement starts, so here the statements before it are generated as plain text (cheap;
only to count lines) and position tracking runs on the statement that holds the node.
The ranges are the ones ``PositionProvider`` gives (same codegen state, same rules).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst
    from libcst.metadata import CodeRange

    from nnlint.facts import FileFacts


class Positions:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._module = facts.module
        self._ranges: dict[Any, "CodeRange"] = {}
        self._done: set[int] = set()  # body indices whose nodes are in _ranges
        self._index: Optional[dict[int, int]] = None  # id(statement) -> body index
        #: (body index, line, column) reached by the plain-text prefix so far
        self._prefix: Optional[tuple[int, int, int]] = None
        self._full = False

    def __getitem__(self, node: "cst.CSTNode") -> "CodeRange":
        found = self._ranges.get(node)
        if found is not None:
            return found
        if not self._full:
            index = self._statement_index(node)
            try:
                if index is not None and index not in self._done:
                    self._statement(index)
                    found = self._ranges.get(node)
            except Exception:  # libcst internals changed: use the public, slower way
                found = None
            if found is None:
                self._whole_module()
        return self._ranges[node]

    # -- implementation ----------------------------------------------------------
    def _statement_index(self, node: "cst.CSTNode") -> Optional[int]:
        module = self._module
        tree = self._facts._tree
        top = node
        parent = tree.parent(top)
        while parent is not None and parent is not module:
            top, parent = parent, tree.parent(parent)
        if parent is None:
            return None
        if self._index is None:
            self._index = {id(statement): i for i, statement in enumerate(module.body)}
        return self._index.get(id(top))

    def _start_of(self, index: int) -> tuple[int, int]:
        """(line, column) where ``module.body[index]`` starts, as the position codegen counts."""
        from libcst._nodes.internal import CodegenState
        from libcst.metadata.position_provider import NEWLINE_RE

        module = self._module
        if self._prefix is None or self._prefix[0] > index:
            state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
            for line in module.header:
                line._codegen(state)
            start, line_no, column = 0, 1, 0
        else:
            start, line_no, column = self._prefix
            state = CodegenState(default_indent=module.default_indent, default_newline=module.default_newline)
        for statement in module.body[start:index]:
            statement._codegen(state)
        for token in state.tokens:  # the same arithmetic as the position-tracking state
            if "\n" in token or "\r" in token:
                segments = NEWLINE_RE.split(token)
                if len(segments) > 1:
                    line_no += len(segments) - 1
                    column = len(segments[-1])
                    continue
            column += len(token)
        self._prefix = (index, line_no, column)
        return line_no, column

    def _statement(self, index: int) -> None:
        from libcst.metadata import PositionProvider
        from libcst.metadata.position_provider import PositionProvidingCodegenState

        module = self._module
        line_no, column = self._start_of(index)
        provider = PositionProvider()
        state = PositionProvidingCodegenState(
            default_indent=module.default_indent, default_newline=module.default_newline, provider=provider
        )
        state.line, state.column = line_no, column
        module.body[index]._codegen(state)
        for node, rng in provider._computed.items():
            self._ranges.setdefault(node, rng)
        self._done.add(index)

    def _whole_module(self) -> None:
        from libcst.metadata import MetadataWrapper, PositionProvider

        wrapper = MetadataWrapper(self._module, unsafe_skip_copy=True)
        self._ranges = dict(wrapper.resolve(PositionProvider))
        self._full = True
