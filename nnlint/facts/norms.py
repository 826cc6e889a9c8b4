"""Normalisation between layers: is a layer's output normalised before the next layer uses it?

Questions answered:

* :meth:`NormFacts.unnormalised_output` - does every path from a layer's output reach another
  dense/conv layer without passing a normalisation (a norm layer, a functional norm between the two,
  a fused ``Norm``)? Activations, dropout, pooling and reshapes are looked through; a sub-model or an
  unknown data flow is not known to lack a norm, nor is an output ``forward`` also uses outside a layer
  call (``out * w``, a residual sum, a return: squeeze-and-excitation rescales the conv's output).
* :meth:`NormFacts.functional_norm_in` - does a model class call a functional norm (``F.layer_norm``)?
* :attr:`NormFacts.transformer_style` - is this transformer code (attention, embeddings, LayerNorm/RMSNorm
  layers, classes or functions), where bias-free dense layers are the convention?
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts import layers as L
from nnlint.facts.layerflow import Follower, layer_followers, self_layer
from nnlint.facts.models import Layer, Model

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

#: layer kinds that carry their own normalisation-free stream in transformer code
_TRANSFORMER_HINTS = ("LayerNorm", "RMSNorm", "Attention", "Embedding", "Transformer")
_TRANSFORMER_FUNCTIONS = frozenset({
    "torch.nn.functional.layer_norm", "torch.nn.functional.rms_norm",
    "torch.nn.functional.scaled_dot_product_attention", "torch.nn.functional.embedding",
})
_PASS_THROUGH = frozenset({L.ACTIVATION, L.DROPOUT, L.POOL, L.SHAPE})
_PARAMETRIC = frozenset({L.DENSE, L.CONV})
_METADATA = frozenset({"size", "shape", "dim", "ndim", "numel", "device", "dtype"})


class NormFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        #: per model (by ``id``): its followers and the layers whose outputs escape
        self._flows: dict[int, tuple[Optional[dict[int, list[Follower]]], set[int]]] = {}

    def unnormalised_output(self, model: Model, layer: Layer) -> bool:
        """Every path from ``layer`` reaches another dense/conv layer without a normalisation."""
        flow = self._flows.get(id(model))
        if flow is None:
            followers = layer_followers(self._facts, model)
            escaping = self._escaping_outputs(model) if followers is not None else set()
            flow = self._flows[id(model)] = (followers, escaping)
        followers, escaping = flow
        return followers is not None and id(layer) not in escaping and _unnormalised(layer, followers)

    def functional_norm_in(self, model: Model) -> bool:
        """Does the model's class call a functional normalisation?"""
        if not isinstance(model.node, cst.ClassDef):
            return False
        names = self._facts.names
        for call in self._facts.calls(model.node):
            kind = L.function_kind(names.qualname(call.func))
            if kind is not None and kind.category == L.NORM:
                return True
        return False

    @cached_property
    def transformer_style(self) -> bool:
        """Attention/embedding layers, LayerNorm/RMSNorm/Transformer kinds or class names, or their functions."""
        for model in self._facts.models.models:
            for layer in model.layers:
                kinds = [layer.kind, *(layer.inner.layers if layer.inner is not None else ())]
                if layer.category in (L.ATTENTION, L.EMBEDDING) or any(
                        hint in kind for kind in kinds for hint in _TRANSFORMER_HINTS):
                    return True
        names = self._facts.names
        if any(hint in name for name in names.classes for hint in _TRANSFORMER_HINTS):
            return True
        return any(names.qualname(call.func) in _TRANSFORMER_FUNCTIONS for call in self._facts.calls())

    # -- helpers ---------------------------------------------------------------------
    def _escaping_outputs(self, model: Model) -> set[int]:
        """Layers (by ``id``) whose output ``forward`` also uses outside a layer call."""
        if not isinstance(model.node, cst.ClassDef):
            return set()
        facts = self._facts
        method = facts.values.method(model.node, "forward") or facts.values.method(model.node, "call")
        if method is None:
            return set()
        by_attribute = {layer.attribute: layer for layer in model.layers if layer.attribute}
        loads = [n for n in facts.walk(method) if isinstance(n, cst.Name) and not self._is_binding(n)]
        escaping: set[int] = set()
        for call in facts.calls(method):
            producer = self_layer(call, by_attribute)
            if producer is not None and self._escapes(call, by_attribute, loads, 0):
                escaping.add(id(producer))
        return escaping

    def _escapes(self, expr: cst.CSTNode, by_attribute: dict[str, Layer], loads: list[cst.Name],
                 depth: int) -> bool:
        if depth > 8:
            return True
        facts = self._facts
        names = facts.names
        node, parent = expr, facts.parent(expr)
        while True:
            if isinstance(parent, cst.Arg):
                call = facts.parent(parent)
                if not isinstance(call, cst.Call) or not call.args or call.args[0] is not parent:
                    return True
                if self_layer(call, by_attribute) is not None:
                    return False  # consumed by a layer: a follower
                if L.function_kind(names.qualname(call.func)) is None:
                    return True
                node, parent = call, facts.parent(call)
            elif isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in _METADATA:
                return False  # `x.size(0)`, `x.shape`: reads the shape, not the values
            elif isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in L.TENSOR_METHODS:
                call = facts.parent(parent)
                if not isinstance(call, cst.Call):
                    return True
                node, parent = call, facts.parent(call)
            elif isinstance(parent, cst.Assign) and parent.value is node:
                uses = [n for n in loads if any(d.value is node for d in facts.dataflow.definitions(n))]
                return any(self._escapes(use, by_attribute, loads, depth + 1) for use in uses)
            else:
                return True

    def _is_binding(self, name: cst.Name) -> bool:
        parent = self._facts.parent(name)
        return isinstance(parent, (cst.AssignTarget, cst.Param, cst.Attribute, cst.Arg)) and not (
            isinstance(parent, cst.Arg) and parent.value is name) and not (
            isinstance(parent, cst.Attribute) and parent.value is name)


def _unnormalised(layer: Layer, followers: dict[int, list[Follower]]) -> bool:
    """Every path from ``layer`` reaches another dense/conv layer without passing a normalisation."""
    reached_parametric = False
    pending = list(followers.get(id(layer), []))
    seen: set[int] = set()
    while pending:
        between, nxt = pending.pop()
        if any(category == L.NORM for _, category in between):
            return False
        if nxt is None or id(nxt) in seen:
            continue
        seen.add(id(nxt))
        if nxt.category == L.NORM or "Norm" in nxt.kind:
            return False
        if nxt.category in _PASS_THROUGH and nxt.activation is None:
            pending.extend(followers.get(id(nxt), []))
        elif nxt.category in _PARAMETRIC:
            reached_parametric = True
        else:
            return False  # a sub-model, container or recurrent layer: unknown inside
    return reached_parametric
