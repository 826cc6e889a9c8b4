"""Weight initialisation: which tensors are drawn how, and what the initialised layers feed.

Questions answered, each once per file when first asked:

* :attr:`InitFacts.normal_draws` - which normal draws initialise a tensor, with which literal
  standard deviation: ``nn.init.normal_(w, std=s)`` and ``m.weight.data.normal_()`` (``NORMAL_INIT``),
  ``nn.Parameter(torch.randn(n, m))`` (``PARAMETER``), TF's ``random_normal_initializer()``
  (``TF_INITIALIZER``, default stddev 1.0), Keras ``RandomNormal(stddev=s)`` (``KERAS_INITIALIZER``,
  default 0.05) and ``tf.Variable(tf.random.normal([n, m]))`` (``TF_VARIABLE``).
* :meth:`InitFacts.scale_matters` - does a draw's scale reach a layer's outputs? Not when the tensor
  is an embedding, positional/class token, query, bias or norm scale (by its name, the layer it
  belongs to, an ``isinstance(m, nn.Embedding)`` branch, the keyword or name it is passed as), a
  placeholder that ``nn.init`` or an in-place method re-initialises, a parameter scaled
  (``x @ self.w * self.scale``) or normalised (a square head-mixing matrix followed by a norm)
  wherever it is used, a unit test's tensor, or a TF weight whose fan-in is so small that N(0, 1) is
  within 2x of He's ``sqrt(2 / fan_in)``.
* :attr:`InitFacts.scheme_inits` - which layers get a plain Xavier/Glorot or He/Kaiming
  initialisation (``nn.init`` calls on a layer's weight, ``kernel_initializer=`` of Keras/TF1 layers;
  a ``gain=``, ``a=``, a non-ReLU ``nonlinearity=`` or scale arguments make it a tuned one, left out),
  and which activations follow them: through the model's data flow for ``self.fc.weight``; over the
  models an init function runs on (a method of the model, ``model.apply(init)``) for ``m.weight`` in an
  ``isinstance(m, nn.Linear)`` branch; the ``activation=`` keyword or the next layer of a ``Sequential``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.layerflow import Follower, layer_followers
from nnlint.facts.models import Layer, Model
from nnlint.facts.names import argument, dotted_name, keyword, literal, positional
from nnlint.facts.testcode import in_test_code

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

#: forms of a normal draw (:attr:`NormalDraw.form`)
NORMAL_INIT = "normal-init"
PARAMETER = "parameter"
TF_INITIALIZER = "tf-initializer"
KERAS_INITIALIZER = "keras-initializer"
TF_VARIABLE = "tf-variable"

#: initialisation schemes (:attr:`SchemeInit.scheme`)
XAVIER = "Xavier"
HE = "He"

_TORCH_NORMAL = frozenset({"torch.nn.init.normal_", "torch.nn.init.normal"})
_TORCH_PARAMETER = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
_TORCH_RANDN = frozenset({"torch.randn"})
#: initialisers whose default standard deviation is 1.0 (TF's own, not Keras')
_TF_UNIT_INITIALIZERS = frozenset({"tensorflow.random_normal_initializer", "tensorflow.initializers.random_normal"})
#: Keras initialisers (default stddev 0.05)
_KERAS_NORMAL_INITIALIZERS = frozenset({
    "keras.initializers.RandomNormal", "keras.initializers.random_normal", "keras.initializers.normal",
})
#: std**2 * fan_in at or below this is within a factor 2 of He's std sqrt(2 / fan_in): 8 = (2 * sqrt(2))**2
_SMALL_FAN_IN_VARIANCE = 8.0
_TF_NORMAL = frozenset({"tensorflow.random.normal", "tensorflow.random_normal"})
#: names of tensors for which N(0, 1) is the convention or harmless
_NOT_A_WEIGHT = re.compile(
    r"emb|token|tok_|wte|wpe|(?:(?<![a-z])pos|(?-i:Pos))(?:$|[_\d]|(?-i:[A-Z])|ition|enc)|cls|query|queries|bias|prompt|mask|latent|codebook|vocab|noise|register|"
    r"gamma|beta|alpha|scale|temperature|logit_scale|proto|anchor|center|centroid",
    re.IGNORECASE,
)
_WEIGHT_NAME = re.compile(r"^_?[wW](_|\d|$|[A-Z])|weight|kernel|Weight|Kernel")
_MATMUL_FUNCTIONS = frozenset({"torch.matmul", "torch.mm", "torch.bmm", "torch.einsum",
                               "torch.nn.functional.linear", "torch.addmm"})

_TORCH_SCHEMES = {
    "torch.nn.init.xavier_uniform_": XAVIER, "torch.nn.init.xavier_normal_": XAVIER,
    "torch.nn.init.xavier_uniform": XAVIER, "torch.nn.init.xavier_normal": XAVIER,
    "torch.nn.init.kaiming_uniform_": HE, "torch.nn.init.kaiming_normal_": HE,
    "torch.nn.init.kaiming_uniform": HE, "torch.nn.init.kaiming_normal": HE,
}
_KERAS_SCHEME_NAMES = {"glorot_uniform": XAVIER, "glorot_normal": XAVIER, "he_normal": HE, "he_uniform": HE}
_KERAS_SCHEME_CALLABLES = {
    **{f"keras.initializers.{n}": XAVIER for n in ("GlorotUniform", "GlorotNormal", "glorot_uniform", "glorot_normal")},
    **{f"keras.initializers.{n}": HE for n in ("HeNormal", "HeUniform", "he_normal", "he_uniform")},
    "tensorflow.contrib.layers.xavier_initializer": XAVIER,
    "tensorflow.glorot_uniform_initializer": XAVIER,
    "tensorflow.glorot_normal_initializer": XAVIER,
    "tensorflow.initializers.glorot_uniform": XAVIER,
    "tensorflow.initializers.glorot_normal": XAVIER,
    "tensorflow.contrib.layers.variance_scaling_initializer": HE,  # factor=2.0 by default: He
    "tensorflow.initializers.he_normal": HE,
    "tensorflow.initializers.he_uniform": HE,
}
#: TF1 functional layers: qualname -> name of their activation keyword
_TF_FUNCTIONAL_LAYERS = {
    "tensorflow.layers.dense": "activation", "tensorflow.layers.conv1d": "activation",
    "tensorflow.layers.conv2d": "activation", "tensorflow.layers.conv3d": "activation",
    "tensorflow.contrib.layers.fully_connected": "activation_fn", "tensorflow.contrib.layers.conv2d": "activation_fn",
}
_TF_INITIALIZER_KEYWORDS = ("kernel_initializer", "weights_initializer")
_PASS_THROUGH = frozenset({L.SHAPE, L.DROPOUT, L.POOL})


@dataclass(frozen=True)
class NormalDraw:
    """A tensor initialised from a normal distribution."""

    #: where to report: the init call, ``nn.Parameter(...)``, the initializer, ``tf.random.normal(...)``
    node: cst.Call
    #: ``NORMAL_INIT`` | ``PARAMETER`` | ``TF_INITIALIZER`` | ``KERAS_INITIALIZER`` | ``TF_VARIABLE``
    form: str
    #: the literal standard deviation (the API's default when left out), ``None`` when not a literal
    std: Optional[float]
    #: the name the constructing call is assigned to (``W`` of ``self.W = nn.Parameter(...)``)
    target: Optional[str]
    #: the constructing call: ``node``, except ``tf.Variable(...)`` for ``TF_VARIABLE``
    call: cst.Call
    #: the initialised tensor of ``NORMAL_INIT`` (``self.fc.weight``)
    tensor: Optional[cst.BaseExpression] = None


@dataclass(frozen=True)
class SchemeInit:
    """A layer initialised with plain Xavier/Glorot or He/Kaiming."""

    #: where to report: the ``nn.init`` call, or the ``kernel_initializer=`` value
    node: cst.CSTNode
    #: ``XAVIER`` | ``HE``
    scheme: str
    #: ``"torch"`` | ``"tensorflow"`` (Keras and TF1 layers)
    framework: str
    #: the activation after each initialised layer; empty when unknown or when some path has none
    activations: tuple[str, ...]


class InitFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    # -- normal draws ----------------------------------------------------------------
    @cached_property
    def normal_draws(self) -> tuple[NormalDraw, ...]:
        """Every normal draw that initialises a tensor, in source order."""
        found: list[NormalDraw] = []
        names = self._facts.names
        for call in self._facts.calls():
            qualname = names.qualname(call.func)
            draw: Optional[NormalDraw] = None
            if qualname in _TORCH_NORMAL:
                tensor = argument(call, 0, "tensor")
                if tensor is not None:
                    draw = self._draw(call, NORMAL_INIT, argument(call, 2, "std"), 1.0, tensor=tensor)
            elif qualname is None and isinstance(call.func, cst.Attribute) and call.func.attr.value == "normal_":
                if _is_weight_attribute(call.func.value):
                    draw = self._draw(call, NORMAL_INIT, argument(call, 1, "std"), 1.0, tensor=call.func.value)
            elif qualname in _TORCH_PARAMETER:
                data = argument(call, 0, "data")
                if isinstance(data, cst.Call) and names.qualname(data.func) in _TORCH_RANDN:
                    draw = self._draw(call, PARAMETER, None, 1.0)
            elif qualname in _TF_UNIT_INITIALIZERS:
                draw = self._draw(call, TF_INITIALIZER, argument(call, 1, "stddev"), 1.0)
            elif qualname in _KERAS_NORMAL_INITIALIZERS:
                draw = self._draw(call, KERAS_INITIALIZER, argument(call, 1, "stddev"), 0.05)
            elif qualname == "tensorflow.Variable":  # get_variable's initializer= is an initializer, above
                initial = argument(call, 0, "initial_value")
                if isinstance(initial, cst.Call) and names.qualname(initial.func) in _TF_NORMAL:
                    draw = self._draw(call, TF_VARIABLE, argument(initial, 2, "stddev"), 1.0, node=initial)
            if draw is not None:
                found.append(draw)
        return tuple(found)

    def _draw(self, call: cst.Call, form: str, std: Optional[cst.BaseExpression], default: float,
              tensor: Optional[cst.BaseExpression] = None, node: Optional[cst.Call] = None) -> NormalDraw:
        return NormalDraw(node or call, form, _std_value(std, default), _assigned_name(self._facts, call),
                          call, tensor)

    def scale_matters(self, draw: NormalDraw) -> bool:
        """Does the draw's scale reach a layer's outputs (see the module doc for what does not)?"""
        facts = self._facts
        if draw.form == NORMAL_INIT:
            return draw.tensor is not None and not _is_embedding_tensor(facts, draw.tensor)
        if draw.form in (TF_INITIALIZER, KERAS_INITIALIZER):
            return not _embedding_context(facts, draw.call)
        if draw.form == TF_VARIABLE:
            return _tf_weight(facts, draw)
        return _unscaled_parameter(facts, draw)

    # -- schemes ---------------------------------------------------------------------
    @cached_property
    def scheme_inits(self) -> tuple[SchemeInit, ...]:
        """Plain Xavier/He initialisations of layers and the activations that follow them."""
        found: list[SchemeInit] = []
        names = self._facts.names
        for call in self._facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _TORCH_SCHEMES:
                init = self._torch_scheme(call, _TORCH_SCHEMES[qualname])
            else:
                kind = L.layer_kind(qualname)
                if qualname is not None and qualname.startswith("keras.") and kind is not None \
                        and kind.category in (L.DENSE, L.CONV):
                    init = self._tf_scheme(call, "activation")
                elif qualname in _TF_FUNCTIONAL_LAYERS:
                    init = self._tf_scheme(call, _TF_FUNCTIONAL_LAYERS[qualname])
                else:
                    init = None
            if init is not None:
                found.append(init)
        return tuple(found)

    def _torch_scheme(self, call: cst.Call, scheme: str) -> Optional[SchemeInit]:
        if scheme == XAVIER and argument(call, 1, "gain") is not None:
            return None
        if scheme == HE:
            if argument(call, 1, "a") is not None:
                return None  # `a=math.sqrt(5)`: PyTorch's own default for Linear/Conv
            if literal(argument(call, 3, "nonlinearity"), "leaky_relu") not in ("relu", "leaky_relu"):
                return None
        tensor = argument(call, 0, "tensor")
        text = dotted_name(tensor) if tensor is not None else None
        chain = text.split(".") if text is not None else []
        if chain and chain[-1] == "data":
            chain = chain[:-1]
        if len(chain) not in (2, 3) or chain[-1] != "weight":
            return None
        if len(chain) == 3 and chain[0] == "self":
            activations = _self_layer_activations(self._facts, call, chain[1])
        elif len(chain) == 2:
            activations = _per_module_activations(self._facts, call, chain[0])
        else:
            return None
        return SchemeInit(call, scheme, "torch", tuple(activations))

    def _tf_scheme(self, call: cst.Call, activation_keyword: str) -> Optional[SchemeInit]:
        for word in _TF_INITIALIZER_KEYWORDS:
            initializer = keyword(call, word)
            if initializer is not None:
                break
        else:
            return None
        scheme = _initializer_scheme(self._facts, initializer)
        if scheme is None:
            return None
        activation = self._facts.models.keras_activation(keyword(call, activation_keyword))
        if activation is None:
            activation = _next_sequential_activation(self._facts, call)
        return SchemeInit(initializer, scheme, "tensorflow", (activation,) if activation is not None else ())


# -- normal draws ---------------------------------------------------------------------
def _product(dims: tuple[object, ...]) -> Optional[int]:
    total = 1
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            return None
        total *= dim
    return total


def _std_value(expr: Optional[cst.BaseExpression], default: float) -> Optional[float]:
    """The literal standard deviation, ``default`` when absent, ``None`` when unknown."""
    if expr is None:
        return default
    value = literal(expr, None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _chain(expr: cst.BaseExpression) -> list[str]:
    """``self.fc.weight`` -> ``["self", "fc", "weight"]``; a subscript base is ``"[]"``."""
    parts: list[str] = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
    elif isinstance(expr, cst.Subscript):
        parts.append("[]")
    return list(reversed(parts))


def _is_weight_attribute(expr: cst.BaseExpression) -> bool:
    """``self.fc.weight`` / ``m.weight.data``: a layer's weight tensor."""
    chain = _chain(expr)
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    return len(chain) >= 2 and chain[-1] == "weight"


