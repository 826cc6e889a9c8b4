"""The device side of the runtime monitor: hooks that keep every statistic on the device.

Per training step the hooks produce a handful of 0-d float32 tensors (norms, counts);
at the end of the step they are stacked into one row of a preallocated ring buffer with
a single ``index_copy_``. Nothing is read back until :meth:`Collector.read`, which
concatenates the rows, the sticky non-finite flag and the ReLU activity masks and copies
them to the host in one transfer. No ``.item()``, ``bool(tensor)`` or ``.tolist()`` on a
device tensor runs in a hook.
"""
from __future__ import annotations

import logging
import math
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from nnlint.runtime.detector import DeadUnits, LayerInfo, SiteInfo, StepStats

RELU_TYPES: tuple[type, ...] = (nn.ReLU, nn.ReLU6)
SIGMOID_TYPES: tuple[type, ...] = (nn.Sigmoid,)
TANH_TYPES: tuple[type, ...] = (nn.Tanh,)
# Other activation modules: a site of their own kind. GELU and SiLU units whose output is
# never positive pass back almost no gradient, so their activity is tracked like ReLU's;
# LeakyReLU, PReLU and ELU keep a gradient for negative inputs and cannot die.
ACTIVATION_KINDS: tuple[tuple[type, str], ...] = (
    (nn.GELU, "gelu"), (nn.SiLU, "silu"), (nn.LeakyReLU, "leaky_relu"), (nn.PReLU, "leaky_relu"),
    (nn.ELU, "elu"), (nn.CELU, "elu"), (nn.SELU, "elu"),
)
DEAD_KINDS = frozenset({"relu", "gelu", "silu"})  # kinds whose unit activity is tracked
SATURATING_KINDS = frozenset({"sigmoid", "tanh"})
# A functional activation (F.relu, torch.sigmoid, x.relu(), ...) leaves no module to hook;
# the autograd node that made a module's input names it, at no cost.
FUNCTIONAL_KINDS = {
    "ReluBackward0": "relu", "ReluBackward1": "relu", "GeluBackward0": "gelu", "SiluBackward0": "silu",
    "SigmoidBackward0": "sigmoid", "TanhBackward0": "tanh",
}
MATMUL_TYPES: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
logger = logging.getLogger("nnlint.runtime")
SATURATION_EPS = 0.01
# A step is an optimizer step: further training forwards before it (gradient accumulation, a
# generator called twice) belong to it, up to this many (an optimizer that never steps
# through its hooks must not silence the monitor).
MAX_FORWARDS_PER_STEP = 64
STEADY_STEPS = 50  # a sigmoid output within 0.01 of 0 or 1 (tanh: of +-1) is saturated
# Gradient norms spread by the overhead budget are still taken at least every this many
# steps: a spike or a non-finite gradient is seen within a few steps of when it happens.
MAX_GRAD_EVERY = 8
# NR201 judges an activity window only when it looked at this many of its steps (its
# full-dead-steps default): the budget never spreads module outputs thinner than that.
MIN_WINDOW_LOOKS = 10
# Module-output norms (NR203, NR301's forward attribution) spread by the budget are still
# taken at least every this many steps. The activity of ReLU-like and saturating units (a
# mask or count per activation, all NR201 and NR202 need) is taken on the steps between,
# from hooks on the activation modules only: module norms can be spread far further than
# the activity NR201 needs every window/10 steps.
MAX_NORM_EVERY = 64
# act: forward with every module's statistics; mask: with unit activity only; plain: neither
CLOCK_KEYS = ("act", "plain", "step", "grad", "own", "mask")
CLOCK_SAMPLES = 16  # the budget compares medians of the last timings: one slow step moves nothing

# Kinds of statistics in a row (the row's columns are assigned lazily, first come first served).
# HELD: gradient norms of an iteration whose optimizer step did not run (GradScaler skipped
# it, or a gradient-accumulation micro-step), read from the grads the backward produced.
OUT, INP, SAT, GRAD, WEIGHT, UPDATE, CLIP, SKIP, HELD = range(9)
NORM_KINDS = frozenset({OUT, INP, GRAD, WEIGHT, UPDATE, HELD})  # combined over ranks as a root mean square


def _eager(hook: Any) -> Any:
    """A hook Dynamo never traces: under ``torch.compile`` it runs as plain Python (a graph
    break where it is called inside a compiled region) instead of being compiled with
    guards on the monitor's step counters, which would recompile at every step."""
    disable = getattr(getattr(torch, "compiler", None), "disable", None)
    return disable(hook) if disable is not None else hook


def _find_in_optimized_module() -> Any:
    try:
        from torch._dynamo.eval_frame import _is_in_optimized_module
    except ImportError:  # an older or newer torch without it: only what start() saw counts
        return None
    return _is_in_optimized_module


def _in_compiled_module(probe: Any = None) -> bool:
    """Whether this call comes through a ``torch.compile(model)`` wrapper (the model's
    forward is compiled even though the monitor was given the original module). The
    collector looks the probe up once (``_find_in_optimized_module``): it runs every step."""
    probe = probe if probe is not None else _find_in_optimized_module()
    return bool(probe()) if probe is not None else False


def compiled_original(model: nn.Module) -> tuple[nn.Module, bool]:
    """(the module to hook, whether its forward is compiled): ``torch.compile(model)``
    returns a wrapper whose ``_orig_mod`` holds the modules; ``model.compile()`` compiles
    in place."""
    original = getattr(model, "_orig_mod", None)
    if isinstance(original, nn.Module) and type(model).__name__ == "OptimizedModule":
        return original, True
    return model, getattr(model, "_compiled_call_impl", None) is not None


def has_own_forward(model: nn.Module) -> bool:
    """False for a container (``nn.ModuleDict``, ``nn.ModuleList``, a module that only
    groups others) whose ``forward`` is never defined, so never runs."""
    forward = getattr(type(model), "forward", None)
    return forward is not None and forward is not nn.Module.forward and not isinstance(
        model, (nn.ModuleDict, nn.ModuleList, nn.ParameterDict, nn.ParameterList))


def _float_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return []


def _norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """float32 2-norms, one foreach kernel per kind: complex tensors (whose norm is real
    but cannot be asked for in float32) go through their own call."""
    try:
        return list(torch._foreach_norm(tensors, 2, dtype=torch.float32))
    except RuntimeError:
        if not any(t.is_complex() for t in tensors):
            raise
    real = [i for i, t in enumerate(tensors) if not t.is_complex()]
    cplx = [i for i, t in enumerate(tensors) if t.is_complex()]
    out: list[Optional[torch.Tensor]] = [None] * len(tensors)
    if real:
        for i, norm in zip(real, torch._foreach_norm([tensors[i] for i in real], 2, dtype=torch.float32)):
            out[i] = norm
    for i, norm in zip(cplx, torch._foreach_norm([tensors[i] for i in cplx], 2)):
        out[i] = norm.to(torch.float32)
    return [n for n in out if n is not None]


def _all_finite(values: list[float], columns: tuple[int, ...]) -> bool:
    """Whether the given columns of a row are all finite: their sum is finite exactly when
    every term is (a finite overflow aside: rare, and it only makes a window look unhealthy)."""
    if not columns:
        return True
    picked = operator.itemgetter(*columns)(values)
    return math.isfinite(sum(picked) if isinstance(picked, tuple) else picked)


