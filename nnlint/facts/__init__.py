"""Shared understanding of neural-network code, queried by every rule.

One :class:`FileFacts` per linted file. Each kind of fact lives in its own
focused module and is computed lazily, once, the first time a rule asks:

* :mod:`nnlint.facts.names` - import resolution (which torch/keras/tf object a name is)
* :mod:`nnlint.facts.dataflow` - which expression a local variable holds at a use
* :mod:`nnlint.facts.values` - what an expression may hold (through parameters, ``self``
  attributes, wrappers, factories, containers) and the file's call graph
* :mod:`nnlint.facts.constants` - literal values of module constants and argparse defaults
* :mod:`nnlint.facts.models` - models as layer sequences (``nn.Sequential``, ``nn.Module``
  subclasses, Keras ``Sequential``/functional), and which model an expression holds
* :mod:`nnlint.facts.outputs` - what a tensor expression went through: the activation a prediction ends in
* :mod:`nnlint.facts.losses` - loss computations and the predictions they are given
* :mod:`nnlint.facts.runners` - functions that run a module they are given (``forward_step(model, batch)``)
* :mod:`nnlint.facts.loops` - training/evaluation loops and the order of what they call
* :mod:`nnlint.facts.optimizers` - optimizer constructions: class, learning rate, momentum, trained models
* :mod:`nnlint.facts.init` - weight initialisation: normal draws and their std, Xavier/He inits and the
  activations after the initialised layers
* :mod:`nnlint.facts.dropout` - dropout calls, the methods that run them, and the training flags that
  turn them off
* :mod:`nnlint.facts.gradients` - which expressions hold gradients, and where they are clipped by value
* :mod:`nnlint.facts.norms` - whether a layer's output is normalised before the next layer, transformer-style code
* :mod:`nnlint.facts.index` - the project index that connects files
* :mod:`nnlint.facts.evaluation` - which calls are evaluation, and the mode (train/eval) a model is in there
* :mod:`nnlint.facts.shapes` - shape unpackings, size reads, reshapes and the dims they name, softmax axes
* :mod:`nnlint.facts.layouts` - which original axes a tensor's axes hold through permutes and calls
* :mod:`nnlint.facts.checkpoints` - what a checkpoint saves, and whether saved weights are only loaded for inference
* :mod:`nnlint.facts.loaders` - data loaders and the training loops that iterate them
* :mod:`nnlint.facts.accumulation` - loss tensors, and running sums of them that outlive a loop iteration
* :mod:`nnlint.facts.precision` - whether code runs under CUDA autocast (mixed precision)

Rules never walk imports or rebuild models themselves: a new rule asks these modules,
and a new kind of understanding is added here, not in the engine.
"""
from __future__ import annotations

from bisect import bisect_left
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Optional

from nnlint.facts.index import EMPTY_INDEX, ModuleSummary, ProjectIndex, RecordingIndex

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

    from nnlint.facts.names import Names
    from nnlint.facts.tree import TreeIndex
    from nnlint.facts.constants import Constants
    from nnlint.facts.dataflow import Dataflow
    from nnlint.facts.loops import LoopFacts
    from nnlint.facts.models import ModelFacts
    from nnlint.facts.outputs import OutputFacts
    from nnlint.facts.losses import LossFacts
    from nnlint.facts.runners import Runners
    from nnlint.facts.init import InitFacts
    from nnlint.facts.norms import NormFacts
    from nnlint.facts.gradients import GradientFacts
    from nnlint.facts.dropout import DropoutFacts
    from nnlint.facts.optimizers import OptimizerFacts
    from nnlint.facts.evaluation import Evaluation
    from nnlint.facts.tensors import TensorOps
    from nnlint.facts.shapes import Shapes
    from nnlint.facts.layouts import Layouts
    from nnlint.facts.checkpoints import Checkpoints
    from nnlint.facts.loaders import Loaders
    from nnlint.facts.accumulation import Accumulation
    from nnlint.facts.precision import Precision
    from nnlint.facts.values import Values
    from nnlint.facts.index import Site
    from nnlint.positions import Positions


#: cached facts that are a function of the module alone (not of the project index)
_INDEX_INDEPENDENT = ("_tree", "names", "dataflow")


