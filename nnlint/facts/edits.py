"""Building fixes: statements inserted or wrapped, activations dropped or replaced.

Each helper returns the ``(node, replacement)`` pairs :meth:`nnlint.rule.Context.report` takes
as ``fix``, or ``None`` when the rewrite is not certain (a statement sharing its line with a
compound header, a comment inside the deleted text, a multi-line string that re-indenting would
change). The engine applies a fix only if the result still parses.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.tensors import TensorOps, original_text

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts.losses import LossSite
    from nnlint.facts.outputs import OutputActivation
    from nnlint.facts.tensors import TensorOp
    from nnlint.rule import Context

Edits = list[tuple[cst.CSTNode, str]]
_LINE_BREAK = re.compile(r"\r\n?|\n")
_BLOCKS = (cst.IndentedBlock, cst.Module)
_STRINGS = (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)
#: expressions that stay one operand wherever they are put (no parentheses needed)
_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.SimpleString)
#: tensor methods that apply an activation (``x.softmax(1)``)
_ACTIVATION_METHODS = frozenset(L.ACTIVATION_FUNCTIONS.values()) - {"exp", "glu"}


# -- text and positions ------------------------------------------------------------
def _line_starts(source: str) -> list[int]:
    return [0] + [match.end() for match in _LINE_BREAK.finditer(source)]


def _span(ctx: "Context", node: cst.CSTNode) -> tuple[int, int]:
    """Where ``node``'s text starts and ends in ``ctx.source`` (string offsets)."""
    starts = _line_starts(ctx.source)
    where = ctx.position(node)

    def offset(line: int, column: int) -> int:  # the last line's newline is counted even when missing
        return starts[line - 1] + column if line <= len(starts) else len(ctx.source)

    return offset(where.start.line, where.start.column), offset(where.end.line, where.end.column)


def _indentation(ctx: "Context", statement: cst.CSTNode) -> Optional[str]:
    """The whitespace ``statement`` starts its line with, ``None`` if something else is before it."""
    start, _ = _span(ctx, statement)
    line_start = max(ctx.source.rfind("\n", 0, start), ctx.source.rfind("\r", 0, start)) + 1
    prefix = ctx.source[line_start:start]
    return prefix if prefix.strip() == "" else None


def _newline(ctx: "Context") -> str:
    return ctx.module.default_newline


def splice(ctx: "Context", container: cst.CSTNode, cuts: Sequence[tuple[int, int, str]]) -> Optional[Edits]:
    """Replace ``container`` with its text where each ``(start, end, text)`` (source offsets) is cut;
    ``None`` if a deleted part holds a comment."""
    begin, end = _span(ctx, container)
    text = ctx.source[begin:end]
    for start, stop, content in sorted(cuts, reverse=True):
        if not begin <= start <= stop <= end or "#" in ctx.source[start:stop]:
            return None
        text = text[: start - begin] + content + text[stop - begin:]
    return [(container, text)]


# -- statements ----------------------------------------------------------------------
def block_statement(ctx: "Context", node: cst.CSTNode) -> Optional[cst.BaseStatement]:
    """The statement of an indented block (or the module) that holds ``node``; ``None`` inside a
    lambda, whose body runs later."""
    current: cst.CSTNode = node
    for ancestor in ctx.facts.ancestors(node):
        if isinstance(ancestor, cst.Lambda):
            return None
        if isinstance(ancestor, _BLOCKS) and isinstance(current, cst.BaseStatement):
            return current
        current = ancestor
    return None


def line_statement(ctx: "Context", node: cst.CSTNode) -> Optional[cst.SimpleStatementLine]:
    """The statement line holding ``node`` directly (not behind ``if x: ...`` on one line)."""
    statement = block_statement(ctx, node)
    return statement if isinstance(statement, cst.SimpleStatementLine) else None


