"""What a tensor expression went through: the ops that reach an output, and the activation it ends in.

The output of a model or a prediction is found by tracing an expression backwards through its
main input (first positional argument, or the receiver of a tensor method). The trace also
follows ``if``/``else`` bindings that agree, helper methods (``self.decode(z)``),
``data_parallel``/``checkpoint`` calls, the elements of a tuple output
(``recon, mu, logvar = model(x)``), a function's parameter to what every call in the file
passes for it, a module built and called inline (``nn.LogSoftmax(dim=1)(x)``), and lists of
head outputs (``outs.append(F.softmax(head(h), 1))`` in a loop, ``acc = torch.cat((acc, out))``
onto an empty tensor, read back by ``for out, y in zip(outs, ys)`` or ``torch.stack(outs)``)
when every element agrees. A call of a model is one op standing for the whole model (its
:class:`ModelSummary`, from :mod:`nnlint.facts.models`); a value that may be one of several
models (chosen by a flag) is traced once per model (:meth:`OutputFacts.output_activations`).
Anything it cannot follow leaves the activation ``None``, which keeps rules quiet.

Questions answered (through ``FileFacts.outputs``):

* :meth:`OutputFacts.activation_of` - the last activation applied to a tensor expression
* :meth:`OutputFacts.trace` / :meth:`OutputFacts.steps` - the ops applied to it, output first (with
  layer widths and, inside a model class, the layers ``__init__`` made)
* :meth:`OutputFacts.output_activations` - every activation a prediction may end in, one per value
  it may hold, with where each is applied
* :meth:`OutputFacts.branch_activations` - the activations an ``if`` branch before the use may
  apply to a name (``if cond: logits = logits.softmax(-1)``)
* :meth:`OutputFacts.activation_with` - the activation a prediction ends in alongside a loss chosen by
  a flag (``nn.Sigmoid() if n == 1 else nn.Identity()`` with ``nn.BCELoss() if n == 1 else ...``)
* :meth:`OutputFacts.activation_site` - where the last activation is applied (a node of this file,
  or the site another file recorded)
* :meth:`OutputFacts.node_at` - the call of this file at a recorded site
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, TypeVar

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.index import ModelSummary, Site
from nnlint.facts.names import argument, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.dataflow import Definition
    from nnlint.facts.models import Layer

#: how deep traces, nested models and factories are followed
MAX_DEPTH = 12
#: bindings of one name traced separately at most (each is followed to its own depth limit)
MAX_BRANCHES = 4
_T = TypeVar("_T")

#: functions that call their first argument on the rest: ``data_parallel(self.main, x, ids)`` is ``self.main(x)``
_APPLY_FUNCTIONS = frozenset({"torch.nn.parallel.data_parallel", "torch.utils.checkpoint.checkpoint"})
#: constructors of an empty tensor a loop then concatenates onto
_EMPTY_TENSORS = frozenset({"torch.tensor", "torch.Tensor", "torch.empty", "torch.zeros", "torch.FloatTensor"})
_CONCATENATE = frozenset({"torch.cat", "torch.concat", "torch.concatenate"})


@dataclass(frozen=True)
class Step:
    """One op of a traced tensor expression (:meth:`OutputFacts.steps`): ``Linear``/dense, 1 unit."""

    kind: str
    category: str
    #: literal output width of a dense layer (or a model's output width)
    units: Optional[int] = None
    #: for a model step (category ``model``), the model's ``output_activation``
    output_activation: Optional[str] = None
    #: for a model step, the model's layer kinds in data-flow order (``ModelSummary.layers``)
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Op:
    """One step of a traced data flow."""

    kind: str
    category: str
    units: Optional[int] = None
    inner: Optional[ModelSummary] = None
    #: the node that applies it in this file (``F.softmax(...)``, the ``nn.Softmax()`` layer)
    node: Optional[cst.CSTNode] = None
    #: for an ``ALTERNATIVES`` op: the traces of each value the expression may hold (``net``
    #: is one of three models chosen by a flag), output first
    alternatives: tuple[tuple["Op", ...], ...] = ()


#: the category of an op standing for several possible values whose traces differ
ALTERNATIVES = "alternatives"


@dataclass(frozen=True)
class OutputActivation:
    """One activation a prediction may end in (:meth:`OutputFacts.output_activations`)."""

    #: ``"softmax"``, ``"log_softmax"``, ... (``None``: none, or not known)
    activation: Optional[str]
    #: the node of this file that applies it, if it is in this file
    node: Optional[cst.CSTNode]
    #: where it is applied, when another file recorded it
    site: Optional[Site]


class OutputFacts:
    """Traces of tensor expressions (``facts.outputs``): what reaches a prediction, which
    activation it ends in, and where that activation is applied."""

    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        #: sub-traces of the query being answered (see ops)
        self._trace_memo: Optional[dict[tuple[Any, ...], tuple[Any, ...]]] = None

    def activation_of(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """The last activation applied to a tensor expression (``F.softmax(x)``, ``model(x)``), else ``None``."""
        ops = self.ops(expr, None, 0)
        return output_activation(ops)

    def trace(self, expr: Optional[cst.BaseExpression]) -> tuple[str, ...]:
        """Op kinds applied to a tensor expression, output first (``("Softmax", "Linear")``)."""
        return tuple(op.kind for op in self.ops(expr, None, 0))

    def steps(self, expr: Optional[cst.BaseExpression]) -> tuple[Step, ...]:
        """Ops applied to a tensor expression, output first, with layer widths.

        Unlike :meth:`trace`, inside a model class ``self.fc(x)`` is the layer that
        ``__init__`` assigned to ``self.fc`` (so ``F.softmax(self.fc(x), -1)`` is known to
        apply a softmax to an ``nn.Linear`` output). Nothing is skipped: a reshape between
        two ops is a ``shape`` step.
        """
        attributes = self._enclosing_layers(expr) if expr is not None else None
        return tuple(Step(op.kind, op.category, op.units, op.inner.output_activation if op.inner else None,
                          op.inner.layers if op.inner else ())
                     for op in self.ops(expr, attributes, 0))

    def activation_site(self, expr: Optional[cst.BaseExpression]) -> tuple[Optional[cst.CSTNode], Optional[Site]]:
        """Where the last activation applied to a tensor expression is: a node of this file
        (``F.softmax(...)`` in ``forward``, the ``nn.Softmax()`` layer), or the site another file
        recorded for its model's output; ``(None, None)`` when not known."""
        attributes = self._enclosing_layers(expr) if expr is not None else None
        return self._where(output_op(self.ops(expr, attributes, 0)))

    def output_activations(self, expr: Optional[cst.BaseExpression]) -> tuple[OutputActivation, ...]:
        """Every activation the output ``expr`` may end in, one per value it may hold (``net`` is
        one of three models chosen by a flag: three entries), with where each is applied; one
        entry when the values agree, and none when the trace is lost."""
        attributes = self._enclosing_layers(expr) if expr is not None else None
        found: list[OutputActivation] = []
        pending = [self.ops(expr, attributes, 0)]
        while pending and len(found) <= 4 * MAX_BRANCHES:
            ops = pending.pop(0)
            op = output_op(ops)
            if op is not None and op.category == ALTERNATIVES:
                pending.extend(list(alternative) for alternative in op.alternatives)
                continue
            node, site = self._where(op)
            found.append(OutputActivation(output_activation(ops), node, site))
        return tuple(found) if not pending else ()

    def branch_activations(self, expr: Optional[cst.BaseExpression]) -> tuple[OutputActivation, ...]:
        """The activations a prediction may hold by way of an ``if`` branch of its own function that
        applies one to it (``if self.reward_ids is not None: logits = logits.softmax(-1)`` before the
        loss): each binding of the name (through selections and reshapes) that is an activation
        written in such a branch, when the bindings that reach it disagree. A branch under a test of
        a training flag (``if not self.training:``) does not count: it may never run while training."""
        while isinstance(expr, cst.Subscript) or (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)
                                                  and expr.func.attr.value in L.RESHAPE_METHODS):
            expr = expr.value if isinstance(expr, cst.Subscript) else expr.func.value  # type: ignore[union-attr]
        if not isinstance(expr, cst.Name):
            return ()
        definitions = self._facts.dataflow.definitions(expr)
        function = _function_of(self._facts, expr)
        if not 1 < len(definitions) <= MAX_BRANCHES or function is None:
            return ()
        attributes = self._enclosing_layers(expr)
        found: list[OutputActivation] = []
        for definition in definitions:
            statement = definition.statement
            if definition.value is None or not isinstance(statement, cst.Assign) \
                    or _function_of(self._facts, statement) is not function \
                    or not any(isinstance(a, cst.If) for a in _ancestors_within(self._facts, statement, function)) \
                    or self._leaves_before(statement, expr, function):
                continue
            ops = self.ops(definition.value, attributes, 0)
            op = output_op(ops)
            if op is not None and op.category == L.ACTIVATION and isinstance(op.node, cst.Call) \
                    and _function_of(self._facts, op.node) is function \
                    and not self._facts.dropout.under_training_test(op.node):
                found.append(OutputActivation(output_activation(ops), op.node, None))
        return tuple(found)

    def _leaves_before(self, statement: cst.CSTNode, use: cst.CSTNode, function: cst.FunctionDef) -> bool:
        """A block around ``statement`` that ``use`` is not in ends in ``return``, ``raise``,
        ``continue`` or ``break``: the binding never reaches the use."""
        around_use = {id(a) for a in self._facts.ancestors(use)}
        for block in _ancestors_within(self._facts, statement, function):
            if isinstance(block, cst.IndentedBlock) and id(block) not in around_use and block.body and \
                    isinstance(block.body[-1], cst.SimpleStatementLine) and any(
                        isinstance(small, (cst.Return, cst.Raise, cst.Continue, cst.Break))
                        for small in block.body[-1].body):
                return True
        return False

    def activation_with(self, expr: Optional[cst.BaseExpression], chosen: cst.CSTNode) -> Optional[str]:
        """The activation ``expr`` ends in when it goes with ``chosen`` (a loss made under one side of a
        test, ``nn.BCELoss() if n == 1 else nn.CrossEntropyLoss()``): values chosen under the other side
        of the same test (``nn.Sigmoid() if n == 1 else nn.Identity()``) are left out."""
        side = self._sides(chosen)
        attributes = self._enclosing_layers(expr) if expr is not None else None
        return output_activation(self._narrowed(self.ops(expr, attributes, 0), side))

    def _narrowed(self, ops: list[Op], side: dict[str, bool]) -> list[Op]:
        if not ops or ops[-1].category != ALTERNATIVES or not side:
            return ops
        kept = [self._narrowed(list(alternative), side) for alternative in ops[-1].alternatives
                if not self._contradicts(alternative, side)]
        return ops[:-1] + _either(kept) if kept else []

    def _contradicts(self, ops: tuple[Op, ...], side: dict[str, bool]) -> bool:
        """The first op of a trace that is written somewhere lies on the other side of a test in ``side``."""
        node = next((op.node for op in ops if op.node is not None), None)
        return node is not None and any(side.get(test) is (not taken) for test, taken in self._sides(node).items())

    def _sides(self, node: cst.CSTNode) -> dict[str, bool]:
        """The tests of the ``if``s and conditional expressions around ``node`` in its function, by their
        code, with whether ``node`` is in the branch taken when the test holds."""
        found: dict[str, bool] = {}
        child: cst.CSTNode = node
        module = self._facts.module
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                break
            if isinstance(ancestor, (cst.If, cst.IfExp)) and child is not ancestor.test:
                found.setdefault(" ".join(module.code_for_node(ancestor.test).split()), child is ancestor.body)
            child = ancestor
        return found

    def node_at(self, site: Site) -> Optional[cst.CSTNode]:
        """The call of this file that starts where ``site`` does (a model defined in this file)."""
        for call in self._facts.calls():
            try:
                where = self._facts.positions[call]
            except Exception:
                return None
            if where.start.line == site.line and where.start.column + 1 == site.column \
                    and where.end.line == site.end_line and where.end.column + 1 == site.end_column:
                return call
        return None

    def ops(self, expr: Optional[cst.BaseExpression], attributes: Optional[dict[str, Layer]],
            depth: int, bound: Optional[dict[int, cst.BaseExpression]] = None) -> list[Op]:
        """Ops applied to ``expr``, output first, following main inputs and local assignments
        (for :mod:`nnlint.facts.models`, which summarises what ``forward`` returns).

        ``attributes`` are the layers of the model class being traced, by ``self`` attribute; ``bound`` maps id(parameter) of the helper methods being traced through to what the call passed.
        """
        # Branches, call sites and helper methods fan out, and one sub-expression can be reached
        # along many paths (if/elif chains in a loop): within one query each is traced once, and
        # one reached again while it is being traced (a cycle) is unknown.
        outermost = self._trace_memo is None
        if outermost:
            self._trace_memo = {}
        memo = self._trace_memo
        assert memo is not None
        key = (id(expr), id(attributes), tuple(sorted((k, id(v)) for k, v in bound.items())) if bound else ())
        try:
            held = memo.get(key)
            if held is not None:
                return list(held[0]) if held[0] is not None else []
            # the entry also holds the keyed objects, so their ids stay unique while it exists
            memo[key] = (None, expr, attributes, bound)
            ops = self._trace_steps(expr, attributes, depth, bound)
            memo[key] = (tuple(ops), expr, attributes, bound)
            return ops
        finally:
            if outermost:
                self._trace_memo = None

    def op_of_call(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int) -> list[Op]:
        """What applying this call does to its main input (empty when it is not a known op)."""
        names = self._facts.names
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("forward", "__call__") \
                and isinstance(func.value, (cst.Name, cst.Attribute)):
            func = func.value  # ``self.fc.forward(x)`` / ``model.forward(x)``: the module applied
        if isinstance(func, cst.Call):  # Keras functional layer application
            layer = self._facts.models.layer(func, None, depth + 1)
            return layer_ops(layer) if layer is not None else []
        if (attributes is not None and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value == "self" and func.attr.value in attributes):
            layer = attributes[func.attr.value]
            applied = layer.inner.applies_argument if layer.inner is not None else None
            if applied is not None and depth < MAX_DEPTH:
                # ``self.wrap(x, nn.Sequential(self.fc, self.softmax))``: the module it is given makes the output
                return self._module_ops(positional(call, applied), attributes, depth + 1)
            if layer.category == L.ACTIVATION and layer.inner is None:
                # ``self.softmax(x)``: the fix goes where forward applies it, not where __init__ made it
                return [Op(layer.kind, layer.category, layer.units, node=call)]
            return layer_ops(layer)
        qualname = names.qualname(func)
        if qualname is not None:
            kind = L.function_kind(qualname) or _callable_activation(qualname)
            if kind is not None:
                return [Op(kind.kind, kind.category, node=call)]
            functional = L.TF_FUNCTIONAL_LAYERS.get(qualname)
            if functional is not None:
                return self._functional_layer_ops(call, functional)
            output = self._called_function_output(call, qualname, depth)
            if output is not None:
                return [Op(output.name, L.MODEL, output.output_units, output, node=call)]
            return []
        if isinstance(func, cst.Attribute) and func.attr.value in L.TENSOR_METHODS:
            if attributes is not None and isinstance(func.value, cst.Name) and func.value.value == "self":
                # a layer attribute __init__ does not make plainly (``self.relu = nn.ReLU() if a else
                # nn.Identity()``): its name says nothing about what it computes
                return []
            kind = L.TENSOR_METHODS[func.attr.value]
            return [Op(kind.kind, kind.category, node=call)]
        if isinstance(func, cst.Name) and depth < MAX_DEPTH:
            layer = self._facts.models.layer(func, None, depth + 1)
            if layer is not None and layer.category == L.ACTIVATION and layer.inner is None:
                # ``m = nn.LogSoftmax(dim=1); pred = m(pred)``: applied here, where the fix goes
                return [Op(layer.kind, layer.category, node=call)]
            chosen = self._chosen_activation(func, depth)
            if chosen:
                return chosen
        if isinstance(func, (cst.Name, cst.Attribute)) and depth < MAX_DEPTH:
            summary = self._facts.models.model_of(func, depth + 1)
            if summary is not None:
                return [Op(summary.name, L.MODEL, summary.output_units, summary)]
            options = self._facts.models.candidates(func)
            if options and len(options) <= 2 * MAX_BRANCHES:  # one of several models (chosen by a flag)
                return _either([[Op(m.name, L.MODEL, m.output_units, m)] for m in options])
        return []

    def _chosen_activation(self, func: cst.Name, depth: int) -> list[Op]:
        """``act = nn.Sigmoid() if n == 1 else nn.Identity(); act(x)``: the activation module chosen by
        a flag, one alternative per module (each at its constructor); empty unless every one is a plain
        activation or ``Identity``."""
        origins = self._facts.values.origins(func)
        if not origins or not 1 < len(origins) <= MAX_BRANCHES:
            return []
        traces: list[list[Op]] = []
        for origin in origins:
            layer = self._facts.models.layer(origin, None, depth + 1) if isinstance(origin, cst.Call) else None
            if layer is None or layer.inner is not None or not (
                    layer.category == L.ACTIVATION or (layer.category == L.SHAPE and layer.kind == "Identity")):
                return []
            traces.append([Op(layer.kind, layer.category, node=origin)])
        return _either(traces)

    def output_site(self, ops_out_first: list[Op]) -> Optional[Site]:
        """Where the activation a trace ends in is applied (``None`` when not known or when the
        alternatives disagree)."""
        op = output_op(ops_out_first)
        if op is None:
            return None
        if op.category == ALTERNATIVES:
            return agreed([self.output_site(list(alternative)) for alternative in op.alternatives])
        if op.category == L.ACTIVATION:
            return self._facts.site(op.node) if op.node is not None else None
        return op.inner.output_site if op.inner is not None else None

    def _enclosing_layers(self, node: cst.CSTNode) -> Optional[dict[str, Layer]]:
        """The layers of the model class around ``node``, by attribute, if assigned exactly once."""
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, cst.ClassDef):
                if self._facts.models.framework_of_class(ancestor) is None:
                    return None
                # ``if binary: self.fc = Linear(k, 1) else: self.fc = Linear(k, n)``: not one layer
                counts: dict[str, int] = {}
                for statement in self._facts.walk(ancestor.body):
                    targets: list[cst.BaseExpression] = []
                    if isinstance(statement, cst.Assign):
                        targets = [t.target for t in statement.targets]
                    elif isinstance(statement, (cst.AnnAssign, cst.AugAssign)):
                        targets = [statement.target]
                    for target in targets:
                        if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                                and target.value.value == "self"):
                            counts[target.attr.value] = counts.get(target.attr.value, 0) + 1
                return {name: layer for name, layer in self._facts.models.init_layers(ancestor).items() if counts.get(name) == 1}
        return None

    def _where(self, op: Optional[Op]) -> tuple[Optional[cst.CSTNode], Optional[Site]]:
        if op is None:
            return None, None
        if op.category == L.ACTIVATION:
            return op.node, None
        site = self.output_site([op])
        if site is not None and site.path == self._facts.path:
            return self.node_at(site), site
        return None, site

    def _main_input(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        if isinstance(call.func, cst.Call):  # Keras functional: Dense(10)(x)
            return positional(call, 0)
        if isinstance(call.func, cst.Attribute) and self._facts.names.qualname(call.func) is None:
            if call.func.attr.value in L.TENSOR_METHODS:
                return call.func.value
        return positional(call, 0)

    def _trace_steps(self, expr: Optional[cst.BaseExpression], attributes: Optional[dict[str, Layer]],
                     depth: int, bound: Optional[dict[int, cst.BaseExpression]]) -> list[Op]:
        ops: list[Op] = []
        steps = 0
        while expr is not None and steps < 64 and depth < MAX_DEPTH:
            steps += 1
            if isinstance(expr, cst.Name):
                definitions = self._facts.dataflow.definitions(expr)
                if len(definitions) > 1:  # ``acc = torch.tensor([])`` then ``acc = torch.cat((acc, out))``
                    definitions = self._without_seed(expr, definitions)
                if 1 < len(definitions) <= MAX_BRANCHES and all(d.value is not None for d in definitions):
                    # ``if ...: out = a(x) else: out = b(x)``: known only if every branch agrees
                    ops.extend(_either([self.ops(d.value, attributes, depth + 1, bound) for d in definitions]))
                    break
                if len(definitions) != 1:
                    break
                value = definitions[0].value
                if value is None and bound is not None and id(definitions[0].statement) in bound:
                    expr = bound[id(definitions[0].statement)]  # a helper method's parameter
                    continue
                statement = definitions[0].statement
                if isinstance(value, cst.List):  # ``outs = []; for h in self.heads: outs.append(F.softmax(h(x), 1))``
                    ops.extend(self._rows(expr, attributes, depth, bound))
                    break
                if value is None and isinstance(statement, cst.For):
                    expr = _loop_source(statement, expr.value)  # ``for out in outputs``: a row of ``outputs``
                    continue
                if value is None and definitions[0].element is not None:
                    # ``recon, mu, logvar = model(x)``: that element of the model's tuple output
                    ops.extend(self._tuple_element(definitions[0], attributes, depth))
                    break
                if value is None:
                    # a parameter: what every call of the function in this file passes for it
                    arguments = self._call_site_arguments(definitions[0].statement) or []
                    ops.extend(_either([self.ops(a, None, depth + 1) for a in arguments]))
                    break
                expr = value
                continue
            if isinstance(expr, cst.Attribute) and expr.attr.value == "data":
                expr = expr.value  # ``out.data``: the same values
                continue
            if isinstance(expr, cst.Subscript):
                element = self._subscript_element(expr, attributes, depth)
                if element is not None:
                    ops.extend(element)
                    break
                expr = expr.value  # ``out[:, :n]``, ``out[mask]``: a selection keeps what the values mean
                continue
            if isinstance(expr, cst.Call):
                joined = self._joined(expr, attributes, depth, bound)
                if joined is not None:
                    ops.extend(joined)
                    break
            if isinstance(expr, cst.Call) and self._facts.names.qualname(expr.func) in _APPLY_FUNCTIONS:
                callee = positional(expr, 0)
                if callee is None:
                    break
                expr = cst.Call(func=callee, args=expr.args[1:])  # data_parallel(m, x, ids) -> m(x, ids)
                continue
            if isinstance(expr, cst.Call):
                found = self.op_of_call(expr, attributes, depth)
                if not found:
                    inlined = self._through_helper_method(expr, attributes, depth, bound)
                    if inlined is not None:
                        ops.extend(inlined)
                    break
                ops.extend(reversed(found))
                expr = self._main_input(expr)
                continue
            break
        return ops

    def _subscript_element(self, expr: cst.Subscript, attributes: Optional[dict[str, Layer]],
                           depth: int) -> Optional[list[Op]]:
        """``model(x)[0]`` where the model returns a tuple, ``out["seg"]`` with ``out = model(x)``
        where it returns a dict: that element's ops (``None`` otherwise)."""
        source = self._facts.dataflow.resolve(expr.value) if isinstance(expr.value, cst.Name) else expr.value
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index) \
                or not isinstance(source, cst.Call):
            return None
        index = literal(expr.slice[0].slice.value, None)
        if not isinstance(index, str) and type(index) is not int:
            return None  # ``out[mask]``, ``out[:, :n]``: a selection, not an element (no model to resolve)
        found = self.op_of_call(source, attributes, depth)
        if len(found) != 1 or found[0].inner is None or not found[0].inner.output_elements:
            return None
        model = found[0].inner
        if isinstance(index, str) and model.element_keys:
            return [Op(model.name, L.MODEL, None, _element(model, model.element_keys.index(index)))] \
                if index in model.element_keys else []
        if type(index) is not int or model.element_keys:
            return None
        if not 0 <= index < len(model.output_elements):
            return []
        return [Op(model.name, L.MODEL, None, _element(model, index))]

    def _joined(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int,
                bound: Optional[dict[int, cst.BaseExpression]]) -> Optional[list[Op]]:
        """Calls that keep what their inputs' values mean: ``torch.cat([a, b])`` (when the parts
        agree), ``Variable(out)``, and ``exp`` of a log-softmax/log-sigmoid (a softmax/sigmoid)."""
        names = self._facts.names
        qualname = names.qualname(call.func)
        if qualname in ("torch.cat", "torch.stack", "torch.concat", "torch.concatenate"):
            parts = argument(call, 0, "tensors")
            if isinstance(parts, cst.Name) and isinstance(self._facts.dataflow.value_of(parts), cst.List):
                return self._rows(parts, attributes, depth, bound)  # ``torch.stack(outs)``, ``outs = []`` appended to
            if isinstance(parts, (cst.Name, cst.Call)):  # ``torch.stack(model(x))``: rows of a list of outputs
                return self.ops(parts, attributes, depth + 1, bound)
            if not isinstance(parts, (cst.List, cst.Tuple)) or not parts.elements \
                    or any(isinstance(e, cst.StarredElement) for e in parts.elements):
                return []
            # ``acc = torch.cat((acc, out))`` accumulates in a loop: the parts added are what it holds
            target = self._facts.parent(call)
            accumulator = target.targets[0].target if isinstance(target, cst.Assign) and len(target.targets) == 1 \
                else None
            values = [e.value for e in parts.elements if not (isinstance(accumulator, cst.Name) and isinstance(
                e.value, cst.Name) and e.value.value == accumulator.value)]
            return agreed([self.ops(value, attributes, depth + 1, bound) for value in values]) or []
        if qualname == "torch.autograd.Variable":
            inner = positional(call, 0)
            return self.ops(inner, attributes, depth + 1, bound) if inner is not None else []
        is_exp = qualname == "torch.exp" or (qualname is None and isinstance(call.func, cst.Attribute)
                                             and call.func.attr.value == "exp" and not call.args)
        if is_exp:
            inner = positional(call, 0) if qualname == "torch.exp" else call.func.value  # type: ignore[union-attr]
            below = self.ops(inner, attributes, depth + 1, bound)
            if below and below[0].category == L.ACTIVATION and below[0].kind in ("LogSoftmax", "LogSigmoid"):
                kind = "Softmax" if below[0].kind == "LogSoftmax" else "Sigmoid"
                return [Op(kind, L.ACTIVATION, node=call)] + below[1:]
            return []
        return None

    def _without_seed(self, name: cst.Name, definitions: list["Definition"]) -> list["Definition"]:
        """The bindings of ``name`` less an empty tensor (``torch.tensor([])``, ``torch.empty(0)``)
        that the others only concatenate onto (``acc = torch.cat((acc, out))``)."""
        qualname = self._facts.names.qualname

        def seed(value: Optional[cst.BaseExpression]) -> bool:
            if not isinstance(value, cst.Call) or len(value.args) != 1 or value.args[0].keyword is not None \
                    or qualname(value.func) not in _EMPTY_TENSORS:
                return False
            only = value.args[0].value
            return (isinstance(only, (cst.List, cst.Tuple)) and not only.elements) or literal(only, None) == 0

        def accumulates(value: Optional[cst.BaseExpression]) -> bool:
            parts = argument(value, 0, "tensors") if isinstance(value, cst.Call) \
                and qualname(value.func) in _CONCATENATE else None
            return isinstance(parts, (cst.List, cst.Tuple)) and any(
                isinstance(e.value, cst.Name) and e.value.value == name.value for e in parts.elements)

        rest = [d for d in definitions if not seed(d.value)]
        return rest if rest and len(rest) < len(definitions) and all(accumulates(d.value) for d in rest) \
            else definitions

    def _rows(self, name: cst.Name, attributes: Optional[dict[str, Layer]], depth: int,
              bound: Optional[dict[int, cst.BaseExpression]]) -> list[Op]:
        """The ops of each element of a list built by ``append`` (a row of a list of head outputs),
        when every element agrees; empty otherwise."""
        items = self._facts.values.list_items(name)
        if not items or len(items) > 2 * MAX_BRANCHES:
            return []
        return agreed([self.ops(item, attributes, depth + 1, bound) for item in items]) or []

    def _tuple_element(self, definition: "Definition", attributes: Optional[dict[str, Layer]],
                       depth: int) -> list[Op]:
        source, element = definition.unpacked, definition.element
        if not isinstance(source, cst.Call) or element is None:
            return []
        found = self.op_of_call(source, attributes, depth)
        if len(found) != 1 or found[0].inner is None:
            return []
        model = found[0].inner
        if element >= len(model.output_elements) or model.element_keys:  # unpacking a dict gives its keys
            return []
        return [Op(model.name, L.MODEL, None, _element(model, element))]

    def _through_helper_method(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int,
                               bound: Optional[dict[int, cst.BaseExpression]]) -> Optional[list[Op]]:
        """``self.decode(z)`` inside a model class: the ops of what ``decode`` returns, its
        parameters bound to the call's arguments (``None`` when that is not known)."""
        func = call.func
        if attributes is None or not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                                      and func.value.value == "self") or func.attr.value in attributes:
            return None
        owner = next((a for a in self._facts.ancestors(func) if isinstance(a, cst.ClassDef)), None)
        method = self._facts.values.method(owner, func.attr.value) if owner is not None else None
        if method is None or any(a is method for a in self._facts.ancestors(func)):
            return None  # not a method of this class, or a recursive call
        parameters = [*method.params.posonly_params, *method.params.params][1:]  # without self
        if any(arg.star for arg in call.args) or len(call.args) > len(parameters):
            return None
        binding = dict(bound or {})
        for index, parameter in enumerate(parameters):
            value = keyword(call, parameter.name.value)
            if value is None:
                value = positional(call, index)
            if value is not None:
                binding[id(parameter)] = value
        returns = self._facts.values.returns(method)
        if not returns or any(value is None for value in returns) or len(returns) > MAX_BRANCHES:
            return None
        return agreed([self.ops(value, attributes, depth + 1, binding) for value in returns])

    def _functional_layer_ops(self, call: cst.Call, layer: L.FunctionalLayer) -> list[Op]:
        units = literal(argument(call, *layer.units), None)
        ops = [Op(layer.kind, layer.category, units if type(units) is int else None, node=call)]
        chosen = keyword(call, layer.activation_keyword)
        activation = self._facts.models.keras_activation(chosen) if chosen is not None else layer.default_activation
        if activation is not None:
            ops.append(Op(activation, L.ACTIVATION, node=call))
        return ops

    def _called_function_output(self, call: cst.Call, qualname: str, depth: int) -> Optional[ModelSummary]:
        """What a call of a plain function returns, when that function builds and returns an
        output (see :meth:`ModelFacts.function_output`): one of this file, or of another project file."""
        values = self._facts.values
        function = values.callee(call)
        if function is not None:
            if values.class_of(function) is not None:
                return None  # methods: ``_through_helper_method`` binds ``self`` and the arguments
            return self._facts.models.function_output(function, depth + 1)
        if depth >= MAX_DEPTH:
            return None
        summary = self._facts.project.model(qualname, near=self._facts.path)
        return summary if summary is not None and summary.returns_output else None

    def _call_site_arguments(self, binding: cst.CSTNode) -> Optional[list[cst.BaseExpression]]:
        """What each call in this file passes for a parameter (its default where a call leaves it
        out); ``None`` when the binding is not a parameter or its callers are not all known."""
        facts = self._facts
        if not isinstance(binding, cst.Param):
            return None
        function = facts.parent(facts.parent(binding))  # Param -> Parameters -> FunctionDef
        if not isinstance(function, cst.FunctionDef):
            return None
        arguments = facts.values.arguments_for(function, binding)
        if not arguments:
            return None
        if any(value is None for value in arguments):
            if binding.default is None:
                return None
            return [binding.default if value is None else value for value in arguments]
        return [value for value in arguments if value is not None]

    def _module_ops(self, expr: Optional[cst.BaseExpression], attributes: dict[str, Layer], depth: int) -> list[Op]:
        """What a module value handed to another module computes, input first: ``self.fc``, a
        module made in place, or ``nn.Sequential(self.fc, self.softmax)`` built in ``forward``."""
        if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"
                and expr.attr.value in attributes):
            return layer_ops(attributes[expr.attr.value])
        if isinstance(expr, cst.Call) and self._facts.names.qualname(expr.func) == "torch.nn.Sequential" \
                and all(arg.keyword is None and not arg.star for arg in expr.args):
            ops: list[Op] = []
            for arg in expr.args:
                ops.extend(self._module_ops(arg.value, attributes, depth + 1) or [Op("Unknown", L.OTHER)])
            return ops
        layer = self._facts.models.layer(expr, None, depth)
        return layer_ops(layer) if layer is not None else []


