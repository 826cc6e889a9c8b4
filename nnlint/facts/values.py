"""What an expression may hold: one value flow for every fact module.

``Values.origins(expr)`` follows an expression back to the expressions that create what
it holds, the way real training code passes models and losses around:

* local names, through every assignment that may reach the use (``if``/``else`` bindings,
  ``a if c else b``), and a closure's free variable to its one binding in the enclosing function
  (``bce = nn.BCELoss()`` read by a nested ``def loss(output, labels)``);
* parameters, to what every call in the file passes for them (module-level functions,
  ``self.method(...)`` calls, and ``Cls(...)`` for ``__init__``), or the parameter's default
  where a call leaves it out; a ``None`` default the function replaces (``if loss_fn is None:
  loss_fn = ...``) stands for that replacement;
* ``self`` (an instance of the enclosing class) and ``self.attr`` / ``obj.attr``, to every
  ``self.attr = value`` of the class (a trainer that stores ``model``/``criterion`` from its
  constructor) and to class attributes (``LOSS = nn.BCEWithLogitsLoss()``);
* wrappers that keep the model (``.to()``, ``.cuda()``, ``DDP(model)``, ``torch.compile``,
  ``accelerator.prepare``, ``fabric.setup``, ``amp.initialize``, ``model.module``);
* calls of same-file factory functions, and of a class's alternative constructors
  (``Pretrained.load(path)``, a classmethod or staticmethod), to what they return; dict and list
  literals subscripted with a literal key (``self.models["G"]``).

An origin is an expression that is not followed further (``nn.CrossEntropyLoss()``,
``Net()``, ``torchvision.models.resnet18()``), or a :class:`cst.ClassDef` standing for an
instance of that class (``self``). ``None`` means some path could not be followed: callers
treat that as unknown and stay quiet.

The call graph (:meth:`Values.callee`, :meth:`Values.call_sites`) lives here too, so loop,
model and optimizer facts share one answer to "who calls this function with what". Calls of other
files' functions are recorded for the project index (:meth:`Values.call_records`): what each argument
holds and, for a module switched to a mode before the call (``model.train()``), that mode; a name only
``from utils import *`` binds is recorded against each project module star-imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Mapping, Optional, Union

import libcst as cst

from nnlint.facts.index import CallRecord, Passed
from nnlint.facts.names import (BUILTIN_NAMES, LIBRARY_PACKAGES, argument, dotted_name, keyword, literal,
                                 positional)

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.dataflow import Definition

@dataclass(frozen=True, eq=False)
class External:
    """An origin in another file: what a call there passes for a parameter of this file."""

    passed: Passed


Origin = Union[cst.BaseExpression, cst.ClassDef, External]

Function = cst.FunctionDef

#: ``x.to(device)`` and friends return the module itself
PASS_THROUGH_METHODS = frozenset({
    "to", "cuda", "cpu", "train", "eval", "double", "float", "half", "bfloat16", "requires_grad_",
    "share_memory", "to_empty", "xpu", "mps",
})
#: callables whose first argument (``module``/``model``) is what they return, wrapped
WRAPPERS: Mapping[str, str] = {
    "torch.nn.DataParallel": "module",
    "torch.nn.parallel.DataParallel": "module",
    "torch.nn.parallel.DistributedDataParallel": "module",
    "torch.nn.DistributedDataParallel": "module",
    "torch.compile": "model",
    "torch.jit.script": "obj",
    "torch.distributed.fsdp.FullyShardedDataParallel": "module",
    "torch.nn.SyncBatchNorm.convert_sync_batchnorm": "module",
    "apex.parallel.DistributedDataParallel": "module",
    "apex.parallel.convert_syncbn_model": "module",
    "copy.deepcopy": "x",
    "torch.distributed.tensor.parallel.parallelize_module": "module",
    "torch.distributed.fsdp.fully_shard": "module",
    "torch.distributed._composable.fsdp.fully_shard": "module",
}
#: methods of framework objects that return their arguments wrapped, in order
#: (``model, opt = accelerator.prepare(model, opt)``)
TUPLE_WRAPPER_METHODS = frozenset({"prepare", "setup", "initialize", "prepare_model"})
_TUPLE_WRAPPER_FUNCTIONS = frozenset({"apex.amp.initialize"})
_MAX_DEPTH = 16
_MAX_ORIGINS = 8


def _is_none(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


class Values:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._active: set[int] = set()
        self._memo: dict[int, Optional[tuple[Origin, ...]]] = {}

    # -- value flow ----------------------------------------------------------------
    def origins(self, expr: Optional[cst.BaseExpression]) -> Optional[tuple[Origin, ...]]:
        """Every expression ``expr`` may hold the value of (see the module doc); ``None`` if unknown."""
        if expr is None:
            return None
        found = self._origins(expr, 0)
        if found is None:
            return None
        unique: list[Origin] = []
        for origin in found:
            if not any(origin is seen for seen in unique):
                unique.append(origin)
        return tuple(unique) if len(unique) <= _MAX_ORIGINS else None

    def _origins(self, expr: cst.BaseExpression, depth: int) -> Optional[list[Origin]]:
        if depth > _MAX_DEPTH or id(expr) in self._active:
            return None  # too deep, or a cycle (``x = f(x)``): unknown
        if id(expr) in self._memo:
            held = self._memo[id(expr)]
            return list(held) if held is not None else None
        self._active.add(id(expr))
        try:
            found = self._step(expr, depth)
        finally:
            self._active.discard(id(expr))
        if depth == 0 or found is not None:
            self._memo[id(expr)] = tuple(found) if found is not None else None
        return found

    def _all(self, exprs: list[cst.BaseExpression], depth: int) -> Optional[list[Origin]]:
        out: list[Origin] = []
        for expr in exprs:
            found = self._origins(expr, depth + 1)
            if found is None:
                return None
            out.extend(found)
        return out

    def _step(self, expr: cst.BaseExpression, depth: int) -> Optional[list[Origin]]:
        facts = self._facts
        if isinstance(expr, cst.Name):
            return self._name(expr, depth)
        if isinstance(expr, cst.IfExp):
            return self._all([expr.body, expr.orelse], depth)
        if isinstance(expr, cst.Attribute):
            return self._attribute(expr, depth)
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, depth)
        if isinstance(expr, cst.Call):
            func = expr.func
            qualname = facts.names.qualname(func)
            if qualname in WRAPPERS:
                inner = argument(expr, 0, WRAPPERS[qualname])
                return self._all([inner], depth) if inner is not None else None
            if isinstance(func, cst.Attribute) and qualname is None and func.attr.value in PASS_THROUGH_METHODS:
                return self._all([func.value], depth)
            function = self.callee(expr)
            if function is not None and not self._is_method(function):
                returns = self.returns(function)
                if returns and all(value is not None for value in returns):
                    return self._all([v for v in returns if v is not None], depth)
        return [expr]

    def _name(self, name: cst.Name, depth: int) -> Optional[list[Origin]]:
        facts = self._facts
        definitions = facts.dataflow.definitions(name)
        if name.value == "None" and not definitions:
            return []  # ``self.model = None`` until set up: no model, and nothing to contradict one
        if not definitions:
            if name.value in facts.names.classes or name.value in facts.names.functions \
                    or name.value in facts.names.bindings:
                return [name]  # a class, function or imported object: a value of its own
            # a closure's free variable (``bce`` made by the factory that defines ``def loss(...)``)
            enclosing = facts.dataflow.enclosing_value(name)
            return self._origins(enclosing, depth + 1) if enclosing is not None else None
        out: list[Origin] = []
        for definition in definitions:
            if definition.value is not None:
                found = self._origins(definition.value, depth + 1)
            elif isinstance(definition.statement, cst.Param):
                found = self._parameter(definition.statement, depth)
                if found is None and self._replaced_when_none(definition.statement, definitions):
                    found = []  # ``if loss_fn is None: loss_fn = ...``: the default's value is the other binding
            elif definition.unpacked is not None and definition.element is not None:
                found = self._element(definition.unpacked, definition.element, depth)
            elif isinstance(definition.statement, (cst.FunctionDef, cst.ClassDef)):
                found = [name]
            else:
                found = None
            if found is None:
                return None
            out.extend(found)
        return out

    def _replaced_when_none(self, param: cst.Param, definitions: tuple["Definition", ...]) -> bool:
        """A parameter that defaults to ``None`` and that its function rebinds under ``if name is None:``
        (one of ``definitions``, those that reach a later use)."""
        if param.default is None or not _is_none(param.default):
            return False
        name = param.name.value
        for definition in definitions:
            if definition.statement is param:
                continue
            test = next((a.test for a in self._facts.ancestors(definition.statement) if isinstance(a, cst.If)), None)
            if isinstance(test, cst.Comparison) and isinstance(test.left, cst.Name) and test.left.value == name \
                    and len(test.comparisons) == 1 and isinstance(test.comparisons[0].operator, cst.Is) \
                    and _is_none(test.comparisons[0].comparator):
                return True
        return False

    def _element(self, source: cst.BaseExpression, element: int, depth: int) -> Optional[list[Origin]]:
        """``a, b = source``: what position ``element`` of ``source`` holds."""
        if isinstance(source, (cst.Tuple, cst.List)):
            items = [e.value for e in source.elements]
            if element < len(items) and not any(isinstance(e, cst.StarredElement) for e in source.elements):
                return self._all([items[element]], depth)
            return None
        if isinstance(source, cst.Call) and self._wraps_arguments(source):
            value = positional(source, element)
            return self._all([value], depth) if value is not None else None
        return None

    def _wraps_arguments(self, call: cst.Call) -> bool:
        func = call.func
        qualname = self._facts.names.qualname(func)
        if qualname in _TUPLE_WRAPPER_FUNCTIONS:
            return True
        return (isinstance(func, cst.Attribute) and qualname is None and func.attr.value in TUPLE_WRAPPER_METHODS
                and not any(arg.star for arg in call.args))

    def _parameter(self, param: cst.Param, depth: int) -> Optional[list[Origin]]:
        facts = self._facts
        function = facts.parent(facts.parent(param))  # Param -> Parameters -> FunctionDef
        if not isinstance(function, cst.FunctionDef):
            return None
        owner = self.class_of(function)
        positional_params = [*function.params.posonly_params, *function.params.params]
        if owner is not None and positional_params and positional_params[0] is param \
                and not self._is_static(function):
            return [owner]  # ``self``: an instance of the class
        arguments = self.arguments_for(function, param)
        if arguments is None and not self.call_sites(function):
            external = self._passed_from_other_files(function, owner, param, depth)
            if external is not None:
                return external
        if arguments is None:
            if param.default is not None and not self.call_sites(function) \
                    and literal(param.default, None) is None and not _is_none(param.default):
                # called only from other files (``def __init__(self, loss=nn.CrossEntropyLoss())``):
                # the default is what the author meant it to hold
                return self._all([param.default], depth)
            return None
        values: list[cst.BaseExpression] = []
        for value in arguments:
            if value is None:
                if param.default is None:
                    return None
                value = param.default
            values.append(value)
        return self._all(values, depth)

    def _passed_from_other_files(self, function: Function, owner: Optional[cst.ClassDef], param: cst.Param,
                                 depth: int) -> Optional[list[Origin]]:
        """What the calls in other files pass for a parameter of a module-level function, or of a
        module-level class's ``__init__`` (``None`` when any of them is not known)."""
        facts = self._facts
        module = facts.module_name
        if owner is not None:
            if function.name.value != "__init__" or facts.names.classes.get(owner.name.value) is not owner:
                return None
            target = f"{module}.{owner.name.value}"
        elif facts.names.functions.get(function.name.value) is function:
            target = f"{module}.{function.name.value}"
        else:
            return None
        records = facts.project.calls_to(target) if module else ()
        if not records:
            return None
        params = [*function.params.posonly_params, *function.params.params]
        if owner is not None:
            params = params[1:]
        index = next((i for i, p in enumerate(params) if p is param), None)
        out: list[Origin] = []
        for record in records:
            given, passed = record.passed(index, param.name.value)
            if not given:
                if param.default is None:
                    return None
                found = self._origins(param.default, depth + 1)
                if found is None:
                    return None
                out.extend(found)
            elif passed is None:
                return None
            else:
                out.append(External(passed))
        return out

    def call_records(self) -> tuple[CallRecord, ...]:
        """The calls this file makes of other project modules' functions and classes, with what
        each argument is where that is known (for :meth:`ProjectIndex.calls_to`)."""
        out: list[CallRecord] = []
        for call in self._facts.calls():
            targets = self._call_targets(call)
            if not targets or any(arg.star for arg in call.args):
                continue
            positional: list[Optional[Passed]] = []
            keywords: list[tuple[str, Optional[Passed]]] = []
            modes: list[tuple[str, str]] = []
            for arg in call.args:
                passed = self._passed(arg.value)
                key = arg.keyword.value if arg.keyword is not None else str(len(positional))
                if arg.keyword is None:
                    positional.append(passed)
                else:
                    keywords.append((arg.keyword.value, passed))
                mode = self._facts.evaluation.switched_mode(call, arg.value)
                if mode is not None:
                    modes.append((key, mode))
            if modes or any(p is not None for p in positional) or any(p is not None for _, p in keywords):
                out.extend(CallRecord(target, tuple(positional), tuple(keywords), tuple(modes)) for target in targets)
        return tuple(out)

    def _call_targets(self, call: cst.Call) -> tuple[str, ...]:
        """The other project module functions a call may run: its qualified name, or for a name only a
        star import can bind (``from utils import *; evaluate(model)``) that name in each project module
        star-imported (which one defines it is known once every file is summarised)."""
        names = self._facts.names
        own = names.module_name + "." if names.module_name else None
        qualname = names.qualname(call.func)
        if qualname is not None:
            if qualname.split(".", 1)[0] in LIBRARY_PACKAGES or (own and qualname.startswith(own)):
                return ()
            return (qualname,)
        func = call.func
        if not isinstance(func, cst.Name) or not names.star_modules or func.value in names.locally_bound \
                or func.value in BUILTIN_NAMES:
            return ()
        return tuple(f"{module}.{func.value}" for module in names.star_modules
                     if module.split(".", 1)[0] not in LIBRARY_PACKAGES)

    def _passed(self, expr: cst.BaseExpression) -> Optional[Passed]:
        """What creates the value of an argument, when every origin agrees (``Net().cuda()`` -> ``Net()``)."""
        origins = self.origins(expr)
        if not origins:
            return None
        names = self._facts.names
        found: set[tuple[str, bool]] = set()
        for origin in origins:
            if isinstance(origin, External):
                found.add((origin.passed.qualname, origin.passed.called))
                continue
            if isinstance(origin, cst.Call):
                qualname, called = names.qualname(origin.func), True
            elif isinstance(origin, (cst.Name, cst.Attribute)):
                qualname, called = names.qualname(origin), False
            else:
                return None
            if qualname is None:
                return None
            found.add((qualname, called))
        if len(found) != 1:
            return None
        qualname, called = found.pop()
        return Passed(qualname, called)

    def _attribute(self, expr: cst.Attribute, depth: int) -> Optional[list[Origin]]:
        if self._facts.names.qualname(expr) is not None:
            return [expr]  # ``nn.CrossEntropyLoss`` and other imported objects
        owners = self._origins(expr.value, depth + 1)
        if not owners:
            return None
        if expr.attr.value == "module" and not any(isinstance(o, cst.ClassDef) for o in owners):
            # ``model.module``: the model a DDP/DataParallel wrapper holds (the wrapper was unwrapped
            # on the way here; on anything else, ``.module`` would not exist)
            return owners
        if not all(isinstance(o, cst.ClassDef) for o in owners):
            return None
        out: list[Origin] = []
        for owner in owners:
            assert isinstance(owner, cst.ClassDef)
            assigned = self.attribute_values(owner, expr.attr.value)
            if not assigned:
                return None
            found = self._all(list(assigned), depth)
            if found is None:
                return None
            out.extend(found)
        return out

    def _subscript(self, expr: cst.Subscript, depth: int) -> Optional[list[Origin]]:
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return None
        key = literal(expr.slice[0].slice.value, None)
        if key is None:
            return None
        containers = self._origins(expr.value, depth + 1)
        if not containers:
            return None
        out: list[cst.BaseExpression] = []
        for container in containers:
            if isinstance(container, cst.Dict):
                matches = [e.value for e in container.elements
                           if isinstance(e, cst.DictElement) and literal(e.key, None) == key]
                if len(matches) != 1:
                    return None
                out.append(matches[0])
            elif isinstance(container, (cst.List, cst.Tuple)) and isinstance(key, int):
                items = container.elements
                if any(isinstance(e, cst.StarredElement) for e in items) or not -len(items) <= key < len(items):
                    return None
                out.append(items[key].value)
            else:
                return None
        return self._all(out, depth)

    # -- lists built up ------------------------------------------------------------
    def list_items(self, expr: cst.BaseExpression) -> Optional[list[cst.BaseExpression]]:
        """The elements of a list in order, where ``expr`` is a list literal or a local list built
        with ``append``/``extend``/``+=`` (``layers = []; layers.append(nn.Linear(4, 2))``).

        A loop's additions count once, in source order (the last element added is still the last).
        ``None`` when anything else may change the list: an addition under ``if``/``try``, the list
        passed to another function, a starred or comprehension element.
        """
        if isinstance(expr, (cst.List, cst.Tuple)):
            return self._literal_items(expr)
        if isinstance(expr, cst.Call):  # ``*block(64, 128)``, ``*make_layers(cfg)``: what the helper returns
            function = self.callee(expr)
            returns = self.returns(function) if function is not None and not self._is_method(function) else []
            if len(returns) == 1 and isinstance(returns[0], (cst.List, cst.Tuple, cst.Name)):
                return self.list_items(returns[0])
            return None
        if not isinstance(expr, cst.Name):
            return None
        facts = self._facts
        dataflow = facts.dataflow
        scope = dataflow.scope_of(expr)
        if scope is None:
            return None
        bindings = dataflow.assignments(scope, expr.value)
        plain = [d for d in bindings if isinstance(d.statement, cst.Assign)]
        if len(plain) != 1 or not isinstance(plain[0].value, (cst.List, cst.Tuple)):
            return None
        start = plain[0].statement
        items = self._literal_items(plain[0].value)
        if items is None:
            return None
        use_at = facts._tree.index(expr)
        start_at = facts._tree.index(start)
        if use_at is None or start_at is None or start_at > use_at:
            return None
        for use in facts.nodes_of(cst.Name, within=scope):
            at = facts._tree.index(use)
            if use.value != expr.value or use is expr or at is None or at <= start_at or at >= use_at:
                continue
            if dataflow.scope_of(use) is not scope:
                return None  # used in a nested function: may change at any time
            added = self._addition(use)
            if added is None:
                return None
            if any(isinstance(a, (cst.If, cst.Try, cst.IfExp)) for a in self._between(scope, use)):
                return None  # added only sometimes
            items.extend(added)
        return items

    def _addition(self, use: cst.Name) -> Optional[list[cst.BaseExpression]]:
        """What one mention of a list adds to it (``[]`` for a read), ``None`` when unknown."""
        facts = self._facts
        parent = facts.parent(use)
        if isinstance(parent, cst.AugAssign) and parent.target is use and isinstance(parent.operator, cst.AddAssign):
            return self._literal_items(parent.value) if isinstance(parent.value, (cst.List, cst.Tuple)) else None
        if isinstance(parent, cst.Attribute) and parent.value is use:
            call = facts.parent(parent)
            method = parent.attr.value
            if isinstance(call, cst.Call) and call.func is parent:
                if method == "append" and len(call.args) == 1 and not call.args[0].star:
                    return [call.args[0].value]
                if method == "extend" and len(call.args) == 1 and isinstance(call.args[0].value, (cst.List, cst.Tuple)):
                    return self._literal_items(call.args[0].value)
            if method in ("append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort"):
                return None
            return []
        if isinstance(parent, cst.Arg) or isinstance(parent, (cst.Assign, cst.AugAssign, cst.Del)):
            return None  # handed to a function, or rebound
        return []

    def _between(self, scope: cst.CSTNode, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        for ancestor in self._facts.ancestors(node):
            if ancestor is scope:
                return
            yield ancestor

    def _literal_items(self, literal_list: cst.BaseExpression) -> Optional[list[cst.BaseExpression]]:
        assert isinstance(literal_list, (cst.List, cst.Tuple))
        out: list[cst.BaseExpression] = []
        for element in literal_list.elements:
            if isinstance(element, cst.StarredElement):
                inner = self.list_items(element.value)
                if inner is None:
                    return None
                out.extend(inner)
            else:
                out.append(element.value)
        return out

    # -- classes -----------------------------------------------------------------
    def attribute_values(self, owner: cst.ClassDef, attr: str) -> tuple[cst.BaseExpression, ...]:
        """Every value ``self.<attr>`` is assigned in the class, or its class attribute value."""
        table = self._attribute_table(owner)
        return table.get(attr, ())

    def _attribute_table(self, owner: cst.ClassDef) -> dict[str, tuple[cst.BaseExpression, ...]]:
        memo = self.__dict__.setdefault("_attribute_tables", {})
        table = memo.get(id(owner))
        if table is None:
            found: dict[str, list[cst.BaseExpression]] = {}
            facts = self._facts
            for statement in facts.nodes_of(cst.Assign, cst.AnnAssign, within=owner.body):
                value = getattr(statement, "value", None)
                if value is None:
                    continue
                targets = ([t.target for t in statement.targets] if isinstance(statement, cst.Assign)
                           else [statement.target])  # type: ignore[attr-defined]
                for target in targets:
                    if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                            and target.value.value == "self":
                        found.setdefault(target.attr.value, []).append(value)
                    elif isinstance(target, cst.Name) and facts.parent(facts.parent(statement)) is owner.body:
                        found.setdefault(target.value, []).append(value)  # a class attribute
            for statement in facts.nodes_of(cst.AugAssign, within=owner.body):
                target = statement.target  # type: ignore[attr-defined]
                if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                        and target.value.value == "self":
                    found[target.attr.value] = []  # ``self.x += ...``: not one value
            for call in facts.nodes_of(cst.Call, within=owner.body):
                # ``setattr(self, "model", value)`` assigns an attribute too: its value is not one we follow
                if isinstance(call.func, cst.Name) and call.func.value == "setattr":  # type: ignore[attr-defined]
                    attribute = literal(positional(call, 1), None)  # type: ignore[arg-type]
                    if isinstance(attribute, str):
                        found[attribute] = []
            table = {k: tuple(v) for k, v in found.items() if v}
            memo[id(owner)] = table
        return table

    # -- call graph ------------------------------------------------------------------
    def class_of(self, function: Function) -> Optional[cst.ClassDef]:
        """The class ``function`` is a method of (``None`` for functions)."""
        parent = self._facts.parent(function)
        grand = self._facts.parent(parent) if parent is not None else None
        return grand if isinstance(grand, cst.ClassDef) else None

    def _is_method(self, function: Function) -> bool:
        return self.class_of(function) is not None

    def _is_static(self, function: Function) -> bool:
        return any(isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
                   for d in function.decorators)

    def method(self, owner: cst.ClassDef, name: str) -> Optional[Function]:
        if not isinstance(owner.body, cst.IndentedBlock):
            return None
        for statement in owner.body.body:
            if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
                return statement
        return None

    def callee(self, call: cst.Call) -> Optional[Function]:
        """The same-file function or method a call runs, if it is certain."""
        func = call.func
        facts = self._facts
        names = facts.names
        if isinstance(func, cst.Name):
            name = func.value
            for ancestor in facts.ancestors(call):
                if isinstance(ancestor, cst.FunctionDef) and isinstance(ancestor.body, cst.IndentedBlock):
                    for statement in ancestor.body.body:
                        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
                            return statement
            if name in names.functions and name not in names.bindings:
                return names.functions[name]
            return None
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            caller = next((a for a in facts.ancestors(call) if isinstance(a, cst.FunctionDef)), None)
            owner = self.class_of(caller) if caller is not None else None
            return self.method(owner, func.attr.value) if owner is not None else None
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) \
                and func.value.value in names.classes and func.value.value not in names.bindings:
            # ``Wrapper.load(path)``: a class or static method (an alternative constructor)
            method = self.method(names.classes[func.value.value], func.attr.value)
            if method is not None and any(dotted_name(d.decorator) in ("classmethod", "staticmethod")
                                          for d in method.decorators):
                return method
        return None

    @cached_property
    def _call_sites(self) -> Mapping[int, tuple[cst.Call, ...]]:
        sites: dict[int, list[cst.Call]] = {}
        classes = self._facts.names.classes
        for call in self._facts.calls():
            function = self.callee(call)
            if function is not None:
                sites.setdefault(id(function), []).append(call)
            elif isinstance(call.func, cst.Name) and call.func.value in classes \
                    and call.func.value not in self._facts.names.bindings:
                init = self.method(classes[call.func.value], "__init__")
                if init is not None:
                    sites.setdefault(id(init), []).append(call)
        return {k: tuple(v) for k, v in sites.items()}

    def call_sites(self, function: Function) -> tuple[cst.Call, ...]:
        """Calls of ``function`` in this file (by name, ``self.<method>``, or ``Cls(...)`` for ``__init__``)."""
        return self._call_sites.get(id(function), ())

    def all_calls_seen(self, function: Function) -> bool:
        """Is every use of ``function``'s name in this file a call of it (so no unseen caller in this file)?

        A function passed on as a value (``map(run, xs)``, ``Thread(target=run)``), rebound
        (``run = torch.compile(run)``) or called with ``*args`` may be called with anything.
        """
        memo = self.__dict__.setdefault("_complete", {})
        if id(function) not in memo:
            memo[id(function)] = self._check_all_calls_seen(function)
        return memo[id(function)]

    def _check_all_calls_seen(self, function: Function) -> bool:
        facts = self._facts
        owner = self.class_of(function)
        name = owner.name.value if owner is not None and function.name.value == "__init__" else function.name.value
        calls = self.call_sites(function)
        if not calls or any(arg.star for call in calls for arg in call.args):
            return False
        callers = {id(call.func) for call in calls}
        callers |= {id(call.func.attr) for call in calls if isinstance(call.func, cst.Attribute)}
        for call in calls:
            if isinstance(call.func, cst.Name) and \
                    [d.statement for d in facts.dataflow.definitions(call.func)] not in ([function], [owner], []):
                return False  # another binding of the name may be what is called
        for use in facts.nodes_of(cst.Name):
            if use.value != name or id(use) in callers or use is function.name \
                    or (owner is not None and use is owner.name):
                continue
            parent = facts.parent(use)
            if isinstance(parent, cst.Attribute) and parent.attr is use and not (
                    isinstance(parent.value, cst.Name) and parent.value.value == "self" and owner is not None):
                continue  # ``obj.run``: another object's attribute
            if isinstance(parent, cst.Arg) and parent.keyword is use:
                continue  # ``f(run=...)``: a keyword
            if isinstance(parent, (cst.ImportAlias, cst.ImportFrom)):
                continue
            return False
        if owner is not None and function.name.value != "__init__":
            # ``super().method()`` or a subclass may call it with other arguments
            return not any(self._facts.names.classes.get(c) is not owner and self._subclasses(c, owner)
                           for c in self._facts.names.classes)
        return True

    def _subclasses(self, name: str, owner: cst.ClassDef) -> bool:
        cls = self._facts.names.classes[name]
        return any(isinstance(base.value, cst.Name) and base.value.value == owner.name.value for base in cls.bases)

    def arguments_for(self, function: Function, param: cst.Param) -> Optional[list[Optional[cst.BaseExpression]]]:
        """What each call in this file passes for ``param`` (``None`` entries: the call leaves it
        to its default); ``None`` when the calls are not known to be all of them."""
        if not self.all_calls_seen(function):
            return None
        params = [*function.params.posonly_params, *function.params.params]
        if self.class_of(function) is not None and not self._is_static(function):
            params = params[1:]  # ``self`` is the receiver (or the new instance)
        index = next((i for i, p in enumerate(params) if p is param), None)
        if index is None and not any(p is param for p in function.params.kwonly_params):
            return None  # *args / **kwargs
        found: list[Optional[cst.BaseExpression]] = []
        for call in self.call_sites(function):
            value = keyword(call, param.name.value)
            if value is None and index is not None:
                value = positional(call, index)
            found.append(value)
        return found

    def returns(self, function: Function) -> list[Optional[cst.BaseExpression]]:
        """What each ``return`` of ``function`` itself (not of a nested function) returns."""
        dataflow = self._facts.dataflow
        return [r.value for r in self._facts.nodes_of(cst.Return, within=function.body)  # type: ignore[attr-defined]
                if dataflow.scope_of(r) is function]

    def functions(self) -> Iterator[Function]:
        return iter(self._facts.nodes_of(cst.FunctionDef))  # type: ignore[arg-type]
