"""The device side of the runtime monitor: hooks that keep every statistic on the device.

Per training step the hooks produce a handful of 0-d float32 tensors (norms, counts);
at the end of the step they are stacked into one row of a preallocated ring buffer with
a single ``index_copy_``. Nothing is read back until :meth:`Collector.read`, which
concatenates the rows, the sticky non-finite flag and the ReLU activity masks and copies
them to the host in one transfer. No ``.item()``, ``bool(tensor)`` or ``.tolist()`` on a
device tensor runs in a hook.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from nnlint.runtime.detector import DeadUnits, LayerInfo, SiteInfo, StepStats

RELU_TYPES: tuple[type, ...] = (nn.ReLU, nn.ReLU6)
SIGMOID_TYPES: tuple[type, ...] = (nn.Sigmoid,)
TANH_TYPES: tuple[type, ...] = (nn.Tanh,)
MATMUL_TYPES: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
SATURATION_EPS = 0.01  # a sigmoid output within 0.01 of 0 or 1 (tanh: of +-1) is saturated

# Kinds of statistics in a row (the row's columns are assigned lazily, first come first served).
# HELD: gradient norms of an iteration whose optimizer step did not run (GradScaler skipped
# it, or a gradient-accumulation micro-step), read from the grads the backward produced.
OUT, INP, SAT, GRAD, WEIGHT, UPDATE, CLIP, SKIP, HELD = range(9)


def _float_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return []


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
    return "other"


@dataclass
class _Site:
    info: SiteInfo
    numel: int = 1
    unit_dim: int = -1
    mask: Optional[torch.Tensor] = None  # ReLU sites: units active at least once this window
    feeder: Optional[str] = None  # the parametrised module that ran just before (ReLU sites)


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
        activation_warmup: int = 8,
        relu_window: int,
        fix_skip: bool,
        fix_clip: bool,
        clip_factor: float,
        clip_warmup: int,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.capacity = max(1, int(check_every))
        self.sample_every = max(1, int(sample_every))
        # Module-output statistics cost one read of every activation: on a GPU that is the
        # monitor's largest cost. activation_every > 1 takes them every k-th step only
        # (always during the first activation_warmup steps, which NR203 judges); loss,
        # gradient and weight checks stay on every step.
        self.activation_every = max(1, int(activation_every))
        self.activation_warmup = max(0, int(activation_warmup))
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
        self.layer_order: dict[str, int] = {}  # forward order of layers (first call)

        self.sites: list[_Site] = []
        self.site_slot: dict[tuple[int, int], int] = {}
        self.columns: dict[tuple[int, int], int] = {}  # (kind, index) -> column
        self.column_keys: list[tuple[int, int]] = []
        self.device: Optional[torch.device] = None
        self.buf: Optional[torch.Tensor] = None
        self.loss_buf: Optional[torch.Tensor] = None
        self.nonfinite_first: Optional[torch.Tensor] = None
        self.nonfinite_count: Optional[torch.Tensor] = None
        self.index_cache: dict[tuple[int, ...], torch.Tensor] = {}
        self.rows: list[_Row] = []
        self.handles: list[Any] = []

        self.step = -1  # index of the current iteration (0-based); -1 before the first
        self.active = False
        self.relu_window_start = 0
        self._calls: dict[int, int] = {}
        self._pend_cols: list[int] = []
        self._pend_vals: list[torch.Tensor] = []
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
        self._restore_masks: dict[str, torch.Tensor] = {}

    # -- attach / detach ------------------------------------------------------

    def attach(self) -> None:
        try:
            self.handles.append(self.model.register_forward_pre_hook(self._on_root_forward))
            for module in self.model.modules():
                if module is self.model and any(True for _ in module.children()):
                    continue
                if any(True for _ in module.children()):
                    continue
                self.handles.append(module.register_forward_hook(self._on_forward))
            for param in self.params:
                if hasattr(param, "register_post_accumulate_grad_hook"):
                    self.handles.append(param.register_post_accumulate_grad_hook(self._on_grad))
            if self.optimizer is not None:
                self.handles.append(self.optimizer.register_step_pre_hook(self._on_pre_step))
                self.handles.append(self.optimizer.register_step_post_hook(self._on_post_step))
        except BaseException:
            self.detach()
            raise

    def detach(self) -> None:
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

    def hook_module(self, module: nn.Module) -> None:
        """Hook a module added after attach (the LeakyReLU swap remedy)."""
        self.handles.append(module.register_forward_hook(self._on_forward))

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
        self._pend_cols.append(self._column(kind, index))
        self._pend_vals.append(value)

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
            self.nonfinite_first = torch.full((), -1, dtype=torch.int64, device=self.device)
            self.nonfinite_count = torch.zeros((), dtype=torch.int64, device=self.device)

    def _new_site(self, module: nn.Module, call: int, out: torch.Tensor) -> int:
        name = self.module_names.get(id(module), "?")
        slot = len(self.sites)
        kind = _site_kind(module)
        feeder = self._last_param_module if kind == "relu" else None
        info = SiteInfo(
            name=name if call == 0 else f"{name}#{call}",
            module=name,
            kind=kind,
            call=call,
            order=slot,
            feeder=feeder,
        )
        site = _Site(info=info, feeder=feeder)
        if kind == "relu":
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
        self.site_slot[(id(module), call)] = slot
        return slot

    # -- hooks ------------------------------------------------------------------

    def _on_root_forward(self, module: nn.Module, inputs: Any) -> None:
        if not (module.training and torch.is_grad_enabled()):
            self.active = False
            return
        self.commit()
        if self.due and self.after_commit is not None:
            self.after_commit()
        self.step += 1
        self.active = True
        self._act_step = self.step < self.activation_warmup or self.step % self.activation_every == 0
        self._calls.clear()
        self._stepped = False
        self._loss_seen = False
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
        slot = self.site_slot.get((key, call))
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
        if kind == "relu":
            self._relu_activity(site, out)
        elif kind == "sigmoid":
            saturated = (out - 0.5).abs_() > (0.5 - SATURATION_EPS)
            self._put(SAT, slot, saturated.sum(dtype=torch.float32))
        elif kind == "tanh":
            saturated = out.abs() > (1.0 - SATURATION_EPS)
            self._put(SAT, slot, saturated.sum(dtype=torch.float32))

    def _relu_activity(self, site: _Site, out: torch.Tensor) -> None:
        if out.dim() == 0:
            return
        unit_dim = site.unit_dim % out.dim()
        units = out.shape[unit_dim]
        if site.mask is None or site.mask.numel() != units or site.mask.device != out.device:
            saved = self._restore_masks.pop(site.info.name, None)
            if saved is not None and saved.numel() == units:
                site.mask = saved.to(device=out.device, dtype=torch.bool)
            else:
                site.mask = torch.zeros(units, dtype=torch.bool, device=out.device)
        if out.dim() == 1:
            active = out > 0
        else:
            dims = tuple(d for d in range(out.dim()) if d != unit_dim)
            active = out.amax(dim=dims) > 0
        site.mask.logical_or_(active)

    def _on_grad(self, param: torch.Tensor) -> None:
        self.backward_seen += 1
        if self.active and param.grad is not None and not param.grad.is_sparse:
            self._held.append((self.param_index[id(param)], param.grad))

    def _on_pre_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self.active:
            return
        self._stepped = True
        self._held = []
        grads: list[torch.Tensor] = []
        index: list[int] = []
        for i, param in enumerate(self.params):
            grad = param.grad
            if grad is not None and not grad.is_sparse:
                grads.append(grad)
                index.append(i)
        if not grads:
            return
        norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        for i, norm in zip(index, norms):
            self._put(GRAD, i, norm)
        if self.fix_skip or self.fix_clip:
            self._fix_gradients(grads, norms)
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

    def _fix_gradients(self, grads: list[torch.Tensor], norms: list[torch.Tensor]) -> None:
        stacked = torch.stack([n.to(grads[0].device) for n in norms]) if len(
            {g.device for g in grads}
        ) > 1 else torch.stack(norms)
        finite = torch.isfinite(stacked).all()
        if self.fix_skip:
            bad = finite.logical_not()
            # Zero the non-finite gradients so the optimizer's state stays finite, then
            # restore the weights from the snapshot after the step (no host sync: the
            # decision is a device tensor used as a 0/1 factor).
            for grad in grads:
                torch.nan_to_num_(grad, nan=0.0, posinf=0.0, neginf=0.0)
            torch._foreach_mul_(grads, finite.to(torch.float32))
            if self._fix_snapshot is None:
                self._fix_snapshot = [p.detach().clone() for p in self.params]
            else:
                torch._foreach_copy_(self._fix_snapshot, [p.detach() for p in self.params])
            self._skip_flag = bad
            self._put(SKIP, 0, bad.to(torch.float32))
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
        if not self.active:
            return
        if self.fix_skip and self._skip_flag is not None and self._fix_snapshot is not None:
            keep = self._skip_flag.logical_not().to(torch.float32)
            bad = self._skip_flag.to(torch.float32)
            params = [p.detach() for p in self.params]
            with torch.no_grad():
                torch._foreach_mul_(params, keep)
                torch._foreach_add_(params, torch._foreach_mul(self._fix_snapshot, bad))
            self._skip_flag = None
        if self._update_snapshot is not None:
            current = [self.params[i].detach() for i in self._update_index]
            updates = self._update_snapshot
            torch._foreach_sub_(updates, current)  # in place: before - after, same norm
            for i, norm in zip(self._update_index, torch._foreach_norm(updates, 2, dtype=torch.float32)):
                self._put(UPDATE, i, norm)
            for i, norm in zip(self._update_index, torch._foreach_norm(current, 2, dtype=torch.float32)):
                self._put(WEIGHT, i, norm)
            self._update_snapshot = None

    def observe_loss(self, loss: Any) -> None:
        if self.step < 0:
            return
        if isinstance(loss, torch.Tensor):
            value = loss.detach().reshape(-1)[:1].to(torch.float32)
            self._ensure_buffers(loss.device if self.device is None else self.device)
            assert self.loss_buf is not None
            row = len(self.rows) if len(self.rows) < self.capacity else self.capacity - 1
            self.loss_buf[row : row + 1].copy_(value, non_blocking=True)
        else:
            self._ensure_buffers(self.device or torch.device("cpu"))
            assert self.loss_buf is not None
            row = len(self.rows) if len(self.rows) < self.capacity else self.capacity - 1
            self.loss_buf[row] = float(loss)
        self._loss_seen = True

    # -- commit and read back ---------------------------------------------------

    def commit(self) -> None:
        """Close the current iteration: stack its statistics into one buffer row."""
        if self.step < 0 or not self.active:
            return
        self.active = False
        if self._held and not self._stepped:
            # The backward ran but no optimizer step followed (GradScaler found inf and
            # skipped it, or gradient accumulation): keep the norms so an overflow is counted.
            # Without an optimizer there are no step hooks: these are the step's gradients.
            kind = HELD if self.optimizer is not None else GRAD
            index = [i for i, _ in self._held]
            norms = torch._foreach_norm([g for _, g in self._held], 2, dtype=torch.float32)
            for i, norm in zip(index, norms):
                self._put(kind, i, norm)
            self._stepped = self.optimizer is None
        self._held = []
        if not self._pend_vals and not self._loss_seen:
            return
        columns = tuple(self._pend_cols)
        values = self._pend_vals
        self._pend_cols, self._pend_vals = [], []
        device = values[0].device if values else (self.device or torch.device("cpu"))
        self._ensure_buffers(device)
        assert self.buf is not None and self.nonfinite_first is not None and self.nonfinite_count is not None
        row = len(self.rows)
        if row >= self.capacity:  # caller forgot to read: keep the newest rows
            return
        if values:
            if any(v.device != self.device for v in values):
                values = [v.to(self.device) for v in values]
            stacked = torch.stack(values)
            index = self.index_cache.get(columns)
            if index is None:
                index = torch.tensor(columns, dtype=torch.long, device=self.device)
                self.index_cache[columns] = index
            self.buf[row].index_copy_(0, index, stacked)
            bad = torch.isfinite(stacked).all().logical_not()
            self.nonfinite_count.add_(bad)
            self.nonfinite_first.copy_(
                torch.where(bad & (self.nonfinite_first < 0), self.step, self.nonfinite_first)
            )
        self.rows.append(_Row(self.step, columns, self._stepped, self._loss_seen, dict(self._numel)))
        self._numel = {}
        self._last_out = None
        self._last_norm = None

    @property
    def due(self) -> bool:
        return len(self.rows) >= self.capacity

    def relu_window_due(self) -> bool:
        return self.step + 1 - self.relu_window_start >= self.relu_window and any(
            s.mask is not None for s in self.sites
        )

    def read(self, close_relu_window: bool = False) -> Readback:
        """Copy everything since the previous read to the host, in one transfer."""
        rows = self.rows
        self.rows = []
        if self.buf is None or self.loss_buf is None:
            return Readback([], None, 0, None)
        assert self.nonfinite_first is not None and self.nonfinite_count is not None
        n = len(rows)
        width = len(self.column_keys)
        relu_sites = [s for s in self.sites if s.mask is not None] if close_relu_window else []
        parts = [
            self.buf[:n, :width].reshape(-1),
            self.loss_buf[:n],
            self.nonfinite_first.to(torch.float32).reshape(1),
            self.nonfinite_count.to(torch.float32).reshape(1),
        ]
        parts.extend(s.mask.to(torch.float32).to(self.device) for s in relu_sites if s.mask is not None)
        host = torch.cat(parts).cpu().tolist()  # the one device->host transfer per check
        offset = n * width
        losses = host[offset : offset + n]
        first_bad = int(host[offset + n])
        bad_count = int(host[offset + n + 1])
        offset += n + 2
        self.nonfinite_first.fill_(-1)
        self.nonfinite_count.zero_()
        dead: Optional[list[DeadUnits]] = None
        if close_relu_window:
            dead = []
            steps = self.step + 1 - self.relu_window_start
            for site in relu_sites:
                assert site.mask is not None
                units = site.mask.numel()
                mask = host[offset : offset + units]
                offset += units
                indices = tuple(i for i, active in enumerate(mask) if active == 0.0)
                dead.append(DeadUnits(site.info.name, len(indices), units, indices, steps))
                site.mask.zero_()
            self.relu_window_start = self.step + 1
        stats = [self._row_stats(row, host[r * width : (r + 1) * width], losses[r]) for r, row in enumerate(rows)]
        return Readback(stats, first_bad if first_bad >= 0 else None, bad_count, dead)

    def _row_stats(self, row: _Row, values: list[float], loss: float) -> StepStats:
        stats = StepStats(step=row.step, loss=loss if row.loss else None, stepped=row.stepped)
        grad_sq: dict[str, float] = {}
        weight_sq: dict[str, float] = {}
        update_sq: dict[str, float] = {}
        held_sq: dict[str, float] = {}
        for column in row.columns:
            kind, index = self.column_keys[column]
            value = values[column]
            if kind == OUT:
                site = self.sites[index]
                numel = row.numel.get(index, site.numel) or 1
                stats.act_rms[site.info.name] = value / math.sqrt(numel)
            elif kind == INP:
                stats.input_finite[self.sites[index].info.name] = math.isfinite(value)
            elif kind == SAT:
                site = self.sites[index]
                numel = row.numel.get(index, site.numel) or 1
                stats.saturated[site.info.name] = value / numel
            elif kind in (GRAD, WEIGHT, UPDATE, HELD):
                target = {GRAD: grad_sq, WEIGHT: weight_sq, UPDATE: update_sq, HELD: held_sq}[kind]
                layer = self.param_layer[index]
                target[layer] = target.get(layer, 0.0) + value * value
            elif kind == CLIP:
                stats.clipped = value > 0.5
            elif kind == SKIP:
                stats.skipped = value > 0.5
        stats.grad_norm = {k: math.sqrt(v) for k, v in grad_sq.items()}
        stats.weight_norm = {k: math.sqrt(v) for k, v in weight_sq.items()}
        stats.update_norm = {k: math.sqrt(v) for k, v in update_sq.items()}
        stats.unapplied_grad_norm = {k: math.sqrt(v) for k, v in held_sq.items()}
        return stats

    # -- layout for detectors ---------------------------------------------------

    def layer_infos(self) -> list[LayerInfo]:
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
        return infos

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