class FileFacts:
    def __init__(
        self,
        path: str,
        module: cst.Module,
        module_name: str = "",
        is_package: bool = False,
        project: "ProjectIndex | RecordingIndex | None" = None,
        earlier: Optional["FileFacts"] = None,
        text: Optional[str] = None,
    ) -> None:
        if earlier is not None and earlier.module is module:
            # Facts of this same module from an earlier phase: keep those that do not
            # depend on the project index instead of computing them again.
            for name in _INDEX_INDEPENDENT:
                if name in earlier.__dict__:
                    self.__dict__[name] = earlier.__dict__[name]
        self.path = path
        self.module = module
        self.module_name = module_name
        self.is_package = is_package
        self.project = project if project is not None else EMPTY_INDEX
        #: the decoded source, when the checker has it (suppression comments of a place other files report)
        self.text = text

    def with_project(self, project: ProjectIndex) -> "FileFacts":
        """These facts, seen with the full project index (phase two).

        If they were computed with a :class:`RecordingIndex` and ``project`` answers
        every question asked so far the same way, everything computed so far is what
        ``project`` would give: the same object is kept and asks ``project`` from now on.
        Otherwise new facts, which keep only what does not depend on the project.
        """
        asked = self.project
        if isinstance(asked, RecordingIndex) and asked.answers_alike(project):
            self.project = project
            return self
        return FileFacts(self.path, self.module, self.module_name, self.is_package, project, earlier=self,
                         text=self.text)

    @cached_property
    def names(self) -> "Names":
        from nnlint.facts.names import Names

        return Names(self.module, self.module_name, self.is_package, nodes=self._tree.nodes,
                     star_lookup=self._star_lookup)

    def _star_lookup(self, name: str, modules: tuple[str, ...]) -> Optional[str]:
        """``utils.evaluate`` when the last of ``modules`` (star-imported here) that defines ``name`` is
        the project module ``utils`` (the last star import wins, as in Python)."""
        for module in reversed(modules):
            if self.project.defines(f"{module}.{name}", self.path):
                return f"{module}.{name}"
        return None

    @cached_property
    def constants(self) -> "Constants":
        from nnlint.facts.constants import Constants

        return Constants(self)

    @cached_property
    def models(self) -> "ModelFacts":
        """The models the file builds (layers in data-flow order, output activation, dropout, batch
        norm), and which model an expression holds."""
        from nnlint.facts.models import ModelFacts

        return ModelFacts(self)

    @cached_property
    def outputs(self) -> "OutputFacts":
        """What a tensor expression went through: the ops that reach it, the activation a prediction
        ends in, and where that activation is applied."""
        from nnlint.facts.outputs import OutputFacts

        return OutputFacts(self)

    @cached_property
    def losses(self) -> "LossFacts":
        """The loss computations of the file, and what each is given as its prediction."""
        from nnlint.facts.losses import LossFacts

        return LossFacts(self)

    @cached_property
    def runners(self) -> "Runners":
        """Which parameters a function runs as modules, and what a call of such a function runs."""
        from nnlint.facts.runners import Runners

        return Runners(self)

    @cached_property
    def dataflow(self) -> "Dataflow":
        from nnlint.facts.dataflow import Dataflow

        return Dataflow(self)

    @cached_property
    def values(self) -> "Values":
        from nnlint.facts.values import Values

        return Values(self)

    @cached_property
    def loops(self) -> "LoopFacts":
        from nnlint.facts.loops import LoopFacts

        return LoopFacts(self)

    @cached_property
    def optimizers(self) -> "OptimizerFacts":
        from nnlint.facts.optimizers import OptimizerFacts

        return OptimizerFacts(self)

    @cached_property
    def tensors(self) -> "TensorOps":
        """Which tensor op an expression computes (log, softmax, sigmoid, exp, sum, ...) in any spelling."""
        from nnlint.facts.tensors import TensorOps

        return TensorOps(self)

    @cached_property
    def evaluation(self) -> "Evaluation":
        """Which calls are evaluation code, the mode a model is in there, whether this file trains it."""
        from nnlint.facts.evaluation import Evaluation

        return Evaluation(self)

    @cached_property
    def shapes(self) -> "Shapes":
        """Shape unpackings, sizes read one by one, reshape calls and the dims they name, softmax axes."""
        from nnlint.facts.shapes import Shapes

        return Shapes(self)

    @cached_property
    def layouts(self) -> "Layouts":
        """Which original axes each axis of a tensor holds after permutes, reshapes and calls; reshapes that mix them."""
        from nnlint.facts.layouts import Layouts

        return Layouts(self)

    @cached_property
    def checkpoints(self) -> "Checkpoints":
        """The stateful optimizer, what each save holds, best-model exports, inference-only loading."""
        from nnlint.facts.checkpoints import Checkpoints

        return Checkpoints(self)

    @cached_property
    def loaders(self) -> "Loaders":
        """DataLoader constructions, the training loops over them, and the models those loops run."""
        from nnlint.facts.loaders import Loaders

        return Loaders(self)

    @cached_property
    def accumulation(self) -> "Accumulation":
        """Which expressions are loss tensors, and which ``total += loss`` sums outlive a loop iteration."""
        from nnlint.facts.accumulation import Accumulation

        return Accumulation(self)

    @cached_property
    def precision(self) -> "Precision":
        """Whether a node runs under CUDA autocast (a with block, a decorator, a caller, Lightning precision)."""
        from nnlint.facts.precision import Precision

        return Precision(self)

    @cached_property
    def init(self) -> "InitFacts":
        """Weight initialisation: normal draws and whether their scale matters, Xavier/He inits and what follows."""
        from nnlint.facts.init import InitFacts

        return InitFacts(self)

    @cached_property
    def norms(self) -> "NormFacts":
        """Whether a layer's output reaches the next dense/conv layer unnormalised; transformer-style code."""
        from nnlint.facts.norms import NormFacts

        return NormFacts(self)

    @cached_property
    def gradients(self) -> "GradientFacts":
        """Which expressions hold gradients, where they are clipped by value, whether clipping by norm is offered."""
        from nnlint.facts.gradients import GradientFacts

        return GradientFacts(self)

    @cached_property
    def dropout(self) -> "DropoutFacts":
        """Dropout calls, whether forward runs them, and whether a training flag turns them off."""
        from nnlint.facts.dropout import DropoutFacts

        return DropoutFacts(self)

    @cached_property
    def _tree(self) -> "TreeIndex":
        from nnlint.facts.tree import TreeIndex

        return TreeIndex.build(self.module)

    @cached_property
    def positions(self) -> "Positions":
        """Line/column ranges of this module's nodes (computed per statement, on demand)."""
        from nnlint.positions import Positions

        return Positions(self)

    def site(self, node: cst.CSTNode) -> Optional["Site"]:
        """Where ``node`` is, for another file to report (with the codes silenced on its line)."""
        from nnlint.facts.index import Site
        from nnlint.suppression import parse_suppressions

        try:
            where = self.positions[node]
        except Exception:  # a node that is not part of this module
            return None
        line = where.start.line
        silenced: tuple[str, ...] = ()
        if self.text is not None:
            suppressions = self.__dict__.get("_suppressions")
            if suppressions is None:
                suppressions = self.__dict__["_suppressions"] = parse_suppressions(self.text)
            silenced = suppressions.codes_at(line, where.end.line)
        return Site(self.path, line, where.start.column + 1, where.end.line, where.end.column + 1, silenced)

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        return self._tree.parent(node)

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        return self._tree.ancestors(node)

    def walk(self, node: Optional[cst.CSTNode] = None) -> Iterator[cst.CSTNode]:
        """Every node below ``node`` (default: the module), parents before children, in source order.

        The file is traversed once; every later walk is a slice of that pre-order list.
        """
        tree = self._tree
        if node is None:
            return iter(tree.nodes)
        start = tree.index(node)
        if start is None:  # a node that is not part of this module (e.g. built by a rule)
            return iter(())
        return iter(tree.nodes[start : tree.end[start]])

    def nodes_of(self, *types: type, within: Optional[cst.CSTNode] = None) -> list[cst.CSTNode]:
        """Nodes of exactly these classes (below ``within``, default the module), in source order.

        Cheaper than filtering :meth:`walk` with ``isinstance``: libcst's node classes are ABCs,
        whose instance checks cost ~10x a type lookup, and a file has 10^4-10^5 nodes.
        """
        tree = self._tree
        by_type = self._nodes_by_type
        indices: list[int] = []
        for node_type in types:
            indices.extend(by_type.get(node_type, ()))
        if len(types) > 1:
            indices.sort()
        if within is not None:
            start = tree.index(within)
            if start is None:
                return []
            end = tree.end[start]
            indices = indices[bisect_left(indices, start):bisect_left(indices, end)]
        nodes = tree.nodes
        return [nodes[index] for index in indices]

    @cached_property
    def _nodes_by_type(self) -> dict[type, list[int]]:
        by_type: dict[type, list[int]] = {}
        for index, node in enumerate(self._tree.nodes):
            by_type.setdefault(type(node), []).append(index)
        return by_type

    def calls(self, node: Optional[cst.CSTNode] = None) -> Iterator[cst.Call]:
        if node is None:
            return iter(self._tree.calls)
        import libcst as cst

        return iter(self.nodes_of(cst.Call, within=node))  # type: ignore[arg-type]

    def summary(self) -> ModuleSummary:
        """What other files may import from this one (see :mod:`nnlint.facts.index`)."""
        return ModuleSummary(
            module=self.module_name,
            path=self.path,
            is_package=self.is_package,
            models=self.models.exported_summaries(),
            constants=self.constants.exported(),
            bindings=dict(self.names.bindings),
            calls=self.values.call_records(),
            loss_functions=self.losses.exported_loss_functions(),
            runners=self.runners.exported(),
            star_imports=self.names.star_modules,
            defines=tuple(sorted({*self.names.classes, *self.names.functions})),
        )