# -- helpers --------------------------------------------------------------------


def layer_ops(layer: Layer) -> list[Op]:
    """Ops of one layer in data-flow order (a Keras Dense with ``activation=`` is two ops)."""
    if layer.inner is not None:
        return [Op(layer.kind, layer.category, layer.inner.output_units, layer.inner)]
    ops = [Op(layer.kind, layer.category, layer.units, node=layer.node)]
    if layer.activation is not None:
        ops.append(Op(layer.activation, L.ACTIVATION, node=layer.node))
    return ops


def _callable_activation(qualname: str) -> Optional[L.Kind]:
    kind = L.ACTIVATION_CALLABLES.get(qualname)
    return L.Kind(kind, L.ACTIVATION) if kind is not None else None


def _activation_name(kind: Optional[str]) -> Optional[str]:
    if kind is None:
        return None
    return L.ACTIVATION_FUNCTIONS.get(kind, kind.lower())


def output_op(ops_out_first: list[Op]) -> Optional[Op]:
    """The op that decides the output activation: an activation, a model applied last, or the
    alternatives of a value that may be one of several."""
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT):
            continue
        if op.category in (L.ACTIVATION, ALTERNATIVES) or op.inner is not None:
            return op
        return None
    return None


def output_activation(ops_out_first: list[Op]) -> Optional[str]:
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT):
            continue
        if op.category == L.ACTIVATION:
            return _activation_name(op.kind)
        if op.category == ALTERNATIVES:
            return agreed([output_activation(list(alternative)) for alternative in op.alternatives])
        if op.inner is not None:
            return op.inner.output_activation
        return None
    return None