def _tf_weight(facts: "FileFacts", draw: NormalDraw) -> bool:
    shape = literal(argument(draw.node, 0, "shape"), None)
    if not isinstance(shape, tuple) or len(shape) < 2:
        return False
    fan_in = _product(shape[:-1])
    if draw.std is not None and fan_in is not None and draw.std * draw.std * fan_in <= _SMALL_FAN_IN_VARIANCE:
        return False  # `[3, 1]` of a linear regression: N(0, 1) is within 2x of He's sqrt(2 / fan_in)
    name = literal(keyword(draw.call, "name"), None)
    name_hint = draw.target or (name if isinstance(name, str) else None) or ""
    return not _NOT_A_WEIGHT.search(name_hint)


def _unscaled_parameter(facts: "FileFacts", draw: NormalDraw) -> bool:
    data = argument(draw.call, 0, "data")
    target = draw.target
    if not isinstance(data, cst.Call) or _dimensions(data) < 2:
        return False
    if target is None or _NOT_A_WEIGHT.search(target):
        return False
    owner = _enclosing(facts, draw.call, cst.ClassDef)
    scope = owner if owner is not None else facts.module
    if _reinitialised(facts, scope, target):
        return False
    if not (_WEIGHT_NAME.search(target) or _used_in_matmul(facts, scope, target)):
        return False
    if _every_use(facts, scope, target, _under_scale) or in_test_code(facts, draw.call):
        return False
    return not (_square_mixing(data) and _every_use(facts, scope, target, _normalised))


