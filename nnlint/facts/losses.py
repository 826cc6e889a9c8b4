"""Loss computations, and what each one is given as its prediction.

A *loss site* is ``criterion(pred, y)`` (the loss object found through names, parameters,
attributes, factories and ``loss_fn.forward``), ``F.cross_entropy(pred, y)``, a TF/Keras loss
function or object, ``model.compile(loss=...)``, or a library estimator given a module and its
``criterion=`` (or its own default loss: skada's deep estimators train with ``CrossEntropyLoss``).
A call of another project file's function that hands a parameter to a loss of its own
(``pair_loss(out1, out2, y)``) is a site for what it passes there. What the prediction went
through is asked of :mod:`nnlint.facts.outputs`; which model a compile or an estimator trains, of
:mod:`nnlint.facts.models`.

Questions answered (through ``FileFacts.losses``):

* :attr:`LossFacts.sites` - every loss computation of the file: its kind, what it expects
  (logits, log-probabilities, probabilities, values) and its prediction
* :attr:`LossFacts.chosen_sites` - the loss computations whose loss is one of several chosen by a
  flag, one site per loss it may be
* :meth:`LossFacts.trained_outputs` - what each model a site without a prediction trains ends in
* :meth:`LossFacts.exported_loss_functions` - the functions and loss classes of this file that hand
  a parameter to a loss (for the project index)
* :func:`report_at_activation` - report a finding where the fix goes: at the activation, with the
  loss as a related location
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.index import LossParameter, ModelSummary, Site
from nnlint.facts.names import argument, keyword, literal, positional
from nnlint.facts.outputs import OutputActivation, agreed
from nnlint.facts.values import LIBRARY_PACKAGES, External

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts
    from nnlint.rule import Context


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


class LossFacts:
    """The loss computations of one file (``facts.losses``)."""

    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._exported: Optional[dict[str, tuple[LossParameter, ...]]] = None

    @cached_property
    def sites(self) -> tuple[LossSite, ...]:
        """Every loss computation of the file, also calls of another project file's function that
        hands an argument to a loss (``pair_loss(out1, out2, y)``: a site per such argument)."""
        found: list[LossSite] = []
        own = {id(site.node): site for site in self._own_sites}
        for call in self._facts.calls():
            site = own.get(id(call))
            if site is not None:
                found.append(site)
            else:
                found.extend(self._wrapped_loss_sites(call))
        return tuple(found)

    @cached_property
    def _own_sites(self) -> tuple[LossSite, ...]:
        """The losses this file computes itself (``criterion(out, y)``, ``F.cross_entropy(out, y)``)."""
        found = (self._loss_site(call) or self._returned_with_model(call) for call in self._facts.calls())
        return tuple(site for site in found if site is not None)

    def _returned_with_model(self, call: cst.Call) -> Optional[LossSite]:
        """A loss object that a function returns together with the one model of its framework
        (``return model, nn.CrossEntropyLoss()``; a test fixture's ``return tf_model, tf_loss,
        torch_model, torch_loss``): whoever asks for the pair trains the model with that loss."""
        names, values, models = self._facts.names, self._facts.values, self._facts.models
        qualname = names.qualname(call.func) or ""
        torch_kind = L.TORCH_LOSS_CLASSES.get(qualname)
        keras_kind = _keras_loss_class(qualname) if torch_kind is None else None
        if torch_kind is None and keras_kind is None:
            return None
        holder = self._facts.parent(call)
        if isinstance(holder, cst.Assign) and len(holder.targets) == 1 and isinstance(holder.targets[0].target, cst.Name):
            name = holder.targets[0].target.value  # ``criterion = nn.CrossEntropyLoss()`` then returned
        elif isinstance(holder, cst.Element):
            name = None
        else:
            return None
        function = next((a for a in self._facts.ancestors(call) if isinstance(a, cst.FunctionDef)), None)
        framework = "torch" if torch_kind is not None else "keras"
        for node in self._facts.walk(function.body) if function is not None else ():
            if not isinstance(node, cst.Return) or not isinstance(node.value, (cst.Tuple, cst.List)) \
                    or next(a for a in self._facts.ancestors(node) if isinstance(a, cst.FunctionDef)) is not function:
                continue
            items = [e.value for e in node.value.elements if not isinstance(e, cst.StarredElement)]
            if not any(item is call or (isinstance(item, cst.Name) and item.value == name
                                        and any(o is call for o in values.origins(item) or ())) for item in items):
                continue
            paired = [summary for summary in (models.model_of(item) for item in items if item is not call)
                      if summary is not None and summary.framework == framework]
            if len(paired) != 1:
                return None
            if torch_kind is not None:
                return LossSite(call, torch_kind.kind, torch_kind.expects, "torch", None, call, paired[0])
            assert keras_kind is not None
            from_logits = literal(keyword(call, "from_logits"), False) is True
            return LossSite(call, keras_kind, "logits" if from_logits else _keras_expects(keras_kind), "keras",
                            None, call, paired[0])
        return None

    @cached_property
    def chosen_sites(self) -> tuple[LossSite, ...]:
        """Loss computations whose loss object is one of several PyTorch loss classes chosen by a flag
        (``nn.BCELoss() if n == 1 else nn.CrossEntropyLoss()``, an ``if``/``else`` in ``__init__``): one
        site per class it may be, with that constructor. Not in :attr:`sites`, which hold the losses
        known for certain; :meth:`OutputFacts.activation_with` says what goes with each."""
        names, values = self._facts.names, self._facts.values
        own = {id(site.node) for site in self._own_sites}
        found: list[LossSite] = []
        for call in self._facts.calls():
            func = call.func  # ``loss_fct(...)``, ``self.loss_function(...)``: how a loss object is called
            if id(call) in own or not (isinstance(func, cst.Name) or (
                    isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self")) \
                    or names.qualname(func) is not None:
                continue
            origins = values.origins(func)
            if not origins or not 1 < len(origins) <= 4 or not all(isinstance(o, cst.Call) for o in origins):
                continue
            kinds = [L.TORCH_LOSS_CLASSES.get(names.qualname(o.func) or "") for o in origins]  # type: ignore[union-attr]
            if any(kind is None for kind in kinds) or len({kind.kind for kind in kinds if kind is not None}) < 2:
                continue
            prediction = argument(call, 0, "input")
            found.extend(LossSite(call, kind.kind, kind.expects, "torch", prediction, origin)  # type: ignore[arg-type]
                         for origin, kind in zip(origins, kinds) if kind is not None)
        return tuple(found)

    def exported_loss_functions(self) -> dict[str, tuple[LossParameter, ...]]:
        """Top-level functions that hand a parameter to a loss of their own as its prediction,
        unchanged or only reshaped, selected or moved (what a call from another file passes there
        reaches that loss); a loss module class (``FocalLoss.forward(self, inputs, targets)`` calling
        ``F.binary_cross_entropy_with_logits(inputs, ...)``) as ``"FocalLoss.__call__"``."""
        if self._exported is None:
            self._exported = {}  # a loss class's forward calling another: not its own entry yet
            found: dict[str, list[LossParameter]] = {}
            for key, function, offset, call in self._calls_on_parameters():
                site = self._loss_site(call)
                name = self._parameter_behind(site.prediction) if site is not None else None
                position = _parameter_position(function, name) if name is not None else None
                if site is None or name is None or position is None or (position[0] or 0) < offset:
                    continue
                index = position[0] - offset if position[0] is not None else None
                parameter = LossParameter(index, name, site.kind, site.expects, site.framework)
                if parameter not in found.setdefault(key, []):
                    found[key].append(parameter)
            self._exported = {key: tuple(parameters) for key, parameters in found.items()}
        return self._exported

    def _parameter_behind(self, expr: Optional[cst.BaseExpression]) -> Optional[str]:
        """The parameter ``expr`` is, through reshapes, selections and moves (``predict =
        predict.transpose(1, 2).contiguous(); predict[mask].view(-1, c)``), else ``None``."""
        dataflow = self._facts.dataflow
        for _ in range(16):
            if isinstance(expr, cst.Name):
                definitions = dataflow.definitions(expr)
                if definitions and all(isinstance(d.statement, cst.Param) for d in definitions):
                    return expr.value
                if len(definitions) != 1 or definitions[0].value is None:
                    return None
                expr = definitions[0].value
            elif isinstance(expr, cst.Subscript):
                expr = expr.value
            elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                    and expr.func.attr.value in L.RESHAPE_METHODS:
                expr = expr.func.value
            else:
                return None
        return None

    def trained_outputs(self, site: LossSite) -> tuple[OutputActivation, ...]:
        """What each model a loss site without a prediction trains ends in (a Keras ``compile``, an
        estimator given a model, or one of several), with where each is applied when several."""
        if not site.models:
            return (OutputActivation(site.model.output_activation, None, None),) if site.model is not None else ()
        found: list[OutputActivation] = []
        for model in site.models:
            place = model.output_site
            node = self._facts.outputs.node_at(place) if place is not None and place.path == self._facts.path else None
            found.append(OutputActivation(model.output_activation, node, place))
        return tuple(found)

    def _calls_on_parameters(self) -> Iterator[tuple[str, cst.FunctionDef, int, cst.Call]]:
        """``(key, function, parameters to skip, call)`` for calls in top-level functions and in
        the ``forward``/``__call__`` of top-level classes whose first or second argument is a
        parameter's name (the only calls that can hand a parameter to a loss: cheap to find,
        costly to resolve)."""
        values = self._facts.values
        for statement in self._facts.module.body:
            if isinstance(statement, cst.FunctionDef):
                entries = [(statement.name.value, statement, 0)]
            elif isinstance(statement, cst.ClassDef):
                method = values.method(statement, "forward") or values.method(statement, "__call__")
                entries = [(f"{statement.name.value}.__call__", method, 1)] if method is not None else []
            else:
                continue
            for key, function, offset in entries:
                params = function.params
                names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
                for call in self._facts.calls(function.body):
                    if any(isinstance(arg.value, cst.Name) and arg.value.value in names for arg in call.args[:2]) \
                            and next(a for a in self._facts.ancestors(call) if isinstance(a, cst.FunctionDef)) \
                            is function:
                        yield key, function, offset, call

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

    def _loss_site(self, call: cst.Call) -> Optional[LossSite]:
        names = self._facts.names
        qualname = names.qualname(call.func)
        if qualname in L.TORCH_LOSS_FUNCTIONS:
            kind = L.TORCH_LOSS_FUNCTIONS[qualname]
            return LossSite(call, kind.kind, kind.expects, "torch", argument(call, 0, "input"))
        if qualname in L.TF_LOGITS_LOSSES:
            kind_name, word, index = L.TF_LOGITS_LOSSES[qualname]
            if qualname in L.TF_SENTINEL_LOSSES and len(call.args) >= 2 and all(a.keyword is None for a in call.args) \
                    and self._facts.models.tf1_graph:
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
        handed = self._loss_class_parameters(ctor_name) if ctor_name is not None else ()
        if len(handed) == 1:  # an instance of a loss module class: its forward hands this argument on
            (parameter,) = handed
            prediction = argument(call, parameter.index, parameter.name) if parameter.index is not None \
                else keyword(call, parameter.name)
            return LossSite(call, parameter.kind, parameter.expects, parameter.framework, prediction, constructor)
        keras_kind = _keras_loss_class(ctor_name)
        if keras_kind is not None:
            from_logits = literal(keyword(constructor, "from_logits"), False) is True
            return LossSite(call, keras_kind, "logits" if from_logits else _keras_expects(keras_kind), "keras",
                            argument(call, 1, "y_pred"), constructor)
        return None

    def _loss_class_parameters(self, qualname: str) -> tuple[LossParameter, ...]:
        """What calling an instance of the project class ``qualname`` hands to a loss."""
        local = self._facts.names.local_name(qualname)
        if local is not None and local in self._facts.names.classes:
            return self.exported_loss_functions().get(f"{local}.__call__", ())
        if qualname.split(".", 1)[0] in LIBRARY_PACKAGES:
            return ()
        return self._facts.project.loss_parameters(f"{qualname}.__call__", self._facts.path)

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
        model = self._facts.models.model_of(module) if module is not None else None
        module_name = facts.names.qualname(module) if isinstance(module, (cst.Name, cst.Attribute)) else None
        if model is None and module_name is not None:  # the class itself: the estimator builds it
            model = self._facts.models.model_for_class(module_name, 1)
        options = self._facts.models.candidates(module) if model is None and module is not None else None
        if options is not None and len(options) > 1 \
                and agreed([option.output_activation for option in options]) is not None:
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
        model = self._facts.models.model_of(call.func.value)
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
    outputs = ctx.facts.outputs
    node: Optional[cst.CSTNode] = None
    place: Optional[Site] = None
    if where is not None:
        node, place = where.node, where.site
    elif site.prediction is not None:
        node, place = outputs.activation_site(site.prediction)
    elif site.model is not None and site.model.output_site is not None:
        place = site.model.output_site
        node = outputs.node_at(place) if place.path == ctx.facts.path else None
    if node is not None:
        ctx.report(node, message, related=[(site.node, loss_words)])
    elif place is not None and place.path != ctx.facts.path:
        if not place.silences(code):
            ctx.report_at(place, message, related=[(site.node, loss_words)])
    else:
        ctx.report(site.node, message)


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
