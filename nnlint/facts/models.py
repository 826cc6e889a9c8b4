"""Models as layer sequences, and what reaches each loss.

A *model* is one of: an ``nn.Sequential(...)`` / Keras ``Sequential([...])`` literal
(plus ``model.add(...)`` calls), an ``nn.Module`` / ``keras.Model`` subclass (layers made
in ``__init__``, or in the methods it calls on ``self``, as ``self.x = ...``, ordered by the
data flow of ``forward``/``call``), an ``nn.Sequential`` subclass (the modules it passes to
``super().__init__``), or a Keras functional ``Model(inputs, outputs)``. Each model gets a picklable
:class:`ModelSummary` so other files can ask about it through the project index.

The output of a model is found by tracing the returned expression backwards through its
main input (first positional argument, or the receiver of a tensor method). The trace also
follows ``if``/``else`` bindings that agree, helper methods (``self.decode(z)``),
``data_parallel``/``checkpoint`` calls, the elements of a tuple output
(``recon, mu, logvar = model(x)``), a function's parameter to what every call in the file
passes for it, a module built and called inline (``nn.LogSoftmax(dim=1)(x)``), and lists of
head outputs (``outs.append(F.softmax(head(h), 1))`` in a loop, ``acc = torch.cat((acc, out))``
onto an empty tensor, read back by ``for out, y in zip(outs, ys)`` or ``torch.stack(outs)``)
when every element agrees. A plain function that builds and returns an output (a TF1 graph helper
``def model(x): ...; return tf.nn.softmax(logits)``) is summarised as applied by calling it
(``ModelSummary.returns_output``), also for other files; TF1 functional layers
(``tf.layers.dense(..., activation=...)``, contrib/slim, tflearn) apply their activation.
A value that may be one of several models (chosen by a flag) is traced once per model
(:meth:`ModelFacts.output_activations`). A library estimator given a module trains it with its
``criterion=``, or with its own default loss (skada's deep estimators: ``CrossEntropyLoss``).
Anything it cannot follow (a function also passed around as a value) leaves
``output_activation`` as ``None``, which keeps rules quiet.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Optional, TypeVar

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.names import argument, dotted_name, keyword, literal, positional
from nnlint.facts.values import LIBRARY_PACKAGES, External

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.facts.dataflow import Definition
    from nnlint.rule import Context

_MAX_DEPTH = 12
_T = TypeVar("_T")
_UNSET = object()
#: bindings of one name traced separately at most (each is followed to its own depth limit)
_MAX_BRANCHES = 4


# Defined next to ModuleSummary so that cached summaries unpickle without importing libcst.
from nnlint.facts.index import LossParameter, ModelSummary, Site  # noqa: E402


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer constructed in a model (``nn.Linear(4, 2)``, ``Dense(10, activation="relu")``)."""

    kind: str
    category: str
    qualname: Optional[str]
    #: the constructing call
    node: cst.Call
    #: ``"fc1"`` for ``self.fc1 = ...``; the OrderedDict key in a Sequential; else ``None``
    attribute: Optional[str] = None
    #: activation kind fused into the layer (Keras ``activation=``), ``None`` for linear
    activation: Optional[str] = None
    #: literal output width of a dense layer
    units: Optional[int] = None
    #: a nested model (Sequential or local model class), when this layer is one
    inner: Optional[ModelSummary] = None

    def kwarg(self, name: str) -> Optional[cst.BaseExpression]:
        return keyword(self.node, name)


@dataclass(frozen=True, eq=False)
class Model:
    name: str
    node: cst.CSTNode  # the Sequential/Model call, or the ClassDef
    framework: str
    layers: tuple[Layer, ...]
    summary: ModelSummary


@dataclass(frozen=True, eq=False)
class LayerSequence:
    """The layers of one Sequential, in data-flow order (:attr:`ModelFacts.sequences`)."""

    node: cst.CSTNode
    layers: tuple[Layer, ...]
    #: a Sequential that a model class's ``forward`` returns the output of (``return self.head(x)``)
    is_output: bool = False


@dataclass(frozen=True, eq=False)
class LossSite:
    """A loss computation: ``criterion(pred, y)``, ``F.cross_entropy(pred, y)``, ``model.compile(loss=...)``."""

    node: cst.Call
    kind: str
    #: what the prediction should be: "logits", "log_probs", "probs", "values"
    expects: str
    framework: str
    #: the prediction expression (``None`` for Keras ``compile``)
    prediction: Optional[cst.BaseExpression]
    #: the loss object's constructor call (``nn.CrossEntropyLoss()``), if any
    constructor: Optional[cst.Call] = None
    #: the compiled model (Keras ``compile``)
    model: Optional[ModelSummary] = None
    #: every model an estimator may be given, when it is one of several (``model = A() if ... else B()``)
    models: tuple[ModelSummary, ...] = ()


@dataclass(frozen=True)
class Step:
    """One op of a traced tensor expression (:meth:`ModelFacts.steps`): ``Linear``/dense, 1 unit."""

    kind: str
    category: str
    #: literal output width of a dense layer (or a model's output width)
    units: Optional[int] = None
    #: for a model step (category ``model``), the model's ``output_activation``
    output_activation: Optional[str] = None
    #: for a model step, the model's layer kinds in data-flow order (``ModelSummary.layers``)
    layers: tuple[str, ...] = ()


# torchvision constructors: name prefix -> (has_batchnorm, has_dropout)
_TORCHVISION: tuple[tuple[str, bool, bool], ...] = (
    ("vgg", False, True),  # vgg*_bn handled below
    ("alexnet", False, True),
    ("resnet", True, False),
    ("resnext", True, False),
    ("wide_resnet", True, False),
    ("densenet", True, False),
    ("mobilenet", True, True),
    ("efficientnet", True, True),
    ("regnet", True, False),
    ("mnasnet", True, True),
    ("shufflenet", True, False),
    ("googlenet", True, True),
    ("inception", True, True),
)

#: functions that call their first argument on the rest: ``data_parallel(self.main, x, ids)`` is ``self.main(x)``
_APPLY_FUNCTIONS = frozenset({"torch.nn.parallel.data_parallel", "torch.utils.checkpoint.checkpoint"})


def _activation_name(kind: Optional[str]) -> Optional[str]:
    if kind is None:
        return None
    return L.ACTIVATION_FUNCTIONS.get(kind, kind.lower())


@dataclass(frozen=True)
class _Op:
    """One step of a traced data flow."""

    kind: str
    category: str
    units: Optional[int] = None
    inner: Optional[ModelSummary] = None
    #: the node that applies it in this file (``F.softmax(...)``, the ``nn.Softmax()`` layer)
    node: Optional[cst.CSTNode] = None
    #: for an ``_ALTERNATIVES`` op: the traces of each value the expression may hold (``net``
    #: is one of three models chosen by a flag), output first
    alternatives: tuple[tuple["_Op", ...], ...] = ()


#: the category of an op standing for several possible values whose traces differ
_ALTERNATIVES = "alternatives"


@dataclass(frozen=True)
class OutputActivation:
    """One activation a prediction may end in (:meth:`ModelFacts.output_activations`)."""

    #: ``"softmax"``, ``"log_softmax"``, ... (``None``: none, or not known)
    activation: Optional[str]
    #: the node of this file that applies it, if it is in this file
    node: Optional[cst.CSTNode]
    #: where it is applied, when another file recorded it
    site: Optional[Site]


class ModelFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._class_cache: dict[str, Optional[Model]] = {}
        #: sub-traces of the query being answered (see _trace)
        self._trace_memo: Optional[dict[tuple[Any, ...], tuple[Any, ...]]] = None
        self._building: set[str] = set()
        #: the models found so far while ``models`` is being computed (a functional model's
        #: output may run through a Sequential defined above it: no re-entry into ``models``)
        self._partial_models: Optional[list[Model]] = None

    # -- public API ------------------------------------------------------------
    @cached_property
    def models(self) -> tuple[Model, ...]:
        found: list[Model] = []
        self._partial_models = found
        try:
            for name in self._facts.names.classes:
                model = self._class_model(name)
                if model is not None:
                    found.append(model)
            seen: set[cst.CSTNode] = set()
            # the calls inside model classes, from one walk of each (not every call's ancestors: a
            # 1000-call chain would cost a million steps)
            in_model_classes = {node for m in found for node in self._facts.walk(m.node) if type(node) is cst.Call}
            for call in self._facts.calls():
                if call in seen or call in in_model_classes:
                    continue  # nested containers and a model class's own layers belong to that model
                model = self._call_model(call)
                if model is not None:
                    found.append(model)
                    seen.update(self._nested_sequentials(call))
        finally:
            self._partial_models = None
        return tuple(found)

    @cached_property
    def sequences(self) -> tuple[LayerSequence, ...]:
        """Every layer sequence in data-flow order: each Sequential model (with its ``model.add``
        layers), and each ``nn.Sequential`` nested in a model class or in another Sequential."""
        found = [LayerSequence(model.node, model.layers) for model in self.models if isinstance(model.node, cst.Call)]
        known = {id(model.node) for model in self.models}
        for model in self.models:
            outputs = self._returned_attributes(model.node) if isinstance(model.node, cst.ClassDef) else set()
            for call in self._facts.calls(model.node):
                if id(call) not in known and self._facts.names.qualname(call.func) == "torch.nn.Sequential":
                    known.add(id(call))
                    found.append(LayerSequence(call, tuple(self._sequential_layers(call, 0)),
                                               self._binding_name(call) in outputs))
        return tuple(found)

    def _returned_attributes(self, node: cst.ClassDef) -> set[Optional[str]]:
        """``{"head"}`` when ``forward`` returns ``self.head(...)`` at every return."""
        method = _method(node, "forward")
        returns = self._returns(method) if method is not None else []
        names = {value.func.attr.value if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                 and isinstance(value.func.value, cst.Name) and value.func.value.value == "self" else None
                 for value in returns}
        return names if len(names) == 1 and None not in names else set()

    @cached_property
    def losses(self) -> tuple[LossSite, ...]:
        """Every loss computation of the file, also calls of another project file's function that
        hands an argument to a loss (``pair_loss(out1, out2, y)``: a site per such argument)."""
        sites: list[LossSite] = []
        own = {id(site.node): site for site in self._own_losses}
        for call in self._facts.calls():
            site = own.get(id(call))
            if site is not None:
                sites.append(site)
            else:
                sites.extend(self._wrapped_loss_sites(call))
        return tuple(sites)

    @cached_property
    def _own_losses(self) -> tuple[LossSite, ...]:
        """The losses this file computes itself (``criterion(out, y)``, ``F.cross_entropy(out, y)``)."""
        found = (self._loss_site(call) for call in self._facts.calls())
        return tuple(site for site in found if site is not None)

    def exported_loss_functions(self) -> dict[str, tuple[LossParameter, ...]]:
        """Top-level functions that hand a parameter, unchanged, to a loss of their own as its
        prediction (what a call from another file passes there reaches that loss)."""
        found: dict[str, list[LossParameter]] = {}
        dataflow = self._facts.dataflow
        for function, call in self._calls_on_parameters():
            site = self._loss_site(call)
            prediction = site.prediction if site is not None else None
            if not isinstance(prediction, cst.Name):
                continue
            definitions = dataflow.definitions(prediction)
            if not definitions or not all(isinstance(d.statement, cst.Param) for d in definitions):
                continue
            position = _parameter_position(function, prediction.value)
            if position is None:
                continue
            parameter = LossParameter(position[0], prediction.value, site.kind, site.expects, site.framework)
            if parameter not in found.setdefault(function.name.value, []):
                found[function.name.value].append(parameter)
        return {name: tuple(parameters) for name, parameters in found.items()}

    def _calls_on_parameters(self) -> Iterator[tuple[cst.FunctionDef, cst.Call]]:
        """Calls in top-level functions whose first or second argument is a parameter's name
        (the only calls that can hand a parameter to a loss: cheap to find, costly to resolve)."""
        for function in self._facts.module.body:
            if not isinstance(function, cst.FunctionDef):
                continue
            params = function.params
            names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
            for call in self._facts.calls(function.body):
                if any(isinstance(arg.value, cst.Name) and arg.value.value in names for arg in call.args[:2]) \
                        and next(a for a in self._facts.ancestors(call) if isinstance(a, cst.FunctionDef)) is function:
                    yield function, call

    def _wrapped_loss_sites(self, call: cst.Call) -> list[LossSite]:
        qualname = self._facts.names.qualname(call.func)
        own = self._facts.module_name
        local = isinstance(call.func, cst.Name) and call.func.value in self._facts.names.functions
        if qualname is None or qualname.split(".", 1)[0] in LIBRARY_PACKAGES or local \
                or (own and qualname.startswith(own + ".")):
            return []  # a function of this file: its parameters are followed to every caller instead
        sites = []
        for parameter in self._facts.project.loss_parameters(qualname, self._facts.path):
            prediction = argument(call, parameter.index, parameter.name) if parameter.index is not None \
                else keyword(call, parameter.name)
            if prediction is not None:
                sites.append(LossSite(call, parameter.kind, parameter.expects, parameter.framework, prediction))
        return sites

    @cached_property
    def tf1_graph(self) -> bool:
        """Does this file build a TensorFlow 1 graph (placeholders fed to a session)?"""
        names = self._facts.names
        return any(names.qualname(call.func) in L.TF1_GRAPH_CALLS for call in self._facts.calls())

    def exported_summaries(self) -> dict[str, ModelSummary]:
        """Top-level model classes and module-level model variables, by name."""
        exported: dict[str, ModelSummary] = {}
        for model in self.models:
            if isinstance(model.node, cst.ClassDef):
                exported[model.name] = model.summary
            elif self._is_module_level(model.node):
                exported[model.name] = model.summary
        for name, function in self._facts.names.functions.items():
            summary = self._factory_model(function, 0) or self._function_output(function, 0)
            if summary is not None:
                exported.setdefault(name, summary)
        return exported

    def model_of(self, expr: Optional[cst.BaseExpression]) -> Optional[ModelSummary]:
        """Which model ``expr`` refers to, ``None`` if unknown."""
        return self._model_of(expr, 0)

    def candidates(self, expr: Optional[cst.BaseExpression]) -> Optional[tuple[ModelSummary, ...]]:
        """Every model ``expr`` may be (``get_model(name)`` returning one of several classes);
        ``None`` when any of them is unknown."""
        if expr is None:
            return None
        single = self._model_of(expr, 0)
        if single is not None:
            return (single,)
        origins = self._facts.values.origins(expr)
        if not origins:
            return None
        found: list[ModelSummary] = []
        for origin in origins:
            summary = self._origin_model(origin, 0)
            if summary is None and isinstance(origin, cst.Call):
                function = self._facts.values.callee(origin)
                returns = self._facts.values.returns(function) if function is not None else []
                options = [self.candidates(value) for value in returns if value is not None]
                if options and len(options) == len(returns) and all(options):
                    found.extend(m for option in options for m in option or ())
                    continue
            if summary is None:
                return None
            found.append(summary)
        return tuple(found) or None

    def activation_of(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """The last activation applied to a tensor expression (``F.softmax(x)``, ``model(x)``), else ``None``."""
        ops = self._trace(expr, None, 0)
        return _output_activation(ops)

    def trace(self, expr: Optional[cst.BaseExpression]) -> tuple[str, ...]:
        """Op kinds applied to a tensor expression, output first (``("Softmax", "Linear")``)."""
        return tuple(op.kind for op in self._trace(expr, None, 0))

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
                     for op in self._trace(expr, attributes, 0))

    def _enclosing_layers(self, node: cst.CSTNode) -> Optional[dict[str, Layer]]:
        """The layers of the model class around ``node``, by attribute, if assigned exactly once."""
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, cst.ClassDef):
                if self._framework_of_class(ancestor) is None:
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
                return {name: layer for name, layer in self._init_layers(ancestor).items() if counts.get(name) == 1}
        return None

    # -- models from calls -------------------------------------------------------
    def _call_model(self, call: cst.Call) -> Optional[Model]:
        qualname = self._facts.names.qualname(call.func)
        if qualname == "torch.nn.Sequential":
            layers = tuple(self._sequential_layers(call, 0))
            return self._make_model(self._binding_name(call) or "Sequential", call, "torch", layers)
        if qualname in L.KERAS_SEQUENTIAL:
            layers = list(self._keras_list_layers(call))
            name = self._binding_name(call)
            layers.extend(self._added_layers(call))
            return self._make_model(name or "Sequential", call, "keras", tuple(layers))
        if qualname in L.KERAS_FUNCTIONAL:
            outputs = argument(call, 1, "outputs")
            if outputs is None:
                return None
            ops = self._trace(outputs, None, 0)
            name = self._binding_name(call) or "Model"
            return self._summary_model(name, call, "keras", ops)
        return None

    def _make_model(self, name: str, node: cst.CSTNode, framework: str, layers: tuple[Layer, ...]) -> Model:
        ops: list[_Op] = []
        for layer in layers:
            ops.extend(_layer_ops(layer))
        return Model(name, node, framework, layers, self._summarise(name, framework, list(reversed(ops)), layers))

    def _summary_model(self, name: str, node: cst.CSTNode, framework: str, ops_out_first: list[_Op]) -> Model:
        return Model(name, node, framework, (), self._summarise(name, framework, ops_out_first, ()))

    def _summarise(self, name: str, framework: str, ops_out_first: list[_Op], layers: tuple[Layer, ...],
                   flow: Optional[list[_Op]] = None) -> ModelSummary:
        ordered = flow if flow is not None else list(reversed(ops_out_first))
        kinds: list[str] = []
        dropout = batchnorm = False
        for op in ordered:
            if op.inner is not None and (op.kind == "Sequential" or op.inner.returns_output):
                kinds.extend(op.inner.layers)  # containers and helper functions are flattened into their layers
            else:
                kinds.append(op.kind)
        for op in list(ordered) + [op for layer in layers for op in _layer_ops(layer)]:
            dropout = dropout or op.category == L.DROPOUT or bool(op.inner and op.inner.has_dropout)
            batchnorm = batchnorm or _is_batchnorm(op) or bool(op.inner and op.inner.has_batchnorm)
        module = self._facts.module_name
        activation = _output_activation(ops_out_first)
        return ModelSummary(
            name=name,
            qualname=f"{module}.{name}" if module else name,
            framework=framework,
            layers=tuple(kinds),
            output_activation=activation,
            output_units=_output_units(ops_out_first),
            has_dropout=dropout,
            has_batchnorm=batchnorm,
            # positions cost a little: only for the few models whose output has an activation
            output_site=self._output_site(ops_out_first) if activation is not None else None,
        )

    def _output_site(self, ops_out_first: list[_Op]) -> Optional[Site]:
        op = _output_op(ops_out_first)
        if op is None:
            return None
        if op.category == _ALTERNATIVES:
            return _agreed([self._output_site(list(alternative)) for alternative in op.alternatives])
        if op.category == L.ACTIVATION:
            return self._facts.site(op.node) if op.node is not None else None
        return op.inner.output_site if op.inner is not None else None

    def activation_site(self, expr: Optional[cst.BaseExpression]) -> tuple[Optional[cst.CSTNode], Optional[Site]]:
        """Where the last activation applied to a tensor expression is: a node of this file
        (``F.softmax(...)`` in ``forward``, the ``nn.Softmax()`` layer), or the site another file
        recorded for its model's output; ``(None, None)`` when not known."""
        attributes = self._enclosing_layers(expr) if expr is not None else None
        return self._where(_output_op(self._trace(expr, attributes, 0)))

    def output_activations(self, expr: Optional[cst.BaseExpression]) -> tuple[OutputActivation, ...]:
        """Every activation the output ``expr`` may end in, one per value it may hold (``net`` is
        one of three models chosen by a flag: three entries), with where each is applied; one
        entry when the values agree, and none when the trace is lost."""
        attributes = self._enclosing_layers(expr) if expr is not None else None
        found: list[OutputActivation] = []
        pending = [self._trace(expr, attributes, 0)]
        while pending and len(found) <= 4 * _MAX_BRANCHES:
            ops = pending.pop(0)
            op = _output_op(ops)
            if op is not None and op.category == _ALTERNATIVES:
                pending.extend(list(alternative) for alternative in op.alternatives)
                continue
            node, site = self._where(op)
            found.append(OutputActivation(_output_activation(ops), node, site))
        return tuple(found) if not pending else ()

    def trained_outputs(self, site: LossSite) -> tuple[OutputActivation, ...]:
        """What each model a loss site without a prediction trains ends in (a Keras ``compile``, an
        estimator given a model, or one of several), with where each is applied when several."""
        if not site.models:
            return (OutputActivation(site.model.output_activation, None, None),) if site.model is not None else ()
        found: list[OutputActivation] = []
        for model in site.models:
            place = model.output_site
            node = self.node_at(place) if place is not None and place.path == self._facts.path else None
            found.append(OutputActivation(model.output_activation, node, place))
        return tuple(found)

    def _where(self, op: Optional[_Op]) -> tuple[Optional[cst.CSTNode], Optional[Site]]:
        if op is None:
            return None, None
        if op.category == L.ACTIVATION:
            return op.node, None
        site = self._output_site([op])
        if site is not None and site.path == self._facts.path:
            return self.node_at(site), site
        return None, site

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

    def _sequential_layers(self, call: cst.Call, depth: int) -> Iterator[Layer]:
        if depth > _MAX_DEPTH:
            return
        if not call.args:  # ``seq = nn.Sequential(); seq.add_module("fc", nn.Linear(4, 2))``
            for value in self._added_modules(call):
                yield self._layer(value, None, depth) or Layer("Unknown", L.OTHER, None, call)
            return
        for arg in call.args:
            if arg.keyword is not None:
                continue
            if arg.star:  # ``nn.Sequential(*layers)``: the list's layers, in order
                items = self._facts.values.list_items(arg.value) if arg.star == "*" else None
                if items is None:
                    yield Layer("Unknown", L.OTHER, None, call)
                    continue
                for item in items:
                    yield self._layer(item, None, depth) or Layer("Unknown", L.OTHER, None, call)
                continue
            value = arg.value
            if isinstance(value, cst.Call) and self._facts.names.qualname(value.func) in (
                    "collections.OrderedDict", "dict"):
                items = positional(value, 0)
                if isinstance(items, (cst.List, cst.Tuple)):
                    for element in items.elements:
                        pair = element.value
                        if isinstance(pair, cst.Tuple) and len(pair.elements) == 2:
                            key = literal(pair.elements[0].value, None)
                            layer = self._layer(pair.elements[1].value, key if isinstance(key, str) else None,
                                                depth)
                            if layer is not None:
                                yield layer
                continue
            if isinstance(value, cst.Dict):
                for element in value.elements:
                    if isinstance(element, cst.DictElement):
                        key = literal(element.key, None)
                        layer = self._layer(element.value, key if isinstance(key, str) else None, depth)
                        if layer is not None:
                            yield layer
                continue
            # an element nnlint does not know (``conv_bn(...)``, ``MyHead()``) still occupies its place
            yield self._layer(value, None, depth) or Layer("Unknown", L.OTHER, None, call)

    def _added_modules(self, call: cst.Call) -> list[cst.BaseExpression]:
        """The modules ``add_module``/``append`` add to an empty ``nn.Sequential()`` bound to a name
        (in its scope) or to ``self.<attr>`` (in its class), in source order."""
        facts = self._facts
        parent = facts.parent(call)
        if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1):
            return []
        target = parent.targets[0].target
        if isinstance(target, cst.Name):
            scope: Optional[cst.CSTNode] = facts.dataflow.scope_of(parent)
        elif isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self":
            scope = next((a for a in facts.ancestors(call) if isinstance(a, cst.ClassDef)), None)
        else:
            return []
        if scope is None:
            return []
        wanted = dotted_name(target)
        added: list[cst.BaseExpression] = []
        for node in facts.calls(scope):
            func = node.func
            if not (isinstance(func, cst.Attribute) and dotted_name(func.value) == wanted):
                continue
            if isinstance(target, cst.Name) and facts.dataflow.value_of(func.value) is not call:  # type: ignore[arg-type]
                continue
            if func.attr.value == "add_module" and len(node.args) == 2:
                added.append(node.args[1].value)
            elif func.attr.value == "append" and len(node.args) == 1:
                added.append(node.args[0].value)
        return added

    def _keras_list_layers(self, call: cst.Call) -> Iterator[Layer]:
        items = argument(call, 0, "layers")
        if isinstance(items, (cst.List, cst.Tuple)):
            for element in items.elements:
                layer = self._layer(element.value, None, 0)
                if layer is not None:
                    yield layer

    def _added_layers(self, call: cst.Call) -> Iterator[Layer]:
        """``model.add(Dense(...))`` calls on the variable holding this Sequential, in the same scope."""
        parent = self._facts.parent(call)
        if not (isinstance(parent, cst.Assign) and len(parent.targets) == 1
                and isinstance(parent.targets[0].target, cst.Name)):
            return
        name = parent.targets[0].target.value
        scope = self._facts.dataflow.scope_of(parent)
        if scope is None:
            return
        for node in self._facts.calls(scope):
            func = node.func
            if (isinstance(func, cst.Attribute) and func.attr.value == "add" and isinstance(func.value, cst.Name)
                    and func.value.value == name and self._facts.dataflow.value_of(func.value) is call):
                layer = self._layer(positional(node, 0), None, 0)
                if layer is not None:
                    yield layer

    def _layer(self, expr: Optional[cst.BaseExpression], attribute: Optional[str], depth: int) -> Optional[Layer]:
        if isinstance(expr, cst.Name):  # ``act = nn.Softmax(dim=1); nn.Sequential(fc, act)``
            origins = self._facts.values.origins(expr)
            expr = origins[0] if origins and len(origins) == 1 and isinstance(origins[0], cst.Call) else None
        if not isinstance(expr, cst.Call) or depth > _MAX_DEPTH:
            return None
        names = self._facts.names
        qualname = names.qualname(expr.func)
        if qualname is None:
            return None
        if qualname == "torch.nn.Sequential":
            inner = self._make_model(attribute or "Sequential", expr, "torch",
                                     tuple(self._sequential_layers(expr, depth + 1)))
            return Layer("Sequential", L.CONTAINER, qualname, expr, attribute, inner=inner.summary)
        if qualname in L.KERAS_SEQUENTIAL:
            inner = self._make_model(attribute or "Sequential", expr, "keras", tuple(self._keras_list_layers(expr)))
            return Layer("Sequential", L.CONTAINER, qualname, expr, attribute, inner=inner.summary)
        kind = L.layer_kind(qualname)
        if kind is not None:
            if kind.kind == "Activation":  # Keras Activation("softmax")
                act = self.keras_activation(argument(expr, 0, "activation"))
                if act is None:
                    return None
                return Layer(act, L.ACTIVATION, qualname, expr, attribute)
            activation = None
            if qualname.startswith("keras."):
                activation = self.keras_activation(keyword(expr, "activation"))
                if kind.kind == "Softmax":
                    activation = None
            return Layer(kind.kind, kind.category, qualname, expr, attribute, activation, _units(qualname, expr))
        mlp = L.LIBRARY_MLPS.get(qualname)
        if mlp is not None:  # ``MLP(input_dim=k, hidden_dims=[*hidden, 1])``: its output width is the last listed
            widths = argument(expr, *mlp)
            last = literal(widths.elements[-1].value, None) if isinstance(widths, (cst.List, cst.Tuple)) \
                and widths.elements and not isinstance(widths.elements[-1], cst.StarredElement) else None
            return Layer("MLP", L.DENSE, qualname, expr, attribute, units=last if type(last) is int else None)
        summary = self._model_for_class(qualname, depth + 1)
        if summary is not None:
            return Layer(summary.name, L.MODEL, qualname, expr, attribute, inner=summary)
        return None

    def keras_activation(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """The activation an ``activation=`` argument names: ``"softmax"``, ``tf.nn.relu``, ``keras.activations.tanh``."""
        if expr is None:
            return None
        value = literal(expr, None)
        if isinstance(value, str):
            return L.activation_from_identifier(value)
        qualname = self._facts.names.qualname(expr)
        if qualname is not None:
            return L.ACTIVATION_CALLABLES.get(qualname)
        return None

    def _nested_sequentials(self, call: cst.Call) -> Iterator[cst.CSTNode]:
        for node in self._facts.walk(call):
            if node is not call and isinstance(node, cst.Call):
                yield node

    def _binding_name(self, call: cst.Call) -> Optional[str]:
        parent = self._facts.parent(call)
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
            target = parent.targets[0].target
            if isinstance(target, cst.Name):
                return target.value
            if isinstance(target, cst.Attribute):
                return target.attr.value
        if isinstance(parent, cst.AnnAssign) and isinstance(parent.target, cst.Name):
            return parent.target.value
        return None

    def _is_module_level(self, node: cst.CSTNode) -> bool:
        parent = self._facts.parent(node)
        if not isinstance(parent, (cst.Assign, cst.AnnAssign)):
            return False
        return isinstance(self._facts.dataflow.scope_of(parent), cst.Module)

    # -- models from classes -----------------------------------------------------
    def _class_model(self, name: str) -> Optional[Model]:
        if name in self._class_cache:
            return self._class_cache[name]
        if name in self._building:  # recursive definitions
            return None
        if len(self._building) > _MAX_DEPTH:
            # a class whose layer is a class whose layer is ... (1000 deep): unknown, not a RecursionError;
            # not cached, so that asked at a shallower depth it is still known
            return None
        self._building.add(name)
        try:
            model = self._build_class_model(name)
        finally:
            self._building.discard(name)
        self._class_cache[name] = model
        return model

    def _framework_of_class(self, node: cst.ClassDef, depth: int = 0) -> Optional[str]:
        if depth > _MAX_DEPTH:
            return None
        names = self._facts.names
        for base in node.bases:
            qualname = names.qualname(base.value)
            if qualname in L.TORCH_MODULE_BASES or qualname == "torch.nn.Sequential":
                return "torch"
            if qualname in L.KERAS_MODEL_BASES or qualname in L.KERAS_SEQUENTIAL:
                return "keras"
            if isinstance(base.value, cst.Name) and base.value.value in names.classes:
                found = self._framework_of_class(names.classes[base.value.value], depth + 1)
                if found is not None:
                    return found
            if qualname is not None:
                summary = self._facts.project.model(qualname, near=self._facts.path)
                if summary is not None:
                    return summary.framework
        return None

    def _build_class_model(self, name: str) -> Optional[Model]:
        node = self._facts.names.classes.get(name)
        if node is None:
            return None
        framework = self._framework_of_class(node)
        if framework is None:
            return None
        attributes = self._init_layers(node)
        layers = tuple(attributes.values())
        method = _method(node, "forward" if framework == "torch" else "call")
        if method is None:
            method = _method(node, "call" if framework == "torch" else "forward")
        if method is None and self._sequential_subclass(node):
            passed = self._super_init_layers(node)  # ``super().__init__(nn.Linear(k, 1), nn.Sigmoid())``
            if passed:
                return self._make_model(name, node, framework, passed)
        if method is None:
            ops = [op for layer in layers for op in _layer_ops(layer)]
            summary = self._summarise(name, framework, [], layers, flow=ops)
            summary = _with_output(summary, None, None)
            return Model(name, node, framework, layers, summary)
        flow = self._forward_flow(method, attributes)
        returns = self._returns(method)
        traces = [self._trace(value, attributes, 0) for value in returns]
        summary = self._summarise(name, framework, traces[0] if traces else [], layers, flow=flow)
        summary = _with_output(summary, _agreed([_output_activation(t) for t in traces]),
                               _agreed([_output_units(t) for t in traces]))
        elements, sites = self._tuple_elements(returns, attributes)
        if elements:
            summary = dataclasses.replace(summary, output_elements=elements, element_sites=sites)
        applied = self._applied_argument(method, returns)
        if applied is not None:
            summary = dataclasses.replace(summary, applies_argument=applied)
        return Model(name, node, framework, layers, summary)

    def _module_ops(self, expr: Optional[cst.BaseExpression], attributes: dict[str, Layer], depth: int) -> list[_Op]:
        """What a module value handed to another module computes, input first: ``self.fc``, a
        module made in place, or ``nn.Sequential(self.fc, self.softmax)`` built in ``forward``."""
        if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"
                and expr.attr.value in attributes):
            return _layer_ops(attributes[expr.attr.value])
        if isinstance(expr, cst.Call) and self._facts.names.qualname(expr.func) == "torch.nn.Sequential" \
                and all(arg.keyword is None and not arg.star for arg in expr.args):
            ops: list[_Op] = []
            for arg in expr.args:
                ops.extend(self._module_ops(arg.value, attributes, depth + 1) or [_Op("Unknown", L.OTHER)])
            return ops
        layer = self._layer(expr, None, depth)
        return _layer_ops(layer) if layer is not None else []

    def _applied_argument(self, method: cst.FunctionDef, returns: list[Optional[cst.BaseExpression]]) -> Optional[int]:
        """The position (``self`` not counted) of the argument that every return of ``forward``
        calls last (``output = layer(self.drop(x)); return output``), else ``None``."""
        params = [p.name.value for p in (*method.params.posonly_params, *method.params.params)][1:]
        found: set[int] = set()
        for value in returns:
            value = self._facts.dataflow.resolve(value)
            if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in params):
                return None
            definitions = self._facts.dataflow.definitions(value.func)
            if not definitions or not all(isinstance(d.statement, cst.Param) for d in definitions):
                return None
            found.add(params.index(value.func.value))
        return found.pop() if len(found) == 1 else None

    def _sequential_subclass(self, node: cst.ClassDef) -> bool:
        names = self._facts.names
        return any(names.qualname(base.value) == "torch.nn.Sequential" for base in node.bases)

    def _super_init_layers(self, node: cst.ClassDef) -> tuple[Layer, ...]:
        """The modules an ``nn.Sequential`` subclass passes to ``super().__init__`` positionally, in
        order (empty unless ``__init__`` makes exactly one such call)."""
        init = _method(node, "__init__")
        if init is None:
            return ()
        calls = [call for call in self._facts.calls(init.body) if isinstance(call.func, cst.Attribute)
                 and call.func.attr.value == "__init__" and isinstance(call.func.value, cst.Call)
                 and isinstance(call.func.value.func, cst.Name) and call.func.value.func.value == "super"]
        if len(calls) != 1 or not any(arg.keyword is None for arg in calls[0].args):
            return ()
        return tuple(self._sequential_layers(calls[0], 0))

    def _tuple_elements(self, returns: list[Optional[cst.BaseExpression]], attributes: Optional[dict[str, Layer]]
                        ) -> tuple[tuple[Optional[str], ...], tuple[Optional[Site], ...]]:
        """Each element's output activation, and where it is applied, when every return is a
        tuple literal of one length; empty otherwise."""
        if not returns or not all(isinstance(value, cst.Tuple) for value in returns):
            return (), ()
        tuples = [value.elements for value in returns]  # type: ignore[union-attr]
        if len({len(elements) for elements in tuples}) != 1 or any(
                isinstance(e, cst.StarredElement) for elements in tuples for e in elements):
            return (), ()
        kinds: list[Optional[str]] = []
        sites: list[Optional[Site]] = []
        for position in range(len(tuples[0])):
            traces = [self._trace(elements[position].value, attributes, 0) for elements in tuples]
            kind = _agreed([_output_activation(trace) for trace in traces])
            kinds.append(kind)
            sites.append(_agreed([self._output_site(trace) for trace in traces]) if kind is not None else None)
        return (tuple(kinds), tuple(sites)) if any(kind is not None for kind in kinds) else ((), ())

    def _init_layers(self, node: cst.ClassDef) -> dict[str, Layer]:
        found: dict[str, Layer] = {}
        init = _method(node, "__init__") or _method(node, "build")
        if init is None:
            return found
        for statement in self._construction_nodes(node, init):
            if isinstance(statement, cst.Assign):
                targets = [t.target for t in statement.targets]
            elif isinstance(statement, cst.AnnAssign) and statement.value is not None:
                targets = [statement.target]
            else:
                continue
            for target in targets:
                if (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
                        and target.value.value == "self"):
                    layer = self._layer(statement.value, target.attr.value, 0)
                    if layer is not None:
                        found[target.attr.value] = layer
        return found

    def _construction_nodes(self, node: cst.ClassDef, init: cst.FunctionDef) -> Iterator[cst.CSTNode]:
        """The nodes of ``__init__``, then of the methods it calls on ``self`` to build layers
        (``self._create_network(...)``), a few calls deep, each method once."""
        pending, seen = [init], {id(init)}
        while pending and len(seen) <= _MAX_BRANCHES * 2:
            method = pending.pop(0)
            for child in self._facts.walk(method.body):
                yield child
                func = child.func if isinstance(child, cst.Call) else None
                if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                    helper = _method(node, func.attr.value)
                    if helper is not None and id(helper) not in seen:
                        seen.add(id(helper))
                        pending.append(helper)

    def _forward_flow(self, method: cst.FunctionDef, attributes: dict[str, Layer]) -> list[_Op]:
        """Ops of ``forward`` in evaluation order (inner calls before outer ones)."""
        flow: list[_Op] = []
        calls = [n for n in self._facts.walk(method.body) if isinstance(n, cst.Call)]
        # pre-order lists outer calls first; evaluation runs arguments first
        order = {id(c): i for i, c in enumerate(calls)}
        for call in sorted(calls, key=lambda c: (self._statement_index(c, method), -order[id(c)])):
            ops = self._op_of_call(call, attributes, 0)
            if not ops and self._loop_module(call):
                ops = [_Op("Unknown", L.OTHER)]  # ``for head in self.heads: head(h)``: some layer, not nothing
            flow.extend(ops)
        return flow

    def _loop_module(self, call: cst.Call) -> bool:
        """Is ``call`` a module taken from one of the model's containers by a loop (``for head in self.heads``)?"""
        if not isinstance(call.func, cst.Name):
            return False
        definitions = self._facts.dataflow.definitions(call.func)
        loop = definitions[0].statement if len(definitions) == 1 else None
        if not isinstance(loop, cst.For):
            return False
        source = loop.iter
        if isinstance(source, cst.Call) and isinstance(source.func, cst.Name) and source.func.value == "enumerate" \
                and source.args:
            source = source.args[0].value
        return isinstance(source, cst.Attribute) and isinstance(source.value, cst.Name) and source.value.value == "self"

    def _statement_index(self, node: cst.CSTNode, method: cst.FunctionDef) -> int:
        tree = self._facts._tree  # one traversal shared by all facts
        for ancestor in [node, *self._facts.ancestors(node)]:
            if isinstance(ancestor, cst.BaseStatement) or isinstance(ancestor, cst.BaseSmallStatement):
                return tree.index(ancestor) or 0
        return 0

    # -- tracing data flow -------------------------------------------------------
    def _main_input(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        if isinstance(call.func, cst.Call):  # Keras functional: Dense(10)(x)
            return positional(call, 0)
        if isinstance(call.func, cst.Attribute) and self._facts.names.qualname(call.func) is None:
            if call.func.attr.value in L.TENSOR_METHODS:
                return call.func.value
        return positional(call, 0)

    def _op_of_call(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int) -> list[_Op]:
        """What applying this call does to its main input (empty when it is not a known op)."""
        names = self._facts.names
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("forward", "__call__") \
                and isinstance(func.value, (cst.Name, cst.Attribute)):
            func = func.value  # ``self.fc.forward(x)`` / ``model.forward(x)``: the module applied
        if isinstance(func, cst.Call):  # Keras functional layer application
            layer = self._layer(func, None, depth + 1)
            return _layer_ops(layer) if layer is not None else []
        if (attributes is not None and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value == "self" and func.attr.value in attributes):
            layer = attributes[func.attr.value]
            applied = layer.inner.applies_argument if layer.inner is not None else None
            if applied is not None and depth < _MAX_DEPTH:
                # ``self.wrap(x, nn.Sequential(self.fc, self.softmax))``: the module it is given makes the output
                return self._module_ops(positional(call, applied), attributes, depth + 1)
            if layer.category == L.ACTIVATION and layer.inner is None:
                # ``self.softmax(x)``: the fix goes where forward applies it, not where __init__ made it
                return [_Op(layer.kind, layer.category, layer.units, node=call)]
            return _layer_ops(layer)
        qualname = names.qualname(func)
        if qualname is not None:
            kind = L.function_kind(qualname) or _callable_activation(qualname)
            if kind is not None:
                return [_Op(kind.kind, kind.category, node=call)]
            functional = L.TF_FUNCTIONAL_LAYERS.get(qualname)
            if functional is not None:
                return self._functional_layer_ops(call, functional)
            output = self._called_function_output(call, qualname, depth)
            if output is not None:
                return [_Op(output.name, L.MODEL, output.output_units, output, node=call)]
            return []
        if isinstance(func, cst.Attribute) and func.attr.value in L.TENSOR_METHODS:
            if attributes is not None and isinstance(func.value, cst.Name) and func.value.value == "self":
                # a layer attribute __init__ does not make plainly (``self.relu = nn.ReLU() if a else
                # nn.Identity()``): its name says nothing about what it computes
                return []
            kind = L.TENSOR_METHODS[func.attr.value]
            return [_Op(kind.kind, kind.category, node=call)]
        if isinstance(func, (cst.Name, cst.Attribute)) and depth < _MAX_DEPTH:
            summary = self._model_of(func, depth + 1)
            if summary is not None:
                return [_Op(summary.name, L.MODEL, summary.output_units, summary)]
            options = self.candidates(func)
            if options and len(options) <= 2 * _MAX_BRANCHES:  # one of several models (chosen by a flag)
                return _either([[_Op(m.name, L.MODEL, m.output_units, m)] for m in options])
        return []

    def _trace(self, expr: Optional[cst.BaseExpression], attributes: Optional[dict[str, Layer]],
               depth: int, bound: Optional[dict[int, cst.BaseExpression]] = None) -> list[_Op]:
        """Ops applied to ``expr``, output first, following main inputs and local assignments.

        ``bound`` maps id(parameter) of the helper methods being traced through to what the call passed.
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

    def _trace_steps(self, expr: Optional[cst.BaseExpression], attributes: Optional[dict[str, Layer]],
                     depth: int, bound: Optional[dict[int, cst.BaseExpression]]) -> list[_Op]:
        ops: list[_Op] = []
        steps = 0
        while expr is not None and steps < 64 and depth < _MAX_DEPTH:
            steps += 1
            if isinstance(expr, cst.Name):
                definitions = self._facts.dataflow.definitions(expr)
                if len(definitions) > 1:  # ``acc = torch.tensor([])`` then ``acc = torch.cat((acc, out))``
                    definitions = self._without_seed(expr, definitions)
                if 1 < len(definitions) <= _MAX_BRANCHES and all(d.value is not None for d in definitions):
                    # ``if ...: out = a(x) else: out = b(x)``: known only if every branch agrees
                    ops.extend(_either([self._trace(d.value, attributes, depth + 1, bound) for d in definitions]))
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
                    ops.extend(_either([self._trace(a, None, depth + 1) for a in arguments]))
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
                found = self._op_of_call(expr, attributes, depth)
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
                           depth: int) -> Optional[list[_Op]]:
        """``model(x)[0]`` where the model returns a tuple: that element's ops (``None`` otherwise)."""
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index) \
                or not isinstance(expr.value, cst.Call):
            return None
        index = literal(expr.slice[0].slice.value, None)
        found = self._op_of_call(expr.value, attributes, depth)
        if not isinstance(index, int) or len(found) != 1 or found[0].inner is None \
                or not found[0].inner.output_elements:
            return None
        model = found[0].inner
        if not 0 <= index < len(model.output_elements):
            return []
        return [_Op(model.name, L.MODEL, None, _element(model, index))]

    def _joined(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int,
                bound: Optional[dict[int, cst.BaseExpression]]) -> Optional[list[_Op]]:
        """Calls that keep what their inputs' values mean: ``torch.cat([a, b])`` (when the parts
        agree), ``Variable(out)``, and ``exp`` of a log-softmax/log-sigmoid (a softmax/sigmoid)."""
        names = self._facts.names
        qualname = names.qualname(call.func)
        if qualname in ("torch.cat", "torch.stack", "torch.concat", "torch.concatenate"):
            parts = argument(call, 0, "tensors")
            if isinstance(parts, cst.Name) and isinstance(self._facts.dataflow.value_of(parts), cst.List):
                return self._rows(parts, attributes, depth, bound)  # ``torch.stack(outs)``, ``outs = []`` appended to
            if isinstance(parts, (cst.Name, cst.Call)):  # ``torch.stack(model(x))``: rows of a list of outputs
                return self._trace(parts, attributes, depth + 1, bound)
            if not isinstance(parts, (cst.List, cst.Tuple)) or not parts.elements \
                    or any(isinstance(e, cst.StarredElement) for e in parts.elements):
                return []
            # ``acc = torch.cat((acc, out))`` accumulates in a loop: the parts added are what it holds
            target = self._facts.parent(call)
            accumulator = target.targets[0].target if isinstance(target, cst.Assign) and len(target.targets) == 1 \
                else None
            values = [e.value for e in parts.elements if not (isinstance(accumulator, cst.Name) and isinstance(
                e.value, cst.Name) and e.value.value == accumulator.value)]
            return _agreed([self._trace(value, attributes, depth + 1, bound) for value in values]) or []
        if qualname == "torch.autograd.Variable":
            inner = positional(call, 0)
            return self._trace(inner, attributes, depth + 1, bound) if inner is not None else []
        is_exp = qualname == "torch.exp" or (qualname is None and isinstance(call.func, cst.Attribute)
                                             and call.func.attr.value == "exp" and not call.args)
        if is_exp:
            inner = positional(call, 0) if qualname == "torch.exp" else call.func.value  # type: ignore[union-attr]
            below = self._trace(inner, attributes, depth + 1, bound)
            if below and below[0].category == L.ACTIVATION and below[0].kind in ("LogSoftmax", "LogSigmoid"):
                kind = "Softmax" if below[0].kind == "LogSoftmax" else "Sigmoid"
                return [_Op(kind, L.ACTIVATION, node=call)] + below[1:]
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
              bound: Optional[dict[int, cst.BaseExpression]]) -> list[_Op]:
        """The ops of each element of a list built by ``append`` (a row of a list of head outputs),
        when every element agrees; empty otherwise."""
        items = self._facts.values.list_items(name)
        if not items or len(items) > 2 * _MAX_BRANCHES:
            return []
        return _agreed([self._trace(item, attributes, depth + 1, bound) for item in items]) or []

    def _tuple_element(self, definition: "Definition", attributes: Optional[dict[str, Layer]],
                       depth: int) -> list[_Op]:
        source, element = definition.unpacked, definition.element
        if not isinstance(source, cst.Call) or element is None:
            return []
        found = self._op_of_call(source, attributes, depth)
        if len(found) != 1 or found[0].inner is None:
            return []
        model = found[0].inner
        if element >= len(model.output_elements):
            return []
        return [_Op(model.name, L.MODEL, None, _element(model, element))]

    def _through_helper_method(self, call: cst.Call, attributes: Optional[dict[str, Layer]], depth: int,
                               bound: Optional[dict[int, cst.BaseExpression]]) -> Optional[list[_Op]]:
        """``self.decode(z)`` inside a model class: the ops of what ``decode`` returns, its
        parameters bound to the call's arguments (``None`` when that is not known)."""
        func = call.func
        if attributes is None or not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                                      and func.value.value == "self") or func.attr.value in attributes:
            return None
        owner = next((a for a in self._facts.ancestors(func) if isinstance(a, cst.ClassDef)), None)
        method = _method(owner, func.attr.value) if owner is not None else None
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
        returns = self._returns(method)
        if not returns or any(value is None for value in returns) or len(returns) > _MAX_BRANCHES:
            return None
        return _agreed([self._trace(value, attributes, depth + 1, binding) for value in returns])

    def _functional_layer_ops(self, call: cst.Call, layer: L.FunctionalLayer) -> list[_Op]:
        units = literal(argument(call, *layer.units), None)
        ops = [_Op(layer.kind, layer.category, units if type(units) is int else None, node=call)]
        chosen = keyword(call, layer.activation_keyword)
        activation = self.keras_activation(chosen) if chosen is not None else layer.default_activation
        if activation is not None:
            ops.append(_Op(activation, L.ACTIVATION, node=call))
        return ops

    def _called_function_output(self, call: cst.Call, qualname: str, depth: int) -> Optional[ModelSummary]:
        """What a call of a plain function returns, when that function builds and returns an
        output (see :meth:`_function_output`): one of this file, or of another project file."""
        values = self._facts.values
        function = values.callee(call)
        if function is not None:
            if values.class_of(function) is not None:
                return None  # methods: ``_through_helper_method`` binds ``self`` and the arguments
            return self._function_output(function, depth + 1)
        if depth >= _MAX_DEPTH:
            return None
        summary = self._facts.project.model(qualname, near=self._facts.path)
        return summary if summary is not None and summary.returns_output else None

    def _function_output(self, function: cst.FunctionDef, depth: int) -> Optional[ModelSummary]:
        """A function that builds a graph and returns its output (TF1 ``def model(x): ...;
        return tf.nn.softmax(logits)``, ``def predict(m, x): return F.softmax(m(x), 1)``) as a
        summary applied by calling it; ``None`` unless every return agrees on an activation."""
        key = f"out {function.name.value}"  # shares the recursion guard with classes and factories
        if depth > _MAX_DEPTH or key in self._building:
            return None
        self._building.add(key)
        try:
            returns = self._returns(function)
            if not returns or any(value is None for value in returns) or len(returns) > _MAX_BRANCHES:
                return None
            traces = [self._trace(value, None, depth + 1) for value in returns]
            activation = _agreed([_output_activation(trace) for trace in traces])
            elements, sites = self._tuple_elements(returns, None)
            if activation is None and not elements:
                return None
            op = _output_op(traces[0])
            node = op.node if op is not None else None
            qualname = self._facts.names.qualname(node.func) if isinstance(node, cst.Call) else None
            framework = "torch" if (qualname or "").startswith("torch") else "keras"
            summary = self._summarise(function.name.value, framework, traces[0], ())
            return dataclasses.replace(summary, output_activation=activation, output_elements=elements,
                                       element_sites=sites,
                                       output_units=_agreed([_output_units(trace) for trace in traces]),
                                       returns_output=True)
        finally:
            self._building.discard(key)

    def _returns(self, method: cst.FunctionDef) -> list[Optional[cst.BaseExpression]]:
        """What each ``return`` of ``method`` itself (not of a nested function) returns."""
        return [r.value for r in self._facts.nodes_of(cst.Return, within=method.body)  # type: ignore[attr-defined]
                if self._facts.dataflow.scope_of(r) is method]

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

    # -- model_of --------------------------------------------------------------
    def _model_of(self, expr: Optional[cst.BaseExpression], depth: int) -> Optional[ModelSummary]:
        if expr is None or depth > _MAX_DEPTH:
            return None
        facts = self._facts
        if isinstance(expr, cst.Call):
            known = self._partial_models if self._partial_models is not None else self.models
            for model in known:
                if model.node is expr:
                    return model.summary
        origins = facts.values.origins(expr)
        if not origins:
            return None
        return _agreed([self._origin_model(origin, depth) for origin in origins])

    def _origin_model(self, origin: cst.CSTNode, depth: int) -> Optional[ModelSummary]:
        """The model an origin of :meth:`Values.origins` creates (``Net()``, ``self`` in ``Net``)."""
        if isinstance(origin, cst.ClassDef):
            model = self._class_model(origin.name.value) if self._facts.names.classes.get(
                origin.name.value) is origin else None
            return model.summary if model is not None else None
        if isinstance(origin, External):  # a model another file passes in
            if not origin.passed.called:
                return None
            return self._model_for_class(origin.passed.qualname, depth + 1) or _torchvision(origin.passed.qualname)
        if not isinstance(origin, cst.Call):
            return None
        known = self._partial_models if self._partial_models is not None else self.models
        for model in known:
            if model.node is origin:
                return model.summary
        qualname = self._facts.names.qualname(origin.func)
        if qualname is None:
            return None
        return self._model_for_class(qualname, depth + 1) or _torchvision(qualname)

    def _model_for_class(self, qualname: str, depth: int) -> Optional[ModelSummary]:
        module = self._facts.module_name
        local = qualname[len(module) + 1:] if module and qualname.startswith(module + ".") else (
            qualname if not module else None)
        if local is not None and local in self._facts.names.classes:
            model = self._class_model(local)
            return model.summary if model is not None else None
        if local is not None and local in self._facts.names.functions:
            return self._factory_model(self._facts.names.functions[local], depth + 1)
        if depth > _MAX_DEPTH:
            return None
        summary = self._facts.project.model(qualname, near=self._facts.path)
        return summary if summary is not None and not summary.returns_output else None

    def _factory_model(self, function: cst.FunctionDef, depth: int) -> Optional[ModelSummary]:
        """The model a factory function (``def build_model(): ...; return model``) returns, if always the same."""
        key = f"def {function.name.value}"  # functions and classes share the recursion guard
        if depth > _MAX_DEPTH or key in self._building:
            return None
        self._building.add(key)
        try:
            found: Optional[ModelSummary] = None
            for node in self._facts.walk(function.body):
                if not isinstance(node, cst.Return):
                    continue
                if self._enclosing_function(node) is not function:
                    continue  # a return of a nested function
                summary = self._model_of(node.value, depth + 1)
                if summary is None or (found is not None and found != summary):
                    return None
                found = summary
            return found
        finally:
            self._building.discard(key)

    def _enclosing_function(self, node: cst.CSTNode) -> Optional[cst.FunctionDef]:
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return ancestor if isinstance(ancestor, cst.FunctionDef) else None
        return None

    # -- losses ------------------------------------------------------------------
    def _loss_site(self, call: cst.Call) -> Optional[LossSite]:
        names = self._facts.names
        qualname = names.qualname(call.func)
        if qualname in L.TORCH_LOSS_FUNCTIONS:
            kind = L.TORCH_LOSS_FUNCTIONS[qualname]
            return LossSite(call, kind.kind, kind.expects, "torch", argument(call, 0, "input"))
        if qualname in L.TF_LOGITS_LOSSES:
            kind_name, word, index = L.TF_LOGITS_LOSSES[qualname]
            if qualname in L.TF_SENTINEL_LOSSES and len(call.args) >= 2 and all(a.keyword is None for a in call.args) \
                    and self.tf1_graph:
                index = 0  # positional: TF 1.x refuses it (a sentinel first), so this is 0.x's (logits, labels)
            return LossSite(call, kind_name, "logits", "keras", argument(call, index, word))
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "compile" and qualname is None:
            return self._compile_site(call)
        if qualname is not None and (keyword(call, "criterion") is not None or qualname in L.ESTIMATOR_DEFAULT_LOSSES):
            return self._estimator_site(call, qualname)
        if qualname is not None:
            keras_kind = _keras_loss_function(qualname)
            if keras_kind is not None:
                from_logits = literal(keyword(call, "from_logits"), False) is True
                return LossSite(call, keras_kind, "logits" if from_logits else _keras_expects(keras_kind),
                                "keras", argument(call, 1, "y_pred"))
        found = self._loss_constructor(call.func)
        if found is None:
            return None
        constructor, ctor_name, passed_in = found
        if constructor is None:  # ``loss_fn(out, y)`` with ``loss_fn=F.cross_entropy`` passed in
            if ctor_name in L.TORCH_LOSS_FUNCTIONS:
                kind = L.TORCH_LOSS_FUNCTIONS[ctor_name]
                return LossSite(call, kind.kind, kind.expects, "torch", argument(call, 0, "input"))
            if ctor_name in L.TORCH_LOSS_CLASSES and passed_in:  # an instance made in another file
                kind = L.TORCH_LOSS_CLASSES[ctor_name]
                return LossSite(call, kind.kind, kind.expects, "torch", argument(call, 0, "input"))
            return None
        if ctor_name in L.TORCH_LOSS_CLASSES:
            kind = L.TORCH_LOSS_CLASSES[ctor_name]
            return LossSite(call, kind.kind, kind.expects, "torch", argument(call, 0, "input"), constructor)
        keras_kind = _keras_loss_class(ctor_name)
        if keras_kind is not None:
            from_logits = literal(keyword(constructor, "from_logits"), False) is True
            return LossSite(call, keras_kind, "logits" if from_logits else _keras_expects(keras_kind), "keras",
                            argument(call, 1, "y_pred"), constructor)
        return None

    def _loss_constructor(self, func: cst.BaseExpression) -> Optional[tuple[Optional[cst.Call], Optional[str], bool]]:
        """What a called loss object is: ``(constructor call, class qualname)`` for ``criterion`` /
        ``self.criterion`` / ``nn.CrossEntropyLoss()`` (also through parameters, attributes and
        ``loss_fn.forward``), or ``(None, function qualname)`` for a loss function passed as a value; the
        flag says the loss instance was made in another file and passed in.
        ``None`` when unknown, or when the possible values are not all the same loss."""
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        if not isinstance(func, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
            return None
        names = self._facts.names
        if isinstance(func, cst.Call):
            origins: Optional[tuple[cst.CSTNode, ...]] = (func,)
        else:
            origins = self._facts.values.origins(func)
        if not origins:
            return None
        found: list[tuple[Optional[cst.Call], Optional[str], Any]] = []
        external = False
        for origin in origins:
            if isinstance(origin, cst.Call):
                qualname = names.qualname(origin.func)
                if qualname is None and isinstance(origin.func, (cst.Name, cst.Attribute)):
                    # ``loss_cls = nn.BCEWithLogitsLoss; criterion = loss_cls()``
                    classes = self._facts.values.origins(origin.func)
                    qualnames = {names.qualname(c) for c in classes or () if isinstance(c, (cst.Name, cst.Attribute))}
                    qualname = qualnames.pop() if len(qualnames) == 1 and len(classes or ()) >= 1 else None
                found.append((origin, qualname, literal(keyword(origin, "from_logits"), False)))
            elif isinstance(origin, (cst.Name, cst.Attribute)):
                found.append((None, names.qualname(origin), None))
            elif isinstance(origin, External):  # a loss another file passes in (an instance, or a function)
                found.append((None, origin.passed.qualname, None))
                external = external or origin.passed.called
            else:
                return None
        first = found[0]
        if first[1] is None or any((f[1], f[2]) != (first[1], first[2]) for f in found[1:]):
            return None
        return first[0], first[1], external

    def _estimator_site(self, call: cst.Call, qualname: str) -> Optional[LossSite]:
        """A library estimator given a module and its loss (skorch's ``NeuralNetClassifier(MyModule,
        criterion=nn.CrossEntropyLoss)``): it feeds the module's output to the criterion."""
        facts = self._facts
        if facts.project.resolve(qualname, near=facts.path) is not None or qualname in facts.names.classes \
                or qualname in facts.names.functions:
            return None  # a project class: its own code is followed instead
        default = L.ESTIMATOR_DEFAULT_LOSSES.get(qualname)
        criterion = keyword(call, default[0] if default is not None else "criterion")
        if criterion is None and default is not None:  # left out: the estimator's own loss
            criterion_name: Optional[str] = default[1]
        else:
            criterion_name = facts.names.qualname(criterion.func if isinstance(criterion, cst.Call) else criterion)
        kind = L.TORCH_LOSS_CLASSES.get(criterion_name or "")
        module = keyword(call, "module") or positional(call, 0)
        model = self._model_of(module, 0) if module is not None else None
        module_name = facts.names.qualname(module) if isinstance(module, (cst.Name, cst.Attribute)) else None
        if model is None and module_name is not None:  # the class itself: the estimator builds it
            model = self._model_for_class(module_name, 1)
        options = self.candidates(module) if model is None and module is not None else None
        if options is not None and len(options) > 1 \
                and _agreed([option.output_activation for option in options]) is not None:
            model = options[0]  # one of several models, all ending alike (each is reported)
        if kind is None or model is None:
            return None
        return LossSite(call, kind.kind, kind.expects, "torch", None,
                        criterion if isinstance(criterion, cst.Call) else None, model,
                        options if options is not None and len(options) > 1 else ())

    def _compile_site(self, call: cst.Call) -> Optional[LossSite]:
        loss = keyword(call, "loss")
        if loss is None:
            return None
        if isinstance(loss, cst.Name):
            loss = self._facts.dataflow.value_of(loss) or loss
        assert isinstance(call.func, cst.Attribute)
        model = self._model_of(call.func.value, 0)
        text = literal(loss, None)
        if isinstance(text, str):
            kind = L.KERAS_LOSS_NAMES.get(text.lower())
            if kind is None:
                return None
            return LossSite(call, kind, _keras_expects(kind), "keras", None, None, model)
        if isinstance(loss, cst.Call):
            kind = _keras_loss_class(self._facts.names.qualname(loss.func))
            if kind is None:
                return None
            from_logits = literal(keyword(loss, "from_logits"), False) is True
            return LossSite(call, kind, "logits" if from_logits else _keras_expects(kind), "keras", None, loss, model)
        qualname = self._facts.names.qualname(loss)
        kind = _keras_loss_function(qualname) if qualname else None
        if kind is not None:
            return LossSite(call, kind, _keras_expects(kind), "keras", None, None, model)
        return None


def report_at_activation(ctx: "Context", code: str, site: LossSite, message: str, loss_words: str,
                        where: Optional[OutputActivation] = None) -> None:
    """Report an output-activation finding where the fix goes: at the activation (``where``, else
    the one the prediction ends in), also when it is in another file (the loss as a related place).
    ``# nnlint: ignore[CODE]`` on the activation's line silences it, in either file."""
    models = ctx.facts.models
    node: Optional[cst.CSTNode] = None
    place: Optional[Site] = None
    if where is not None:
        node, place = where.node, where.site
    elif site.prediction is not None:
        node, place = models.activation_site(site.prediction)
    elif site.model is not None and site.model.output_site is not None:
        place = site.model.output_site
        node = models.node_at(place) if place.path == ctx.facts.path else None
    if node is not None:
        ctx.report(node, message, related=[(site.node, loss_words)])
    elif place is not None and place.path != ctx.facts.path:
        if not place.silences(code):
            ctx.report_at(place, message, related=[(site.node, loss_words)])
    else:
        ctx.report(site.node, message)


# -- helpers --------------------------------------------------------------------
def _method(node: cst.ClassDef, name: str) -> Optional[cst.FunctionDef]:
    body = node.body
    if not isinstance(body, cst.IndentedBlock):
        return None
    for statement in body.body:
        if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
            return statement
    return None


def _units(qualname: str, call: cst.Call) -> Optional[int]:
    if qualname in ("torch.nn.Linear",):
        value = literal(argument(call, 1, "out_features"), None)
    elif qualname == "torch.nn.LazyLinear":
        value = literal(argument(call, 0, "out_features"), None)
    elif qualname.startswith("keras.layers.") and qualname.endswith(".Dense"):
        value = literal(argument(call, 0, "units"), None)
    else:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _layer_ops(layer: Layer) -> list[_Op]:
    """Ops of one layer in data-flow order (a Keras Dense with ``activation=`` is two ops)."""
    if layer.inner is not None:
        return [_Op(layer.kind, layer.category, layer.inner.output_units, layer.inner)]
    ops = [_Op(layer.kind, layer.category, layer.units, node=layer.node)]
    if layer.activation is not None:
        ops.append(_Op(layer.activation, L.ACTIVATION, node=layer.node))
    return ops


def _callable_activation(qualname: str) -> Optional[L.Kind]:
    kind = L.ACTIVATION_CALLABLES.get(qualname)
    return L.Kind(kind, L.ACTIVATION) if kind is not None else None


def _is_batchnorm(op: _Op) -> bool:
    return op.category == L.NORM and "Batch" in op.kind


def _output_op(ops_out_first: list[_Op]) -> Optional[_Op]:
    """The op that decides the output activation: an activation, a model applied last, or the
    alternatives of a value that may be one of several."""
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT):
            continue
        if op.category in (L.ACTIVATION, _ALTERNATIVES) or op.inner is not None:
            return op
        return None
    return None