def _is_embedding_tensor(facts: "FileFacts", tensor: cst.BaseExpression) -> bool:
    chain = _chain(tensor)
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    if any(_NOT_A_WEIGHT.search(part) for part in chain):
        return True
    if len(chain) >= 2 and chain[-1] in ("weight", "weight_v", "weight_orig"):
        owner = chain[:-1]
        if owner[0] == "self" and len(owner) == 2 and _self_layer_kind(facts, tensor, owner[1]) == L.EMBEDDING:
            return True
        if len(owner) == 1 and _isinstance_guard(facts, tensor, owner[0]) in (L.EMBEDDING, "non-weight"):
            return True
    return False


def _self_layer_kind(facts: "FileFacts", node: cst.CSTNode, attribute: str) -> Optional[str]:
    """Category of the layer assigned to ``self.<attribute>`` in the enclosing class."""
    owner = _enclosing(facts, node, cst.ClassDef)
    if owner is None:
        return None
    names = facts.names
    for statement in facts.walk(owner):
        if isinstance(statement, cst.Assign) and isinstance(statement.value, cst.Call):
            for target in statement.targets:
                t = target.target
                if (isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
                        and t.attr.value == attribute):
                    kind = L.layer_kind(names.qualname(statement.value.func))
                    if kind is not None:
                        return kind.category
    return None


