"""Dropout: where a file drops activations, and whether a training flag turns it off.

Questions answered:

* :attr:`DropoutFacts.sites` - which calls drop activations: torch's functional dropouts
  (``FUNCTIONAL``), ``F.scaled_dot_product_attention`` and flash-attn's kernels (``ATTENTION``), a dropout module built and
  called in one expression, ``nn.Dropout(p)(x)`` (``MODULE_CALL``), ``tf.nn.dropout`` (``TF_DROPOUT``),
  ``tf.contrib.layers.dropout`` (``CONTRIB_DROPOUT``) and TF1 ``DropoutWrapper`` cells (``WRAPPER``).
* :meth:`DropoutFacts.forward_method` - which method of an ``nn.Module`` (or ``LightningModule``,
  also through project base classes) contains a call and is run by ``forward`` (``forward`` itself or
  a ``self.<method>(...)`` it calls, transitively).
* :meth:`DropoutFacts.keras_call_method` - is a call inside ``call()`` of a Keras layer/model?
* :meth:`DropoutFacts.under_training_test` - is a call guarded by a training flag (``if self.training:``,
  ``x if is_training else y``, ``while training``) or deferred in a lambda (``tf.cond``)?
* :meth:`DropoutFacts.follows_training` - may an expression (a dropout rate) depend on a training flag
  (``p if self.training else 0.0``, also through local variables; an unknown definition counts)?
* :meth:`DropoutFacts.constant` - the literal value of a probability, through local variables and
  module constants.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.names import argument, literal

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

#: kinds of dropout site (:attr:`DropoutSite.kind`)
FUNCTIONAL = "functional"
ATTENTION = "attention"
MODULE_CALL = "module-call"
TF_DROPOUT = "tf-dropout"
CONTRIB_DROPOUT = "contrib-dropout"
WRAPPER = "wrapper"

#: ``flash_attn.flash_attn_interface.flash_attn_func`` and other spellings of the same kernels
_FLASH_NAMES = frozenset({
    "flash_attn_func", "flash_attn_qkvpacked_func", "flash_attn_kvpacked_func", "flash_attn_varlen_func",
    "flash_attn_varlen_qkvpacked_func", "flash_attn_varlen_kvpacked_func",
})
#: attention kernels with a ``dropout_p`` argument that no mode switch turns off, and its position
ATTENTION_DROPOUT = {
    "torch.nn.functional.scaled_dot_product_attention": 4,
    "flash_attn.flash_attn_func": 3,
    "flash_attn.flash_attn_qkvpacked_func": 1,
    "flash_attn.flash_attn_kvpacked_func": 2,
    "flash_attn.flash_attn_varlen_func": 7,
    "flash_attn.flash_attn_varlen_qkvpacked_func": 3,
    "flash_attn.flash_attn_varlen_kvpacked_func": 6,
}
_DROPOUT_MODULES = frozenset({"torch.nn.Dropout", "torch.nn.Dropout1d", "torch.nn.Dropout2d", "torch.nn.Dropout3d"})
#: torch functional dropouts, whose ``training`` parameter (position 2) defaults to True
_TORCH_DROPOUTS = frozenset({
    "torch.nn.functional.dropout", "torch.nn.functional.dropout1d",
    "torch.nn.functional.dropout2d", "torch.nn.functional.dropout3d",
})
_TF_DROPOUT = "tensorflow.nn.dropout"
#: dropout modules that sample at test time on purpose
_DELIBERATE = re.compile(r"^mc|montecarlo|monte_carlo|concrete|bayes|variational")
#: draws that make a dropout mask
_RANDOM_DRAWS = frozenset({"torch.rand", "torch.rand_like", "torch.bernoulli", "torch.randint", "torch.randint_like"})
_TF_CONSTANTS = frozenset({"tensorflow.constant", "tensorflow.compat.v1.constant"})
_CONTRIB_DROPOUT = "tensorflow.contrib.layers.dropout"
#: TF1 recurrent cells wrapped with dropout: ``DropoutWrapper(cell, output_keep_prob=0.5)``
_DROPOUT_WRAPPERS = frozenset(f"{prefix}.DropoutWrapper" for prefix in (
    "tensorflow.nn.rnn_cell", "tensorflow.contrib.rnn", "tensorflow.compat.v1.nn.rnn_cell",
    "tensorflow.contrib.rnn.core_rnn_cell", "tensorflow.python.ops.rnn_cell"))
_LIGHTNING = ("pytorch_lightning.", "lightning.")


@dataclass(frozen=True)
class DropoutSite:
    call: cst.Call
    #: ``FUNCTIONAL`` | ``ATTENTION`` | ``MODULE_CALL`` | ``TF_DROPOUT`` | ``CONTRIB_DROPOUT`` | ``WRAPPER``
    kind: str


def first_parameter(method: cst.FunctionDef) -> Optional[str]:
    """The name of a method's receiver (``self``), ``None`` without parameters."""
    params = list(method.params.posonly_params) + list(method.params.params)
    return params[0].name.value if params else None


