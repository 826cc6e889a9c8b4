"""Evaluation code and the mode (``train``/``eval``) a model is in when it runs.

Questions answered (through ``FileFacts.evaluation``):

* :meth:`Evaluation.model_call` - which model a call runs (``model(x)``, ``model.forward(x)``,
  ``model.generate(x)``), as dotted text and expression
* :meth:`Evaluation.in_evaluation` - is a call evaluation code: in a function named for
  evaluation, under ``torch.no_grad()`` outside the training loop in code that never
  backpropagates, in a loop over evaluation data, or fed a batch of evaluation data
* :meth:`Evaluation.named_or_looping_like_evaluation` - the stronger evidence: a function named
  for evaluation or prediction, or a loop over evaluation data
* :meth:`Evaluation.synthetic_input` - is a call a shape smoke test on made-up tensors
* :meth:`Evaluation.mode_at` - the mode of a model at a node, through ``model.eval()``/
  ``model.train()`` before it in its function and, a few calls up, at every call of that function
* :meth:`Evaluation.training_switch` - the ``model.train()`` in an inference scope that trains nothing,
  where ``model.eval()`` was meant
* :meth:`Evaluation.pretrained_never_evaluated` - a pretrained model (``pretrained=True``) that a file
  training nothing runs without ever switching it to eval mode: where it is loaded
* :meth:`Evaluation.model_summaries` - the models an expression may be, following a parameter to
  the arguments of its function's calls (a torchvision classifier picked by name included)
* :meth:`Evaluation.unseen_model_in_training_mode` - for a model whose class nnlint cannot see:
  why the program evaluates it in training mode, or ``None`` when the evidence is not strong enough
* :meth:`Evaluation.grad_disabled` - is a node under ``torch.no_grad()``, also where ``torch``
  comes from a star import
* :meth:`Evaluation.trained_here_never_evaluated` / :meth:`Evaluation.put_in_training_mode` - does
  this file train a model and never switch it to eval mode; does it call ``model.train()``
* :meth:`Evaluation.calls_backward` - does a block backpropagate (``backward``, ``grad``,
  ``requires_grad``), answered once per block
* :attr:`Evaluation.training_nodes` - the training loops and the loops around them
"""
from __future__ import annotations

import re
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from nnlint.facts.loops import ModeSwitch, is_eval_function_name, mode_switch, rename, scope_calls
from nnlint.facts.index import ModelSummary
from nnlint.facts.names import dotted_name, keyword, literal, positional

if TYPE_CHECKING:  # pragma: no cover
    from nnlint.facts import FileFacts

_MAX_DEPTH = 3
#: ``model.generate(x)`` and ``model.forward(x)`` run the model ``model``
_INFERENCE_METHODS = (".forward", ".generate")
#: functions that evaluate or predict: ``evaluate``, ``run_validation``, ``predict``, ``inference``
_EVALUATION_NAME = re.compile(r"(^|_)(eval|evaluate|evaluation|valid|validate|validation|val|test|predict|"
                              r"prediction|infer|inference)($|_)", re.I)
#: names of evaluation data: ``test_loader``, ``val_dl``, ``loaders["valid"]``, ``dev_set``
_EVALUATION_DATA = re.compile(r"(^|[\s_'\"])(test|val|valid|validation|eval|dev)(_|[\s'\"]|loader|set|data|$)", re.I)
#: functions that draw from a trained model: ``sample``, ``generate``, ``predict``, ``inference``
_GENERATION_NAME = re.compile(r"(^|_)(sample|samples|sampling|generate|generation|synthesi[sz]e|predict|infer|"
                              r"inference|decode)($|_)", re.I)
_SYNTHETIC = frozenset({"torch.randn", "torch.rand", "torch.randint", "torch.zeros", "torch.ones",
                        "torch.empty", "torch.full", "torch.randn_like", "torch.rand_like"})
_BACKPROPAGATION = ("backward", "grad", "requires_grad_", "requires_grad")
_GRAD_OFF_SPELLED = frozenset({"torch.no_grad", "torch.inference_mode"})
#: bases of a class whose ``self`` is a torch module (``nn.Module``, ``pl.LightningModule``)
_MODULE_BASE = re.compile(r"(^|\.)(Module|LightningModule)$")
#: loaders whose models may come back in eval mode already (``from_pretrained`` calls ``model.eval()``;
#: a TorchScript module, also one a hub entry point returns, keeps the mode it was saved in)
_LOADED_IN_EVAL_MODE = ("from_pretrained", "jit.load", "hub.load", "pipeline")
#: statements that get a module ready to run: moved to a device, or given trained weights
_PREPARES = frozenset({"to", "cuda", "cpu", "load_state_dict"})
#: methods only a module has
_MODULE_METHODS = frozenset({"parameters", "named_parameters", "state_dict", "load_state_dict", "modules"})
#: moving a value (``.to(device)``, ``.cuda()``, ``.cpu()``) that is also called: a module, never a tensor
_MOVES = frozenset({"to", "cuda", "cpu"})