def _isinstance_guard(facts: "FileFacts", node: cst.CSTNode, variable: str) -> Optional[str]:
    """Category of the nearest enclosing ``if isinstance(variable, X)`` test (``None`` if unguarded)."""
    names = facts.names
    for ancestor in facts.ancestors(node):
        if not isinstance(ancestor, (cst.If,)):
            continue
        for test in _isinstance_tests(ancestor.test):
            subject = positional(test, 0)
            if not (isinstance(subject, cst.Name) and subject.value == variable):
                continue
            categories = set()
            for element in _class_elements(positional(test, 1)):
                kind = L.layer_kind(names.qualname(element)) if element is not None else None
                categories.add(kind.category if kind is not None else None)
            if categories == {L.EMBEDDING}:
                return L.EMBEDDING
            if categories and categories <= {L.NORM}:
                return "non-weight"  # a norm's weight is a scale around 1
            return "other"
    return None


def _isinstance_tests(test: cst.BaseExpression) -> Iterator[cst.Call]:
    if isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance":
        yield test
    elif isinstance(test, cst.BooleanOperation):
        yield from _isinstance_tests(test.left)
        yield from _isinstance_tests(test.right)


def _class_elements(classes: Optional[cst.BaseExpression]) -> list[Optional[cst.BaseExpression]]:
    return [e.value for e in classes.elements] if isinstance(classes, cst.Tuple) else [classes]