class DropoutFacts:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    @cached_property
    def sites(self) -> tuple[DropoutSite, ...]:
        """Every dropout call of the file, in source order."""
        names = self._facts.names
        found: list[DropoutSite] = []
        for call in self._facts.calls():
            qualname = names.qualname(call.func)
            if qualname in _TORCH_DROPOUTS:
                found.append(DropoutSite(call, FUNCTIONAL))
            elif qualname in ATTENTION_DROPOUT or (qualname or "").startswith("flash_attn.") \
                    and qualname.rsplit(".", 1)[-1] in _FLASH_NAMES:  # type: ignore[union-attr]
                found.append(DropoutSite(call, ATTENTION))
            elif isinstance(call.func, cst.Call) and names.qualname(call.func.func) in _DROPOUT_MODULES:
                found.append(DropoutSite(call, MODULE_CALL))
            elif qualname == _TF_DROPOUT:
                found.append(DropoutSite(call, TF_DROPOUT))
            elif qualname == _CONTRIB_DROPOUT:
                found.append(DropoutSite(call, CONTRIB_DROPOUT))
            elif qualname in _DROPOUT_WRAPPERS:
                found.append(DropoutSite(call, WRAPPER))
        return tuple(found)

    def constant(self, expr: Optional[cst.BaseExpression]) -> object:
        """The literal value of ``expr``, following local variables and module constants."""
        if expr is None:
            return None
        value = literal(self._facts.dataflow.resolve(expr), None)
        if value is not None:
            return value
        constant = self._facts.constants.value(expr)
        return None if constant is None or not isinstance(constant, (int, float)) else constant

    @cached_property
    def hand_written(self) -> tuple[cst.Call, ...]:
        """The random mask of each hand-written dropout that ignores eval mode, in an ``nn.Module``
        subclass where nothing reads a training flag: in a class named ``*Dropout*``, a random draw
        (``torch.rand(...)``, ``bernoulli``) in ``forward`` or a method it runs; in any module, an
        inverted-dropout mask there (a ``bernoulli`` draw rescaled by its keep probability:
        ``mask = x.new_empty(s).bernoulli_(1 - p) / (1 - p)``). Monte-Carlo, concrete and Bayesian
        dropout stay on by design. ``nn.Dropout`` checks ``self.training``; a copy that does not
        drops units at test time too."""
        found: list[cst.Call] = []
        for owner in self._facts.nodes_of(cst.ClassDef):
            assert isinstance(owner, cst.ClassDef)
            name = owner.name.value.lower()
            if _DELIBERATE.search(name) or ("dropout" not in name and not any(
                    isinstance(call.func, cst.Attribute) and call.func.attr.value in ("bernoulli", "bernoulli_")
                    for call in self._facts.calls(owner))):
                continue  # (cheap tests first: most modules draw no mask)
            if not self._is_torch_module(owner, depth=0) \
                    or any(self._mentions_training(node) for node in self._facts.nodes_of(cst.Name, within=owner)):
                continue
            run = self._methods_run_by_forward(owner)
            for method in owner.body.body:
                if isinstance(method, cst.FunctionDef) and method.name.value in run:
                    draw = next((call for call in self._facts.calls(method.body) if self._random_draw(call)), None) \
                        if "dropout" in name else self._rescaled_mask(method)
                    if draw is not None:
                        found.append(draw)
                        break
        return tuple(found)

    def _rescaled_mask(self, method: cst.FunctionDef) -> Optional[cst.Call]:
        """A ``bernoulli`` draw in ``method`` whose keep probability (``q`` in ``bernoulli_(q)``)
        also divides something there (``/ q``, ``.div_(q)``): the rescaling of inverted dropout."""
        facts = self._facts
        divisors: set[str] = set()
        for node in facts.walk(method.body):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
                divisors.add(_text(node.right))
            elif isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign):
                divisors.add(_text(node.value))
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value in ("div", "div_") and node.args:
                divisors.add(_text(node.args[0].value))
        for call in facts.calls(method.body):
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("bernoulli", "bernoulli_") \
                    and call.args and _text(call.args[0].value) in divisors:
                return call
        return None

    def _random_draw(self, call: cst.Call) -> bool:
        qualname = self._facts.names.qualname(call.func) or ""
        if qualname in _RANDOM_DRAWS:
            return True
        return isinstance(call.func, cst.Attribute) and call.func.attr.value in ("bernoulli", "bernoulli_", "uniform_")

    def fixed_in_graph(self, expr: Optional[cst.BaseExpression], call: cst.Call) -> bool:
        """Is the probability ``expr`` that TF1 graph code passes to ``call`` below 1 and fixed when
        the graph is built (so evaluating the graph drops units too)? Evidence, any of:

        * a literal in (0, 1), through locals and module constants;
        * every value it may hold is ``tf.constant(...)`` (``self.keep = tf.constant(self.dropout)``);
        * ``call`` runs only under ``if <expr> < 1:``: a graph tensor cannot be a Python ``if``
          test, so ``expr`` is a Python number, and below 1 there.
        A placeholder, ``tf.cond``, or a value nnlint cannot follow is not fixed."""
        if expr is None:
            return False
        value = self.constant(expr)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return 0 < value < 1
        origins = self._facts.values.origins(expr)
        if origins and all(self._tf_constant_below_one(origin) for origin in origins):
            return True
        return self._guarded_below_one(expr, call)

    def _tf_constant_below_one(self, origin: object) -> bool:
        if not isinstance(origin, cst.Call) or self._facts.names.qualname(origin.func) not in _TF_CONSTANTS:
            return False
        value = self.constant(argument(origin, 0, "value"))
        return value is None or (isinstance(value, (int, float)) and 0 < value < 1)

    def _guarded_below_one(self, expr: cst.BaseExpression, call: cst.Call) -> bool:
        """``if self.keep_prob < 1.0: ... DropoutWrapper(cell, output_keep_prob=self.keep_prob)``."""
        for ancestor in self._facts.ancestors(call):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
                return False
            if not isinstance(ancestor, cst.If) or not isinstance(ancestor.test, cst.Comparison):
                continue
            test = ancestor.test
            if len(test.comparisons) != 1 or not test.left.deep_equals(expr):
                continue
            target = test.comparisons[0]
            if isinstance(target.operator, (cst.LessThan, cst.NotEqual)) and self.constant(target.comparator) == 1:
                return True
        return False

    def attention_rate(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """The ``dropout_p`` an ``ATTENTION`` site passes (``None`` when it passes none)."""
        qualname = self._facts.names.qualname(call.func) or ""
        index = ATTENTION_DROPOUT.get(qualname, ATTENTION_DROPOUT.get("flash_attn." + qualname.rsplit(".", 1)[-1]))
        return argument(call, index, "dropout_p") if index is not None else None

    def forward_method(self, call: cst.Call) -> Optional[cst.FunctionDef]:
        """The method of an ``nn.Module`` subclass, run by ``forward``, that contains ``call``."""
        found = self._enclosing_method(call)
        if found is None:
            return None
        method, owner = found
        if not self._is_torch_module(owner, depth=0):
            return None
        return method if method.name.value in self._methods_run_by_forward(owner) else None

    def keras_call_method(self, call: cst.Call) -> bool:
        """Is ``call`` inside ``call()`` of a class with a Keras base?"""
        found = self._enclosing_method(call)
        if found is None or found[0].name.value != "call":
            return False
        for base in found[1].bases:
            qualname = self._facts.names.qualname(base.value)
            if qualname is not None and qualname.startswith("keras."):
                return True
        return False

    def under_training_test(self, call: cst.Call) -> bool:
        """Inside ``if self.training:`` / ``if training:`` / ``x if is_training else y`` / a lambda (``tf.cond``)."""
        for ancestor in self._facts.ancestors(call):
            if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)) and self._mentions_training(ancestor.test):
                return True
            if isinstance(ancestor, cst.Lambda):
                return True
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
                return False
        return False

    def follows_training(self, expr: cst.BaseExpression, depth: int = 0) -> bool:
        """``p if self.training else 0.0``, also through a local (``dropout_p = ...``); unknown counts."""
        if self._mentions_training(expr):
            return True
        if not isinstance(expr, cst.Name) or depth > 4:
            return False
        definitions = self._facts.dataflow.definitions(expr)
        return any(d.value is None or self.follows_training(d.value, depth + 1) for d in definitions)

    # -- helpers ---------------------------------------------------------------------
    def _mentions_training(self, test: cst.BaseExpression) -> bool:
        return any(isinstance(node, cst.Name) and "train" in node.value.lower() for node in self._facts.walk(test))

    def _enclosing_method(self, node: cst.CSTNode) -> Optional[tuple[cst.FunctionDef, cst.ClassDef]]:
        """The method (directly in a class body) that contains ``node``, and its class."""
        function: Optional[cst.FunctionDef] = None
        for ancestor in self._facts.ancestors(node):
            if isinstance(ancestor, cst.FunctionDef):
                function = ancestor
            elif isinstance(ancestor, cst.ClassDef):
                if function is not None and self._facts.parent(function) is ancestor.body:
                    return function, ancestor
                return None
        return None

    def _is_torch_module(self, owner: cst.ClassDef, depth: int) -> bool:
        if depth > 8:
            return False
        names = self._facts.names
        for base in owner.bases:
            if base.keyword is not None:
                continue
            if isinstance(base.value, cst.Name) and base.value.value in names.classes and (
                base.value.value not in names.bindings
            ):
                if self._is_torch_module(names.classes[base.value.value], depth + 1):
                    return True
                continue
            qualname = names.qualname(base.value)
            if qualname is None:
                continue
            if qualname.startswith("torch.nn.") or (
                    qualname.startswith(_LIGHTNING) and qualname.endswith("LightningModule")):
                return True
            summary = self._facts.project.model(qualname, self._facts.path)
            if summary is not None and summary.framework == "torch":
                return True
        return False

    def _methods_run_by_forward(self, owner: cst.ClassDef) -> set[str]:
        """``forward`` and the methods it calls as ``self.<name>(...)``, transitively."""
        methods = {
            statement.name.value: statement
            for statement in owner.body.body
            if isinstance(statement, cst.FunctionDef)
        }
        reached: set[str] = set()
        pending = ["forward"]
        while pending:
            name = pending.pop()
            if name in reached or name not in methods:
                continue
            reached.add(name)
            method = methods[name]
            receiver = first_parameter(method)
            for node in self._facts.calls(method.body):
                if (isinstance(node.func, cst.Attribute)
                        and isinstance(node.func.value, cst.Name) and node.func.value.value == receiver):
                    pending.append(node.func.attr.value)
        return reached


def _text(expr: cst.BaseExpression) -> str:
    """Source text of an expression without spaces or outer parentheses (``(1 - p)`` is ``1-p``)."""
    return "".join(cst.Module([]).code_for_node(expr).split()).strip("()")
