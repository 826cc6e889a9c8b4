"""Checkpoints: what a save in a training loop holds, and how saved weights are used.

Questions answered (through ``FileFacts.checkpoints``):

* :attr:`Checkpoints.stateful_optimizer` - the first optimizer of the file that keeps per-parameter
  state (Adam and relatives, RMSprop, ``SGD(momentum>0)``), by name; ``None`` if there is none
* :meth:`Checkpoints.contents` - does a save payload hold a model ``state_dict()``, an optimizer's
  (or an entry named for the optimizer), following local names and a helper's parameters to the
  training loop's arguments
* :meth:`Checkpoints.best_model_export` - is a save a snapshot for inference (under
  ``if val < best``, to a "best" path, or a "last"/"final" weights file that is no checkpoint)
* :attr:`Checkpoints.loaded_only_for_inference` - does the file load weights, and only in code
  that never reaches a training loop (no resume path)
* :attr:`Checkpoints.resume_saves_without_optimizer` - checkpoint helpers of a file that builds no
  optimizer (the loop calling them is elsewhere) that save a model's and an LR scheduler's state but
  nothing of an optimizer: the scheduler is only needed to continue training
"""
from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import libcst as cst

from nnlint.facts.loops import Event, looks_like_optimizer
from nnlint.facts.names import argument, dotted_name, keyword, literal

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_STATEFUL = frozenset({"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "RMSprop", "Adagrad", "Adadelta",
                       "Adam8bit", "AdamW8bit", "FusedAdam", "Lion"})
_MAX_DEPTH = 4
_MAX_SCOPE = 64  # functions followed up the call graph from the training loops
_EXPORT_NAME = re.compile(r"(?<![a-z])(last|final)(?![a-z])")
_CHECKPOINT_NAME = re.compile(r"ckpt|checkpoint|resume|state")
#: a project's own loader of saved weights: load_checkpoint, restore_weights, resume_from_snapshot, load_model
_WEIGHT_LOADER = re.compile(r"^_*(load|restore|resume)\w*(ckpt|checkpoint|snapshot|state|weight|model|pretrained)"
                            r"|^_*resume", re.IGNORECASE)
#: what a checkpoint holds besides weights: only resuming training reads it
_TRAINING_STATE = re.compile(r"optim|sched|scaler|(?<![a-z])(amp|ema)(?![a-z])")
_WEIGHT_LOAD_FUNCTIONS = frozenset({"torch.load", "safetensors.torch.load_file", "safetensors.torch.load_model"})