def _enclosing(facts: "FileFacts", node: cst.CSTNode, kind: type) -> Optional[cst.CSTNode]:
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, kind):
            return ancestor
    return None


def _dimensions(randn: cst.Call) -> int:
    size = keyword(randn, "size")
    if size is None:
        first = positional(randn, 0)
        if isinstance(first, (cst.Tuple, cst.List)):
            size = first
        else:
            return len([a for a in randn.args if a.keyword is None and not a.star])
    if isinstance(size, (cst.Tuple, cst.List)):
        return len(size.elements)
    return 0


def _assigned_name(facts: "FileFacts", call: cst.Call) -> Optional[str]:
    parent = facts.parent(call)
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
        target = parent.targets[0].target
    elif isinstance(parent, cst.AnnAssign):
        target = parent.target
    else:
        return None
    if isinstance(target, cst.Name):
        return target.value
    if isinstance(target, cst.Attribute):
        return target.attr.value
    return None


def _mentions_self_attribute(expr: Optional[cst.BaseExpression], attribute: str) -> bool:
    """``self.<attribute>`` (also ``.data``, a slice of it) or a module-level ``<attribute>``."""
    while isinstance(expr, cst.Subscript):
        expr = expr.value
    chain = _chain(expr) if expr is not None else []
    if chain and chain[-1] == "data":
        chain = chain[:-1]
    return chain == ["self", attribute] or chain == [attribute]


def _reinitialised(facts: "FileFacts", scope: cst.CSTNode, attribute: str) -> bool:
    """An ``nn.init`` call or an in-place method (``.normal_``, ``.mul_``) on the tensor, or a generic
    init loop over the parameters: the ``randn`` draw is only a placeholder then."""
    names = facts.names
    for call in facts.calls(scope):
        qualname = names.qualname(call.func)
        if qualname is not None and qualname.startswith("torch.nn.init."):
            target = positional(call, 0) or keyword(call, "tensor")
            if isinstance(target, cst.Name) or _mentions_self_attribute(target, attribute):
                return True
        elif qualname is None and isinstance(call.func, cst.Attribute) and call.func.attr.value.endswith("_"):
            if _mentions_self_attribute(call.func.value, attribute):
                return True
    return False