def insert_before(ctx: "Context", statement: cst.BaseStatement, code: str) -> Optional[Edits]:
    """Put ``code`` on its own line above ``statement``, indented alike (comments above stay above)."""
    indent = _indentation(ctx, statement)
    if indent is None:
        return None
    first = statement
    while isinstance(first, cst.SimpleStatementLine):  # the smallest node the statement starts with
        first = first.body[0]  # type: ignore[assignment]
    return [(first, f"{code}{_newline(ctx)}{indent}{original_text(ctx, first)}")]


def insert_after(ctx: "Context", statement: cst.BaseStatement, code: str) -> Optional[Edits]:
    """Put ``code`` on its own line below ``statement`` (after its last line, comments included)."""
    indent = _indentation(ctx, statement)
    lines = [statement] if isinstance(statement, cst.SimpleStatementLine) else \
        [n for n in ctx.facts.walk(statement) if isinstance(n, cst.SimpleStatementLine)]
    if indent is None or not lines:
        return None
    owner = max(lines, key=lambda n: _span(ctx, n))
    last = owner.trailing_whitespace  # type: ignore[attr-defined]
    start, end = _span(ctx, last)
    text = ctx.source[start:end]
    newline = _newline(ctx)
    if text.endswith(("\n", "\r")):
        return [(last, f"{text}{indent}{code}{newline}")]
    # the file's last line, without a line break: its positions count one that is not there
    if "#" in text or _span(ctx, owner)[1] < _span(ctx, statement)[1]:
        return None
    small = owner.body[-1]  # type: ignore[attr-defined]
    return [(small, f"{original_text(ctx, small)}{newline}{indent}{code}")]


def following(ctx: "Context", statement: cst.BaseStatement) -> list[cst.BaseStatement]:
    """``statement`` and the statements after it in its block."""
    block = ctx.facts.parent(statement)
    body = list(block.body) if isinstance(block, _BLOCKS) else []  # type: ignore[union-attr]
    return body[body.index(statement):] if statement in body else []


def wrap_in(ctx: "Context", statements: Sequence[cst.BaseStatement], header: str) -> Optional[Edits]:
    """Indent consecutive ``statements`` one level under ``header`` (``with torch.no_grad():``).

    ``None`` if a multi-line string is among them: re-indenting its lines would change its value.
    """
    if not statements:
        return None
    indent = _indentation(ctx, statements[0])
    unit = ctx.module.default_indent
    if indent is None:
        return None
    edits: Edits = []
    for number, statement in enumerate(statements):
        for node in ctx.facts.walk(statement):
            if isinstance(node, _STRINGS):
                where = ctx.position(node)
                if where.start.line != where.end.line:
                    return None
        if number:  # comment lines between the statements move with them
            for line in statement.leading_lines:
                if line.comment is not None:
                    edits.append((line.comment, unit + line.comment.value))
        text = _LINE_BREAK.sub(lambda m: m.group(0) + unit, original_text(ctx, statement))
        text = re.sub(rf"(\r\n?|\n){re.escape(unit)}(?=\r|\n)", r"\1", text)  # no spaces on blank lines
        if number == 0:
            text = f"{header}{_newline(ctx)}{indent}{unit}{text}"
        else:
            text = unit + text
        edits.append((statement, text))
    return edits


def module_alias(ctx: "Context", qualname: str) -> Optional[str]:
    """The name this file imports module ``qualname`` as (``torch`` for ``import torch``)."""
    return next((name for name, bound in ctx.facts.names.bindings.items() if bound == qualname), None)


def wrap_evaluation(ctx: "Context", node: cst.CSTNode, anchor: Optional[cst.CSTNode],
                    stop: Callable[[cst.CSTNode], bool], header: str) -> Optional[Edits]:
    """Put the code around ``node`` under ``header``: from the statement holding it in the block of
    ``anchor`` (else in its function's body; else the innermost) to the end of that block or the
    first later statement for which ``stop`` holds."""
    facts = ctx.facts
    found = (block_statement(ctx, n) for n in (node, *facts.ancestors(node)))
    statements = list(dict.fromkeys(s for s in found if s is not None and not isinstance(s, (cst.FunctionDef,
                                                                                             cst.ClassDef))))
    home = facts.parent(block_statement(ctx, anchor)) if anchor is not None else None  # type: ignore[arg-type]
    chosen = next((s for s in statements if facts.parent(s) is home or home is None and
                   isinstance(facts.parent(facts.parent(s)), cst.FunctionDef)),  # type: ignore[arg-type]
                  statements[0] if statements else None)
    if chosen is None:
        return None
    if stop(chosen):
        chosen = statements[0]
    run: list[cst.BaseStatement] = []
    for later in following(ctx, chosen):
        if run and stop(later):
            break
        run.append(later)
    return wrap_in(ctx, run, header)