def _grad_values(grad: torch.Tensor) -> torch.Tensor:
    """The dense tensor holding a gradient's values: a sparse gradient's (an
    ``nn.Embedding(sparse=True)``) values, which in-place edits reach."""
    return grad._values() if grad.is_sparse else grad


def _first_tensor(value: Any) -> Optional[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Tensor):
                return item
    return None


def _site_kind(module: nn.Module) -> str:
    if isinstance(module, RELU_TYPES):
        return "relu"
    if isinstance(module, SIGMOID_TYPES):
        return "sigmoid"
    if isinstance(module, TANH_TYPES):
        return "tanh"
    if isinstance(module, MATMUL_TYPES):
        return "matmul"
    for types, kind in ACTIVATION_KINDS:
        if isinstance(module, types):
            return kind
    return "other"


@dataclass
class _Site:
    info: SiteInfo
    numel: int = 1
    unit_dim: int = -1
    mask: Optional[torch.Tensor] = None  # ReLU sites: units active at least once this window
    mask_steps: int = 0  # steps that updated the mask this window (module outputs may be sampled)
    feeder: Optional[str] = None  # the parametrised module that ran just before (ReLU sites)
    # (output shape, dims reduced to per-unit activity) of the last output seen: worked out
    # once per shape, not at every call
    reduce: Optional[tuple[Any, tuple[int, ...]]] = None


@dataclass
class _Row:
    """Host-side description of one committed row: which columns hold what."""

    step: int
    columns: tuple[int, ...]
    stepped: bool
    loss: bool
    numel: dict[int, int] = field(default_factory=dict)  # site slot -> numel of its output


@dataclass(frozen=True)
class Readback:
    rows: list[StepStats]
    first_nonfinite_step: Optional[int]
    nonfinite_steps: int
    dead_units: Optional[list[DeadUnits]]