def _used_in_matmul(facts: "FileFacts", scope: cst.CSTNode, attribute: str) -> bool:
    names = facts.names
    for node in facts.walk(scope):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
            if _mentions_self_attribute(node.left, attribute) or _mentions_self_attribute(node.right, attribute):
                return True
        elif isinstance(node, cst.Call) and names.qualname(node.func) in _MATMUL_FUNCTIONS:
            if any(_mentions_self_attribute(arg.value, attribute) for arg in node.args):
                return True
    return False


def _every_use(facts: "FileFacts", scope: cst.CSTNode, attribute: str,
               holds: "Callable[[FileFacts, cst.CSTNode], bool]") -> bool:
    """``holds`` for every read of ``self.<attribute>`` in ``scope`` (and there is one)."""
    uses = 0
    for node in facts.walk(scope):
        if not isinstance(node, cst.Attribute) or _chain(node) != ["self", attribute]:
            continue
        parent = facts.parent(node)
        if isinstance(parent, cst.AssignTarget) or (isinstance(parent, cst.AnnAssign) and parent.target is node):
            continue
        uses += 1
        if not holds(facts, node):
            return False
    return uses > 0


def _under_scale(facts: "FileFacts", node: cst.CSTNode) -> bool:
    """``x @ self.w * self.scale``, ``(q @ self.w) / math.sqrt(d)``: the product is scaled where it is used."""
    child = node
    for ancestor in facts.ancestors(node):
        if not isinstance(ancestor, cst.BinaryOperation):
            return False
        if isinstance(ancestor.operator, (cst.Multiply, cst.Divide)):
            other = ancestor.right if ancestor.left is child else ancestor.left
            if _is_scale(other):
                return True
        child = ancestor
    return False


def _is_scale(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Power):
        exponent = literal(expr.right, None)
        return isinstance(exponent, (int, float)) and exponent < 0
    if isinstance(expr, cst.Call) and (dotted_name(expr.func) or "").rsplit(".", 1)[-1] in ("sqrt", "rsqrt"):
        return True
    text = (dotted_name(expr) or "").rsplit(".", 1)[-1].lower()
    return "scale" in text or "temperature" in text


def _randn_dims(randn: cst.Call) -> list[cst.BaseExpression]:
    size = keyword(randn, "size")
    if size is None:
        first = positional(randn, 0)
        size = first if isinstance(first, (cst.Tuple, cst.List)) else None
    if isinstance(size, (cst.Tuple, cst.List)):
        return [e.value for e in size.elements]
    return [a.value for a in randn.args if a.keyword is None and not a.star]


def _square_mixing(randn: cst.Call) -> bool:
    """``torch.randn(heads, heads)``: a square matrix that mixes ``n`` channels into ``n``."""
    dims = _randn_dims(randn)
    if len(dims) != 2:
        return False
    a, b = (literal(d, None) for d in dims)
    if a is not None or b is not None:
        return a == b and isinstance(a, int)
    return dotted_name(dims[0]) is not None and dotted_name(dims[0]) == dotted_name(dims[1])


def _normalised(facts: "FileFacts", node: cst.CSTNode) -> bool:
    """The product with ``node`` is normalised at once by a scale-invariant norm: ``norm(x @ w)``,
    or ``y = einsum(..., w)`` followed by ``y = self.norm(y)``."""
    assigned: Optional[str] = None
    statement: Optional[cst.CSTNode] = None
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, cst.Call) and _is_normalisation(facts, ancestor):
            return True
        if isinstance(ancestor, cst.Assign) and len(ancestor.targets) == 1 \
                and isinstance(ancestor.targets[0].target, cst.Name):
            assigned = ancestor.targets[0].target.value
        if isinstance(ancestor, cst.SimpleStatementLine):
            statement = ancestor
            break
    if assigned is None or statement is None:
        return False
    block = facts.parent(statement)
    body = list(getattr(block, "body", ()))
    if statement not in body:
        return False
    for later in body[body.index(statement) + 1:]:
        reads = [n for n in facts.walk(later) if isinstance(n, cst.Name) and n.value == assigned]
        if reads:  # the first statement that reads the product must normalise it
            return all(_normalised(facts, read) for read in reads
                       if not isinstance(facts.parent(read), cst.AssignTarget))
    return False


