"""Models as layer sequences.

A *model* is one of: an ``nn.Sequential(...)`` / Keras ``Sequential([...])`` literal
(plus ``model.add(...)`` calls), an ``nn.Module`` / ``keras.Model`` subclass (layers made
in ``__init__``, or in the methods it calls on ``self``, as ``self.x = ...``, ordered by the
data flow of ``forward``/``call``), an ``nn.Sequential`` subclass (the modules it passes to
``super().__init__``), or a Keras functional ``Model(inputs, outputs)``. Each model gets a picklable
:class:`ModelSummary` so other files can ask about it through the project index: its layers, its
output activation and width (traced by :mod:`nnlint.facts.outputs` from what ``forward`` returns),
dropout and batch norm. A plain function that builds and returns an output (a TF1 graph helper
``def model(x): ...; return tf.nn.softmax(logits)``) is summarised as applied by calling it
(``ModelSummary.returns_output``), also for other files; a factory (``def build_model(): ...;
return Net()``) as the model it returns.

:meth:`ModelFacts.model_of` says which model an expression holds (through names, parameters,
attributes, wrappers and factories, across files); :meth:`ModelFacts.candidates` lists the models
it may be when a flag chooses one of several.

Questions answered (through ``FileFacts.models``):

* :attr:`ModelFacts.models` - the models the file builds, with their layers in data-flow order
* :attr:`ModelFacts.sequences` - every layer sequence (Sequentials, also nested ones)
* :meth:`ModelFacts.model_of` / :meth:`ModelFacts.candidates` - which model an expression holds
* :meth:`ModelFacts.exported_summaries` - what other files may ask about this file's models
* :meth:`ModelFacts.keras_activation` - the activation an ``activation=`` argument names
* :attr:`ModelFacts.tf1_graph` - does the file build a TensorFlow 1 graph
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.names import argument, dotted_name, keyword, literal, positional
from nnlint.facts.outputs import (MAX_BRANCHES, MAX_DEPTH, Op, agreed, layer_ops, output_activation, output_op,
                                  output_units)
from nnlint.facts.values import LIBRARY_PACKAGES, External

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

# Defined next to ModuleSummary so that cached summaries unpickle without importing libcst.
from nnlint.facts.index import ModelSummary, Site  # noqa: E402


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


class ModelFacts:
    """The models of one file (``facts.models``), and which model an expression holds."""

    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._class_cache: dict[str, Optional[Model]] = {}
        #: id(class) -> its ``self.<attribute> = value`` assignments (see _self_assignments)
        self._assignments: dict[int, list[tuple[str, cst.BaseExpression]]] = {}
        #: classes, factories and functions being summarised (a recursion guard)
        self._building: set[str] = set()
        #: the models found so far while ``models`` is being computed (a functional model's
        #: output may run through a Sequential defined above it: no re-entry into ``models``)
        self._partial_models: Optional[list[Model]] = None

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
        method = self._facts.values.method(node, "forward")
        returns = self._facts.values.returns(method) if method is not None else []
        names = {value.func.attr.value if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                 and isinstance(value.func.value, cst.Name) and value.func.value.value == "self" else None
                 for value in returns}
        return names if len(names) == 1 and None not in names else set()

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
            summary = self._factory_model(function, 0) or self.function_output(function, 0)
            if summary is not None:
                exported.setdefault(name, summary)
        return exported

    def model_of(self, expr: Optional[cst.BaseExpression], depth: int = 0) -> Optional[ModelSummary]:
        """Which model ``expr`` refers to, ``None`` if unknown (``depth``: how deep the asking
        trace already is, for the other fact modules)."""
        if expr is None or depth > MAX_DEPTH:
            return None
        facts = self._facts
        if isinstance(expr, cst.Call):
            known = self._partial_models if self._partial_models is not None else self.models
            for model in known:
                if model.node is expr:
                    return model.summary
        origins = facts.values.origins(expr)
        if not origins:
            return self._submodule(expr, depth) if isinstance(expr, cst.Attribute) else None
        return agreed([self._origin_model(origin, depth) for origin in origins])

    def _submodule(self, expr: cst.Attribute, depth: int) -> Optional[ModelSummary]:
        """``net.decoder`` where ``net`` is a known model that holds a model class as ``self.decoder``."""
        owner = self.model_of(expr.value, depth + 1)
        held = dict(owner.submodules).get(expr.attr.value) if owner is not None else None
        return self.model_for_class(held, depth + 1) if held is not None else None

    def candidates(self, expr: Optional[cst.BaseExpression]) -> Optional[tuple[ModelSummary, ...]]:
        """Every model ``expr`` may be (``get_model(name)`` returning one of several classes);
        ``None`` when any of them is unknown."""
        if expr is None:
            return None
        single = self.model_of(expr, 0)
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
            ops = self._facts.outputs.ops(outputs, None, 0)
            name = self._binding_name(call) or "Model"
            return self._summary_model(name, call, "keras", ops)
        return None

    def _make_model(self, name: str, node: cst.CSTNode, framework: str, layers: tuple[Layer, ...]) -> Model:
        ops: list[Op] = []
        for layer in layers:
            ops.extend(layer_ops(layer))
        return Model(name, node, framework, layers, self._summarise(name, framework, list(reversed(ops)), layers))

    def _summary_model(self, name: str, node: cst.CSTNode, framework: str, ops_out_first: list[Op]) -> Model:
        return Model(name, node, framework, (), self._summarise(name, framework, ops_out_first, ()))

    def _summarise(self, name: str, framework: str, ops_out_first: list[Op], layers: tuple[Layer, ...],
                   flow: Optional[list[Op]] = None) -> ModelSummary:
        ordered = flow if flow is not None else list(reversed(ops_out_first))
        kinds: list[str] = []
        dropout = batchnorm = False
        for op in ordered:
            if op.inner is not None and (op.kind == "Sequential" or op.inner.returns_output):
                kinds.extend(op.inner.layers)  # containers and helper functions are flattened into their layers
            else:
                kinds.append(op.kind)
        for op in list(ordered) + [op for layer in layers for op in layer_ops(layer)]:
            dropout = dropout or op.category == L.DROPOUT or bool(op.inner and op.inner.has_dropout)
            batchnorm = batchnorm or _is_batchnorm(op) or bool(op.inner and op.inner.has_batchnorm)
        module = self._facts.module_name
        activation = output_activation(ops_out_first)
        return ModelSummary(
            name=name,
            qualname=f"{module}.{name}" if module else name,
            framework=framework,
            layers=tuple(kinds),
            output_activation=activation,
            output_units=output_units(ops_out_first),
            has_dropout=dropout,
            has_batchnorm=batchnorm,
            # positions cost a little: only for the few models whose output has an activation
            output_site=self._facts.outputs.output_site(ops_out_first) if activation is not None else None,
        )

    def _sequential_layers(self, call: cst.Call, depth: int) -> Iterator[Layer]:
        if depth > MAX_DEPTH:
            return
        if not call.args:  # ``seq = nn.Sequential(); seq.add_module("fc", nn.Linear(4, 2))``
            for value in self._added_modules(call):
                yield self.layer(value, None, depth) or Layer("Unknown", L.OTHER, None, call)
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
                    yield self.layer(item, None, depth) or Layer("Unknown", L.OTHER, None, call)
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
                            layer = self.layer(pair.elements[1].value, key if isinstance(key, str) else None,
                                                depth)
                            if layer is not None:
                                yield layer
                continue
            if isinstance(value, cst.Dict):
                for element in value.elements:
                    if isinstance(element, cst.DictElement):
                        key = literal(element.key, None)
                        layer = self.layer(element.value, key if isinstance(key, str) else None, depth)
                        if layer is not None:
                            yield layer
                continue
            # an element nnlint does not know (``conv_bn(...)``, ``MyHead()``) still occupies its place
            yield self.layer(value, None, depth) or Layer("Unknown", L.OTHER, None, call)

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
                layer = self.layer(element.value, None, 0)
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
                layer = self.layer(positional(node, 0), None, 0)
                if layer is not None:
                    yield layer

    def layer(self, expr: Optional[cst.BaseExpression], attribute: Optional[str] = None,
              depth: int = 0) -> Optional[Layer]:
        """The layer a module value is (``nn.Linear(4, 2)``, a nested Sequential, a model class),
        ``None`` when it is not known."""
        if isinstance(expr, cst.Name):  # ``act = nn.Softmax(dim=1); nn.Sequential(fc, act)``
            origins = self._facts.values.origins(expr)
            expr = origins[0] if origins and len(origins) == 1 and isinstance(origins[0], cst.Call) else None
        if not isinstance(expr, cst.Call) or depth > MAX_DEPTH:
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
        summary = self.model_for_class(qualname, depth + 1)
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

    def _class_model(self, name: str, nested: Optional[cst.ClassDef] = None) -> Optional[Model]:
        """The model of the module-level class ``name``, or of a class defined inside a function."""
        if nested is not None:
            name = f"{name}#{id(nested)}"  # not the module-level class of the same name
        if name in self._class_cache:
            return self._class_cache[name]
        if name in self._building:  # recursive definitions
            return None
        if len(self._building) > MAX_DEPTH:
            # a class whose layer is a class whose layer is ... (1000 deep): unknown, not a RecursionError;
            # not cached, so that asked at a shallower depth it is still known
            return None
        self._building.add(name)
        try:
            model = self._build_class_model(name.partition("#")[0], nested)
        finally:
            self._building.discard(name)
        self._class_cache[name] = model
        return model

    def framework_of_class(self, node: cst.ClassDef, depth: int = 0) -> Optional[str]:
        """``"torch"`` or ``"keras"`` for a model class (through bases, also of other files), else ``None``."""
        if depth > MAX_DEPTH:
            return None
        names = self._facts.names
        for base in node.bases:
            qualname = names.qualname(base.value)
            if qualname in L.TORCH_MODULE_BASES or qualname == "torch.nn.Sequential":
                return "torch"
            if qualname in L.KERAS_MODEL_BASES or qualname in L.KERAS_SEQUENTIAL:
                return "keras"
            if isinstance(base.value, cst.Name) and base.value.value in names.classes:
                found = self.framework_of_class(names.classes[base.value.value], depth + 1)
                if found is not None:
                    return found
            if qualname is not None:
                summary = self._facts.project.model(qualname, near=self._facts.path)
                if summary is not None:
                    return summary.framework
        return None

    def _build_class_model(self, name: str, nested: Optional[cst.ClassDef] = None) -> Optional[Model]:
        node = nested or self._facts.names.classes.get(name)
        if node is None:
            return None
        framework = self.framework_of_class(node)
        if framework is None:
            return None
        attributes = self.init_layers(node)
        layers = tuple(attributes.values())
        method = self._facts.values.method(node, "forward" if framework == "torch" else "call")
        if method is None:
            method = self._facts.values.method(node, "call" if framework == "torch" else "forward")
        if method is None and self._sequential_subclass(node):
            passed = self._super_init_layers(node)  # ``super().__init__(nn.Linear(k, 1), nn.Sigmoid())``
            if passed:
                return self._make_model(name, node, framework, passed)
        if method is None:
            ops = [op for layer in layers for op in layer_ops(layer)]
            summary = self._summarise(name, framework, [], layers, flow=ops)
            summary = self._with_held_models(node, attributes, _with_output(summary, None, None), [])
            return Model(name, node, framework, layers, summary)
        flow = self._forward_flow(method, attributes)
        returns = self._facts.values.returns(method)
        traces = [self._facts.outputs.ops(value, attributes, 0) for value in returns]
        summary = self._summarise(name, framework, traces[0] if traces else [], layers, flow=flow)
        summary = _with_output(summary, agreed([output_activation(t) for t in traces]),
                               agreed([output_units(t) for t in traces]))
        elements, sites, keys = self._tuple_elements(returns, attributes)
        if elements:
            summary = dataclasses.replace(summary, output_elements=elements, element_sites=sites, element_keys=keys)
        applied = self._applied_argument(method, returns)
        if applied is not None:
            summary = dataclasses.replace(summary, applies_argument=applied)
        return Model(name, node, framework, layers, self._with_held_models(node, attributes, summary, returns))

    def _with_held_models(self, node: cst.ClassDef, attributes: dict[str, Layer], summary: ModelSummary,
                          returns: list[Optional[cst.BaseExpression]]) -> ModelSummary:
        """``summary`` with the model classes it holds by attribute, and those of other files that
        are not known here (the project index fills in what they contribute)."""
        elsewhere = self._other_file_classes(node, attributes)
        held = tuple((attribute, layer.qualname) for attribute, layer in attributes.items()
                     if layer.category == L.MODEL and layer.qualname is not None) + tuple(elsewhere.items())
        built = self._built_from_other_files(node)
        # a same-file model it holds that is made of other files' classes (``self.unet = UNet()``,
        # whose blocks come from ``from .parts import *``): the index completes that one too
        own = self._facts.module_name
        for layer in attributes.values():
            local = self._facts.names.local_name(layer.qualname) if layer.category == L.MODEL and layer.qualname else None
            if local is not None and "." not in local:
                inner = self._class_model(local)
                if inner is not None and inner.summary.parts and own:
                    built.add(layer.qualname)  # type: ignore[arg-type]
        if not held and not built:
            return summary
        output = elsewhere.get(self._returned_attribute(returns) or "") if summary.output_activation is None else None
        return dataclasses.replace(summary, submodules=held, parts=tuple(sorted({*elsewhere.values(), *built})),
                                   output_model=output)

    def _built_from_other_files(self, node: cst.ClassDef) -> set[str]:
        """Classes of other project files that ``__init__`` (or a helper it calls) instantiates
        anywhere, not only into an attribute (``blocks.append(ResidualBlock(...))``, a ``ModuleList``
        comprehension): the modules it is made of, as far as the project index knows them."""
        init = self._facts.values.method(node, "__init__")
        if init is None:
            return set()
        names = self._facts.names
        own = self._facts.module_name
        found: set[str] = set()
        for child in self._construction_nodes(node, init):
            qualname = names.qualname(child.func) if isinstance(child, cst.Call) else None
            if qualname is not None and "." in qualname and qualname.split(".", 1)[0] not in LIBRARY_PACKAGES \
                    and not (own and qualname.startswith(own + ".")):
                found.add(qualname)
        return found

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
        init = self._facts.values.method(node, "__init__")
        if init is None:
            return ()
        calls = [call for call in self._facts.calls(init.body) if isinstance(call.func, cst.Attribute)
                 and call.func.attr.value == "__init__" and isinstance(call.func.value, cst.Call)
                 and isinstance(call.func.value.func, cst.Name) and call.func.value.func.value == "super"]
        if len(calls) != 1 or not any(arg.keyword is None for arg in calls[0].args):
            return ()
        return tuple(self._sequential_layers(calls[0], 0))

    def _tuple_elements(self, returns: list[Optional[cst.BaseExpression]], attributes: Optional[dict[str, Layer]]
                        ) -> tuple[tuple[Optional[str], ...], tuple[Optional[Site], ...], tuple[str, ...]]:
        """Each element's output activation, and where it is applied, when every return is a
        tuple literal of one length, or a dict literal with the same string keys (then also the
        keys); empty otherwise."""
        values = [self._facts.dataflow.resolve(value) if isinstance(value, cst.Name) else value for value in returns]
        keys: tuple[str, ...] = ()
        if values and all(isinstance(value, cst.Dict) for value in values):
            key_lists = [tuple(literal(e.key, None) if isinstance(e, cst.DictElement) else None
                               for e in value.elements) for value in values]  # type: ignore[union-attr]
            if len(set(key_lists)) != 1 or not all(isinstance(key, str) for key in key_lists[0]):
                return (), (), ()
            keys = key_lists[0]  # type: ignore[assignment]
            rows = [[e.value for e in value.elements] for value in values]  # type: ignore[union-attr]
        elif values and all(isinstance(value, cst.Tuple) for value in returns):
            tuples = [value.elements for value in returns]  # type: ignore[union-attr]
            if len({len(elements) for elements in tuples}) != 1 or any(
                    isinstance(e, cst.StarredElement) for elements in tuples for e in elements):
                return (), (), ()
            rows = [[e.value for e in elements] for elements in tuples]
        else:
            return (), (), ()
        kinds: list[Optional[str]] = []
        sites: list[Optional[Site]] = []
        outputs = self._facts.outputs
        for position in range(len(rows[0])):
            traces = [outputs.ops(row[position], attributes, 0) for row in rows]
            kind = agreed([output_activation(trace) for trace in traces])
            kinds.append(kind)
            sites.append(agreed([outputs.output_site(trace) for trace in traces]) if kind is not None else None)
        if not any(kind is not None for kind in kinds):
            return (), (), ()
        return tuple(kinds), tuple(sites), keys

    def init_layers(self, node: cst.ClassDef) -> dict[str, Layer]:
        """The layers a model class assigns to ``self.<attribute>`` while it is built, by attribute."""
        found: dict[str, Layer] = {}
        for attribute, value in self._self_assignments(node):
            layer = self.layer(value, attribute, 0)
            if layer is not None:
                found[attribute] = layer
        return found

    def _self_assignments(self, node: cst.ClassDef) -> list[tuple[str, cst.BaseExpression]]:
        """``(attribute, value)`` of each ``self.<attribute> = value`` made while the class is built."""
        found = self._assignments.get(id(node))
        if found is None:
            found = self._assignments[id(node)] = list(self._find_self_assignments(node))
        return found

    def _find_self_assignments(self, node: cst.ClassDef) -> Iterator[tuple[str, cst.BaseExpression]]:
        init = self._facts.values.method(node, "__init__") or self._facts.values.method(node, "build")
        if init is None:
            return
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
                    yield target.attr.value, statement.value  # type: ignore[misc]

    def _other_file_classes(self, node: cst.ClassDef, known: dict[str, Layer]) -> dict[str, str]:
        """Attributes holding an instance of another project file's class that is not known here
        (``self.decoder = Decoder(vocab)``, ``Decoder`` from ``decoder.py``), by attribute: the
        project index fills in what they contribute (see ``ModelSummary.parts``)."""
        names = self._facts.names
        own = self._facts.module_name
        found: dict[str, str] = {}
        for attribute, value in self._self_assignments(node):
            qualname = names.qualname(value.func) if isinstance(value, cst.Call) else None
            if attribute in known or qualname is None or qualname.split(".", 1)[0] in LIBRARY_PACKAGES \
                    or "." not in qualname or (own and qualname.startswith(own + ".")):
                continue
            found[attribute] = qualname
        return found

    def _returned_attribute(self, returns: list[Optional[cst.BaseExpression]]) -> Optional[str]:
        """``"decoder"`` when every return of ``forward`` is ``self.decoder(...)``, through reshapes."""
        found: set[Optional[str]] = set()
        for value in returns:
            value = self._facts.dataflow.resolve(value) if value is not None else None
            while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
                    and value.func.attr.value in L.RESHAPE_METHODS:
                value = self._facts.dataflow.resolve(value.func.value)
            func = value.func if isinstance(value, cst.Call) else None
            found.add(func.attr.value if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                      and func.value.value == "self" else None)
        return found.pop() if len(found) == 1 else None

    def _construction_nodes(self, node: cst.ClassDef, init: cst.FunctionDef) -> Iterator[cst.CSTNode]:
        """The nodes of ``__init__``, then of the methods it calls on ``self`` to build layers
        (``self._create_network(...)``), a few calls deep, each method once."""
        pending, seen = [init], {id(init)}
        while pending and len(seen) <= MAX_BRANCHES * 2:
            method = pending.pop(0)
            for child in self._facts.walk(method.body):
                yield child
                func = child.func if isinstance(child, cst.Call) else None
                if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
                    helper = self._facts.values.method(node, func.attr.value)
                    if helper is not None and id(helper) not in seen:
                        seen.add(id(helper))
                        pending.append(helper)

    def _forward_flow(self, method: cst.FunctionDef, attributes: dict[str, Layer]) -> list[Op]:
        """Ops of ``forward`` in evaluation order (inner calls before outer ones)."""
        flow: list[Op] = []
        calls = [n for n in self._facts.walk(method.body) if isinstance(n, cst.Call)]
        # pre-order lists outer calls first; evaluation runs arguments first
        order = {id(c): i for i, c in enumerate(calls)}
        for call in sorted(calls, key=lambda c: (self._statement_index(c, method), -order[id(c)])):
            ops = self._facts.outputs.op_of_call(call, attributes, 0)
            if not ops and self._loop_module(call):
                ops = [Op("Unknown", L.OTHER)]  # ``for head in self.heads: head(h)``: some layer, not nothing
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

    def function_output(self, function: cst.FunctionDef, depth: int = 0) -> Optional[ModelSummary]:
        """A function that builds a graph and returns its output (TF1 ``def model(x): ...;
        return tf.nn.softmax(logits)``, ``def predict(m, x): return F.softmax(m(x), 1)``) as a
        summary applied by calling it; ``None`` unless every return agrees on an activation."""
        key = f"out {function.name.value}"  # shares the recursion guard with classes and factories
        if depth > MAX_DEPTH or key in self._building:
            return None
        self._building.add(key)
        try:
            returns = self._facts.values.returns(function)
            if not returns or any(value is None for value in returns) or len(returns) > MAX_BRANCHES:
                return None
            traces = [self._facts.outputs.ops(value, None, depth + 1) for value in returns]
            activation = agreed([output_activation(trace) for trace in traces])
            elements, sites, keys = self._tuple_elements(returns, None)
            if activation is None and not elements:
                return None
            op = output_op(traces[0])
            node = op.node if op is not None else None
            qualname = self._facts.names.qualname(node.func) if isinstance(node, cst.Call) else None
            framework = "torch" if (qualname or "").startswith("torch") else "keras"
            summary = self._summarise(function.name.value, framework, traces[0], ())
            return dataclasses.replace(summary, output_activation=activation, output_elements=elements,
                                       element_sites=sites, element_keys=keys,
                                       output_units=agreed([output_units(trace) for trace in traces]),
                                       returns_output=True)
        finally:
            self._building.discard(key)


    def _origin_model(self, origin: cst.CSTNode, depth: int) -> Optional[ModelSummary]:
        """The model an origin of :meth:`Values.origins` creates (``Net()``, ``self`` in ``Net``)."""
        if isinstance(origin, cst.ClassDef):
            model = self._class_model(origin.name.value) if self._facts.names.classes.get(
                origin.name.value) is origin else None
            return model.summary if model is not None else None
        if isinstance(origin, External):  # a model another file passes in
            if not origin.passed.called:
                return None
            return self.model_for_class(origin.passed.qualname, depth + 1) or _torchvision(origin.passed.qualname)
        if not isinstance(origin, cst.Call):
            return None
        known = self._partial_models if self._partial_models is not None else self.models
        for model in known:
            if model.node is origin:
                return model.summary
        qualname = self._facts.names.qualname(origin.func)
        if qualname is None:
            nested = self._nested_class(origin.func)
            model = self._class_model(nested.name.value, nested) if nested is not None else None
            return model.summary if model is not None else None
        return self.model_for_class(qualname, depth + 1) or _torchvision(qualname)

    def _nested_class(self, func: cst.BaseExpression) -> Optional[cst.ClassDef]:
        """The class ``func`` names when a function defines it (``def make(): class Model(nn.Module): ...;
        return Model(k)``): its one binding there."""
        definitions = self._facts.dataflow.definitions(func) if isinstance(func, cst.Name) else ()
        if len(definitions) != 1 or not isinstance(definitions[0].statement, cst.ClassDef):
            return None
        node = definitions[0].statement
        return node if self._facts.names.classes.get(node.name.value) is not node else None

    def model_for_class(self, qualname: str, depth: int = 0) -> Optional[ModelSummary]:
        """The model a class (or a factory function) of this file or of the project builds."""
        local = self._facts.names.local_name(qualname)
        if local is not None and local in self._facts.names.classes:
            model = self._class_model(local)
            return model.summary if model is not None else None
        if local is not None and local in self._facts.names.functions:
            return self._factory_model(self._facts.names.functions[local], depth + 1)
        if depth > MAX_DEPTH:
            return None
        summary = self._facts.project.model(qualname, near=self._facts.path)
        return summary if summary is not None and not summary.returns_output else None

    def _factory_model(self, function: cst.FunctionDef, depth: int) -> Optional[ModelSummary]:
        """The model a factory function (``def build_model(): ...; return model``) returns, if always the same."""
        key = f"def {function.name.value}"  # functions and classes share the recursion guard
        if depth > MAX_DEPTH or key in self._building:
            return None
        self._building.add(key)
        try:
            found: Optional[ModelSummary] = None
            for node in self._facts.walk(function.body):
                if not isinstance(node, cst.Return):
                    continue
                if self._enclosing_function(node) is not function:
                    continue  # a return of a nested function
                summary = self.model_of(node.value, depth + 1)
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


# -- helpers --------------------------------------------------------------------


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


def _is_batchnorm(op: Op) -> bool:
    return op.category == L.NORM and "Batch" in op.kind


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