class Collector:
    """Attach to a model and optimizer; collect statistics on the device."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: Optional[torch.optim.Optimizer],
        *,
        check_every: int,
        sample_every: int,
        activation_every: int = 1,
        activation_warmup: int = 0,
        relu_window: int = 100,
        fix_skip: bool = False,
        fix_clip: bool = False,
        clip_factor: float = 5.0,
        clip_warmup: int = 5,
        overhead_budget: Optional[float] = None,
        calibration_steps: int = 50,
        world_size: int = 1,
        compiled: bool = False,
    ) -> None:
        self.model = model
        # A compiled forward: module-output hooks would be traced into the graph and, turned
        # on and off by the sampling, recompile it; they are never registered (gradient,
        # weight, update and loss statistics come from hooks outside the graph).
        self.compiled = compiled
        # > 1: reads are all-reduced over the default process group (nnlint.runtime.distributed)
        self.world_size = max(1, int(world_size))
        self.optimizer = optimizer
        self.capacity = max(1, int(check_every))
        self.sample_every = max(1, int(sample_every))
        # Module-output statistics cost one read of every activation: on a GPU that is the
        # monitor's largest cost. activation_every > 1 takes them every k-th step only
        # (always during the first activation_warmup steps, which NR203 judges); loss,
        # gradient and weight checks stay on every step.
        self.activation_every = max(1, int(activation_every))
        self.activation_warmup = max(0, int(activation_warmup))
        # The monitor measures what module-output statistics cost (the forward pass with
        # and without them, host clock) and, after calibration_steps, takes them only every
        # k-th step so that they stay within overhead_budget of a step (None: never adapt;
        # activation_every is the floor).
        self.activation_floor = self.activation_every
        # Of the steps that take module-output statistics, every norm_every-th (a multiple of
        # activation_every) takes them all; the others only the unit activity (see
        # MAX_NORM_EVERY). Equal to activation_every unless the budget spreads the norms.
        self.norm_every = self.activation_every
        self._norm_step = True
        self._activity_only = False  # the module-output hooks are on the activation modules only
        # modules whose hook feeds an activity site (the activation itself, or the module that
        # takes a functional activation's output as its input), by id
        self._activity_modules: dict[int, nn.Module] = {}
        self.overhead_budget = overhead_budget if overhead_budget and overhead_budget > 0 else None
        self.calibration_steps = int(calibration_steps)
        # Gradient norms (one foreach kernel per step and a row to stack) are the other cost
        # that grows with the model: with the budget they are taken every grad_every-th step
        # only (<= MAX_GRAD_EVERY; always in fix mode, whose remedies read every step's norms,
        # and during calibration). A step that takes neither adds only its loss to the row.
        self.grad_every = 1
        self._grad_step = True
        self._grad_cost: Optional[float] = None  # host time of this step's gradient norms
        self._toggle_cost = 0.0  # host time spent installing/removing the module-output hooks
        self._probe_compiled = _find_in_optimized_module()
        # Medians of the last CLOCK_SAMPLES timings of each kind (see adapt()).
        self._clock: dict[str, Optional[float]] = {key: None for key in CLOCK_KEYS}
        self._samples: dict[str, list[float]] = {key: [] for key in CLOCK_KEYS}
        # Host time spent in the monitor's own step hooks (reads and checks included) since
        # the last read, and the steps it covers: the mean is what a step pays for watching.
        self._own = 0.0
        self._own_from = 0
        self._loss_slots: list[torch.Tensor] = []  # 0-d views of loss_buf's rows
        self._step_start: Optional[float] = None
        self._forward_start: Optional[float] = None
        self._act_step = True
        self.relu_window = max(1, int(relu_window))
        self.fix_skip = fix_skip
        self.fix_clip = fix_clip
        self.clip_factor = float(clip_factor)
        self.clip_warmup = int(clip_warmup)

        self.module_names: dict[int, str] = {}
        for name, module in model.named_modules():
            self.module_names.setdefault(id(module), name)
        owners: dict[int, tuple[str, nn.Module]] = {}
        for name, module in model.named_modules():
            for param in module.parameters(recurse=False):
                owners.setdefault(id(param), (name, module))
        groups = optimizer.param_groups if optimizer is not None else [{"params": list(model.parameters())}]
        seen: set[int] = set()
        self.params: list[torch.Tensor] = []
        self.param_layer: list[str] = []
        self.layer_modules: dict[str, Optional[nn.Module]] = {}
        for group in groups:
            for param in group["params"]:
                if id(param) in seen or not param.requires_grad:
                    continue
                seen.add(id(param))
                name, module = owners.get(id(param), (f"<param {len(self.params)}>", None))
                self.params.append(param)
                self.param_layer.append(name)
                self.layer_modules.setdefault(name, module)
        self.param_index: dict[int, int] = {id(p): i for i, p in enumerate(self.params)}
        self._all_index = list(range(len(self.params)))
        qualified = {id(p): name for name, p in model.named_parameters()}
        self.param_names: list[str] = [qualified.get(id(p), layer) for p, layer in zip(self.params, self.param_layer)]
        self.layer_order: dict[str, int] = {}  # forward order of layers (first call)

        self.sites: list[_Site] = []
        self.site_slot: dict[tuple[int, int], int] = {}
        self.columns: dict[tuple[int, int], int] = {}  # (kind, index) -> column
        self.column_keys: list[tuple[int, int]] = []
        self.device: Optional[torch.device] = None
        self.buf: Optional[torch.Tensor] = None
        self.loss_buf: Optional[torch.Tensor] = None
        self._multi_device = False  # statistics come from several devices (a model split across GPUs)
        self.index_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self._columns_cache: dict[tuple[int, tuple[int, ...]], list[int]] = {}
        self._meta_cache: dict[int, tuple[int, int, str, str]] = {}
        self._layer_infos: Optional[tuple[int, list[LayerInfo]]] = None  # (len(layer_order), infos)
        self.rows: list[_Row] = []
        self.handles: list[Any] = []
        self._leaf_modules: list[nn.Module] = []
        self._leaf_handles: list[Any] = []
        self._forward_hook: Any = None  # _on_forward as registered (see _leaf_hooks)
        self._grad_handles: list[Any] = []
        self._stepped_run = 0  # iterations in a row whose optimizer step ran

        self.step = -1  # index of the current iteration (0-based); -1 before the first
        self.active = False
        self.relu_window_start = 0
        self._calls: dict[int, int] = {}
        self.warned_no_forward = False
        # ids of this step's activation outputs (module or functional): a module fed by
        # an activation module's output is not a functional site
        self._activation_outputs: set[int] = set()
        self._pend_cols: list[int] = []
        self._pend_vals: list[torch.Tensor] = []
        self._pend_pos: dict[int, int] = {}  # column -> position in _pend_vals (module outputs)
        self._numel: dict[int, int] = {}
        self._last_out: Optional[torch.Tensor] = None
        self._last_norm: Optional[torch.Tensor] = None
        self._last_param_module: Optional[str] = None
        self._stepped = False
        self._loss_seen = False
        self._update_snapshot: Optional[list[torch.Tensor]] = None
        self._update_index: list[int] = []
        # One persistent copy of the parameters for the update norms, reused at every
        # sample: a fresh clone every sample_every steps made the CPU allocator return and
        # re-fault pages, which cost more than the statistics themselves.
        self._snapshot_store: dict[int, torch.Tensor] = {}
        self._skip_flag: Optional[torch.Tensor] = None
        self._fix_snapshot: Optional[list[torch.Tensor]] = None
        self._clip_level: Optional[torch.Tensor] = None  # running mean of log total grad norm
        self._clip_seen: Optional[torch.Tensor] = None
        self.backward_seen = 0
        # Grads produced by this iteration's backward, held (no copy, no compute) until the
        # optimizer step: if it never runs, their norms are taken at commit time.
        self._held: list[tuple[int, torch.Tensor]] = []
        self.after_commit: Optional[Any] = None  # called when the buffer is full (the monitor reads)
        # Read after this many rows instead of a full buffer (once; the monitor sets it for an
        # early first look and after a rollback).
        self.first_check: Optional[int] = None
        # A closure optimizer (LBFGS) runs forward and backward inside step(): those
        # evaluations belong to the iteration its step hook opened.
        self._in_step = False
        self._step_forwards = 0
        self._open_forwards = 0  # further training forwards of the open step
        self._backward_in_step = False  # a backward reached the watched parameters this step
        self.warned_no_step = False
        self._closure_bad: Optional[torch.Tensor] = None
        self._skip_armed = False  # the skip snapshot was taken for the step now running
        self._loss_value: Optional[torch.Tensor] = None  # this iteration's observed loss (device)
        self._restore_masks: dict[str, torch.Tensor] = {}
        self._restore_mask_steps: dict[str, int] = {}

    # -- attach / detach ------------------------------------------------------

    def attach(self) -> None:
        try:
            self.handles.append(self.model.register_forward_pre_hook(_eager(self._on_root_forward)))
            if self.overhead_budget is not None:
                self.handles.append(self.model.register_forward_hook(_eager(self._on_root_forward_end)))
            self._leaf_modules = [m for m in self.model.modules() if not any(True for _ in m.children())]
            marker = self.params[0] if self.optimizer is not None and self.params else None
            if marker is not None and hasattr(marker, "register_post_accumulate_grad_hook"):
                # one parameter tells that a backward ran (see _continues_step)
                self.handles.append(marker.register_post_accumulate_grad_hook(_eager(self._on_marker_grad)))
            self._leaf_hooks(True)
            self._grad_hooks(True)
            if self.optimizer is not None:
                self.handles.append(self.optimizer.register_step_pre_hook(_eager(self._on_pre_step)))
                self.handles.append(self.optimizer.register_step_post_hook(_eager(self._on_post_step)))
        except BaseException:
            self.detach()
            raise

    def _leaf_hooks(self, on: bool, activity_only: bool = False) -> None:
        """Module-output hooks are registered only for the steps that take module-output
        statistics: a module with any hook leaves PyTorch's fast call path, which on a small
        model costs more than the statistics. A step that takes unit activity only hooks the
        modules that feed an activity site."""
        if on and self._leaf_handles and activity_only != self._activity_only:
            self._leaf_hooks(False)
        if on and not self._leaf_handles and not self.compiled:
            if self._forward_hook is None:  # wrapped once: wrapping costs more than the hooks' calls
                self._forward_hook = _eager(self._on_forward)
            hook = self._forward_hook
            modules = list(self._activity_modules.values()) if activity_only else self._leaf_modules
            self._leaf_handles = [m.register_forward_hook(hook) for m in modules]
            self._activity_only = activity_only
        elif not on and self._leaf_handles:
            handles, self._leaf_handles = self._leaf_handles, []
            for handle in handles:
                handle.remove()

    def _grad_hooks(self, on: bool) -> None:
        """The gradient hooks only matter for an iteration whose optimizer step does not run
        (a GradScaler skip, gradient accumulation): after STEADY_STEPS iterations that all
        stepped they are removed, and put back at the first iteration that does not step."""
        if on and not self._grad_handles:
            hook = _eager(self._on_grad)
            self._grad_handles = [param.register_post_accumulate_grad_hook(hook)
                                  for param in self.params if hasattr(param, "register_post_accumulate_grad_hook")]
        elif not on and self._grad_handles:
            handles, self._grad_handles = self._grad_handles, []
            for handle in handles:
                handle.remove()

    def detach(self) -> None:
        self._leaf_hooks(False)
        self._grad_hooks(False)
        while self.handles:
            handle = self.handles.pop()
            try:
                handle.remove()
            except Exception:  # a handle whose owner is gone is already removed
                pass
        self._last_out = None
        self._last_norm = None
        self._update_snapshot = None
        self._snapshot_store = {}
        self._fix_snapshot = None
        self._held = []
        self._in_step = False

    def hook_module(self, module: nn.Module) -> None:
        """Hook a module added after attach (the LeakyReLU swap remedy)."""
        self._leaf_modules.append(module)
        if self._leaf_handles and self._forward_hook is not None and not self._activity_only:
            self._leaf_handles.append(module.register_forward_hook(self._forward_hook))

    # -- bookkeeping ----------------------------------------------------------

    def _column(self, kind: int, index: int) -> int:
        key = (kind, index)
        column = self.columns.get(key)
        if column is None:
            column = len(self.column_keys)
            self.columns[key] = column
            self.column_keys.append(key)
        return column

    def _put(self, kind: int, index: int, value: torch.Tensor) -> None:
        column = self._column(kind, index)
        if kind <= SAT:  # OUT, INP, SAT: module outputs, which a step may see several times
            position = self._pend_pos.get(column)
            if position is not None and self._open_forwards:
                # the (m+1)-th forward of an optimizer step (accumulation): the mean over the
                # forwards (root mean square for norms; a NaN in any of them stays one)
                m = float(self._open_forwards)
                old = self._pend_vals[position]
                self._pend_vals[position] = (old * m + value) / (m + 1) if kind == SAT else \
                    torch.sqrt((old * old * m + value * value) / (m + 1))
                return
            self._pend_pos[column] = len(self._pend_cols)
        self._pend_cols.append(column)
        self._pend_vals.append(value)

    def _put_many(self, kind: int, indices: list[int], values: list[torch.Tensor]) -> None:
        key = (kind, tuple(indices))
        columns = self._columns_cache.get(key)
        if columns is None:
            columns = [self._column(kind, i) for i in indices]
            self._columns_cache[key] = columns
        self._pend_cols.extend(columns)
        self._pend_vals.extend(values)

    def _ensure_buffers(self, device: torch.device) -> None:
        if self.device is None:
            self.device = device
        width = max(len(self.column_keys), 1)
        if self.buf is None or self.buf.shape[1] < width:
            new = torch.zeros(self.capacity, max(width, 64 if self.buf is None else 2 * self.buf.shape[1]),
                              dtype=torch.float32, device=self.device)
            if self.buf is not None:
                new[:, : self.buf.shape[1]].copy_(self.buf)
            self.buf = new
        if self.loss_buf is None:
            self.loss_buf = torch.zeros(self.capacity, dtype=torch.float32, device=self.device)
            self._loss_slots = list(self.loss_buf.unbind(0))  # views made once, not every step

    def _new_site(self, module: nn.Module, call: int, out: torch.Tensor) -> int:
        name = self.module_names.get(id(module), "?")
        kind = _site_kind(module)
        if kind in DEAD_KINDS or kind in SATURATING_KINDS:  # the kinds _activity() looks at
            self._activity_modules[id(module)] = module
        return self._make_site((id(module), call), name if call == 0 else f"{name}#{call}", name,
                               kind, call, out)

    def _make_site(self, key: tuple[int, int], site_name: str, name: str, kind: str, call: int,
                   out: torch.Tensor) -> int:
        slot = len(self.sites)
        feeder = self._last_param_module if kind in DEAD_KINDS or kind in SATURATING_KINDS else None
        info = SiteInfo(
            name=site_name,
            module=name,
            kind=kind,
            call=call,
            order=slot,
            feeder=feeder,
        )
        site = _Site(info=info, feeder=feeder)
        if kind in DEAD_KINDS:
            feeder_module = self.layer_modules.get(feeder) if feeder is not None else None
            if out.dim() <= 2:
                site.unit_dim = out.dim() - 1
            elif isinstance(feeder_module, CONV_TYPES) or (
                isinstance(feeder_module, nn.modules.batchnorm._BatchNorm)
            ) or (feeder_module is None and out.dim() == 4):
                site.unit_dim = 1
            else:
                site.unit_dim = out.dim() - 1
        self.sites.append(site)
        self.site_slot[key] = slot
        return slot

    def _functional_site(self, module: nn.Module, call: int, tensor: torch.Tensor, kind: str) -> None:
        """A functional activation whose output ``module`` takes as its input: a site
        named after the module it feeds ("relu->fc2"), attributed to that module's parent
        (whose forward calls it)."""
        key = (id(module), -1 - call)
        slot = self.site_slot.get(key)
        if slot is None:
            consumer = self.module_names.get(id(module), "?")
            suffix = "" if call == 0 else f"#{call}"
            slot = self._make_site(key, f"{kind}->{consumer}{suffix}", consumer.rpartition(".")[0], kind, call,
                                   tensor)
            self._activity_modules[id(module)] = module
        self._activity(self.sites[slot], slot, tensor.detach())

    def _activity(self, site: _Site, slot: int, out: torch.Tensor) -> None:
        kind = site.info.kind
        if kind in DEAD_KINDS:
            self._relu_activity(site, out)
        elif kind == "sigmoid":
            saturated = (out - 0.5).abs_() > (0.5 - SATURATION_EPS)
            self._put(SAT, slot, saturated.sum(dtype=torch.float32))
            self._numel[slot] = out.numel()
        elif kind == "tanh":
            saturated = out.abs() > (1.0 - SATURATION_EPS)
            self._put(SAT, slot, saturated.sum(dtype=torch.float32))
            self._numel[slot] = out.numel()

    # -- hooks ------------------------------------------------------------------

    def _on_root_forward(self, module: nn.Module, inputs: Any) -> None:
        start = time.perf_counter()
        try:
            self._root_forward(module, inputs)
        finally:
            self._own += time.perf_counter() - start

    def _root_forward(self, module: nn.Module, inputs: Any) -> None:
        if self._in_step:
            # An evaluation of a closure: the first one's module outputs are this step's.
            self._calls.clear()
            self._activation_outputs.clear()
            self._act_step = self._act_step and self._step_forwards == 0
            self._step_forwards += 1
            self._last_out = None
            self._last_norm = None
            return
        if not self.compiled and _in_compiled_module(self._probe_compiled):
            self.compiled = True  # called through torch.compile(model): see __init__
            self._leaf_hooks(False)
            logger.info("nnlint.monitor: the model's forward is compiled; module-output statistics "
                        "(NR201/NR202/NR203, NR301 forward attribution) are not taken")
        if not (module.training and torch.is_grad_enabled()):
            # an evaluation forward (validation between steps): the training iteration before it
            # is complete, so its row is kept rather than dropped with the evaluation's
            self.commit()
            if self.due and self.after_commit is not None:
                self.after_commit()
            self.active = False
            return
        if self._continues_step():
            # one more forward of the optimizer step already open: its module outputs go
            # into the same columns, averaged over the step's forwards (see _put)
            self._open_forwards += 1
            self._calls.clear()
            self._activation_outputs.clear()
            self._last_out = None
            self._last_norm = None
            self._forward_start = None
            return
        if self.overhead_budget is None:
            self._begin_iteration()
            return
        now = time.perf_counter()
        if self._step_start is not None:
            self._tick("step", now - self._step_start)
        self._step_start = now
        self._begin_iteration()
        self._forward_start = time.perf_counter()

    def _continues_step(self) -> bool:
        """Whether a training forward belongs to the optimizer step already open: that step
        has not run yet, and no backward of it has been followed by ``zero_grad`` (which
        starts a new iteration: the one before had its step skipped, as a GradScaler does).
        Without an optimizer every forward is a step."""
        if self.optimizer is None or not self.active or self._stepped or self.step < 0:
            return False
        if self._open_forwards + 1 >= MAX_FORWARDS_PER_STEP:
            if not self.warned_no_step:
                self.warned_no_step = True
                logger.warning("nnlint.monitor: %d forward passes without an optimizer step of the watched "
                               "optimizer; counting each forward as a step from now on",
                               MAX_FORWARDS_PER_STEP)
            return False
        marker = self.params[0] if self.params else None
        return not (self._backward_in_step and marker is not None and marker.grad is None)

    def _on_marker_grad(self, param: torch.Tensor) -> None:
        self._backward_in_step = True

    def _tick(self, key: str, seconds: float) -> None:
        samples = self._samples[key]
        samples.append(seconds)
        if len(samples) > CLOCK_SAMPLES:
            del samples[0]

    def _settle_clock(self) -> None:
        """At a read: the median of each kind's recent timings. A median and not a mean: the
        time between two steps also holds what the loop does between them now and then (an
        evaluation, a checkpoint), which is no part of a step's cost. The monitor's own time
        is a mean over the steps since the last read, which it includes."""
        for key, samples in self._samples.items():
            if samples:
                ordered = sorted(samples)
                self._clock[key] = ordered[len(ordered) // 2]
        steps = self.step + 1 - self._own_from
        if steps > 0:
            self._clock["own"] = max(self._own, 0.0) / steps
            self._own, self._own_from = 0.0, self.step + 1

    def _on_root_forward_end(self, module: nn.Module, inputs: Any, output: Any) -> None:
        start, self._forward_start = self._forward_start, None
        if start is None or not self.active or self._in_step or self.step < self.activation_warmup:
            return
        elapsed = time.perf_counter() - start
        if self._act_step:
            # an act step also pays for installing its hooks and, at the next step, removing them
            elapsed, self._toggle_cost = elapsed + self._toggle_cost, 0.0
        self._tick(("act" if self._norm_step else "mask") if self._act_step else "plain", elapsed)

    def adapt(self) -> None:
        """At a read: choose how often module-output statistics and gradient norms are taken
        (see __init__), so that their measured cost per step stays within the budget."""
        if self.overhead_budget is None or self.step + 1 < self.calibration_steps:
            return
        act, plain, step = self._clock["act"], self._clock["plain"], self._clock["step"]
        if not step:
            return
        act_extra: Optional[float] = None  # what module-output statistics add to a forward pass
        mask_extra: Optional[float] = None  # what unit activity alone adds to one
        if not self.compiled:
            if plain is None or act is None:
                # Never timed a forward pass without the statistics: take them every other
                # step for a while to measure both.
                self.activation_every = max(self.activation_every, 2)
            else:
                act_extra = max(act - plain, 0.0)
                mask = self._clock["mask"]
                if mask is not None:
                    mask_extra = min(max(mask - plain, 0.0), act_extra)
        grad = self._clock["grad"] if not (self.fix_skip or self.fix_clip) else None
        k_act, k_grad = self.activation_every, self.grad_every
        k_norm = max(self.norm_every, k_act)
        split = bool(self._activity_modules)  # activity steps can be told from norm steps
        budget = self.overhead_budget
        act_cap = 64
        if any(site.info.kind in DEAD_KINDS for site in self.sites):
            act_cap = max(self.activation_floor, min(act_cap, self.relu_window // MIN_WINDOW_LOOKS))
        # What every step pays whatever the spreading (hooks, the loss, the row, the reads):
        # the monitor's own time per step less the gradient norms' share of it.
        own = self._clock["own"]
        fixed = max(own - (self._clock["grad"] or 0.0) / k_grad, 0.0) / step if own is not None else 0.0

        def shares() -> tuple[float, float]:
            full = act_extra or 0.0
            if k_norm > k_act:
                # per k_norm steps: one step with every statistic, the other looks activity
                # only (not measured yet: assumed to cost as much as a full one)
                part = mask_extra if mask_extra is not None else full
                act = (part / k_act + (full - part) / k_norm) / step
            else:
                act = full / (k_act * step)
            return (act, (grad or 0.0) / (k_grad * step))

        act_share, grad_share = shares()
        budget = max(budget - fixed, 0.0)  # what is left for the work that can be spread
        while act_share + grad_share > budget:
            # spread the larger of the two costs further, while it can be
            can_act = act_extra is not None and k_act * 2 <= act_cap
            can_norm = act_extra is not None and split and k_norm * 2 <= MAX_NORM_EVERY
            can_grad = grad is not None and k_grad < MAX_GRAD_EVERY
            if (can_act or can_norm) and (act_share >= grad_share or not can_grad):
                if can_act:
                    k_act *= 2
                    k_norm = max(k_norm, k_act)
                else:
                    k_norm *= 2
            elif can_grad:
                k_grad *= 2
            else:
                break
            act_share, grad_share = shares()
        if act_share + grad_share < budget / 4:
            # cheap again: gradients every step first (they find more), then module outputs
            if grad is not None and k_grad > 1:
                k_grad //= 2
            elif k_norm > k_act:
                k_norm //= 2
            elif act_extra is not None and k_act > max(self.activation_floor, 2):
                k_act = max(self.activation_floor, k_act // 2)
                k_norm = k_act
        self.activation_every = max(k_act, self.activation_floor)
        # a multiple of activation_every: a norm step is always an activity step
        self.norm_every = k_norm if k_norm % self.activation_every == 0 else self.activation_every
        self.grad_every = k_grad if grad is not None else 1

    def _begin_iteration(self) -> None:
        self.commit()
        if self.due and self.after_commit is not None:
            self.after_commit()
        self.step += 1
        self.active = True
        self._open_forwards = 0
        self._backward_in_step = False
        self._act_step = not self.compiled and (
            self.step < self.activation_warmup or self.step % self.activation_every == 0)
        self._grad_step = self.grad_every == 1 or self.step % self.grad_every == 0
        self._norm_step = self._act_step and (
            self.step < self.activation_warmup or self.step % self.norm_every == 0 or not self._activity_modules)
        activity_only = self._act_step and not self._norm_step
        if self._act_step != bool(self._leaf_handles) or (self._act_step and activity_only != self._activity_only):
            start = time.perf_counter()
            self._leaf_hooks(self._act_step, activity_only)
            toggle = time.perf_counter() - start
            self._toggle_cost += toggle
            self._own -= toggle  # counted with the module-output statistics (see adapt)
        self._calls.clear()
        self._activation_outputs.clear()
        self._stepped = False
        self._loss_seen = False
        self._loss_value = None
        self._last_out = None
        self._last_norm = None

    def _on_forward(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not (self.active and self._act_step):
            return
        out = _first_tensor(output)
        if out is None or not out.is_floating_point():
            return
        key = id(module)
        call = self._calls.get(key, 0)
        self._calls[key] = call + 1
        if not self._norm_step:
            self._unit_activity(key, call, inputs, out)
            return
        slot = self.site_slot.get((key, call))
        first_input = _first_tensor(inputs)
        if first_input is not None and first_input.grad_fn is not None and first_input is not output \
                and id(first_input) not in self._activation_outputs:
            functional = FUNCTIONAL_KINDS.get(type(first_input.grad_fn).__name__)
            own_kind = self.sites[slot].info.kind if slot is not None else _site_kind(module)
            if functional is not None and own_kind in ("matmul", "other") and first_input.is_floating_point():
                self._activation_outputs.add(id(first_input))  # one site per tensor
                self._functional_site(module, call, first_input, functional)
        if slot is None:
            slot = self._new_site(module, call, out)
        site = self.sites[slot]
        name = site.info.module
        if name not in self.layer_order and name in self.layer_modules:
            self.layer_order[name] = len(self.layer_order)
        if name in self.layer_modules:
            self._last_param_module = name
        out = out.detach()
        out_norm = torch.linalg.vector_norm(out, dtype=torch.float32)
        in_norm: Optional[torch.Tensor] = None
        for tensor in _float_tensors(inputs):  # every input: attention takes q, k and v
            if tensor is self._last_out and self._last_norm is not None:
                norm = self._last_norm  # in-place ReLU: its input is already overwritten
            else:
                norm = torch.linalg.vector_norm(tensor.detach(), dtype=torch.float32)
            # A sum is finite exactly when every term is: one column says "inputs finite".
            in_norm = norm if in_norm is None else in_norm + norm
        if in_norm is not None:
            self._put(INP, slot, in_norm)
        self._put(OUT, slot, out_norm)
        self._numel[slot] = out.numel()
        self._last_out = output if isinstance(output, torch.Tensor) else out
        self._last_norm = out_norm
        kind = site.info.kind
        if kind != "matmul" and kind != "other":
            self._activation_outputs.add(id(self._last_out))
            self._activity(site, slot, out)

    def _unit_activity(self, key: int, call: int, inputs: Any, out: torch.Tensor) -> None:
        """A step that takes unit activity only: the activity sites already found (on a step
        that took every statistic) are fed, no norm is taken and no new site is made."""
        functional = self.site_slot.get((key, -1 - call))
        if functional is not None:
            first_input = _first_tensor(inputs)
            if first_input is not None and first_input.is_floating_point():
                self._activity(self.sites[functional], functional, first_input.detach())
        slot = self.site_slot.get((key, call))
        if slot is not None:
            site = self.sites[slot]
            if site.info.kind != "matmul" and site.info.kind != "other":
                self._activity(site, slot, out.detach())

    def _relu_activity(self, site: _Site, out: torch.Tensor) -> None:
        reduce = site.reduce
        if reduce is not None and reduce[0] == out.shape and site.mask is not None \
                and site.mask.device == out.device:
            dims = reduce[1]  # the usual call: the same shape as the last one
            site.mask.logical_or_((out.amax(dim=dims) if dims else out) > 0)
            site.mask_steps += 1
            return
        if out.dim() == 0:
            return
        unit_dim = site.unit_dim % out.dim()
        units = out.shape[unit_dim]
        if site.mask is None or site.mask.numel() != units or site.mask.device != out.device:
            saved = self._restore_masks.pop(site.info.name, None)
            if saved is not None and saved.numel() == units:
                site.mask = saved.to(device=out.device, dtype=torch.bool)
                # an older state has no count: the whole elapsed window was looked at
                site.mask_steps = int(self._restore_mask_steps.get(
                    site.info.name, max(0, self.step - self.relu_window_start)))
            else:
                site.mask = torch.zeros(units, dtype=torch.bool, device=out.device)
        dims = tuple(d for d in range(out.dim()) if d != unit_dim)
        site.reduce = (out.shape, dims)
        site.mask.logical_or_((out.amax(dim=dims) if dims else out) > 0)
        site.mask_steps += 1

    def _on_grad(self, param: torch.Tensor) -> None:
        self.backward_seen += 1
        if self.active and param.grad is not None and not param.grad.is_sparse:
            self._held.append((self.param_index[id(param)], param.grad))

    def _grads(self) -> tuple[list[torch.Tensor], list[int]]:
        dense = [p.grad for p in self.params]
        if all(g is not None and not g.is_sparse for g in dense):
            return dense, self._all_index  # type: ignore[return-value]
        grads: list[torch.Tensor] = []
        index: list[int] = []
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is not None:
                grads.append(_grad_values(grad))
                index.append(i)
        return grads, index

    def _on_pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self._pre_step(optimizer, args, kwargs)
        finally:
            self._own += time.perf_counter() - start

    def _pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> Any:
        # args starts with the optimizer itself (the hook sees step's own arguments)
        closure = kwargs.get("closure") if kwargs else None
        if closure is None and len(args) > 1:
            closure = args[1]
        if callable(closure):
            return self._closure_step(args, kwargs, closure)
        if not self.active:
            if self.step < 0 and not self.warned_no_forward:
                # Never silent: the optimizer steps, but the watched model's own forward
                # has not run once (training calls its submodules, or another model).
                self.warned_no_forward = True
                logger.warning(
                    "nnlint.monitor: optimizer.step() ran but the forward of the monitored %s never did, so "
                    "nothing is watched. Monitor the model(s) that the training loop calls.",
                    type(self.model).__name__)
            return None
        self._stepped = True
        self._held = []
        if not self._grad_step:  # spread by the budget (see adapt): no gradient work this step
            if self.step % self.sample_every == 0:
                self._sample_update(self._grads()[1])
            return None
        start = time.perf_counter()
        grads, index = self._grads()
        if not grads:
            return None
        norms = _norms(grads)
        self._put_many(GRAD, index, norms)
        if self.fix_skip or self.fix_clip:
            self._fix_gradients(grads, norms)
        self._grad_cost = time.perf_counter() - start  # with the commit of its row, in commit()
        self._sample_update(index)
        return None

    def _closure_step(self, args: Any, kwargs: Any, closure: Any) -> Any:
        """``optimizer.step(closure)``: the step is the iteration; every evaluation of the
        closure is checked, and in fix mode a non-finite one is zeroed before the optimizer
        sees it (its loss and gradients), and the step is undone afterwards."""
        if not self._continues_step():  # else: accumulation micro-batches before this step began it
            self._begin_iteration()
        self._in_step = True
        self._step_forwards = 0
        self._stepped = True
        self._closure_bad = None
        evaluations = [0]
        if self.fix_skip:
            self._snapshot_for_skip()

        def checked_closure() -> Any:
            loss = closure()
            first = evaluations[0] == 0
            evaluations[0] += 1
            grads, index = self._grads()
            if not grads:
                return loss
            norms = _norms(grads)
            if first:
                for i, norm in zip(index, norms):
                    self._put(GRAD, i, norm)
            if self.fix_skip:
                finite = torch.isfinite(torch.stack([n.to(norms[0].device) for n in norms])).all()
                if isinstance(loss, torch.Tensor) and self.world_size == 1:  # see _fix_gradients
                    finite = finite & torch.isfinite(loss.detach()).all().to(finite.device)
                with torch.no_grad():
                    for grad in grads:
                        torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0)
                    torch._foreach_mul_(grads, finite.to(torch.float32))
                bad = finite.logical_not()
                self._closure_bad = bad if self._closure_bad is None else self._closure_bad | bad
            return loss

        self._sample_update(list(range(len(self.params))))
        if kwargs and "closure" in kwargs:
            return args, {**kwargs, "closure": checked_closure}
        return (args[0], checked_closure, *args[2:]), kwargs

    def _sample_update(self, index: list[int]) -> None:
        if self.step % self.sample_every == 0:
            self._update_index = index
            snapshot = []
            for i in index:
                param = self.params[i].detach()
                stored = self._snapshot_store.get(i)
                if stored is None or stored.shape != param.shape or stored.dtype != param.dtype \
                        or stored.device != param.device:
                    stored = torch.empty_like(param)
                    self._snapshot_store[i] = stored
                snapshot.append(stored)
            torch._foreach_copy_(snapshot, [self.params[i].detach() for i in index])
            self._update_snapshot = snapshot

    def _snapshot_for_skip(self) -> None:
        self._skip_armed = True
        if self._fix_snapshot is None:
            self._fix_snapshot = [p.detach().clone() for p in self.params]
        else:
            torch._foreach_copy_(self._fix_snapshot, [p.detach() for p in self.params])

    def _fix_gradients(self, grads: list[torch.Tensor], norms: list[torch.Tensor]) -> None:
        stacked = torch.stack([n.to(grads[0].device) for n in norms]) if len(
            {g.device for g in grads}
        ) > 1 else torch.stack(norms)
        finite = torch.isfinite(stacked).all()
        if self._loss_value is not None and self.world_size == 1:
            # observed before step(): a non-finite loss skips it too. Not under DDP: a loss is
            # one rank's, while the gradients (averaged by DDP) decide alike on every rank.
            finite = finite & torch.isfinite(self._loss_value).all().to(finite.device)
        if self.fix_skip:
            bad = finite.logical_not()
            # Zero the non-finite gradients so the optimizer's state stays finite, then
            # restore the weights from the snapshot after the step (no host sync: the
            # decision is a device tensor used as a 0/1 factor).
            for grad in grads:
                torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0)
            torch._foreach_mul_(grads, finite.to(torch.float32))
            self._snapshot_for_skip()
            self._skip_flag = bad
        if self.fix_clip:
            if self._clip_level is None:
                self._clip_level = torch.zeros((), dtype=torch.float32, device=stacked.device)
                self._clip_seen = torch.zeros((), dtype=torch.float32, device=stacked.device)
            total = torch.linalg.vector_norm(stacked)
            log_total = torch.log(total.clamp_min(1e-30))
            warm = self._clip_seen >= self.clip_warmup
            limit = torch.exp(self._clip_level) * self.clip_factor
            coef = torch.where(warm & finite, (limit / (total + 1e-6)).clamp(max=1.0), torch.ones_like(total))
            torch._foreach_mul_(grads, coef)
            # The running level follows the clipped norm, so one explosion cannot drag it up.
            seen_next = self._clip_seen + finite.to(torch.float32)
            clipped_log = torch.minimum(log_total, torch.log(limit.clamp_min(1e-30)))
            new_value = torch.where(warm, clipped_log, log_total)
            rate = torch.clamp(1.0 / seen_next.clamp_min(1.0), min=0.02)
            updated = self._clip_level + rate * (new_value - self._clip_level)
            self._clip_level = torch.where(finite, updated, self._clip_level)
            self._clip_seen = seen_next
            self._put(CLIP, 0, (coef < 1.0).to(torch.float32))

    def _on_post_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            self._post_step()
        finally:
            self._own += time.perf_counter() - start

    def _post_step(self) -> None:
        if self._in_step:
            self._in_step = False
            self._skip_flag = self._closure_bad
            self._closure_bad = None
        if not self.active:
            return
        armed, self._skip_armed = self._skip_armed, False
        if self.fix_skip and armed and self._fix_snapshot is not None and self.params:
            # Undo the step when its gradients were non-finite, or when the update itself
            # made a weight non-finite (an optimizer that divides by a zero state).
            params = [p.detach() for p in self.params]
            after = torch.stack([n.to(self._fix_snapshot[0].device) for n in _norms(params)])
            bad_flag = torch.isfinite(after).all().logical_not()
            if self._skip_flag is not None:
                bad_flag = bad_flag | self._skip_flag.to(bad_flag.device)
            bad = bad_flag.to(torch.float32)
            with torch.no_grad():
                # where() and not a 0/1 product: a NaN weight times 0 is still NaN
                for param, saved in zip(params, self._fix_snapshot):
                    param.copy_(torch.where(bad_flag, saved, param))
            self._put(SKIP, 0, bad)
            self._skip_flag = None
        if self._update_snapshot is not None:
            current = [self.params[i].detach() for i in self._update_index]
            updates = self._update_snapshot
            torch._foreach_sub_(updates, current)  # in place: before - after, same norm
            norms = _norms(updates + current)  # one foreach call for both
            self._put_many(UPDATE, self._update_index, norms[: len(updates)])
            self._put_many(WEIGHT, self._update_index, norms[len(updates):])
            self._update_snapshot = None

    def observe_loss(self, loss: Any) -> None:
        if self.step < 0:
            return
        start = time.perf_counter()
        if isinstance(loss, torch.Tensor):
            if self.loss_buf is None:
                self._ensure_buffers(loss.device if self.device is None else self.device)
            assert self.loss_buf is not None
            row = len(self.rows) if len(self.rows) < self.capacity else self.capacity - 1
            if loss.dim() == 0:  # the usual reduced loss: a 0-d view of its slot, one copy
                slot = self._loss_slots[row]
                slot.copy_(loss.detach(), non_blocking=True)
            else:
                slot = self.loss_buf[row : row + 1]
                slot.copy_(loss.detach().reshape(-1)[:1], non_blocking=True)
            self._loss_value = slot
        else:
            self._ensure_buffers(self.device or torch.device("cpu"))
            assert self.loss_buf is not None
            row = len(self.rows) if len(self.rows) < self.capacity else self.capacity - 1
            self.loss_buf[row] = float(loss)
        self._loss_seen = True
        self._own += time.perf_counter() - start

    # -- commit and read back ---------------------------------------------------

    def commit(self) -> None:
        """Close the current iteration: stack its statistics into one buffer row."""
        if self.step < 0 or not self.active:
            return
        self.active = False
        grad_cost, self._grad_cost = self._grad_cost, None
        start = time.perf_counter()
        if self.optimizer is not None:
            self._stepped_run = self._stepped_run + 1 if self._stepped else 0
            if self._stepped_run >= STEADY_STEPS:
                self._grad_hooks(False)
            elif not self._stepped:
                self._grad_hooks(True)
        if self._held and not self._stepped:
            # The backward ran but no optimizer step followed (GradScaler found inf and
            # skipped it, or gradient accumulation): keep the norms so an overflow is counted.
            # Without an optimizer there are no step hooks: these are the step's gradients.
            kind = HELD if self.optimizer is not None else GRAD
            index = [i for i, _ in self._held]
            norms = _norms([g for _, g in self._held])
            for i, norm in zip(index, norms):
                self._put(kind, i, norm)
            self._stepped = self.optimizer is None
        self._held = []
        if not self._pend_vals and not self._loss_seen:
            return
        columns = tuple(self._pend_cols)
        values = self._pend_vals
        self._pend_cols, self._pend_vals, self._pend_pos = [], [], {}
        device = values[0].device if values else (self.device or torch.device("cpu"))
        self._ensure_buffers(device)
        assert self.buf is not None
        row = len(self.rows)
        if row >= self.capacity:  # caller forgot to read: keep the newest rows
            return
        if values:
            # Non-finite values are found on the host, in the row's own columns, at the read.
            index = self.index_cache.get(columns)
            if index is None:
                # a new layout of the row: look at the devices once for it
                self._multi_device = self._multi_device or any(v.device != self.device for v in values)
                index = torch.tensor(columns, dtype=torch.long, device=self.device)
                self.index_cache[columns] = index
            if self._multi_device:
                values = [v.to(self.device) for v in values]
            self.buf[row].index_copy_(0, index, torch.stack(values))
            if grad_cost is not None:
                self._tick("grad", grad_cost + time.perf_counter() - start)
        self.rows.append(_Row(self.step, columns, self._stepped, self._loss_seen, self._numel))
        self._numel = {}
        self._last_out = None
        self._last_norm = None

    @property
    def due(self) -> bool:
        limit = self.capacity if self.first_check is None else min(self.first_check, self.capacity)
        return len(self.rows) >= limit

    def relu_window_due(self) -> bool:
        return self.step + 1 - self.relu_window_start >= self.relu_window and any(
            s.mask is not None for s in self.sites
        )

    def read(self, close_relu_window: bool = False) -> Readback:
        """Copy everything since the previous read to the host, in one transfer."""
        rows = self.rows
        self.rows = []
        self.first_check = None
        self._settle_clock()
        if self.buf is None or self.loss_buf is None:
            self.adapt()
            return Readback([], None, 0, None)
        n = len(rows)
        width = len(self.column_keys)
        # The activity masks come back at every read: a window still open is looked at too
        # (a layer whose units are all silent need not wait for its window to close).
        relu_sites = [s for s in self.sites if s.mask is not None]
        parts = [
            self.buf[:n, :width].reshape(-1),
            self.loss_buf[:n],
        ]
        masks = [s.mask for s in relu_sites if s.mask is not None]
        if masks and all(m.device == self.device for m in masks):
            parts.append(torch.cat(masks).to(torch.float32))  # one conversion for all sites
        else:
            parts.extend(m.to(torch.float32).to(self.device) for m in masks)
        packed = torch.cat(parts)
        if self.world_size > 1:
            packed = self._all_reduce(packed, n, width)
        host = packed.cpu().tolist()  # the one device->host transfer per check
        if self.world_size > 1:  # the timings of every rank, averaged: adapt() decides alike
            timings = host[len(host) - len(CLOCK_KEYS):]
            for key, value in zip(CLOCK_KEYS, timings):
                self._clock[key] = value if math.isfinite(value) else None
            host = host[: len(host) - len(CLOCK_KEYS)]
        self.adapt()
        offset = n * width
        losses = host[offset : offset + n]
        offset += n
        dead: Optional[list[DeadUnits]] = None
        if relu_sites:
            dead = []
            for site in relu_sites:
                assert site.mask is not None
                units = site.mask.numel()
                mask = host[offset : offset + units]
                offset += units
                # a scan in C first: most windows of a healthy layer have no dead unit
                indices = tuple(i for i, active in enumerate(mask) if active == 0.0) if 0.0 in mask else ()
                dead.append(DeadUnits(site.info.name, len(indices), units, indices, site.mask_steps,
                                      close_relu_window))
                if close_relu_window:
                    site.mask.zero_()
                    site.mask_steps = 0
            if close_relu_window:
                self.relu_window_start = self.step + 1
        stats = [self._row_stats(row, host[r * width : (r + 1) * width], losses[r]) for r, row in enumerate(rows)]
        bad_steps = [row.step for r, row in enumerate(rows)
                     if not _all_finite(host[r * width:(r + 1) * width], row.columns)
                     or (row.loss and not math.isfinite(losses[r]))]
        return Readback(stats, bad_steps[0] if bad_steps else None, len(bad_steps), dead)

    def _all_reduce(self, packed: torch.Tensor, n: int, width: int) -> torch.Tensor:
        """The one collective of a check (see :mod:`nnlint.runtime.distributed`): norms as a
        root mean square over ranks (in float64, whose squares do not overflow), everything
        else as a mean; the timings ride along (appended) so that adapt() decides alike."""
        from nnlint.runtime.distributed import all_reduce_mean

        squared = torch.tensor([key[0] in NORM_KINDS for key in self.column_keys[:width]], device=packed.device)
        clocks = [self._clock[key] for key in CLOCK_KEYS]
        timing = torch.tensor([math.nan if c is None else c for c in clocks], dtype=torch.float64,
                              device=packed.device)
        wide = torch.cat([packed.to(torch.float64), timing])
        block = wide[: n * width].view(n, width)
        block.copy_(torch.where(squared, block * block, block))
        all_reduce_mean(wide, self.world_size)
        block.copy_(torch.where(squared, block.sqrt(), block))
        return wide  # the timings last

    def _column_meta(self, column: int) -> tuple[int, int, str, str]:
        """(kind, index, site or layer name, parameter name) of a column, worked out once."""
        meta = self._meta_cache.get(column)
        if meta is None:
            kind, index = self.column_keys[column]
            if kind in (OUT, INP, SAT):
                meta = (kind, index, self.sites[index].info.name, "")
            elif kind in (GRAD, WEIGHT, UPDATE, HELD):
                meta = (kind, index, self.param_layer[index], self.param_names[index])
            else:
                meta = (kind, index, "", "")
            self._meta_cache[column] = meta
        return meta

    def _row_stats(self, row: _Row, values: list[float], loss: float) -> StepStats:
        stats = StepStats(step=row.step, loss=loss if row.loss else None, stepped=row.stepped)
        if not row.columns:  # a step spread by the budget: its loss only
            return stats
        squares: dict[int, dict[str, float]] = {GRAD: {}, WEIGHT: {}, UPDATE: {}, HELD: {}}
        meta = self._column_meta
        for column in row.columns:
            kind, index, name, param = meta(column)
            value = values[column]
            if kind >= GRAD and kind != CLIP and kind != SKIP:  # GRAD, WEIGHT, UPDATE, HELD
                if kind == GRAD and not math.isfinite(value):
                    stats.nonfinite_grads.append(param)
                target = squares[kind]
                target[name] = target.get(name, 0.0) + value * value
            elif kind == OUT:
                numel = row.numel.get(index, self.sites[index].numel) or 1
                stats.act_rms[name] = value / math.sqrt(numel)
            elif kind == INP:
                stats.input_finite[name] = math.isfinite(value)
            elif kind == SAT:
                numel = row.numel.get(index, self.sites[index].numel) or 1
                stats.saturated[name] = value / numel
            elif kind == CLIP:
                stats.clipped = value > 0.5
            elif kind == SKIP:
                stats.skipped = value > 0.5
        stats.grad_norm = {k: math.sqrt(v) for k, v in squares[GRAD].items()}
        stats.weight_norm = {k: math.sqrt(v) for k, v in squares[WEIGHT].items()}
        stats.update_norm = {k: math.sqrt(v) for k, v in squares[UPDATE].items()}
        stats.unapplied_grad_norm = {k: math.sqrt(v) for k, v in squares[HELD].items()}
        return stats

    # -- layout for detectors ---------------------------------------------------

    def layer_infos(self) -> list[LayerInfo]:
        # Worked out again only when the forward order grew (the layers are fixed at attach;
        # their order is learnt on the steps that take module outputs): a read runs this.
        if self._layer_infos is not None and self._layer_infos[0] == len(self.layer_order):
            return list(self._layer_infos[1])
        names = list(self.layer_modules)
        ordered = sorted(names, key=lambda n: (self.layer_order.get(n, len(names) + names.index(n))))
        infos = []
        for position, name in enumerate(ordered):
            module = self.layer_modules[name]
            shape: tuple[int, ...] = ()
            kind = type(module).__name__ if module is not None else "Parameter"
            if module is not None:
                weight = getattr(module, "weight", None)
                if isinstance(weight, torch.Tensor):
                    shape = tuple(weight.shape)
            infos.append(LayerInfo(name=name, kind=kind, weight_shape=shape, order=position))
        self._layer_infos = (len(self.layer_order), infos)
        return list(infos)

    def site_infos(self) -> list[SiteInfo]:
        return [s.info for s in self.sites]

    def relu_feeder(self, site_name: str) -> tuple[Optional[str], int]:
        for site in self.sites:
            if site.info.name == site_name:
                return site.feeder, site.unit_dim
        return None, -1

    # -- state ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "relu_window_start": self.relu_window_start,
            "relu_masks": {
                s.info.name: s.mask.detach().cpu().clone() for s in self.sites if s.mask is not None
            },
            "relu_mask_steps": {s.info.name: s.mask_steps for s in self.sites if s.mask is not None},
            "clip_level": None if self._clip_level is None else self._clip_level.detach().cpu().clone(),
            "clip_seen": None if self._clip_seen is None else self._clip_seen.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", -1))
        self.relu_window_start = int(state.get("relu_window_start", 0))
        device = self.params[0].device if self.params else torch.device("cpu")
        if state.get("clip_level") is not None:
            self._clip_level = state["clip_level"].to(device)
            self._clip_seen = state["clip_seen"].to(device)
        # Masks are restored when their sites are seen again (sites are created lazily).
        self._restore_masks = dict(state.get("relu_masks", {}))
        self._restore_mask_steps = dict(state.get("relu_mask_steps", {}))

