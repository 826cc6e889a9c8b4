"""What follows each layer of a model, and whether a dense/conv layer keeps its bias.

Rules about a layer's neighbours (a bias before BatchNorm, a bias-free layer with no norm after
it, an initialiser that does not match the next activation) ask :func:`layer_followers` instead
of re-tracing ``forward`` themselves.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.models import Layer, Model
from nnlint.facts.names import keyword, literal

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

#: position of ``bias`` among each torch layer's positional parameters
TORCH_BIAS_INDEX = {
    "Linear": 2, "LazyLinear": 1,
    "Conv1d": 7, "Conv2d": 7, "Conv3d": 7,
    "ConvTranspose1d": 7, "ConvTranspose2d": 7, "ConvTranspose3d": 7,
    "LazyConv1d": 6, "LazyConv2d": 6, "LazyConv3d": 6,
}
KERAS_BIASED = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D",
                          "Convolution3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})

#: ``(ops in between, next layer)``: ops are ``(kind, category)`` of functional ops and fused activations
Follower = tuple[tuple[tuple[str, str], ...], Optional[Layer]]


def is_keras_layer(layer: Layer) -> bool:
    return (layer.qualname or "").startswith("keras.")


def bias_enabled(layer: Layer) -> Optional[bool]:
    """``True``/``False`` for a literal or default bias setting of a dense/conv layer, ``None`` if unknown."""
    call = layer.node
    if any(arg.star for arg in call.args):
        return None
    positional_count = sum(1 for arg in call.args if arg.keyword is None)
    if is_keras_layer(layer):
        if layer.kind not in KERAS_BIASED or positional_count > 7:
            return None
        value = keyword(call, "use_bias")
    else:
        if not (layer.qualname or "").startswith("torch.") or layer.kind not in TORCH_BIAS_INDEX:
            return None
        index = TORCH_BIAS_INDEX[layer.kind]
        value = keyword(call, "bias")
        if value is None and positional_count > index:
            value = [arg for arg in call.args if arg.keyword is None][index].value
    if value is None:
        return True
    found = literal(value, None)
    return found if isinstance(found, bool) else None


def layer_followers(facts: "FileFacts", model: Model) -> Optional[dict[int, list[Follower]]]:
    """For each layer (by ``id``), what its output flows into: ``(ops in between, next layer)``.

    ``ops in between`` are ``(kind, category)`` of functional ops (``F.relu``, ``x.view``) and a
    Keras layer's fused activation. ``None`` when the model's flow is not known.
    """
    followers: dict[int, list[Follower]] = {id(layer): [] for layer in model.layers}
    fused = {id(layer): ((layer.activation, L.ACTIVATION),) if layer.activation else () for layer in model.layers}
    if not isinstance(model.node, cst.ClassDef):
        for current, nxt in zip(model.layers, model.layers[1:]):
            followers[id(current)].append((fused[id(current)], nxt))
        return followers
    method = facts.values.method(model.node, "forward") or facts.values.method(model.node, "call")
    if method is None:
        return None
    by_attribute = {layer.attribute: layer for layer in model.layers if layer.attribute}
    for call in facts.calls(method):
        consumer = self_layer(call, by_attribute)
        if consumer is None or not call.args:
            continue
        source = _source_layer(facts, call.args[0].value, by_attribute)
        if source is not None:
            producer, between = source
            followers[id(producer)].append((fused[id(producer)] + between, consumer))
    return followers


def self_layer(call: cst.Call, by_attribute: dict[str, Layer]) -> Optional[Layer]:
    """The layer ``self.<attribute>(...)`` calls, if it is one of ``by_attribute``."""
    func = call.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
        return by_attribute.get(func.attr.value)
    return None


def _source_layer(facts: "FileFacts", expr: cst.BaseExpression,
                  by_attribute: dict[str, Layer]) -> Optional[tuple[Layer, tuple[tuple[str, str], ...]]]:
    """The layer whose output ``expr`` is, through local names and functional ops."""
    between: list[tuple[str, str]] = []
    names = facts.names
    current: Optional[cst.BaseExpression] = expr
    for _ in range(16):
        if isinstance(current, cst.Name):
            current = facts.dataflow.value_of(current)
            continue
        if not isinstance(current, cst.Call):
            return None
        producer = self_layer(current, by_attribute)
        if producer is not None:
            return producer, tuple(between)
        qualname = names.qualname(current.func)
        kind = L.function_kind(qualname) if qualname is not None else None
        if kind is not None:
            between.insert(0, (kind.kind, kind.category))
            current = current.args[0].value if current.args else None
            continue
        if qualname is None and isinstance(current.func, cst.Attribute) \
                and current.func.attr.value in L.TENSOR_METHODS:
            method_kind = L.TENSOR_METHODS[current.func.attr.value]
            between.insert(0, (method_kind.kind, method_kind.category))
            current = current.func.value
            continue
        return None
    return None