#: methods of a module that do not run it
_NOT_RUNS = frozenset({
    "eval", "train", "to", "cuda", "cpu", "half", "float", "double", "bfloat16", "parameters", "named_parameters",
    "buffers", "modules", "named_modules", "children", "state_dict", "load_state_dict", "zero_grad", "apply",
    "requires_grad_", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
})
#: libraries whose functions, and builtins, that are never a model being run
_NOT_MODELS = frozenset({
    "torch", "numpy", "math", "tensorflow", "keras", "jax", "os", "sys", "time", "logging", "json", "random",
    "print", "len", "range", "enumerate", "zip", "sum", "min", "max", "isinstance", "getattr", "hasattr",
    "list", "dict", "tuple", "set", "float", "int", "str", "bool", "sorted", "any", "all", "iter", "next",
    "open", "super", "type", "round", "abs", "map", "filter", "format", "repr",
})


class Evaluation:
    def __init__(self, facts: "FileFacts") -> None:
        self._facts = facts
        self._backward: dict[cst.CSTNode, bool] = {}  # one walk per block, not per call

    @cached_property
    def _evaluation_data_named(self) -> bool:
        """Does any name in the file look like evaluation data (``test_loader``, ``val_set``)?"""
        names = {node.value for node in self._facts.nodes_of(cst.Name)}  # type: ignore[attr-defined]
        return any(_EVALUATION_DATA.search(name) for name in names)

    @cached_property
    def training_nodes(self) -> frozenset[cst.CSTNode]:
        """The training loops and the loops around them (an evaluation is never inside one)."""
        loops = self._facts.loops
        return frozenset({t.node for t in loops.training_loops} | set(loops.outer_loops))

    def model_call(self, call: cst.Call) -> Optional[tuple[str, cst.BaseExpression]]:
        """``("model", model)`` for ``model(x)``, ``model.forward(x)`` and ``model.generate(x)``, and
        for ``forward_step(model, batch)`` where ``forward_step`` (not itself named for evaluation,
        which is checked where it runs the model) runs what it is given."""
        model = dotted_name(call.func)
        if model is None:
            return None
        if not _EVALUATION_NAME.search(model.rsplit(".", 1)[-1]):
            handed = self._facts.runners.module_run_by(call)
            handed_text = dotted_name(handed) if handed is not None else None
            if handed is not None and handed_text is not None:
                return handed_text, handed
        qualname = self._facts.names.qualname(call.func)
        if (qualname or "").split(".", 1)[0] in _NOT_MODELS or (
                isinstance(call.func, cst.Name) and call.func.value in _NOT_MODELS
                and call.func.value not in self._facts.names.bindings):
            return None  # ``torch.zeros(n)``, ``len(batch)``: never a model (and the commonest calls)
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _NOT_RUNS:
            return None  # ``model.eval()``, ``model.to(device)``: a module's own methods, not a run
        model_expr = call.func
        for method in _INFERENCE_METHODS:
            if model.endswith(method) and isinstance(call.func, cst.Attribute):
                return model[: -len(method)], call.func.value
        return model, model_expr

    def calls_backward(self, block: cst.CSTNode) -> bool:
        if block not in self._backward:
            self._backward[block] = any(
                n.attr.value in _BACKPROPAGATION  # type: ignore[attr-defined]
                for n in self._facts.nodes_of(cst.Attribute, within=block))
        return self._backward[block]

    def synthetic_input(self, call: cst.Call) -> bool:
        """``net(torch.randn(1, 3, 32, 32))``: a shape smoke test on made-up data, not an evaluation."""
        inputs = [arg.value for arg in call.args if not arg.star]
        if not inputs:
            return False
        for value in inputs:
            if isinstance(value, cst.Name):
                value = self._facts.dataflow.value_of(value) or value
            factory = self._facts.names.qualname(value.func) if isinstance(value, cst.Call) else None
            if factory not in _SYNTHETIC or not (factory.endswith("_like")  # type: ignore[union-attr]
                                                 or self._literal_sizes(value)):  # type: ignore[arg-type]
                return False
        return True

    def _literal_sizes(self, call: cst.Call) -> bool:
        """Are the sizes of a tensor factory made up: literals (``torch.randn(1, 3, 32, 32)``,
        ``torch.zeros((2, 8))``), names bound to one, or parameters (a shape check called with sizes)?
        ``torch.randn(self.batch_size, dim)`` with ``dim = args.dim`` is real sampling noise."""
        for arg in call.args:
            if arg.keyword is not None:
                continue  # ``device=``, ``dtype=``
            value = arg.value
            values = [e.value for e in value.elements] if isinstance(value, (cst.Tuple, cst.List)) else [value]
            for item in values:
                if isinstance(item, cst.Name):
                    item = self._facts.dataflow.value_of(item) or cst.Integer("1")  # a parameter: made up
                if isinstance(item, cst.UnaryOperation):
                    item = item.expression
                if not isinstance(item, (cst.Integer, cst.Float)):
                    return False
        return True

    def in_evaluation(self, call: cst.Call, scope: Optional[cst.FunctionDef]) -> bool:
        facts = self._facts
        if self._fed_evaluation_data(call):
            return True  # ``next(iter(test_loader))`` every few training steps
        if scope is not None:
            name = scope.name.value
            if name.endswith("_step") or name == "forward":
                return False
            if self.over_evaluation_data(call):
                return True  # ``for x, y in test_loader: model(x)`` after the training loop
            if self.calls_backward(scope):
                return False
            if is_eval_function_name(name) and not name.startswith("test_"):
                return True
            if self._samples_trained_model(call, scope):
                return True
            if self.pretrained_never_evaluated(call) is not None:
                return True
        elif self.over_evaluation_data(call):
            return True
        elif self.calls_backward(facts.module):
            return False
        if not self.grad_disabled(call):
            return False
        training_nodes = self.training_nodes
        return not any(ancestor in training_nodes for ancestor in facts.ancestors(call))

    def _samples_trained_model(self, call: cst.Call, scope: cst.FunctionDef) -> bool:
        """A function named for sampling or prediction (``sample(n)`` of a GAN synthesizer) that does not
        backpropagate, runs outside any training loop and is not reached from one in this file, running
        a model this file trains and never switches to eval mode. Its caller is the user, after ``fit()``."""
        if not _GENERATION_NAME.search(scope.name.value) or self.calls_backward(scope):
            return False
        found = self.model_call(call)
        if found is None or not self.trained_here_never_evaluated(found[0]):
            return False
        training_nodes = self.training_nodes
        if any(ancestor in training_nodes for ancestor in self._facts.ancestors(call)):
            return False
        return not self._reached_from_training(scope)

    def pretrained_never_evaluated(self, call: cst.Call) -> Optional[cst.BaseExpression]:
        """For ``model(x)`` of ``model = models.resnet18(pretrained=True).to(device)`` (or ``weights=``)
        in a file that trains nothing (no optimizer, no backpropagation) and never switches ``model``
        to eval or training mode: the pretrained model's value, where ``.eval()`` belongs."""
        facts = self._facts
        if not isinstance(call.func, cst.Name):
            return None
        value = facts.dataflow.value_of(call.func)
        constructor = _unmoved(value) if value is not None else None
        if not isinstance(constructor, cst.Call) or value is None:
            return None
        weights = keyword(constructor, "weights")  # ``weights=ResNet18_Weights.DEFAULT``, ``weights="DEFAULT"``
        pretrained = literal(keyword(constructor, "pretrained"), None) is True or (
            weights is not None and not isinstance(weights, cst.Name))
        if not pretrained or self.calls_backward(facts.module) or facts.loops.optimizer_constructions \
                or facts.loops.training_loops:
            return None
        model = call.func.value
        if self.switched_to_eval(model) or self.put_in_training_mode(model):
            return None
        return value

    def _reached_from_training(self, scope: cst.FunctionDef, depth: int = 0) -> bool:
        """Is ``scope`` called (a few calls up, in this file) from a training loop or from a function
        that backpropagates? Too deep counts as yes."""
        if depth >= _MAX_DEPTH:
            return True
        loops = self._facts.loops
        for site in loops.call_sites(scope):
            if any(ancestor in self.training_nodes for ancestor in self._facts.ancestors(site)):
                return True
            caller = loops.function_of(site)
            if caller is None:
                if self.calls_backward(self._facts.module):
                    return True
            elif self.calls_backward(caller) or self._reached_from_training(caller, depth + 1):
                return True
        return False

    def grad_disabled(self, node: cst.CSTNode) -> bool:
        """``LoopFacts.grad_disabled``, and ``with torch.no_grad():`` in a file that only gets ``torch``
        from a star import (``from .torchy import *``), which qualified names cannot resolve."""
        facts = self._facts
        if facts.loops.grad_disabled(node):
            return True
        if "torch" in facts.names.bindings or not self._star_imported:
            return False
        for ancestor in facts.ancestors(node):
            if isinstance(ancestor, cst.With) and any(
                    isinstance(item.item, cst.Call) and dotted_name(item.item.func) in _GRAD_OFF_SPELLED
                    for item in ancestor.items):
                return True
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return False
        return False

    @cached_property
    def _star_imported(self) -> bool:
        return any(isinstance(node.names, cst.ImportStar)  # type: ignore[attr-defined]
                   for node in self._facts.nodes_of(cst.ImportFrom))

    def over_evaluation_data(self, call: cst.Call) -> bool:
        """Is ``call`` in a loop over evaluation data (``test_loader``, ``loaders["val"]``) that trains nothing?"""
        facts = self._facts
        for ancestor in facts.ancestors(call):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                return False
            if isinstance(ancestor, cst.For):
                if ancestor in self.training_nodes or self.calls_backward(ancestor):
                    return False
                words = facts.nodes_of(cst.Name, cst.SimpleString, within=ancestor.iter)
                text = " ".join(word.value for word in words)  # type: ignore[attr-defined]
                if _EVALUATION_DATA.search(text):
                    return True
        return False

    def runs_on_evaluation_data(self, call: cst.Call) -> bool:
        """Is ``call`` in a loop over evaluation data, or fed a batch of it, in code that trains nothing?"""
        return self.over_evaluation_data(call) or self._fed_evaluation_data(call)

    def in_model_context(self, call: cst.Call, model: str) -> bool:
        """Is ``call`` under a ``with`` whose context manager is handed ``model`` or is one of its methods
        (``with eval_mode(self.model):``, ``with model.no_sync():``): it may switch its mode or gradients."""
        for ancestor in self._facts.ancestors(call):
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    manager = item.item
                    if isinstance(manager, cst.Call) and (
                            any(_covers(dotted_name(arg.value), model) or _covers(model, dotted_name(arg.value) or "")
                                for arg in manager.args)
                            or _covers(model, dotted_name(manager.func) or "")):
                        return True
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                return False
        return False

    def known_module(self, model: str, expr: cst.BaseExpression, scope: Optional[cst.FunctionDef]) -> bool:
        """Is ``model`` a module: a model nnlint can see, or a name the file also takes ``parameters()``
        or ``state_dict()`` of, or switches to a mode (``self.netG`` of a GAN trainer)?"""
        if self.model_summaries(expr, scope) is not None:
            return True
        last = model.rsplit(".", 1)[-1]
        if last in self._switched_names:
            return True
        for call in self._facts.calls():
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in _MODULE_METHODS \
                    and (dotted_name(func.value) or "").rsplit(".", 1)[-1] == last:
                return True
        return False

    def _fed_evaluation_data(self, call: cst.Call) -> bool:
        """Does the model's input come from evaluation data (``points, target = next(iter(test_loader))``
        then ``model(points.cuda())``), in a block that does not backpropagate (test-time adaptation
        trains on test data on purpose)?"""
        facts = self._facts
        if not self._evaluation_data_named or not call.args:
            return False  # no name in the file says evaluation data: nothing to follow
        block = next((a for a in facts.ancestors(call) if isinstance(a, cst.IndentedBlock)), None)
        if not call.args or call.args[0].star or (block is not None and self.calls_backward(block)):
            return False
        dataflow = facts.dataflow
        pending: list[Optional[cst.BaseExpression]] = [call.args[0].value]
        seen: set[int] = set()
        while pending and len(seen) < 32:
            expr = pending.pop()
            if expr is None or id(expr) in seen:
                continue
            seen.add(id(expr))
            # follow the data only (``points.cuda()``, ``Variable(points)``, ``next(iter(loader))``),
            # never the other arguments (``x.to(dev)``)
            if isinstance(expr, cst.Name):
                if _EVALUATION_DATA.search(expr.value):
                    return True
                for definition in dataflow.definitions(expr):
                    statement = definition.statement
                    pending.append(definition.value if definition.value is not None else definition.unpacked)
                    pending.append(statement.iter if isinstance(statement, cst.For) else None)
            elif isinstance(expr, (cst.Attribute, cst.Subscript)):
                if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self" \
                        and _EVALUATION_DATA.search(expr.attr.value):
                    return True  # ``self.val_dataset`` of a trainer
                pending.append(expr.value)
            elif isinstance(expr, cst.Call):
                method = isinstance(expr.func, cst.Attribute) and facts.names.qualname(expr.func) is None
                pending.append(expr.func.value if method else positional(expr, 0))  # type: ignore[attr-defined]
                if method and (dotted_name(expr.func.value) or "").split(".", 1)[0] == "self":  # type: ignore[attr-defined]
                    pending.append(positional(expr, 0))  # ``self.model.get_input(batch)``: the batch is the data
            elif isinstance(expr, cst.Tuple):
                pending.extend(element.value for element in expr.elements)
        return False

    def named_or_looping_like_evaluation(self, call: cst.Call, scope: Optional[cst.FunctionDef]) -> bool:
        """Stronger evidence for a model nnlint cannot see: a function named for evaluation or
        prediction, or a loop over evaluation data (``torch.no_grad()`` alone also fills memory banks
        and computes statistics in training mode on purpose)."""
        if scope is not None and _EVALUATION_NAME.search(scope.name.value):
            return True
        return self.over_evaluation_data(call)

    def model_summaries(self, expr: cst.BaseExpression,
                        scope: Optional[cst.FunctionDef]) -> Optional[tuple["ModelSummary", ...]]:
        """The models ``expr`` may be; a parameter is followed to the arguments of the function's calls.
        ``None`` also for a class none of whose layers nnlint can see (built by a registry or passed
        in): that is no evidence that it lacks dropout and batch norm."""
        found = self._summaries(expr, scope)
        if found is not None and not any(s.has_dropout or s.has_batchnorm for s in found) \
                and any(set(s.layers) <= {"Unknown"} for s in found):
            return None  # ``nn.Sequential(*layers)`` of a parameter: its layers are not known
        return found

    def _summaries(self, expr: cst.BaseExpression, scope: Optional[cst.FunctionDef],
                   depth: int = 0) -> Optional[tuple["ModelSummary", ...]]:
        found = self._facts.models.candidates(expr) or self._torchvision_by_name(expr)
        if found is not None or depth >= _MAX_DEPTH or scope is None or not isinstance(expr, cst.Name):
            return found
        loops = self._facts.loops
        for site in loops.call_sites(scope):
            argument_text = loops.renames(scope, site).get(expr.value)
            if argument_text is None:
                continue
            argument_expr = next((arg.value for arg in site.args if dotted_name(arg.value) == argument_text), None)
            if argument_expr is None:
                continue
            found = self._summaries(argument_expr, loops.function_of(site), depth + 1)
            if found is not None and all(s.has_dropout or s.has_batchnorm for s in found):
                return found
        return None

    def _torchvision_by_name(self, expr: cst.BaseExpression) -> Optional[tuple[ModelSummary, ...]]:
        """A torchvision classifier picked by name (``models.__dict__[name](pretrained=True)``,
        ``getattr(torchvision.models, name)(...)``): each has batch norm or dropout, which one is not
        known, so two summaries, one of each."""
        names = self._facts.names
        origins = self._facts.values.origins(expr)
        if not origins:
            return None
        for origin in origins:
            if not isinstance(origin, cst.Call):
                return None
            func = origin.func
            if isinstance(func, cst.Subscript) and isinstance(func.value, cst.Attribute) \
                    and func.value.attr.value == "__dict__":
                namespace: Optional[cst.BaseExpression] = func.value.value
            elif isinstance(func, cst.Call) and isinstance(func.func, cst.Name) and func.func.value == "getattr" \
                    and "getattr" not in names.bindings and len(func.args) == 2:
                namespace = func.args[0].value
            else:
                return None
            if names.qualname(namespace) != "torchvision.models":
                return None
        return (ModelSummary("torchvision model", "torchvision.models", "torch", (), None, None, False, True),
                ModelSummary("torchvision model", "torchvision.models", "torch", (), None, None, True, False))

    def trained_here_never_evaluated(self, model: str) -> bool:
        """Is ``model`` a module this file trains (a training loop runs it, and its ``.parameters()``
        are taken) while nothing in the file ever switches it to eval mode?"""
        facts = self._facts
        last = model.rsplit(".", 1)[-1]
        has_parameters = False
        for call in facts.calls():
            switch = mode_switch(call, facts)
            if switch is not None and switch.mode == "eval" and (switch.receiver or "").rsplit(".", 1)[-1] == last:
                return False
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters") \
                    and dotted_name(func.value) == model:
                has_parameters = True
        return has_parameters and any(event.kind == "call" and event.receiver == model
                                      for loop in facts.loops.training_loops for event in loop.events)

    @cached_property
    def _switched_names(self) -> frozenset[str]:
        """The last names of every receiver this file switches to train or eval mode."""
        facts = self._facts
        found: set[str] = set()
        for call in facts.calls():
            switch = mode_switch(call, facts)
            if switch is not None:
                found.update((name or "").rsplit(".", 1)[-1] for name in (switch.receiver, switch.alias))
        return frozenset(found)

    def switched_mode(self, call: cst.Call, argument: cst.BaseExpression) -> Optional[str]:
        """``"train"``/``"eval"`` when ``argument`` of ``call`` names a module that was switched to that
        mode before the call (``model.train()`` in the enclosing loop), for calls of other files."""
        model = dotted_name(argument)
        if model is None or model.rsplit(".", 1)[-1] not in self._switched_names:
            return None
        facts = self._facts
        block = next((a for a in facts.ancestors(call) if isinstance(a, cst.IndentedBlock)), None)
        if block is not None and self.calls_backward(block):
            return None  # ``loss = criterion(evaluate_model(model, batch), y); loss.backward()``: a training step
        scope = facts.loops.function_of(call)
        last: Optional[str] = None  # only a switch in the same function, before the call, is evidence
        trained = False  # a training step ran since: ``train()`` was for it, not for this call
        for earlier, switch in self._calls_before(call, scope if scope is not None else facts.module, model):
            if switch is not None:
                last, trained = switch.mode, False
            elif isinstance(earlier.func, cst.Attribute) and earlier.func.attr.value in ("backward", "step"):
                trained = True
        # ``model.train(True)`` right before the call is deliberate (a helper run in training mode)
        return last if last == "eval" or (last == "train" and trained) else None

    def put_in_training_mode(self, model: str) -> bool:
        """Does the file call ``<model>.train()`` (spelled ``model``, ``self.model`` or ``net.model``)?"""
        facts = self._facts
        last = model.rsplit(".", 1)[-1]
        for call in facts.calls():
            switch = mode_switch(call, facts)
            if switch is not None and switch.mode == "train" and switch.receiver \
                    and switch.receiver.rsplit(".", 1)[-1] == last:
                return True
        return False

    def mode_at(self, node: cst.CSTNode, scope: Optional[cst.FunctionDef], model: str, depth: int = 0,
                uncalled: str = "unknown") -> str:
        """"eval" | "train" | "none" (top of the program, never switched) | "unknown" at ``node`` for ``model``;
        ``uncalled`` where every way here starts in a function nothing in the project calls (an entry
        point: its callers, outside the project, decide the mode)."""
        facts = self._facts
        last: Optional[str] = None
        for _, switch in self._calls_before(node, scope if scope is not None else facts.module, model):
            if switch is not None:
                last = switch.mode
        if last is not None:
            return last
        if scope is None or self._is_local(scope, model):
            # a model built in this scope starts in training mode
            return "none"
        if depth >= _MAX_DEPTH:
            return "unknown"
        loops = facts.loops
        sites = loops.call_sites(scope)
        if not sites:  # nothing in this file calls it: an entry point, unless another file does
            if uncalled == "unknown" or self._called_from_other_files(scope):
                return self._mode_from_other_files(scope, model) or "unknown"
            return uncalled
        results: set[str] = set()
        for site in sites:
            renamed = rename(model, loops.renames(scope, site))
            if renamed is None:
                return "unknown"
            results.add(self.mode_at(site, loops.function_of(site), renamed, depth + 1, uncalled))
        if "unknown" in results:
            return "unknown"
        if results & {"train", "none"}:
            return "train"
        return uncalled if results == {uncalled} else "eval"

    def _calls_before(self, node: cst.CSTNode, block: cst.CSTNode,
                      model: str) -> Iterator[tuple[cst.Call, Optional[ModeSwitch]]]:
        """The calls of ``block`` that run before ``node``, in order, each with its switch of ``model``'s
        mode (``model.eval()``, ``self.model.train()``, through an alias), or ``None``."""
        facts = self._facts
        for call in scope_calls(facts, block):
            if call is node:
                return
            switch = mode_switch(call, facts)
            yield call, switch if switch is not None and (
                _covers(switch.receiver, model) or _covers(switch.alias, model)) else None

    def training_switch(self, node: cst.CSTNode, scope: Optional[cst.FunctionDef], model: str) -> Optional[cst.Call]:
        """The ``model.train()`` that puts ``model`` in training mode for the evaluation at ``node``, when it
        is in the same scope and that scope trains nothing (an inference script calling ``train()``
        where it meant ``eval()``): that call is where the fix goes."""
        facts = self._facts
        block = scope if scope is not None else facts.module
        last: Optional[cst.Call] = None
        for call, switch in self._calls_before(node, block, model):
            if switch is not None:
                last = call if switch.mode == "train" else None
        if last is None or self.calls_backward(block):
            return None
        if any(block is ancestor for loop in self.training_nodes for ancestor in facts.ancestors(loop)):
            return None  # a training loop runs here: train() is for it
        return last

    def _mode_from_other_files(self, scope: cst.FunctionDef, model: str) -> Optional[str]:
        """``"train"`` where a call from another file hands ``scope`` the module ``model`` (a parameter)
        right after switching it to training mode (``model.train()`` at the top of the epoch loop, then
        ``evaluate(model, loader)`` inside it) and no such call hands it over in eval mode; ``"eval"``
        where every call hands it over in eval mode; else ``None``."""
        facts = self._facts
        if facts.names.functions.get(scope.name.value) is not scope or not facts.module_name:
            return None
        head = model.split(".", 1)[0]
        params = [*scope.params.posonly_params, *scope.params.params]
        index = next((i for i, p in enumerate(params) if p.name.value == head), None)
        if index is None and not any(p.name.value == head for p in scope.params.kwonly_params):
            return None
        records = facts.project.calls_to(f"{facts.module_name}.{scope.name.value}")
        modes = [record.mode(index, head) for record in records]
        if "train" in modes and "eval" not in modes:
            return "train"
        return "eval" if modes and all(mode == "eval" for mode in modes) else None

    def _called_from_other_files(self, scope: cst.FunctionDef) -> bool:
        """Does another project file call this module-level function? (Calls of methods are not
        recorded across files: a method answers no.)"""
        facts = self._facts
        if facts.names.functions.get(scope.name.value) is not scope or not facts.module_name:
            return False
        return bool(facts.project.calls_to(f"{facts.module_name}.{scope.name.value}"))

    def unseen_model_in_training_mode(self, call: cst.Call, scope: Optional[cst.FunctionDef], model: str,
                                      mode: str) -> Optional[str]:
        """Why ``model``, whose class nnlint cannot see (a library model, a parameter, a model built in
        another file), is evaluated in training mode; ``None`` when the evidence is not strong enough.
        ``call`` is evaluation code (:meth:`in_evaluation`) and ``mode`` is :meth:`mode_at` there.

        * The program puts it in training mode on the way here (``model.train()``, or this file
          trains it and never calls ``eval()``), in a function named for evaluation or a loop over
          evaluation data.
        * An inference entry point: a function named for evaluation or prediction that nothing in
          the project calls, nor any function on the way here (its callers are users, who cannot
          see that it needs ``eval()`` first), running a module: ``self`` of an ``nn.Module``
          subclass, or a parameter the file also puts in training mode (``model.train()``).
          A parameter only moved to a device is not enough: calls from other files are known only
          where they pass a model nnlint can name, so a helper whose caller in another file
          switched to eval mode would look uncalled.
        * A script: in a file that never backpropagates nor builds an optimizer, under
          ``torch.no_grad()`` in a loop, a value built in the same scope (top level or function),
          moved (``.cuda()``) or given weights (``load_state_dict``), and called, unless its loader
          returns it in eval mode already (``from_pretrained``, ``torch.jit.load``, ``torch.hub.load``).

        The last two also need a file that never switches a model of that name to eval mode:
        code that does so elsewhere has a reason not to here (its callers switch).
        """
        if mode == "train" and (self.put_in_training_mode(model) or self.trained_here_never_evaluated(model)
                                or (scope is not None and self._mode_from_other_files(scope, model) == "train")) \
                and self.named_or_looping_like_evaluation(call, scope):
            return f"{model} was put in training mode and is evaluated without {model}.eval()"
        if mode == "train" and scope is not None and self._samples_trained_model(call, scope):
            return f"{model} is trained in this file and run by {scope.name.value}() without {model}.eval()"
        if self.switched_to_eval(model):
            return None
        if scope is not None and _EVALUATION_NAME.search(scope.name.value) and self._is_module(model, scope) \
                and self.mode_at(call, scope, model, uncalled="entry") == "entry":
            return (f"{scope.name.value}() runs {model} without {model}.eval(), and no caller in the "
                    f"project switches it to eval mode")
        facts = self._facts
        if scope is not None and (self.calls_backward(facts.module) or facts.loops.optimizer_constructions):
            return None  # in a function, only a script that trains nothing is that evidence
        if mode == "none" and "." not in model and self._in_loop(call) and self.grad_disabled(call) \
                and self._moved_not_loaded_in_eval(model, scope if scope is not None else facts.module,
                                                   weights=scope is not None):
            return f"{model} is evaluated without {model}.eval(): nothing switches it to eval mode"
        return None

    def switched_to_eval(self, model: str) -> bool:
        """Does the file switch a model spelled like ``model`` (same last name) to eval mode anywhere?"""
        facts = self._facts
        last = model.rsplit(".", 1)[-1]
        for call in facts.calls():
            switch = mode_switch(call, facts)
            if switch is not None and switch.mode == "eval" and any(
                    (name or "").rsplit(".", 1)[-1] == last for name in (switch.receiver, switch.alias)):
                return True
        return False

    def _is_module(self, model: str, scope: cst.FunctionDef) -> bool:
        """Is ``model`` ``self`` of an ``nn.Module`` subclass, or a parameter of ``scope`` that the file
        puts in training mode (``model.train()``)?"""
        facts = self._facts
        if model == "self":
            owner = next((a for a in facts.ancestors(scope) if isinstance(a, (cst.ClassDef, cst.FunctionDef))), None)
            return isinstance(owner, cst.ClassDef) and any(
                _MODULE_BASE.search(dotted_name(base.value) or "") for base in owner.bases)
        params = {p.name.value for p in (*scope.params.posonly_params, *scope.params.params,
                                         *scope.params.kwonly_params)}
        if model not in params:
            return False
        return self.put_in_training_mode(model)

    def _moved_not_loaded_in_eval(self, model: str, scope: cst.CSTNode, weights: bool = False) -> bool:
        """Is ``model`` bound in ``scope`` to a value moved to a device (``x.cuda()``, ``x.to(dev)``), or
        with ``weights`` given trained weights (``model.load_state_dict(...)``), and never to one a loader
        returns in eval mode (``from_pretrained``) nor to a torch object (``nn.CrossEntropyLoss().cuda()``)?"""
        facts = self._facts
        moved = False
        for definition in facts.dataflow.assignments(scope, model):  # type: ignore[arg-type]
            value = definition.value
            if value is None:
                continue
            text = facts.module.code_for_node(value)
            if any(loader in text for loader in _LOADED_IN_EVAL_MODE):
                return False
            constructor = _unmoved(value)
            moved = moved or constructor is not value
            if isinstance(constructor, cst.Call) and (facts.names.qualname(constructor.func) or "").startswith("torch."):
                return False
        wanted = {"load_state_dict"} if weights else _PREPARES
        # ``model.cuda()`` or ``model.load_state_dict(torch.load(path))`` as a statement of its own
        for call in facts.calls(scope):
            func = call.func
            if isinstance(func, cst.Attribute) and func.attr.value in wanted and isinstance(func.value, cst.Name) \
                    and func.value.value == model and isinstance(facts.parent(call), cst.Expr):
                return True
        return moved and not weights

    def _in_loop(self, call: cst.Call) -> bool:
        return any(isinstance(a, (cst.For, cst.While)) for a in self._facts.ancestors(call))

    def _is_local(self, scope: cst.FunctionDef, model: str) -> bool:
        head = model.split(".")[0]
        params = {p.name.value for p in (*scope.params.posonly_params, *scope.params.params,
                                         *scope.params.kwonly_params)}
        return head not in params and any(d.value is not None for d in self._facts.dataflow.assignments(scope, head))


def _unmoved(value: cst.BaseExpression) -> cst.BaseExpression:
    """``Net()`` for ``Net().to(device).cuda()``: what was moved to a device."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in _MOVES:
        value = value.func.value
    return value


def _covers(receiver: Optional[str], model: str) -> bool:
    if receiver is None:
        return False
    return receiver == model or model.startswith(receiver + ".")