class Checkpoints:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts

    @cached_property
    def stateful_optimizer(self) -> Optional[str]:
        facts = self._facts
        names = facts.names
        for call in facts.calls():
            qualname = names.qualname(call.func)
            if qualname is None:
                continue
            last = qualname.rsplit(".", 1)[-1]
            if last in _STATEFUL and ("optim" in qualname
                                      or qualname.startswith(("torch.", "transformers.", "bitsandbytes."))):
                return last
            if qualname == "torch.optim.SGD":
                momentum = self._number(keyword(call, "momentum"))
                if isinstance(momentum, (int, float)) and momentum > 0:
                    return "SGD(momentum)"
        return None

    def _number(self, expr: Optional[cst.BaseExpression]) -> object:
        if expr is None:
            return None
        value = literal(self._facts.dataflow.resolve(expr), None)
        if value is not None:
            return value
        value = self._facts.constants.value(expr)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def contents(self, expr: Optional[cst.BaseExpression], event: Event, depth: int = 0) -> tuple[bool, bool]:
        """(has a model state_dict, has an optimizer state_dict or an optimizer entry) in a save payload."""
        if expr is None or depth > _MAX_DEPTH:
            return False, False
        facts = self._facts
        loops = facts.loops
        model_state = optimizer_state = False
        for node in facts.walk(expr):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "state_dict":
                owner = dotted_name(node.func.value)
                # FSDP.optim_state_dict(model, optimizer) and the like
                if loops.is_optimizer(owner) or "optim" in (dotted_name(node.func) or "").lower():
                    optimizer_state = True
                else:
                    model_state = True
            elif isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
                text = node.evaluated_value
                if isinstance(text, str) and "optim" in text.lower():
                    optimizer_state = True
            elif isinstance(node, cst.Arg) and node.keyword is not None and "optim" in node.keyword.value.lower():
                optimizer_state = True
            elif isinstance(node, cst.Name):
                inner = self._name_value(node, event)
                if inner is not None:
                    m, o = self.contents(inner, event, depth + 1)
                    model_state, optimizer_state = model_state or m, optimizer_state or o
        return model_state, optimizer_state

    def _name_value(self, name: cst.Name, event: Event) -> Optional[cst.BaseExpression]:
        value = self._facts.dataflow.value_of(name)
        if value is not None:
            return value
        # a parameter of the helper the save is in: the argument at the loop's call
        loops = self._facts.loops
        for call in reversed(event.via):
            function = loops.callee(call)
            if function is None or loops.function_of(name) is not function:
                continue
            params = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
            if name.value in params:
                offset = 1 if params and params[0] == "self" and isinstance(call.func, cst.Attribute) else 0
                return argument(call, params.index(name.value) - offset, name.value)
        return None

    def best_model_export(self, save: cst.Call) -> bool:
        """A snapshot for inference: under ``if val < best``, saved to a "best" path, or to a "last"/"final"
        weights file (the ``best.pt`` + ``last.pt`` pair) that does not call itself a checkpoint."""
        facts = self._facts
        code_for = facts.module.code_for_node
        for arg in save.args[1:]:
            texts = [code_for(n).lower() for n in facts.walk(arg.value)
                     if isinstance(n, (cst.SimpleString, cst.FormattedStringText))]
            if any("best" in text for text in texts):
                return True
            if any(_EXPORT_NAME.search(text) for text in texts) and not any(_CHECKPOINT_NAME.search(t) for t in texts):
                return True
            if isinstance(arg.value, (cst.Name, cst.Attribute)) and "best" in (dotted_name(arg.value) or "").lower():
                return True
        for ancestor in facts.ancestors(save):
            if isinstance(ancestor, cst.If) and "best" in code_for(ancestor.test).lower():
                return True
            if isinstance(ancestor, (cst.For, cst.While, cst.FunctionDef)):
                break
        return False

    @cached_property
    def loaded_only_for_inference(self) -> bool:
        """Does the file load weights, and only in code that never reaches a training loop?"""
        facts = self._facts
        loads = [call for call in facts.calls() if self._loads_weights(call)]
        if not loads:
            return False  # nothing says how the snapshots are used
        loops = facts.loops
        functions: set[cst.FunctionDef] = set()
        module_level = False
        pending = [loops.function_of(t.node) for t in loops.training_loops]
        pending += [loops.function_of(loop) for loop in loops.outer_loops]
        while pending:
            function = pending.pop()
            if function is None:
                module_level = True
            elif function not in functions and len(functions) < _MAX_SCOPE:
                functions.add(function)
                pending.extend(loops.function_of(call) for call in loops.call_sites(function))
        classes = {loops.class_of(f) for f in functions} - {None}
        for call in loads:
            function = loops.function_of(call)
            if function is None and module_level:
                return False
            if function is not None and (function in functions or loops.class_of(function) in classes):
                return False  # a resume path: weights are loaded where training runs
        return True

    @cached_property
    def resume_saves_without_optimizer(self) -> tuple[cst.Call, ...]:
        """The first model-weights ``torch.save`` of each function that also saves an LR scheduler's
        ``state_dict()`` (state that only resuming reads) and never mentions an optimizer, in a file
        that builds no optimizer itself (so none is known to be stateless)."""
        facts = self._facts
        loops = facts.loops
        if any(loops.is_optimizer_call(call) for call in facts.calls()):
            return ()
        found: list[cst.Call] = []
        for function in facts.nodes_of(cst.FunctionDef):
            saves = [c for c in facts.calls(function) if facts.names.qualname(c.func) == "torch.save"
                     and facts.dataflow.scope_of(c) is function]
            if not saves or any(isinstance(n, (cst.Name, cst.SimpleString)) and "optim" in n.value.lower()
                                or isinstance(n, cst.Name) and looks_like_optimizer(n.value)
                                for n in facts.walk(function)):
                continue  # the optimizer is handled somehow
            first_model_save: Optional[cst.Call] = None
            scheduler = False
            for save in saves:
                owners = self._state_owners(argument(save, 0, "obj"), 0)
                scheduler = scheduler or any("sched" in owner for owner in owners)
                if first_model_save is None and any(not _TRAINING_STATE.search(owner) for owner in owners):
                    first_model_save = save
            if scheduler and first_model_save is not None and not self.best_model_export(first_model_save):
                found.append(first_model_save)
        return tuple(found)

    def _state_owners(self, payload: Optional[cst.BaseExpression], depth: int) -> list[str]:
        """The source text, lower-cased, of what each ``x.state_dict()`` in a save payload is called on
        (following local names: ``state = {k: v.cpu() for k, v in model.state_dict().items()}``)."""
        facts = self._facts
        owners: list[str] = []
        for node in facts.walk(payload) if payload is not None and depth <= _MAX_DEPTH else ():
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                    and node.func.attr.value == "state_dict":
                owners.append(facts.module.code_for_node(node.func.value).lower())
            elif isinstance(node, cst.Name) and not isinstance(facts.parent(node), cst.Attribute):
                owners.extend(self._state_owners(facts.dataflow.value_of(node), depth + 1))
        return owners

    def _loads_weights(self, call: cst.Call) -> bool:
        if self._facts.names.qualname(call.func) in _WEIGHT_LOAD_FUNCTIONS:
            return True
        name = (dotted_name(call.func) or "").rsplit(".", 1)[-1]
        return name == "load_state_dict" or bool(_WEIGHT_LOADER.search(name))