def around(ctx: "Context", node: cst.CSTNode, limits: "set[cst.CSTNode]", before: str, after: str,
           excluded: Callable[[cst.CSTNode], bool]) -> Optional[Edits]:
    """``before`` above and ``after`` below the outermost statement holding ``node`` in its function,
    not one of ``limits`` nor inside one, nor one ``excluded``; ``None`` if that statement can leave
    early (``return``, ``break``, ``raise``), which would skip ``after``."""
    chosen: Optional[cst.BaseStatement] = None
    for current in (node, *ctx.facts.ancestors(node)):
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) or current in limits:
            break
        statement = block_statement(ctx, current)
        if statement is not None and statement is current and not excluded(current):
            chosen = statement
    if chosen is None or any(isinstance(n, (cst.Return, cst.Yield, cst.Break, cst.Continue, cst.Raise))
                             for n in ctx.facts.walk(chosen)):
        return None
    above, below = insert_before(ctx, chosen, before), insert_after(ctx, chosen, after)
    return above + below if above is not None and below is not None else None


# -- activations -----------------------------------------------------------------------
def activation_operand(ctx: "Context", call: cst.Call) -> Optional[cst.BaseExpression]:
    """The tensor ``call`` applies an activation to: ``x`` in ``F.softmax(x, 1)``, ``x.relu()``,
    ``self.softmax(x)`` (an activation layer), ``nn.Sigmoid()(x)``; ``None`` for anything else."""
    if any(arg.star for arg in call.args):
        return None
    positional = [arg.value for arg in call.args if arg.keyword is None]
    names = ctx.facts.names
    qualname = names.qualname(call.func)
    if qualname is not None:
        kind = L.function_kind(qualname)
        if (qualname in L.ACTIVATION_CALLABLES or (kind is not None and kind.category == L.ACTIVATION)) \
                and positional:
            return positional[0]
        return None
    layer = TensorOps(ctx.facts).layer_class(call.func)
    if layer is not None:
        kind = L.layer_kind(layer[0])
        if kind is not None and kind.category == L.ACTIVATION and len(call.args) == 1 and positional:
            return positional[0]
        return None
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _ACTIVATION_METHODS \
            and not (isinstance(func.value, cst.Name) and func.value.value in ("self", "cls")):
        return func.value
    return None


def drop_activation(ctx: "Context", node: cst.CSTNode) -> Optional[Edits]:
    """Remove the output activation ``node`` is: the call of it (``return F.softmax(x, 1)`` ->
    ``return x``), the last layer of a ``Sequential``, or a Keras layer's ``activation=``."""
    if not isinstance(node, cst.Call):
        return None
    operand = activation_operand(ctx, node)
    if operand is not None:
        text = original_text(ctx, operand)
        return [(node, text if isinstance(operand, _ATOMS) or operand.lpar else f"({text})")]
    qualname = ctx.facts.names.qualname(node.func) or ""
    kind = L.layer_kind(qualname)
    if kind is not None and kind.category == L.ACTIVATION:
        return _drop_last_layer(ctx, node)
    if qualname.startswith("keras."):
        for number, arg in enumerate(node.args):
            if arg.keyword is not None and arg.keyword.value == "activation" and not arg.star:
                return _drop_argument(ctx, node, number)
    return None