def _is_normalisation(facts: "FileFacts", call: cst.Call) -> bool:
    func = call.func
    qualname = facts.names.qualname(func)
    kind = L.function_kind(qualname) or L.layer_kind(qualname)
    if kind is not None:
        return kind.category == L.NORM
    if qualname == "torch.nn.functional.normalize":
        return True
    return (qualname is None and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
            and func.value.value == "self" and _self_norm_layer(facts, call, func.attr.value))


def _self_norm_layer(facts: "FileFacts", node: cst.CSTNode, attribute: str) -> bool:
    """``self.<attribute>`` is a normalisation layer (also inside an ``nn.Sequential`` of reshapes)."""
    owner = _enclosing(facts, node, cst.ClassDef)
    if owner is None:
        return False
    names = facts.names
    for statement in facts.walk(owner):
        if not (isinstance(statement, cst.Assign) and isinstance(statement.value, cst.Call)):
            continue
        if not any(_chain(t.target) == ["self", attribute] for t in statement.targets):
            continue
        value = statement.value
        calls = [a.value for a in value.args if isinstance(a.value, cst.Call)] \
            if names.qualname(value.func) == "torch.nn.Sequential" else [value]
        for layer in calls:
            kind = L.layer_kind(names.qualname(layer.func))
            if (kind is not None and kind.category == L.NORM) or "Norm" in (dotted_name(layer.func) or ""):
                return True
    return False


def _embedding_context(facts: "FileFacts", call: cst.Call) -> bool:
    """The initializer is meant for an embedding/bias: the keyword it is passed as, the name it is
    assigned to, or the string arguments (``name="embedding"``) of the call it is passed to."""
    parent = facts.parent(call)
    if isinstance(parent, cst.Arg):
        if parent.keyword is not None and _NOT_A_WEIGHT.search(parent.keyword.value):
            return True
        receiver = facts.parent(parent)
        if isinstance(receiver, cst.Call):
            for arg in receiver.args:
                text = literal(arg.value, None)
                if isinstance(text, str) and _NOT_A_WEIGHT.search(text):
                    return True
            target = _assigned_name(facts, receiver)
            return target is not None and bool(_NOT_A_WEIGHT.search(target))
    target = _assigned_name(facts, call)
    return target is not None and bool(_NOT_A_WEIGHT.search(target))


# -- schemes --------------------------------------------------------------------------
def _enclosing_model(facts: "FileFacts", node: cst.CSTNode) -> Optional[Model]:
    owner = _enclosing(facts, node, cst.ClassDef)
    if owner is None:
        return None
    return next((m for m in facts.models.models if m.node is owner), None)


def _self_layer_activations(facts: "FileFacts", node: cst.CSTNode, attribute: str) -> list[str]:
    model = _enclosing_model(facts, node)
    if model is None:
        return []
    layer = next((l for l in model.layers if l.attribute == attribute), None)
    followers = layer_followers(facts, model)
    if layer is None or followers is None:
        return []
    found = _next_activations(layer, followers)
    return [] if found is None else found


def _per_module_activations(facts: "FileFacts", call: cst.Call, variable: str) -> list[str]:
    """``m.weight`` in an ``isinstance(m, nn.Linear)`` branch of an init applied to a whole model."""
    kinds = _isinstance_kinds(facts, call, variable)
    function = _enclosing(facts, call, cst.FunctionDef)
    if not kinds or function is None or not _is_parameter_or_loop_variable(facts, function, call, variable):
        return []
    found: list[str] = []
    for layers in _initialised_models(facts, function):
        result = _hidden_activations(layers, kinds)
        if result is None:
            return []
        found.extend(result)
    return found


def _next_activations(layer: Layer, followers: dict[int, list[Follower]]) -> Optional[list[str]]:
    """The activation on every path after ``layer``; ``None`` if some path has none or is unknown."""
    if layer.activation is not None:
        return [layer.activation]
    found: list[str] = []
    pending = list(followers.get(id(layer), []))
    if not pending:
        return None
    seen: set[int] = set()
    while pending:
        between, nxt = pending.pop()
        ops = [kind for kind, category in between if category not in _PASS_THROUGH]
        if ops:
            if L.KIND_CATEGORIES.get(ops[0]) != L.ACTIVATION:
                return None
            found.append(ops[0])
            continue
        if nxt is None or id(nxt) in seen:
            return None
        seen.add(id(nxt))
        if nxt.category == L.ACTIVATION:
            found.append(nxt.kind)
        elif nxt.category in _PASS_THROUGH:
            more = followers.get(id(nxt), [])
            if not more:
                return None
            pending.extend(more)
        else:
            return None  # normalisation, another layer or a sub-model: not an activation
    return found


