"""Optimizers: which optimizer a call builds, its learning rate and momentum, and what it trains.

An *optimizer site* is one of::

    torch.optim.Adam(model.parameters(), lr=1e-3)        # PyTorch (params first, lr second)
    keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)  # Keras (also legacy ``lr=``)
    tf.train.AdagradOptimizer(0.01)                       # TF1 ``tf.train.*Optimizer``
    model.compile(optimizer="adagrad", loss=...)          # a Keras identifier string

For each site the facts answer: the learning rate and momentum as numbers (through
:mod:`nnlint.facts.constants`: literals, module constants, argparse defaults), which models
it trains (PyTorch: the owners of the ``.parameters()`` it gets; Keras: the models compiled
with it), and whether its learning rate is set by something else later (a warm-up or
cyclic scheduler, per-group ``lr``, ``param_group["lr"] = ...``), so the constructor's value is
not what training uses. Anything uncertain is ``None`` / unknown, which keeps rules quiet.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.names import (argument, dotted_name, fold, has_star_args, is_unknown, keyword, literal,
                                positional)

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.models import ModelSummary

_MAX_DEPTH = 6


@dataclass(frozen=True)
class OptimizerKind:
    #: canonical class name: "Adam", "Adagrad", "SGD", "AdamOptimizer"
    name: str
    #: "adam" | "adagrad" | "sgd" | "rmsprop" | "other"
    family: str
    #: "torch" | "keras" | "tensorflow" (TF1 ``tf.train``)
    framework: str
    #: positional index of the learning rate
    lr_index: int
    lr_keywords: tuple[str, ...]
    #: positional index of ``momentum`` (``None``: the optimizer has none)
    momentum_index: Optional[int] = None
    #: momentum when the argument is left out (``None``: required or not applicable)
    momentum_default: Optional[float] = None


def _torch(name: str, family: str, momentum_index: Optional[int] = None,
           momentum_default: Optional[float] = None) -> OptimizerKind:
    return OptimizerKind(name, family, "torch", 1, ("lr",), momentum_index, momentum_default)


def _keras(name: str, family: str, momentum_index: Optional[int] = None,
           momentum_default: Optional[float] = None) -> OptimizerKind:
    return OptimizerKind(name, family, "keras", 0, ("learning_rate", "lr"), momentum_index, momentum_default)


def _tf(name: str, family: str, momentum_index: Optional[int] = None,
        momentum_default: Optional[float] = None) -> OptimizerKind:
    return OptimizerKind(name, family, "tensorflow", 0, ("learning_rate",), momentum_index, momentum_default)


TORCH_OPTIMIZERS: dict[str, OptimizerKind] = {
    **{n: _torch(n, "adam") for n in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam")},
    "Adagrad": _torch("Adagrad", "adagrad"),
    # SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)
    "SGD": _torch("SGD", "sgd", 2, 0.0),
    "RMSprop": _torch("RMSprop", "rmsprop"),
    **{n: _torch(n, "other") for n in ("Adadelta", "SparseAdam", "ASGD", "LBFGS", "Rprop", "Adafactor")},
}
KERAS_OPTIMIZERS: dict[str, OptimizerKind] = {
    **{n: _keras(n, "adam") for n in ("Adam", "AdamW", "Adamax", "Nadam")},
    "Adagrad": _keras("Adagrad", "adagrad"),
    # SGD(learning_rate=0.01, momentum=0.0, nesterov=False, ...)
    "SGD": _keras("SGD", "sgd", 1, 0.0),
    "RMSprop": _keras("RMSprop", "rmsprop"),
    **{n: _keras(n, "other") for n in ("Adadelta", "Ftrl", "Lion", "Adafactor")},
}
TF_OPTIMIZERS: dict[str, OptimizerKind] = {
    "AdamOptimizer": _tf("AdamOptimizer", "adam"),
    "AdagradOptimizer": _tf("AdagradOptimizer", "adagrad"),
    "GradientDescentOptimizer": _tf("GradientDescentOptimizer", "sgd", None, 0.0),
    # MomentumOptimizer(learning_rate, momentum): momentum is required
    "MomentumOptimizer": _tf("MomentumOptimizer", "sgd", 1, None),
    "RMSPropOptimizer": _tf("RMSPropOptimizer", "rmsprop"),
    **{n: _tf(n, "other") for n in ("AdadeltaOptimizer", "FtrlOptimizer", "ProximalAdagradOptimizer")},
}
#: Keras identifier strings (``compile(optimizer="adam")``) -> class
KERAS_IDENTIFIERS: dict[str, OptimizerKind] = {
    "adam": KERAS_OPTIMIZERS["Adam"],
    "adamw": KERAS_OPTIMIZERS["AdamW"],
    "adamax": KERAS_OPTIMIZERS["Adamax"],
    "nadam": KERAS_OPTIMIZERS["Nadam"],
    "adagrad": KERAS_OPTIMIZERS["Adagrad"],
    "sgd": KERAS_OPTIMIZERS["SGD"],
    "rmsprop": KERAS_OPTIMIZERS["RMSprop"],
    "adadelta": KERAS_OPTIMIZERS["Adadelta"],
    "ftrl": KERAS_OPTIMIZERS["Ftrl"],
    "lion": KERAS_OPTIMIZERS["Lion"],
}
_KERAS_MODULES = re.compile(r"keras\.(optimizers|optimizer_v2)(\.[a-z_0-9]+)*")

#: schedulers that only lower the learning rate from the constructor's value
DECAY_ONLY_SCHEDULERS = frozenset({
    "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
    "ReduceLROnPlateau", "PolynomialLR",
})
#: gradient-carrying layer categories that make a network deep
WEIGHT_CATEGORIES = frozenset({L.DENSE, L.CONV, L.RECURRENT, L.ATTENTION})
#: torchvision architectures are deep; the number in the name is their depth (resnet50)
_TORCHVISION_DEPTH = re.compile(r"[a-z_]*?(\d+)")
_TORCHVISION_MIN_DEPTH = 8
_BUILTINS = frozenset({"int", "float", "str", "bool", "list", "dict", "tuple", "set", "len", "range"})


@dataclass(frozen=True, eq=False)
class OptimizerSite:
    kind: OptimizerKind
    #: the constructor call, or the identifier string of ``compile(optimizer="adagrad")``
    node: cst.CSTNode
    #: canonical qualified name of the constructor (``None`` for an identifier string)
    qualname: Optional[str]
    #: the constructor call (``None`` for an identifier string)
    call: Optional[cst.Call]
    #: for an identifier string: the ``compile`` call it is given to
    compile_call: Optional[cst.Call] = None
    #: dotted text of what the optimizer is assigned to (``optimizer``, ``self.opt``)
    target: Optional[str] = None

    @property
    def family(self) -> str:
        return self.kind.family

    @property
    def framework(self) -> str:
        return self.kind.framework

    def lr_argument(self) -> Optional[cst.BaseExpression]:
        """The learning-rate argument as written (``None``: left at its default)."""
        if self.call is None:
            return None
        for name in self.kind.lr_keywords:
            value = keyword(self.call, name)
            if value is not None:
                return value
        return positional(self.call, self.kind.lr_index)

    def momentum_argument(self) -> Optional[cst.BaseExpression]:
        if self.call is None or self.kind.momentum_index is None:
            return None
        return argument(self.call, self.kind.momentum_index, "momentum")

    def params_argument(self) -> Optional[cst.BaseExpression]:
        if self.call is None or self.framework != "torch":
            return None
        return argument(self.call, 0, "params")


def optimizer_kind(qualname: Optional[str]) -> Optional[OptimizerKind]:
    """The optimizer class a qualified name is (``torch.optim.adam.Adam`` -> Adam), else ``None``."""
    if qualname is None:
        return None
    module, _, name = qualname.rpartition(".")
    if module == "torch.optim" or (module.startswith("torch.optim.") and "lr_scheduler" not in module):
        return TORCH_OPTIMIZERS.get(name)
    if _KERAS_MODULES.fullmatch(module):
        return KERAS_OPTIMIZERS.get(name)
    if module == "tensorflow.train":
        return TF_OPTIMIZERS.get(name)
    return None


def weight_layers(summary: "ModelSummary") -> int:
    """How many dense/conv/recurrent/attention layers a model is known to have (a lower bound)."""
    if not summary.layers and summary.qualname.startswith("torchvision.models."):
        match = _TORCHVISION_DEPTH.match(summary.name)
        return max(int(match.group(1)), _TORCHVISION_MIN_DEPTH) if match else _TORCHVISION_MIN_DEPTH
    return sum(1 for kind in summary.layers if L.KIND_CATEGORIES.get(kind) in WEIGHT_CATEGORIES)


def has_embedding(summary: "ModelSummary") -> bool:
    return any(L.KIND_CATEGORIES.get(kind) == L.EMBEDDING for kind in summary.layers)


class OptimizerFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    # -- sites -----------------------------------------------------------------
    @cached_property
    def sites(self) -> tuple[OptimizerSite, ...]:
        found: list[OptimizerSite] = []
        names = self._facts.names
        for call in self._facts.calls():
            qualname = names.qualname(call.func)
            kind = optimizer_kind(qualname)
            if kind is not None:
                found.append(OptimizerSite(kind, call, qualname, call, target=self._target(call)))
                continue
            identifier = self._compile_identifier(call)
            if identifier is not None:
                found.append(OptimizerSite(KERAS_IDENTIFIERS[literal(identifier).lower()],  # type: ignore[union-attr]
                                           identifier, None, None, compile_call=call))
        return tuple(found)

    def site_of(self, call: cst.Call) -> Optional[OptimizerSite]:
        for site in self.sites:
            if site.call is call:
                return site
        return None

    # -- values -------------------------------------------------------------------
    def learning_rate(self, site: OptimizerSite) -> Optional[float]:
        """The learning rate the constructor is given, if it is a known number (not a schedule)."""
        value = self._facts.constants.value(site.lr_argument())
        return float(value) if _is_number(value) else None

    def momentum(self, site: OptimizerSite) -> Optional[float]:
        """The momentum the optimizer runs with, if known (the default when left out)."""
        if site.kind.momentum_index is None and site.kind.momentum_default is None:
            return None
        expr = site.momentum_argument()
        if expr is None:
            if site.call is not None and has_star_args(site.call):
                return None  # SGD(params, **cfg): momentum may be in there
            return site.kind.momentum_default
        value = self._facts.constants.value(expr)
        return float(value) if _is_number(value) else None

    # -- what it trains -------------------------------------------------------------
    def trained_models(self, site: OptimizerSite) -> Optional[tuple["ModelSummary", ...]]:
        """The models whose weights the optimizer updates; ``None`` when any of them is unknown."""
        if site.framework == "torch":
            params = site.params_argument()
            if params is None:
                return None
            owners = list(self._parameter_owners(params, 0))
            if not owners:
                return None
            models = [self._model_of_owner(owner) for owner in owners]
        elif site.framework == "keras":
            compiles = [site.compile_call] if site.compile_call is not None else list(self._compiles_of(site))
            if compiles:
                models = [self._facts.models.model_of(c.func.value) for c in compiles  # type: ignore[union-attr]
                          if isinstance(c.func, cst.Attribute)]
                if len(models) != len(compiles):
                    return None
            else:
                # ``create_model(..., optimizer=optimizer)``: a factory that compiles the model it returns
                models = [self._facts.models.model_of(call) for call in self._factories_given(site)]
                if not models:
                    return None
        else:
            return None
        if any(m is None for m in models):
            return None
        unique: dict[str, "ModelSummary"] = {}
        for model in models:
            assert model is not None
            unique.setdefault(model.qualname, model)
        return tuple(unique.values())

    def known_depth(self, site: OptimizerSite) -> Optional[int]:
        """Weight layers of everything a PyTorch optimizer trains, when all of it is visible in this file.

        Counts dense/conv/recurrent/attention layers of bare layers (``nn.Linear(3, 1)``),
        ``nn.Sequential`` literals and local ``nn.Module`` (or layer) subclasses whose
        ``__init__`` only builds known layers. Anything else (a module from elsewhere, a
        ``ModuleList``, ``self.block = block``) makes the size unknown: ``None``.
        """
        params = site.params_argument()
        owners = list(self._parameter_owners(params, 0)) if params is not None else []
        if not owners:
            return None
        total = 0
        for owner in owners:
            depth = self._owner_depth(owner)
            if depth is None:
                return None
            total += depth
        return total

    def trains_plain_tensors(self, site: OptimizerSite) -> bool:
        """``Adam([image], lr=0.05)``: a list of tensors, not a network's ``.parameters()``."""
        params = site.params_argument()
        if isinstance(params, cst.Name):
            params = self._facts.dataflow.resolve(params)
        if not isinstance(params, (cst.List, cst.Tuple)):
            return False
        if any(isinstance(e, cst.StarredElement) for e in params.elements):
            return False
        return all(isinstance(e.value, (cst.Name, cst.Attribute, cst.Call)) and not self._mentions_parameters(e.value)
                   for e in params.elements)

    # -- is the constructor's learning rate what training uses? ----------------------
    def lr_overridden(self, site: OptimizerSite) -> bool:
        """Is the learning rate set elsewhere (groups, warm-up/cyclic schedulers, assignments)?"""
        return (self._groups_set_lr(site) or self._scheduled(site) or self._file_sets_lr)

    def schedulers(self, site: OptimizerSite) -> Iterator[cst.Call]:
        """Scheduler calls built over this optimizer (``OneCycleLR(optimizer, ...)``, ``get_*_schedule(opt)``)."""
        for call in self._facts.calls():
            text = dotted_name(call.func) or ""
            qualname = self._facts.names.qualname(call.func) or text
            lowered = qualname.lower()
            if "sched" not in lowered and "warmup" not in lowered:
                continue
            if any(self._refers_to(arg.value, site) for arg in call.args):
                yield call

    # -- implementation ----------------------------------------------------------------
    def _target(self, call: cst.Call) -> Optional[str]:
        parent = self._facts.parent(call)
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
            return dotted_name(parent.targets[0].target)
        if isinstance(parent, cst.AnnAssign):
            return dotted_name(parent.target)
        return None

    def _compile_identifier(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        func = call.func
        if not isinstance(func, cst.Attribute) or func.attr.value != "compile":
            return None
        if self._facts.names.qualname(func) is not None:
            return None  # torch.compile, re.compile
        expr = argument(call, 0, "optimizer")
        value = literal(expr, None)
        if isinstance(value, str) and value.lower() in KERAS_IDENTIFIERS:
            return expr
        return None

    def _compiles_of(self, site: OptimizerSite) -> Iterator[cst.Call]:
        for call in self._facts.calls():
            func = call.func
            if not isinstance(func, cst.Attribute) or func.attr.value != "compile":
                continue
            if self._facts.names.qualname(func) is not None:
                continue
            expr = argument(call, 0, "optimizer")
            if expr is not None and self._refers_to(expr, site):
                yield call

    def _factories_given(self, site: OptimizerSite) -> Iterator[cst.Call]:
        """Calls that pass the optimizer on and return a model (``model = build(optimizer=opt)``)."""
        models = self._facts.models
        for call in self._facts.calls():
            if any(self._refers_to(arg.value, site) for arg in call.args) and models.model_of(call) is not None:
                yield call

    def _refers_to(self, expr: cst.BaseExpression, site: OptimizerSite) -> bool:
        if expr is site.call:
            return True
        if isinstance(expr, cst.Name):
            value = self._facts.dataflow.value_of(expr)
            if value is not None:
                return value is site.call
        return site.target is not None and dotted_name(expr) == site.target

    def _parameter_owners(self, params: cst.BaseExpression, depth: int) -> Iterator[cst.BaseExpression]:
        """Receivers of the ``.parameters()`` / ``.named_parameters()`` calls that build ``params``."""
        if depth > _MAX_DEPTH:
            return
        found = False
        for node in self._facts.walk(params):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and \
                    node.func.attr.value in ("parameters", "named_parameters"):
                found = True
                yield node.func.value
        if not found and isinstance(params, cst.Name):
            value = self._facts.dataflow.value_of(params)
            if value is not None and value is not params:
                yield from self._parameter_owners(value, depth + 1)

    def _model_of_owner(self, owner: cst.BaseExpression) -> Optional["ModelSummary"]:
        models = self._facts.models
        if isinstance(owner, cst.Name) and owner.value == "self":
            # configure_optimizers(self) of a LightningModule: the enclosing model class
            for ancestor in self._facts.ancestors(owner):
                if isinstance(ancestor, cst.ClassDef):
                    return next((m.summary for m in models.models if m.node is ancestor), None)
            return None
        return models.model_of(owner)

    def _owner_depth(self, owner: cst.BaseExpression) -> Optional[int]:
        """Weight layers of what ``owner`` holds: the most of any value it may hold (through
        ``.to()``, DDP/FSDP/``parallelize_module`` wrappers, parameters, factories), ``None`` if unknown."""
        origins = self._facts.values.origins(owner)
        if not origins:
            return None
        depths: list[Optional[int]] = []
        for origin in origins:
            if isinstance(origin, cst.ClassDef):  # ``self`` in configure_optimizers
                depths.append(self._class_depth(origin, 0))
            elif isinstance(origin, cst.Call):
                depths.append(self._call_depth(origin, 0))
            else:
                return None
        if any(depth is None for depth in depths):
            return None
        return max(depth for depth in depths if depth is not None)

    def _call_depth(self, call: cst.Call, depth: int) -> Optional[int]:
        if depth > _MAX_DEPTH:
            return None
        names = self._facts.names
        qualname = names.qualname(call.func)
        if qualname == "torch.nn.Sequential":
            total = 0
            for arg in call.args:
                if arg.keyword is not None or arg.star or not isinstance(arg.value, cst.Call):
                    return None
                inner = self._call_depth(arg.value, depth + 1)
                if inner is None:
                    return None
                total += inner
            return total
        kind = L.layer_kind(qualname)
        if kind is not None:
            if kind.category in (L.CONTAINER, L.MODEL, L.OTHER):
                return None
            return 1 if kind.category in WEIGHT_CATEGORIES else 0
        func = call.func
        if isinstance(func, cst.Name) and func.value in names.classes and func.value not in names.bindings:
            return self._class_depth(names.classes[func.value], depth + 1)
        return None

    def _class_depth(self, node: cst.ClassDef, depth: int) -> Optional[int]:
        """Weight layers of a local module class whose ``__init__`` builds only known layers."""
        names = self._facts.names
        if len(node.bases) != 1 or depth > _MAX_DEPTH:
            return None
        base = names.qualname(node.bases[0].value)
        base_kind = L.layer_kind(base)
        if base in L.TORCH_MODULE_BASES:
            total = 0
        elif base_kind is not None and base_kind.category not in (L.CONTAINER, L.MODEL, L.OTHER):
            total = 1 if base_kind.category in WEIGHT_CATEGORIES else 0  # class Layer(nn.Linear)
        else:
            return None
        if not isinstance(node.body, cst.IndentedBlock):
            return total
        init = next((s for s in node.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
        if init is None:
            return total
        for statement in self._facts.walk(init.body):
            if isinstance(statement, cst.Call) and isinstance(statement.func, cst.Attribute) \
                    and statement.func.attr.value in ("add_module", "register_module", "append", "extend"):
                return None  # modules added by name or into a list
            if not isinstance(statement, (cst.Assign, cst.AnnAssign)) or statement.value is None:
                continue
            targets = [t.target for t in statement.targets] if isinstance(statement, cst.Assign) else [statement.target]
            if not any(isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
                       for t in targets):
                continue
            value = statement.value
            if isinstance(value, cst.Call):
                qualname = names.qualname(value.func)
                if (qualname is None and dotted_name(value.func) in _BUILTINS) or (
                        qualname is not None and qualname.startswith(("torch.", "keras.", "tensorflow."))
                        and L.layer_kind(qualname) is None and qualname != "torch.nn.Sequential"):
                    continue  # self.opt = torch.optim.Adam(...), self.n = int(n): not a layer
                inner = self._call_depth(value, depth + 1)
                if inner is None:
                    return None
                total += inner
            elif isinstance(value, cst.Name) and value.value not in ("True", "False", "None"):
                return None  # self.block = block: a module passed in, of unknown size
        return total

    def _mentions_parameters(self, expr: cst.BaseExpression) -> bool:
        return any(isinstance(n, cst.Attribute) and n.attr.value in ("parameters", "named_parameters")
                   for n in self._facts.walk(expr))

    def _groups_set_lr(self, site: OptimizerSite) -> bool:
        """``Adam([{"params": ..., "lr": 1e-4}, ...], lr=0.1)``: a group's own lr wins."""
        params = site.params_argument()
        if params is None:
            return False
        candidates = [params]
        if isinstance(params, cst.Name):
            resolved = self._facts.dataflow.resolve(params)
            if resolved is not None:
                candidates.append(resolved)
        for candidate in candidates:
            for node in self._facts.walk(candidate):
                if isinstance(node, cst.Dict) and any(
                        isinstance(e, cst.DictElement) and literal(e.key, None) == "lr" for e in node.elements):
                    return True
                if isinstance(node, cst.Call) and dotted_name(node.func) == "dict" and keyword(node, "lr") is not None:
                    return True
        return False

    def _scheduled(self, site: OptimizerSite) -> bool:
        for call in self.schedulers(site):
            qualname = self._facts.names.qualname(call.func) or dotted_name(call.func) or ""
            name = qualname.rsplit(".", 1)[-1]
            if name == "LambdaLR" and self._starts_at_full_rate(argument(call, 1, "lr_lambda")):
                continue  # a decay from the constructor's rate (``lambda x: (1 - x / epochs) * ...``)
            if name not in DECAY_ONLY_SCHEDULERS:
                return True  # warm-up, cyclic, lambda, one-cycle: the constructor's lr is not the peak
        return False

    def _starts_at_full_rate(self, factor: Optional[cst.BaseExpression]) -> bool:
        """Is a ``LambdaLR`` factor known to be at least 1 at step 0 (so training starts at the
        constructor's rate)? A warm-up (``min(1, step / warmup)``) starts below 1; a factor that
        cannot be evaluated counts as a warm-up."""
        function = self._facts.dataflow.resolve(factor) if factor is not None else None
        if isinstance(function, cst.Lambda):
            params, body = function.params.params, function.body
        elif isinstance(function, cst.Name):
            names = self._facts.names
            found = names.functions.get(function.value) if function.value not in names.bindings else None
            returned = _single_return(found) if found is not None else None
            if returned is None:
                return False
            params, body = found.params.params, returned
        else:
            return False
        if len(params) != 1:
            return False
        value = self._at_zero(body, params[0].name.value, depth=0)
        return isinstance(value, (int, float)) and value >= 1

    def _at_zero(self, expr: cst.BaseExpression, variable: str, depth: int) -> object:
        """``expr`` with ``variable`` = 0; ``None`` if unknown. ``0 * a`` and ``0 / a`` are 0 for any ``a``."""
        if depth > 12:
            return None
        if isinstance(expr, cst.Name) and expr.value == variable:
            return 0
        if isinstance(expr, cst.BinaryOperation):
            left = self._at_zero(expr.left, variable, depth + 1)
            right = self._at_zero(expr.right, variable, depth + 1)
            if left == 0 and isinstance(expr.operator, (cst.Multiply, cst.Divide, cst.FloorDivide)):
                return 0
            if right == 0 and isinstance(expr.operator, cst.Multiply):
                return 0
            value = fold(expr.operator, left, right)
            return None if is_unknown(value) else value
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            value = self._at_zero(expr.expression, variable, depth + 1)
            return -value if isinstance(value, (int, float)) else None
        if isinstance(expr, cst.Call) and len(expr.args) >= 1 and not has_star_args(expr):
            name = self._facts.names.qualname(expr.func) or dotted_name(expr.func) or ""
            values = [self._at_zero(arg.value, variable, depth + 1) for arg in expr.args]
            if any(not isinstance(v, (int, float)) for v in values):
                return None
            if name in ("min", "max"):
                return (min if name == "min" else max)(values)  # type: ignore[type-var]
            if name.rsplit(".", 1)[-1] == "cos" and name.split(".")[0] in ("math", "numpy") and len(values) == 1:
                return math.cos(values[0])  # type: ignore[arg-type]
            return None
        if dotted_name(expr) in ("math.pi", "numpy.pi", "np.pi"):
            return math.pi
        dataflow = self._facts.dataflow
        value = literal(dataflow.resolve(expr), None)
        if value is None and isinstance(expr, cst.Name):  # a local of the function that built the lambda
            enclosing = dataflow.enclosing_value(expr)
            value = literal(dataflow.resolve(enclosing), None) if enclosing is not None else None
        if value is None:
            value = self._facts.constants.value(expr)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @cached_property
    def _file_sets_lr(self) -> bool:
        """The file sets learning rates by hand: ``group["lr"] = ...``, ``opt.learning_rate.assign(...)``,
        ``K.set_value(opt.lr, ...)``, a Keras ``LearningRateScheduler`` callback."""
        names = self._facts.names
        for node in self._facts.walk():
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    if _is_lr_slot(target.target):
                        return True
            elif isinstance(node, cst.Call):
                func = node.func
                qualname = names.qualname(func) or ""
                if qualname.rsplit(".", 1)[-1] == "LearningRateScheduler":
                    return True
                if isinstance(func, cst.Attribute) and func.attr.value == "assign" and _is_lr_attribute(func.value):
                    return True
                if qualname.rsplit(".", 1)[-1] == "set_value" and node.args and _is_lr_attribute(node.args[0].value):
                    return True
        return False


def _is_lr_slot(target: cst.BaseExpression) -> bool:
    if isinstance(target, cst.Subscript) and len(target.slice) == 1:
        index = target.slice[0].slice
        return isinstance(index, cst.Index) and literal(index.value, None) in ("lr", "learning_rate")
    return _is_lr_attribute(target)


def _is_lr_attribute(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Attribute) and expr.attr.value in ("lr", "learning_rate")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _single_return(function: cst.FunctionDef) -> Optional[cst.BaseExpression]:
    """The expression of a function whose body is one ``return <expr>`` (a docstring aside)."""
    body = [statement for statement in function.body.body
            if not (isinstance(statement, cst.SimpleStatementLine) and isinstance(statement.body[0], cst.Expr)
                    and isinstance(statement.body[0].value, cst.SimpleString))]
    if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine):
        return None
    statement = body[0].body[0]
    return statement.value if isinstance(statement, cst.Return) else None