def _output_activation(ops_out_first: list[_Op]) -> Optional[str]:
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT):
            continue
        if op.category == L.ACTIVATION:
            return _activation_name(op.kind)
        if op.category == _ALTERNATIVES:
            return _agreed([_output_activation(list(alternative)) for alternative in op.alternatives])
        if op.inner is not None:
            return op.inner.output_activation
        return None
    return None


def _output_units(ops_out_first: list[_Op]) -> Optional[int]:
    for op in ops_out_first:
        if op.category in (L.SHAPE, L.DROPOUT, L.ACTIVATION):
            continue
        if op.category == _ALTERNATIVES:
            return _agreed([_output_units(list(alternative)) for alternative in op.alternatives])
        return op.units
    return None


#: constructors of an empty tensor a loop then concatenates onto
_EMPTY_TENSORS = frozenset({"torch.tensor", "torch.Tensor", "torch.empty", "torch.zeros", "torch.FloatTensor"})
_CONCATENATE = frozenset({"torch.cat", "torch.concat", "torch.concatenate"})


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


def _either(traces: list[list[_Op]]) -> list[_Op]:
    """The trace of a value that may come from any of ``traces``: theirs when they agree, an
    ``_ALTERNATIVES`` op when they differ, and nothing when one of them is not known."""
    agreed = _agreed(traces)
    if agreed is not None:
        return agreed
    if len(traces) < 2 or not all(traces):
        return []
    return [_Op(_ALTERNATIVES, _ALTERNATIVES, alternatives=tuple(tuple(trace) for trace in traces))]