def _isinstance_kinds(facts: "FileFacts", node: cst.CSTNode, variable: str) -> frozenset[str]:
    """Dense/conv layer kinds of the nearest ``if isinstance(variable, ...)`` (empty if any is another kind)."""
    names = facts.names
    for ancestor in facts.ancestors(node):
        if not isinstance(ancestor, cst.If):
            continue
        test = ancestor.test
        if not (isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance"):
            continue
        subject = positional(test, 0)
        if not (isinstance(subject, cst.Name) and subject.value == variable):
            continue
        kinds = set()
        for element in _class_elements(positional(test, 1)):
            kind = L.layer_kind(names.qualname(element)) if element is not None else None
            if kind is None or kind.category not in (L.DENSE, L.CONV):
                return frozenset()
            kinds.add(kind.kind)
        return frozenset(kinds)
    return frozenset()


def _is_parameter_or_loop_variable(facts: "FileFacts", function: cst.FunctionDef, node: cst.CSTNode,
                                   variable: str) -> bool:
    if any(param.name.value == variable for param in function.params.params):
        return True
    for ancestor in facts.ancestors(node):
        if isinstance(ancestor, cst.For) and isinstance(ancestor.target, cst.Name) \
                and ancestor.target.value == variable:
            return True
        if ancestor is function:
            break
    return False


def _initialised_models(facts: "FileFacts", function: cst.FunctionDef) -> Iterator[tuple[str, ...]]:
    """Layer kinds (data-flow order) of the models this init function runs on."""
    owner = _enclosing(facts, function, cst.ClassDef)
    if owner is not None:
        model = next((m for m in facts.models.models if m.node is owner), None)
        if model is not None:
            yield model.summary.layers
        return
    name = function.name.value
    for call in facts.calls():
        func = call.func
        if (isinstance(func, cst.Attribute) and func.attr.value == "apply" and call.args
                and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value == name):
            summary = facts.models.model_of(func.value)
            if summary is not None:
                yield summary.layers


def _hidden_activations(layers: tuple[str, ...], kinds: frozenset[str]) -> Optional[list[str]]:
    """Activation after each initialised hidden layer; ``None`` when one has none (or a norm)."""
    found: list[str] = []
    positions = [i for i, kind in enumerate(layers) if kind in kinds]
    for position in positions[:-1]:  # the last one is usually the output layer
        following = [k for k in layers[position + 1:] if L.KIND_CATEGORIES.get(k) not in _PASS_THROUGH]
        if not following or L.KIND_CATEGORIES.get(following[0]) != L.ACTIVATION:
            return None
        found.append(following[0])
    return found


def _initializer_scheme(facts: "FileFacts", initializer: cst.BaseExpression) -> Optional[str]:
    value: Optional[cst.BaseExpression] = initializer
    if isinstance(value, cst.Name) and facts.names.qualname(value) is None:
        value = facts.dataflow.value_of(value)
    text = literal(value, None)
    if isinstance(text, str):
        return _KERAS_SCHEME_NAMES.get(text.lower())
    if isinstance(value, cst.Call):
        if value.args and _has_scale_arguments(value):
            return None
        value = value.func
    if value is None:
        return None
    return _KERAS_SCHEME_CALLABLES.get(facts.names.qualname(value) or "")


def _has_scale_arguments(call: cst.Call) -> bool:
    """An initializer call with arguments other than a seed may change its scale."""
    return any(arg.keyword is None or arg.keyword.value not in ("seed", "dtype", "uniform") for arg in call.args)


def _next_sequential_activation(facts: "FileFacts", call: cst.Call) -> Optional[str]:
    for model in facts.models.models:
        if isinstance(model.node, cst.ClassDef):
            continue
        for index, layer in enumerate(model.layers):
            if layer.node is call:
                for nxt in model.layers[index + 1:]:
                    if nxt.category in _PASS_THROUGH:
                        continue
                    return nxt.kind if nxt.category == L.ACTIVATION else None
    return None