def output_units(ops_out_first: list[Op]) -> Optional[int]:
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT, L.ACTIVATION):
            continue
        if op.category == ALTERNATIVES:
            return agreed([output_units(list(alternative)) for alternative in op.alternatives])
        return op.units
    return None


def _function_of(facts: "FileFacts", node: cst.CSTNode) -> Optional[cst.FunctionDef]:
    return next((a for a in facts.ancestors(node) if isinstance(a, cst.FunctionDef)), None)


def _ancestors_within(facts: "FileFacts", node: cst.CSTNode, outer: cst.CSTNode) -> list[cst.CSTNode]:
    """The ancestors of ``node`` below ``outer``."""
    found: list[cst.CSTNode] = []
    for ancestor in facts.ancestors(node):
        if ancestor is outer:
            break
        found.append(ancestor)
    return found


def _loop_source(loop: cst.For, name: str) -> Optional[cst.BaseExpression]:
    """What a loop variable is a row of: ``outputs`` for ``for out in outputs``, ``for i, out in
    enumerate(outputs)`` and ``for out, y in zip(outputs, ys)``; ``None`` when not known."""
    target, source = loop.target, loop.iter
    if isinstance(target, cst.Name):
        return source if target.value == name else None
    if not isinstance(target, cst.Tuple) or not isinstance(source, cst.Call) or not isinstance(source.func, cst.Name) \
            or any(arg.star or arg.keyword is not None for arg in source.args):
        return None
    names = [e.value.value if isinstance(e.value, cst.Name) else None for e in target.elements]
    if name not in names:
        return None
    index = names.index(name)
    if source.func.value == "enumerate" and len(names) == 2 and index == 1 and source.args:
        return source.args[0].value
    if source.func.value == "zip" and len(names) == len(source.args):
        return source.args[index].value
    return None


def _either(traces: list[list[Op]]) -> list[Op]:
    """The trace of a value that may come from any of ``traces``: theirs when they agree, an
    ``ALTERNATIVES`` op when they differ, and nothing when one of them is not known."""
    same = agreed(traces)
    if same is not None:
        return same
    if len(traces) < 2 or not all(traces):
        return []
    return [Op(ALTERNATIVES, ALTERNATIVES, alternatives=tuple(tuple(trace) for trace in traces))]


def agreed(results: list[_T]) -> Optional[_T]:
    """The result every branch, return or call site gave; ``None`` when they differ or there are none."""
    if results and all(result == results[0] for result in results[1:]):
        return results[0]
    return None


def _element(summary: ModelSummary, index: int) -> ModelSummary:
    """One element of a model's tuple output (``recon, mu, logvar = model(x)``), as a model of its own."""
    site = summary.element_sites[index] if index < len(summary.element_sites) else None
    return dataclasses.replace(summary, output_activation=summary.output_elements[index], output_units=None,
                               output_elements=(), element_sites=(), element_keys=(), output_site=site)
