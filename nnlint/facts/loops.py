"""Training loops and the order of what one iteration does.

A *training loop* is a ``for``/``while`` whose iteration calls ``backward()`` and an
optimizer ``step()``, directly or through functions/methods of the same file (their
bodies are inlined, a few calls deep, with parameters renamed to the caller's
arguments). When loops nest, the innermost loop that does both is the training loop
(``for epoch: train(...)`` where ``train`` holds the batch loop: the batch loop);
loops around it are *outer loops* (epochs).

One iteration is a flat, source-ordered tuple of :class:`Event` s. An event under an
``if``/``else``, an ``except`` or an inner loop carries :class:`Guard` s, so rules can
tell "conditional" (gradient accumulation) and "mutually exclusive" (``if amp: ... else:
...``) apart. Receivers are the dotted text of the object acted on (``optimizer``,
``self.opt``, ``netD``), renamed through helper parameters and simple aliases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Mapping, Optional, Sequence, Union

import libcst as cst

from nnlint.facts.names import argument, dotted_name, keyword, literal, positional
from nnlint.facts.tree import children
from nnlint.facts.values import PASS_THROUGH_METHODS

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

Loop = Union[cst.For, cst.While]
Function = cst.FunctionDef

_MAX_INLINE_DEPTH = 3
_CLIP_FUNCTIONS = frozenset({"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"})
_GRAD_OFF = frozenset({"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad",
                       "torch.autograd.grad_mode.no_grad", "torch.autograd.grad_mode.inference_mode"})
_SET_GRAD = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
_GRAD_ON = frozenset({"torch.enable_grad", "torch.autograd.enable_grad"})
_GRAD_OFF_WRAPPER = re.compile(r"inference_mode|no_grad", re.I)
_OPTIMIZER_NAME = re.compile(r"(.*optimi[sz]er.*|.*optim|optim.*|(.*_)?opt(_.*|[a-z0-9]{0,2}))")
_EVAL_FUNCTION = re.compile(r"(^|_)(eval|evaluate|evaluation|valid|validate|validation|val|test|estimate)", re.I)


@dataclass(frozen=True)
class Guard:
    """A block that may not run on every iteration: one branch of an ``if``, an inner loop, an ``except``."""

    node: cst.CSTNode
    #: which branch of ``node`` (``if``: 0 body, 1 else; ``try``: 1+ handlers/else)
    branch: int


@dataclass(frozen=True, eq=False)
class Event:
    """Something one iteration does that matters for training (``kind``), in source order."""

    #: "zero_grad" | "backward" | "step" | "clip" | "unscale" | "eval" | "train" | "save" | "call"
    kind: str
    node: cst.CSTNode
    #: dotted text of what is acted on (optimizer, model, callee for "call"); ``None``: unknown
    receiver: Optional[str]
    guards: tuple[Guard, ...] = ()
    #: helper calls through which the event was reached, outermost first
    via: tuple[cst.Call, ...] = ()
    #: gradients are off here (``torch.no_grad()``, ``inference_mode``, a decorated helper)
    grad_disabled: bool = False
    #: for a backward through ``scaler.scale(loss).backward()``: the scaler's text
    scaler: Optional[str] = None

    @property
    def conditional(self) -> bool:
        return bool(self.guards)

    @property
    def inner_loops(self) -> tuple[cst.CSTNode, ...]:
        return tuple(g.node for g in self.guards if isinstance(g.node, (cst.For, cst.While)))


@dataclass(frozen=True, eq=False)
class TrainingLoop:
    #: the loop, or a Lightning ``training_step`` with manual optimization (the trainer loops over it)
    node: Union[Loop, Function]
    #: the function holding the loop (``None``: module level)
    function: Optional[Function]
    events: tuple[Event, ...]

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]


def exclusive(first: Event, second: Event) -> bool:
    """Are the two events in different branches of one ``if`` (or ``try``), so never in one iteration?"""
    branches = {g.node: g.branch for g in first.guards}
    return any(g.node in branches and branches[g.node] != g.branch for g in second.guards)


def is_eval_function_name(name: str) -> bool:
    return bool(_EVAL_FUNCTION.search(name))


def looks_like_optimizer(text: Optional[str]) -> bool:
    if not text:
        return False
    last = text.rsplit(".", 1)[-1].lower()
    return "sched" not in last and bool(_OPTIMIZER_NAME.fullmatch(last))


class LoopFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._iterations: dict[cst.CSTNode, tuple[Event, ...]] = {}

    # -- loops -------------------------------------------------------------------
    @cached_property
    def loops(self) -> tuple[Loop, ...]:
        # exact classes: ``type(n) in`` is much cheaper than isinstance on libcst's ABC-based nodes
        return tuple(n for n in self._facts.walk() if type(n) in _LOOP_TYPES)

    def iteration(self, loop: Union[Loop, Function]) -> tuple[Event, ...]:
        """What one pass through ``loop``'s body does, helpers inlined."""
        if isinstance(loop, cst.FunctionDef):
            return self.body_events(loop)
        cached = self._iterations.get(loop)
        if cached is None:
            walker = _Walker(self, self.function_of(loop))
            walker.block(loop.body, _State(guards=(), via=(), grad_disabled=self.grad_disabled(loop),
                                           renames={}, stack=()))
            cached = tuple(walker.events)
            self._iterations[loop] = cached
        return cached

    @cached_property
    def clipping_functions(self) -> tuple[Function, ...]:
        """The functions that clip gradients themselves (``clip_grad_norm_``, ``self.clip_gradients``)."""
        found: dict[int, Function] = {}
        for call in self._facts.calls():
            func = call.func
            last = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
            if last in _CLIP_FUNCTIONS or last == "clip_gradients":
                function = self.function_of(call)
                if function is not None:
                    found.setdefault(id(function), function)
        return tuple(found.values())

    def body_events(self, function: Function) -> tuple[Event, ...]:
        """What one call of ``function`` does, in order, helpers inlined (a loop inside it is an
        event's guard: see :attr:`Event.inner_loops`)."""
        cached = self._iterations.get(function)
        if cached is None:
            walker = _Walker(self, function)
            walker.block(function.body, _State(guards=(), via=(), grad_disabled=self.decorated_no_grad(function),
                                               renames={}, stack=(function,)))
            cached = tuple(walker.events)
            self._iterations[function] = cached
        return cached

    @cached_property
    def training_loops(self) -> tuple[TrainingLoop, ...]:
        candidates = [loop for loop in self.loops if self._trains(self.iteration(loop))]
        found: list[TrainingLoop] = []
        candidate_set = set(candidates)
        for loop in candidates:
            events = self.iteration(loop)
            # an outer loop whose steps all happen in an inner training loop is an epoch loop
            steps = [e for e in events if e.kind == "step"]
            if all(any(inner in candidate_set for inner in e.inner_loops) for e in steps):
                continue
            found.append(TrainingLoop(loop, self.function_of(loop), events))
        for function in self._facts.nodes_of(cst.FunctionDef):
            # Lightning manual optimization: the trainer calls ``training_step`` once per batch
            if function.name.value == "training_step" and self.class_of(function) is not None:  # type: ignore[attr-defined]
                events = self.body_events(function)  # type: ignore[arg-type]
                if self._trains(events):
                    found.append(TrainingLoop(function, function, events))  # type: ignore[arg-type]
        return tuple(found)

    @cached_property
    def outer_loops(self) -> tuple[Loop, ...]:
        """Loops around a training loop (in the same function or through a helper call): epoch loops."""
        training = {t.node for t in self.training_loops}
        return tuple(
            loop for loop in self.loops
            if loop not in training and any(inner in training for e in self.iteration(loop) for inner in e.inner_loops)
        )

    def _trains(self, events: Sequence[Event]) -> bool:
        kinds = {e.kind for e in events}
        return "backward" in kinds and "step" in kinds

    # -- optimizers ------------------------------------------------------------------
    @cached_property
    def optimizer_constructions(self) -> Mapping[str, tuple[cst.Call, ...]]:
        """Dotted target text -> the optimizer constructor calls assigned to it (``optimizer = optim.Adam(...)``)."""
        found: dict[str, list[cst.Call]] = {}
        for node in self._facts.walk():
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) and self.is_optimizer_call(node.value):
                for target in node.targets:
                    text = dotted_name(target.target)
                    if text is not None:
                        found.setdefault(text, []).append(node.value)
        return {k: tuple(v) for k, v in found.items()}

    def is_optimizer_call(self, call: cst.Call) -> bool:
        qualname = self._facts.names.qualname(call.func)
        if qualname is None:
            return False
        if "lr_scheduler" in qualname or "sched" in qualname.lower():
            return False
        return qualname.startswith("torch.optim.") or qualname.split(".")[-1].endswith(("Optimizer", "Adam", "AdamW"))

    def is_optimizer(self, text: Optional[str]) -> bool:
        return text is not None and (text in self.optimizer_constructions or looks_like_optimizer(text))

    def models_of_optimizer(self, text: Optional[str]) -> Optional[frozenset[str]]:
        """The models whose ``.parameters()`` an optimizer was built over; ``None`` if unknown."""
        if text is None or text not in self.optimizer_constructions:
            return None
        models: set[str] = set()
        for call in self.optimizer_constructions[text]:
            params = argument(call, 0, "params")
            if params is None:
                return None
            found = self._parameter_owners(params)
            if not found:
                return None
            models |= found
        return frozenset(models)

    def _parameter_owners(self, params: cst.BaseExpression) -> set[str]:
        owners: set[str] = set()
        for node in self._facts.walk(params):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "parameters", "named_parameters"
            ):
                owner = dotted_name(node.func.value)
                if owner is not None:
                    owners.add(owner)
        if not owners and isinstance(params, cst.Name):
            value = self._facts.dataflow.value_of(params)
            if value is not None and value is not params:
                return self._parameter_owners(value)
        return owners

    def zeroes(self, zero: Event, optimizer: Optional[str]) -> bool:
        """Does the ``zero_grad`` event clear the gradients that ``optimizer.step()`` uses?"""
        target = zero.receiver
        if target is None or optimizer is None or target == optimizer:
            return True
        if self.is_optimizer(target):
            # two different optimizers: only certain when both are known and distinct
            return not (self.is_optimizer(optimizer) and target != optimizer)
        models = self.models_of_optimizer(optimizer)
        if models is None:
            return True
        return any(target == m or m.startswith(target + ".") or target.startswith(m + ".") for m in models)

    # -- grad mode -----------------------------------------------------------------
    def grad_disabled(self, node: cst.CSTNode) -> bool:
        """Is ``node`` inside ``with torch.no_grad()`` (or similar) or a function decorated so, in its own function?"""
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, cst.With):
                state = self.with_grad_state(ancestor)
                if state is not None:
                    return not state
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return isinstance(ancestor, cst.FunctionDef) and self.decorated_no_grad(ancestor)
        return False

    def with_grad_state(self, statement: cst.With) -> Optional[bool]:
        """``False`` if the ``with`` turns gradients off, ``True`` if on, ``None`` if it does not touch them."""
        for item in statement.items:
            state = self._grad_context(item.item)
            if state is not None:
                return state
        return None

    def _grad_context(self, expr: cst.BaseExpression) -> Optional[bool]:
        if not isinstance(expr, cst.Call):
            qualname = self._facts.names.qualname(expr)
            return False if qualname in _GRAD_OFF else None
        qualname = self._facts.names.qualname(expr.func)
        if qualname in _GRAD_OFF:
            mode = argument(expr, 0, "mode")
            return literal(mode, False) is False if mode is not None else False
        if qualname in _GRAD_ON:
            return True
        if qualname in _SET_GRAD:
            value = literal(argument(expr, 0, "mode"), None)
            # set_grad_enabled(phase == "train") is the eval-phase idiom: off when evaluating
            return True if value is True else False
        return None

    def decorated_no_grad(self, function: Function) -> bool:
        for decorator in function.decorators:
            if self._grad_context(decorator.decorator) is False:
                return True
            # a project's own wrapper, e.g. YOLOv5's `@smart_inference_mode()` (inference_mode or no_grad)
            expr = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            if _GRAD_OFF_WRAPPER.search((dotted_name(expr) or "").rsplit(".", 1)[-1]):
                return True
        return False

    # -- functions -------------------------------------------------------------------
    def function_of(self, node: cst.CSTNode) -> Optional[Function]:
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, cst.FunctionDef):
                return ancestor
        return None

    def class_of(self, function: Function) -> Optional[cst.ClassDef]:
        return self._facts.values.class_of(function)

    def callee(self, call: cst.Call) -> Optional[Function]:
        """The same-file function or method a call runs, if it is certain (the file's one call graph)."""
        return self._facts.values.callee(call)

    @cached_property
    def _call_sites(self) -> Mapping[cst.FunctionDef, tuple[cst.Call, ...]]:
        sites: dict[cst.FunctionDef, list[cst.Call]] = {}
        for call in self._facts.calls():
            function = self.callee(call)
            if function is not None:
                sites.setdefault(function, []).append(call)
        return {k: tuple(v) for k, v in sites.items()}

    def call_sites(self, function: Function) -> tuple[cst.Call, ...]:
        """Calls of ``function`` in this file (bare name or ``self.<method>``)."""
        return self._call_sites.get(function, ())

    def renames(self, function: Function, call: cst.Call) -> dict[str, Optional[str]]:
        """Parameter name -> the caller's argument text (``None`` when it is not a plain name)."""
        params = list(function.params.posonly_params) + list(function.params.params)
        offset = 1 if isinstance(call.func, cst.Attribute) and params and params[0].name.value in ("self", "cls") else 0
        mapping: dict[str, Optional[str]] = {}
        for index, param in enumerate(params[offset:]):
            value = argument(call, index, param.name.value)
            mapping[param.name.value] = dotted_name(value) if value is not None else None
        for param in function.params.kwonly_params:
            value = keyword(call, param.name.value)
            mapping[param.name.value] = dotted_name(value) if value is not None else None
        return mapping

    def receiver_text(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """Dotted text of ``expr``, following ``opt = self.optimizer`` style aliases."""
        if expr is None:
            return None
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "module":
            return None
        if isinstance(expr, cst.Name):
            value = self._facts.dataflow.value_of(expr)
            if isinstance(value, (cst.Name, cst.Attribute)):
                aliased = dotted_name(value)
                if aliased is not None:
                    return aliased
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
            # ``models_bag["optimizer"]``: an object kept in a dict under a literal key, spelled as an attribute
            key = expr.slice[0].slice.value
            container = dotted_name(expr.value)
            if isinstance(key, cst.SimpleString) and container is not None and key.raw_value.isidentifier():
                return f"{container}.{key.raw_value}"
        return dotted_name(expr)


@dataclass(frozen=True)
class _State:
    guards: tuple[Guard, ...]
    via: tuple[cst.Call, ...]
    grad_disabled: bool
    renames: Mapping[str, Optional[str]]
    stack: tuple[cst.FunctionDef, ...]


class _Walker:
    """Collects the events of a block in execution order, descending into same-file helpers."""

    def __init__(self, loops: LoopFacts, function: Optional[Function]) -> None:
        self.loops = loops
        self.facts = loops._facts
        self.events: list[Event] = []
        self.function = function

    # statements ---------------------------------------------------------------
    def block(self, body: cst.CSTNode, state: _State) -> None:
        statements: Sequence[cst.CSTNode]
        if isinstance(body, cst.IndentedBlock):
            statements = body.body
        elif isinstance(body, cst.SimpleStatementSuite):
            statements = body.body
        else:
            statements = [body]
        for statement in statements:
            self.statement(statement, state)

    def statement(self, node: cst.CSTNode, state: _State) -> None:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return
        if isinstance(node, cst.If):
            while True:  # an elif chain in a loop, not recursion: 1000 branches are valid code
                self.expression(node.test, state)
                self.block(node.body, _with_guard(state, Guard(node, 0)))
                if node.orelse is None:
                    return
                state = _with_guard(state, Guard(node, 1))
                if not isinstance(node.orelse, cst.If):
                    self.block(node.orelse.body, state)
                    return
                node = node.orelse
        if isinstance(node, (cst.For, cst.While)):
            self.expression(node.iter if isinstance(node, cst.For) else node.test, state)
            self.block(node.body, _with_guard(state, Guard(node, 0)))
            if node.orelse is not None:
                self.block(node.orelse.body, _with_guard(state, Guard(node, 1)))
            return
        if isinstance(node, cst.With):
            grad = self.loops.with_grad_state(node)
            for item in node.items:
                self.expression(item.item, state)
            inner = state if grad is None else _State(state.guards, state.via, not grad, state.renames, state.stack)
            self.block(node.body, inner)
            return
        if isinstance(node, (cst.Try, cst.TryStar)):
            self.block(node.body, state)
            for index, handler in enumerate(node.handlers):
                self.block(handler.body, _with_guard(state, Guard(node, index + 1)))
            if node.orelse is not None:
                self.block(node.orelse.body, _with_guard(state, Guard(node, len(node.handlers) + 1)))
            if node.finalbody is not None:
                self.block(node.finalbody.body, state)
            return
        if isinstance(node, cst.Match):
            self.expression(node.subject, state)
            for index, case in enumerate(node.cases):
                self.block(case.body, _with_guard(state, Guard(node, index)))
            return
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                self.small(small, state)
            return
        self.expression(node, state)

    def small(self, node: cst.CSTNode, state: _State) -> None:
        if isinstance(node, cst.Assign):
            self.expression(node.value, state)
            for target in node.targets:
                self._grad_reset(target.target, node, state)
            return
        self.expression(node, state)

    def _grad_reset(self, target: cst.BaseExpression, node: cst.CSTNode, state: _State) -> None:
        """``p.grad = None`` zeroes gradients by hand."""
        if isinstance(target, cst.Attribute) and target.attr.value == "grad":
            self._emit("zero_grad", node, None, state)

    # expressions ---------------------------------------------------------------
    def expression(self, node: cst.CSTNode, state: _State) -> None:
        # one stack, no recursion (a 1000-call method chain is valid code); a call waits on it as a
        # 1-tuple until its arguments and receiver are walked
        stack: list[Union[cst.CSTNode, tuple[cst.Call]]] = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, tuple):
                self.call(current[0], state)
                continue
            if isinstance(current, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
                continue
            if isinstance(current, cst.Call):
                # arguments run before the receiver, then the call itself
                stack.append((current,))
                if isinstance(current.func, cst.Attribute):
                    stack.append(current.func.value)
                elif not isinstance(current.func, cst.Name):
                    stack.append(current.func)
                stack.extend(reversed([arg.value for arg in current.args]))
                continue
            stack.extend(reversed(children(current)))

    def call(self, call: cst.Call, state: _State) -> None:
        loops = self.loops
        qualname = self.facts.names.qualname(call.func)
        func = call.func
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        receiver_expr = func.value if isinstance(func, cst.Attribute) else None
        last = method if method is not None else (func.value if isinstance(func, cst.Name) else None)
        if qualname == "torch.save":
            self._emit("save", call, None, state)
            return
        if qualname in ("torch.autograd.backward",):
            self._emit("backward", call, None, state)
            return
        if last in _CLIP_FUNCTIONS or (qualname is not None and qualname.rsplit(".", 1)[-1] in _CLIP_FUNCTIONS):
            params = argument(call, 0, "parameters")
            owner = self._params_owner(params) if params is not None else None
            self._emit("clip", call, owner, state)
            return
        if isinstance(func, cst.Name) and not call.args and self._step_closure(func):
            # ``train_op()`` from ``get_train_op(params=...)``: such helpers step, then clear the gradients
            self._emit("step", call, func.value, state)
            self._emit("zero_grad", call, func.value, state)
            return
        if method == "manual_backward" and qualname is None:  # Lightning manual optimization
            self._emit("backward", call, None, state)
            return
        if method == "clip_gradients" and isinstance(receiver_expr, cst.Name) and receiver_expr.value == "self":
            self._emit("clip", call, None, state)  # LightningModule.clip_gradients(optimizer, ...)
            return
        if method == "backward" and qualname is None:
            scaler = None
            if isinstance(receiver_expr, cst.Call) and isinstance(receiver_expr.func, cst.Attribute) \
                    and receiver_expr.func.attr.value == "scale":
                scaler = self._text(receiver_expr.func.value, state)
            self._emit("backward", call, None, state, scaler=scaler)
            return
        if method == "zero_grad" and qualname is None:
            self._emit("zero_grad", call, self._text(receiver_expr, state), state)
            return
        if method is None and last is not None and last.endswith("zero_grad") and loops.callee(call) is None \
                and not (qualname or "").startswith("torch."):
            # a project helper from another file, `zero_grad(model_params)` (improved-diffusion's fp16_util)
            self._emit("zero_grad", call, None, state)
            return
        if method == "zero_" and isinstance(receiver_expr, cst.Attribute) and receiver_expr.attr.value in ("grad", "data"):
            self._emit("zero_grad", call, None, state)
            return
        if method == "step" and qualname is None:
            receiver = self._text(receiver_expr, state)
            first = positional(call, 0)
            if first is not None and not loops.is_optimizer(receiver):
                # scaler.step(optimizer)
                inner = self._text(first, state)
                if loops.is_optimizer(inner):
                    self._emit("step", call, inner, state)
                    return
            if loops.is_optimizer(receiver):
                self._emit("step", call, receiver, state)
                return
        if method == "unscale_" and qualname is None:
            self._emit("unscale", call, self._text(positional(call, 0), state), state)
            return
        if method in ("eval", "train") and (qualname is None or _rebound(func.value, self.facts)):
            mode_arg = argument(call, 0, "mode")
            if method == "eval" and not call.args:
                self._emit("eval", call, self._text(receiver_expr, state), state)
                return
            if method == "train" and len(call.args) <= 1:
                value = literal(mode_arg, True) if mode_arg is not None else True
                if value is True:
                    self._emit("train", call, self._text(receiver_expr, state), state)
                    return
                if value is False:
                    self._emit("eval", call, self._text(receiver_expr, state), state)
                    return
        text = self._text(func, state)
        if text is not None:
            self._emit("call", call, text, state)
        if self.loops.callee(call) is None:
            # ``forward_step(model, batch)`` of another file runs ``model``: a call of it too
            handed = self.facts.runners.module_run_by(call)
            handed_text = self._text(handed, state) if handed is not None else None
            if handed_text is not None:
                self._emit("call", call, handed_text, state)
        self._inline(call, state)

    def _step_closure(self, name: cst.Name) -> bool:
        """Is ``name`` a training step built by a framework helper from the model's parameters
        (``train_op = tx.core.get_train_op(params=model.parameters())``)?"""
        dataflow = self.facts.dataflow
        value = dataflow.value_of(name) or dataflow.enclosing_value(name)
        if not isinstance(value, cst.Call) or self.loops.callee(value) is not None:
            return False
        return any(isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
                   and node.func.attr.value == "parameters" and not node.args
                   for arg in value.args for node in self.facts.walk(arg.value))

    def _inline(self, call: cst.Call, state: _State) -> None:
        function = self.loops.callee(call)
        if function is None or function in state.stack or len(state.stack) >= _MAX_INLINE_DEPTH:
            return
        renames = {
            name: (rename(text, state.renames) if text is not None else None)
            for name, text in self.loops.renames(function, call).items()
        }
        inner = _State(
            guards=state.guards,
            via=state.via + (call,),
            grad_disabled=state.grad_disabled or self.loops.decorated_no_grad(function),
            renames=renames,
            stack=state.stack + (function,),
        )
        self.block(function.body, inner)

    # helpers --------------------------------------------------------------------
    def _emit(self, kind: str, node: cst.CSTNode, receiver: Optional[str], state: _State,
              scaler: Optional[str] = None) -> None:
        self.events.append(Event(kind, node, receiver, state.guards, state.via, state.grad_disabled, scaler))

    def _text(self, expr: Optional[cst.BaseExpression], state: _State) -> Optional[str]:
        if expr is None:
            return None
        text = self.loops.receiver_text(expr) if not state.via else dotted_name(expr)
        if text is None:
            return None
        return rename(text, state.renames) if state.via else text

    def _params_owner(self, params: cst.BaseExpression) -> Optional[str]:
        owners = self.loops._parameter_owners(params)
        return next(iter(owners)) if len(owners) == 1 else None


def _with_guard(state: _State, guard: Guard) -> _State:
    return _State(state.guards + (guard,), state.via, state.grad_disabled, state.renames, state.stack)


def rename(text: str, renames: Mapping[str, Optional[str]]) -> Optional[str]:
    """``text`` seen from a caller: its head replaced per ``renames`` (``None``: the caller has no name for it)."""
    head, dot, rest = text.partition(".")
    if head not in renames:
        return text
    replacement = renames[head]
    if replacement is None:
        return None
    return replacement + dot + rest if rest else replacement


def before(events: Sequence[Event], index: int, cyclic: bool = True) -> Iterator[Event]:
    """Events that can run before ``events[index]``, nearest first; cyclic: wrapping into the previous iteration."""
    current = events[index]
    order = list(range(index - 1, -1, -1))
    if cyclic:
        order += list(range(len(events) - 1, index, -1))
    for position in order:
        if not exclusive(events[position], current):
            yield events[position]


def after(events: Sequence[Event], index: int, cyclic: bool = True) -> Iterator[Event]:
    """Events that can run after ``events[index]``, nearest first; cyclic: wrapping into the next iteration."""
    current = events[index]
    order = list(range(index + 1, len(events)))
    if cyclic:
        order += list(range(0, index))
    for position in order:
        if not exclusive(events[position], current):
            yield events[position]


def covers(mode_receiver: Optional[str], model: Optional[str]) -> bool:
    """Does ``<mode_receiver>.eval()``/``.train()`` set the mode of ``model`` (itself or a parent module)?"""
    if mode_receiver is None or model is None:
        return True
    return (model == mode_receiver or model.startswith(mode_receiver + ".")
            or mode_receiver.startswith(model + "."))


def model_runs(events: Sequence[Event], model: Optional[str]) -> list[Event]:
    """``model(...)`` / ``model.forward(...)`` calls among ``events``."""
    if model is None:
        return []
    return [e for e in events if e.kind == "call" and (e.receiver == model or e.receiver == model + ".forward")]


@dataclass(frozen=True, eq=False)
class ModeSwitch:
    """``model.eval()`` / ``model.train()`` (``model = Net().eval()`` counts for ``model``)."""

    node: cst.Call
    mode: str  # "eval" | "train"
    receiver: Optional[str]
    #: what the receiver was assigned from (``model = context.model; model.train()`` switches
    #: ``context.model`` too)
    alias: Optional[str] = None


def mode_switch(call: cst.Call, facts: "FileFacts") -> Optional[ModeSwitch]:
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in ("eval", "train"):
        return None
    if facts.names.qualname(func) is not None and not _rebound(func.value, facts):
        return None
    if func.attr.value == "eval":
        if call.args:
            return None
        mode = "eval"
    else:
        if len(call.args) > 1:
            return None
        value = literal(argument(call, 0, "mode"), None) if call.args else True
        if value is None:
            return None
        mode = "train" if value is True else "eval"
    target = func.value
    while isinstance(target, cst.Call) and isinstance(target.func, cst.Attribute) \
            and target.func.attr.value in PASS_THROUGH_METHODS:
        target = target.func.value  # ``model.cuda().eval()`` switches ``model``
    receiver = dotted_name(target)
    if receiver is None:
        # model = Net().to(device).eval(): the switch is for the assigned name
        for ancestor in facts.ancestors(call):
            if isinstance(ancestor, cst.Assign) and len(ancestor.targets) == 1:
                receiver = dotted_name(ancestor.targets[0].target)
                break
            if isinstance(ancestor, cst.BaseStatement):
                break
    source = facts.dataflow.value_of(func.value) if isinstance(func.value, cst.Name) else None
    alias = dotted_name(source) if isinstance(source, cst.Attribute) else None
    return ModeSwitch(call, mode, receiver, alias)


def _rebound(expr: cst.BaseExpression, facts: "FileFacts") -> bool:
    """``import model; model = model.Net()``: is the imported name rebound where ``expr`` uses it?"""
    head = expr
    while isinstance(head, cst.Attribute):
        head = head.value
    if not isinstance(head, cst.Name):
        return False
    definitions = facts.dataflow.definitions(head)
    return bool(definitions) and all(not isinstance(d.statement, (cst.Import, cst.ImportFrom)) for d in definitions)


_LOOP_TYPES = frozenset({cst.For, cst.While})
_NOT_THIS_SCOPE = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda})