def _drop_last_layer(ctx: "Context", layer: cst.Call) -> Optional[Edits]:
    """``nn.Sequential(a, b, act)`` -> ``nn.Sequential(a, b)``; ``keras.Sequential([a, act])`` -> ``[a]``."""
    holder = ctx.facts.parent(layer)
    container = ctx.facts.parent(holder) if holder is not None else None
    if isinstance(holder, cst.Arg) and isinstance(container, cst.Call):
        sequential: Optional[cst.CSTNode] = container
        items: Sequence[Union[cst.Arg, cst.BaseElement]] = container.args
    elif isinstance(holder, cst.Element) and isinstance(container, (cst.List, cst.Tuple)):
        arg = ctx.facts.parent(container)
        sequential = ctx.facts.parent(arg) if isinstance(arg, cst.Arg) else None
        items = container.elements
    else:
        return None
    if not isinstance(sequential, cst.Call) or not (ctx.facts.names.qualname(sequential.func) or "").endswith(
            ".Sequential") or len(items) < 2 or items[-1] is not holder:
        return None
    if any(getattr(item, "keyword", None) is not None or getattr(item, "star", "") for item in items):
        return None
    return _drop_argument(ctx, container, len(items) - 1)


def _drop_argument(ctx: "Context", container: cst.CSTNode, number: int) -> Optional[Edits]:
    """Delete argument (or element) ``number`` of a call or list with the comma that joins it."""
    items = container.args if isinstance(container, cst.Call) else container.elements  # type: ignore[attr-defined]
    item = items[number]
    start, end = _span(ctx, item)
    if number + 1 < len(items):  # `a, item, b` -> `a, b`: up to the next item
        return splice(ctx, container, [(start, _span(ctx, items[number + 1])[0], "")])
    if number == 0:
        return None
    indent = _indentation(ctx, item)
    rest = re.match(r"[ \t]*,?[ \t]*(\r\n|\r|\n)", ctx.source[end:])
    if indent is not None and rest is not None:  # alone on its line(s): the lines go
        return splice(ctx, container, [(start - len(indent), end + rest.end(), "")])
    # the last one: from the end of the one before, keeping a trailing comma's layout
    return splice(ctx, container, [(_span(ctx, items[number - 1])[1], end, "")])


# -- numerics -----------------------------------------------------------------------------
def text_with(ctx: "Context", node: cst.CSTNode, parts: Sequence[tuple[cst.CSTNode, str]]) -> str:
    """The source text of ``node`` with each of ``parts`` (nodes inside it) replaced."""
    begin, end = _span(ctx, node)
    text = ctx.source[begin:end]
    for start, stop, content in sorted(((*_span(ctx, part), content) for part, content in parts), reverse=True):
        text = text[: start - begin] + content + text[stop - begin:]
    return text


def subtract_max(ctx: "Context", exps: Sequence["TensorOp"], total: "TensorOp") -> Optional[Edits]:
    """``exp(x) / sum(exp(x), d, keepdim=True)`` -> ``exp(x - amax(x, d, keepdim=True)) / ...``: each of
    ``exps`` gets the maximum over the summed axes subtracted, spelled like the sum (``total``). Only a
    plain name or attribute is repeated, and only where the maximum is constant along the summed axes
    (all of them, or ``keepdim=True``), so the result is the same."""
    from nnlint.facts.names import dotted_name, literal

    exponent, call = exps[0].operand, total.call
    texts = {original_text(ctx, op.operand) for op in exps if op.operand is not None}
    if exponent is None or dotted_name(exponent) is None or len(texts) != 1 or total.operand is None \
            or not isinstance(call.func, cst.Attribute) or any(a.star for a in call.args):
        return None
    method = total.style == "method"
    keeps = [a for a in call.args if a.keyword is not None and a.keyword.value in ("keepdim", "keepdims")]
    reduced = len(call.args) > (0 if method else 1)
    if reduced and not (keeps and literal(keeps[0].value, None) is True):
        return None  # a reduced axis that the division broadcasts some other way
    name = call.func.attr.value
    if name == "reduce_sum":
        new_name = "reduce_max"
    elif name != "sum":
        return None
    elif method:  # torch tensors: .amax (.max(dim) gives indices too); numpy arrays: .max(axis, keepdims)
        new_name = "amax" if reduced and exps[0].framework == "torch" else "max"
    else:
        new_name = "amax" if total.framework == "torch" else "max"
    text = texts.pop()
    shifted = f"{text} - {text_with(ctx, call, [(total.operand, text), (call.func.attr, new_name)])}"
    edits: Edits = []
    for op in {id(op.call): op for op in exps}.values():
        edits.append((op.operand, f"({shifted})" if op.style == "method" else shifted))  # type: ignore[arg-type]
    return edits