def _agreed(results: list[_T]) -> Optional[_T]:
    """The result every branch, return or call site gave; ``None`` when they differ or there are none."""
    if results and all(result == results[0] for result in results[1:]):
        return results[0]
    return None


def _element(summary: ModelSummary, index: int) -> ModelSummary:
    """One element of a model's tuple output (``recon, mu, logvar = model(x)``), as a model of its own."""
    site = summary.element_sites[index] if index < len(summary.element_sites) else None
    return dataclasses.replace(summary, output_activation=summary.output_elements[index], output_units=None,
                               output_elements=(), element_sites=(), output_site=site)


def _with_output(summary: ModelSummary, activation: Optional[str], units: Optional[int]) -> ModelSummary:
    return dataclasses.replace(summary, output_activation=activation, output_units=units)


def _torchvision(qualname: str) -> Optional[ModelSummary]:
    if not qualname.startswith("torchvision.models."):
        return None
    name = qualname.rsplit(".", 1)[-1]
    if not name or not name[0].islower():
        return None
    for prefix, batchnorm, dropout in _TORCHVISION:
        if name.startswith(prefix):
            if prefix == "vgg" and name.endswith("_bn"):
                batchnorm = True
            return ModelSummary(name, qualname, "torch", (), None, None, dropout, batchnorm)
    return None


def _keras_loss_function(qualname: Optional[str]) -> Optional[str]:
    if qualname is None:
        return None
    module, _, name = qualname.rpartition(".")
    if module in L.KERAS_LOSS_MODULES:
        return L.KERAS_LOSS_FUNCTIONS.get(name)
    return None


def _keras_loss_class(qualname: Optional[str]) -> Optional[str]:
    if qualname is None:
        return None
    module, _, name = qualname.rpartition(".")
    if module in ("keras.losses", "tensorflow.losses"):
        return L.KERAS_LOSS_CLASSES.get(name)
    return None


def _keras_expects(kind: str) -> str:
    return "probs" if "crossentropy" in kind else "values"


def _parameter_position(function: cst.FunctionDef, name: str) -> Optional[tuple[Optional[int]]]:
    """``(index,)`` of the parameter ``name`` (``(None,)`` for keyword-only), ``None`` if it is not one
    (``*args``, ``**kwargs``)."""
    params = function.params
    for index, param in enumerate(list(params.posonly_params) + list(params.params)):
        if param.name.value == name:
            return (index,)
    if any(param.name.value == name for param in params.kwonly_params):
        return (None,)
    return None