def scope_calls(facts: "FileFacts", scope: cst.CSTNode) -> Iterator[cst.Call]:
    """Calls that run in ``scope`` itself (not in nested functions, lambdas or classes), in source order."""
    first: cst.CSTNode = scope.body if isinstance(scope, cst.FunctionDef) else scope
    tree = facts._tree
    start = tree.index(first)
    if start is not None:
        # over the file's one pre-order traversal: skip a nested scope by jumping past it
        nodes, end, call = tree.nodes, tree.end, cst.Call
        index, stop = start, end[start]
        while index < stop:
            node = nodes[index]
            kind = type(node)
            if kind in _NOT_THIS_SCOPE:
                index = end[index]
                continue
            if kind is call:
                yield node  # type: ignore[misc]
            index += 1
        return
    stack: list[cst.CSTNode] = [first]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(node, cst.Call):
            yield node
        stack.extend(reversed(children(node)))


def repeated_evals(facts: "FileFacts") -> tuple[ModeSwitch, ...]:
    """``net.eval(); net(x); net.eval()`` in one function, outside loops, where another function of the
    file brackets the same model with ``eval()`` ... ``train()``: the second call was meant to be ``train()``."""
    switches = {function: [s for c in scope_calls(facts, function) if (s := mode_switch(c, facts)) is not None
                           and s.receiver is not None] for function in facts.nodes_of(cst.FunctionDef)}
    bracketed = {function: {s.receiver for i, s in enumerate(found) if s.mode == "eval"
                            and any(t.mode == "train" and t.receiver == s.receiver for t in found[i + 1:])}
                 for function, found in switches.items()}
    repeated: list[ModeSwitch] = []
    for function, found in switches.items():
        for index, switch in enumerate(found):
            earlier = next((s for s in reversed(found[:index]) if s.receiver == switch.receiver), None)
            if switch.mode != "eval" or earlier is None or earlier.mode != "eval" \
                    or any(s.receiver == switch.receiver for s in found[index + 1:]) \
                    or not any(switch.receiver in inner for other, inner in bracketed.items() if other is not function) \
                    or any(isinstance(a, _LOOP_CLASSES) for a in _ancestors_in(facts, switch.node, function)):
                continue
            if _runs_between(facts, function, earlier, switch):
                repeated.append(switch)
    return tuple(repeated)


_LOOP_CLASSES = (cst.For, cst.While)


def _ancestors_in(facts: "FileFacts", node: cst.CSTNode, function: cst.CSTNode) -> Iterator[cst.CSTNode]:
    for ancestor in facts.ancestors(node):
        if ancestor is function:
            return
        yield ancestor


def _runs_between(facts: "FileFacts", function: cst.CSTNode, first: ModeSwitch, second: ModeSwitch) -> bool:
    """Does the model of the two switches run (``net(x)``, ``net.forward(x)``) between them?"""
    seen = False
    for call in scope_calls(facts, function):
        if call is first.node:
            seen = True
        elif call is second.node:
            return False
        elif seen and dotted_name(call.func) in (first.receiver, f"{first.receiver}.forward"):
            return True
    return False