def report_activation(ctx: "Context", code: str, site: "LossSite", message: str, loss_words: str,
                      where: Optional["OutputActivation"], edit: Callable[["Context", cst.CSTNode], Optional[Edits]],
                      fix_message: str) -> None:
    """:func:`~nnlint.facts.losses.report_at_activation`, with ``edit``'s fix (unsafe: code that
    runs the model for inference may expect what the activation made) when the activation is in
    this file."""
    from nnlint.facts.losses import report_at_activation

    outputs = ctx.facts.outputs
    node: Optional[cst.CSTNode] = None
    if where is not None:
        node = where.node
    elif site.prediction is not None:
        node = outputs.activation_site(site.prediction)[0]
    elif site.model is not None and site.model.output_site is not None and \
            site.model.output_site.path == ctx.facts.path:
        node = outputs.node_at(site.model.output_site)
    edits = edit(ctx, node) if node is not None else None
    if node is None or not edits:
        report_at_activation(ctx, code, site, message, loss_words, where)
        return
    ctx.report(node, message, related=[(site.node, loss_words)], fix=edits, fix_message=fix_message,
               applicability="unsafe")


#: softmax spellings -> the sigmoid spelled alike (its namespace kept: ``F.softmax`` -> ``F.sigmoid``)
_SIGMOID_FOR = {
    "torch.nn.Softmax": "Sigmoid", "torch.nn.LogSoftmax": "LogSigmoid",
    "torch.softmax": "sigmoid", "torch.nn.functional.softmax": "sigmoid", "torch.nn.functional.log_softmax": "logsigmoid",
    "tensorflow.nn.softmax": "sigmoid", "tensorflow.math.softmax": "sigmoid",
}


def softmax_to_sigmoid(ctx: "Context", node: cst.CSTNode) -> Optional[Edits]:
    """A softmax over one unit made a sigmoid: ``F.softmax(x, 1)`` -> ``F.sigmoid(x)``, ``x.softmax(-1)``
    -> ``x.sigmoid()``, ``nn.Softmax(dim=1)`` -> ``nn.Sigmoid()``, ``activation="softmax"`` -> ``"sigmoid"``."""
    if not isinstance(node, cst.Call) or any(arg.star for arg in node.args):
        return None
    names = ctx.facts.names
    func = node.func
    for arg in node.args:  # Dense(1, activation="softmax"), Activation("softmax")
        if (arg.keyword is None or arg.keyword.value == "activation") and isinstance(arg.value, cst.SimpleString) \
                and arg.value.evaluated_value == "softmax" and (names.qualname(func) or "").startswith("keras."):
            return [(arg.value, arg.value.value.replace("softmax", "sigmoid"))]
    if isinstance(func, cst.Call):  # nn.Softmax(dim=1)(x)
        replaced = softmax_to_sigmoid(ctx, func)
        return replaced if replaced is not None and replaced[0][0] is func else None
    qualname = names.qualname(func)
    new_name = _SIGMOID_FOR.get(qualname or "")
    operand = next((arg.value for arg in node.args if arg.keyword is None), None)
    if new_name is not None and isinstance(func, cst.Attribute):
        prefix = original_text(ctx, func.value)
        if new_name[0].isupper():
            return [(node, f"{prefix}.{new_name}()")]
        return [(node, f"{prefix}.{new_name}({original_text(ctx, operand)})")] if operand is not None else None
    if qualname is None and isinstance(func, cst.Attribute) and func.attr.value == "softmax" \
            and TensorOps(ctx.facts).op(node) is not None:
        return [(node, f"{original_text(ctx, func.value)}.sigmoid()")]
    return None
