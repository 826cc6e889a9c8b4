"""Remedies the monitor applies in fix mode, decided on the host at a check.

The per-step remedies (``clip-grad-norm``, ``skip-step``) run on the device inside the
optimizer hooks (see :mod:`nnlint.runtime.stats`); the ones in :data:`REMEDIES` run once,
when a detector that declares them in its ``remedies`` asks (``ctx.remedy(action, ...)``).
Adding a remedy is one function here and one entry in :data:`REMEDIES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn


def _modules(model: nn.Module) -> dict[str, nn.Module]:
    return dict(model.named_modules())


def _forget_optimizer_state(optimizer: Optional[torch.optim.Optimizer], params: Sequence[torch.Tensor]) -> None:
    if optimizer is None:
        return
    for param in params:
        optimizer.state.pop(param, None)


def _nonlinearity_after(kind: str) -> str:
    return {"sigmoid": "sigmoid", "tanh": "tanh"}.get(kind, "relu")


def reinit_layers(
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    names: Sequence[str],
    nonlinearity: str = "relu",
) -> list[str]:
    """Kaiming/He re-initialisation of Linear/Conv layers (biases zeroed); returns those done."""
    modules = _modules(model)
    done: list[str] = []
    with torch.no_grad():
        for name in names:
            module = modules.get(name)
            weight = getattr(module, "weight", None)
            if module is None or not isinstance(weight, torch.Tensor) or weight.dim() < 2:
                continue
            if nonlinearity in ("sigmoid", "tanh"):
                nn.init.xavier_normal_(weight, gain=nn.init.calculate_gain(nonlinearity))
            else:
                nn.init.kaiming_normal_(weight, nonlinearity="relu")
            bias = getattr(module, "bias", None)
            params = [weight]
            if isinstance(bias, torch.Tensor):
                bias.zero_()
                params.append(bias)
            _forget_optimizer_state(optimizer, params)
            done.append(name)
    return done


def reinit_units(
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    layer_name: str,
    units: Sequence[int],
) -> bool:
    """Re-initialise the output units (rows / output channels) of the layer feeding dead ReLUs."""
    module = _modules(model).get(layer_name)
    if module is None or not units:
        return False
    index = torch.tensor(list(units), dtype=torch.long)
    with torch.no_grad():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.bias is None:
                return False
            index = index.to(module.bias.device)
            module.bias.index_fill_(0, index, 0.0)
            if module.weight is not None:
                module.weight.index_fill_(0, index, 1.0)
            params = [p for p in (module.weight, module.bias) if p is not None]
        else:
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight.shape[0] <= max(units):
                return False
            index = index.to(weight.device)
            fan_in = weight[0].numel()
            std = math.sqrt(2.0 / fan_in)
            fresh = torch.randn((len(units), *weight.shape[1:]), device=weight.device, dtype=weight.dtype) * std
            weight.index_copy_(0, index, fresh)
            params = [weight]
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.index_fill_(0, index, 0.0)
                params.append(bias)
        if optimizer is not None:
            for param in params:
                for value in optimizer.state.get(param, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value.index_fill_(0, index.to(value.device), 0.0)
    return True


def swap_to_leaky_relu(model: nn.Module, module_name: str, slope: float = 0.01) -> Optional[nn.Module]:
    """Replace ``nn.ReLU`` at ``module_name`` with ``nn.LeakyReLU``; returns the new module."""
    if not module_name:
        return None
    parent_name, _, attr = module_name.rpartition(".")
    parent = _modules(model).get(parent_name)
    old = getattr(parent, attr, None) if parent is not None else None
    if not isinstance(old, nn.ReLU):
        return None
    new = nn.LeakyReLU(slope, inplace=old.inplace)
    setattr(parent, attr, new)
    return new


def halve_learning_rate(optimizer: Optional[torch.optim.Optimizer]) -> list[Any]:
    """Halve every param group's learning rate; returns the new rates."""
    if optimizer is None:
        return []
    rates = []
    for group in optimizer.param_groups:
        lr = group.get("lr")
        if isinstance(lr, torch.Tensor):
            lr.mul_(0.5)
            rates.append("tensor")
        elif isinstance(lr, (int, float)):
            group["lr"] = lr * 0.5
            rates.append(group["lr"])
    return rates


def scale_learning_rate(optimizer: Optional[torch.optim.Optimizer], factor: float) -> list[float]:
    """Multiply every param group's learning rate by ``factor``; returns the new rates."""
    if optimizer is None:
        return []
    rates: list[float] = []
    for group in optimizer.param_groups:
        lr = group.get("lr")
        if isinstance(lr, torch.Tensor):
            lr.mul_(factor)
            rates.append(float(lr))  # a host-side remedy: applied at a check, which syncs anyway
        elif isinstance(lr, (int, float)):
            group["lr"] = lr * factor
            rates.append(group["lr"])
    return rates


def learning_rates(optimizer: Optional[torch.optim.Optimizer]) -> list[float]:
    if optimizer is None:
        return []
    rates = []
    for group in optimizer.param_groups:
        lr = group.get("lr")
        if isinstance(lr, (int, float, torch.Tensor)):
            rates.append(float(lr))
    return rates


class Snapshot:
    """The last good weights, buffers and optimizer state, kept on their device.

    Taken at a check whose window was healthy (a device-to-device copy into storage
    allocated once: no host sync, no allocation per take) and restored when training
    diverges. It costs one copy of the parameters, of the floating buffers (BatchNorm
    statistics) and of the optimizer's state: with Adam three times the parameters' memory.
    """

    def __init__(self, model: nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> None:
        self.model = model
        self.optimizer = optimizer
        self.step = -1
        self._live: list[torch.Tensor] = []
        self._store: list[torch.Tensor] = []
        self._opt_state: dict[int, dict[str, Any]] = {}

    def _tensors(self) -> list[torch.Tensor]:
        seen: set[int] = set()
        tensors: list[torch.Tensor] = []
        groups = self.optimizer.param_groups if self.optimizer is not None else []
        candidates = [*self.model.parameters(), *(p for g in groups for p in g["params"]),
                      *self.model.buffers()]
        for tensor in candidates:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                tensors.append(tensor)
        return tensors

    def _optimizer_params(self) -> list[torch.Tensor]:
        if self.optimizer is None:
            return []
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    @property
    def nbytes(self) -> int:
        total = sum(t.numel() * t.element_size() for t in self._store)
        for state in self._opt_state.values():
            total += sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor))
        return total

    def take(self, step: int) -> None:
        live = [t.detach() for t in self._tensors()]
        if len(live) != len(self._store) or any(
            a.shape != b.shape or a.dtype != b.dtype or a.device != b.device for a, b in zip(live, self._store)
        ):
            self._store = [t.clone() for t in live]
        elif live:
            torch._foreach_copy_(self._store, live)
        self._live = live
        if self.optimizer is not None:
            saved: dict[int, dict[str, Any]] = {}
            for index, param in enumerate(self._optimizer_params()):
                state = self.optimizer.state.get(param)
                if not state:
                    continue
                previous = self._opt_state.get(index, {})
                copy: dict[str, Any] = {}
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        old = previous.get(key)
                        if isinstance(old, torch.Tensor) and old.shape == value.shape \
                                and old.dtype == value.dtype and old.device == value.device \
                                and old.layout == value.layout == torch.strided:
                            old.copy_(value)
                            copy[key] = old
                        else:
                            copy[key] = value.detach().clone()
                    else:
                        copy[key] = _copy_value(value)
                saved[index] = copy
            self._opt_state = saved
        self.step = step

    def restore(self) -> bool:
        """Put the saved tensors back (in place) and the saved optimizer state; False if none."""
        if self.step < 0:
            return False
        with torch.no_grad():
            if self._live:
                torch._foreach_copy_(self._live, self._store)
        if self.optimizer is not None:
            for index, param in enumerate(self._optimizer_params()):
                saved = self._opt_state.get(index)
                if saved is None:
                    self.optimizer.state.pop(param, None)
                    continue
                self.optimizer.state[param] = {
                    key: value.clone() if isinstance(value, torch.Tensor) else _copy_value(value)
                    for key, value in saved.items()
                }
        return True


def _copy_value(value: Any) -> Any:
    import copy

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_value(v) for v in value)
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    return copy.copy(value)


@dataclass
class Target:
    """What a host-side remedy may act on."""

    model: nn.Module
    optimizer: Optional[torch.optim.Optimizer]
    collector: Any  # nnlint.runtime.stats.Collector
    snapshot: Optional[Snapshot]
    stop: Callable[[str], bool]  # stop the run with the last finding of this code
    recheck_after: int  # steps to the next check after a change that must be judged soon
    rolled_back: bool = False


# (action recorded in mon.fixes, module, detail)
Applied = tuple[str, Optional[str], str]


def _reinit_layers_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    done = reinit_layers(target.model, target.optimizer, params.get("layers", ()), params.get("nonlinearity", "relu"))
    nonlinearity = params.get("nonlinearity", "relu")
    action = "xavier-reinit" if nonlinearity in ("sigmoid", "tanh") else "kaiming-reinit"
    return [(action, name, "") for name in done] or None


def _reinit_units_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    layer, units = params.get("layer"), params.get("units", ())
    if layer is None or not reinit_units(target.model, target.optimizer, layer, units):
        return None
    return [("reinit-dead-units", layer, f"{len(units)} units feeding {module}")]


def _swap_leaky_relu_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    new = swap_to_leaky_relu(target.model, module or "")
    if new is None:
        return None
    if target.collector is not None:
        target.collector.hook_module(new)
        target.collector.module_names[id(new)] = module or ""
    return [("swap-leaky-relu", module, "")]


def _halve_lr_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    rates = halve_learning_rate(target.optimizer)
    return [("halve-lr", None, f"new lr {rates}")] if rates else None


def _rollback_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    """Restore the last good snapshot and multiply the learning rate by ``lr_factor``."""
    snapshot = target.snapshot
    if snapshot is None or not snapshot.restore():
        return None
    factor = float(params.get("lr_factor", 0.5))
    rates = scale_learning_rate(target.optimizer, factor)
    target.rolled_back = True
    if target.collector is not None:
        target.collector.first_check = target.recheck_after  # judge the new rate soon
    return [("restore-snapshot", None, f"weights, buffers and optimizer state of step {snapshot.step}"),
            ("halve-lr" if factor == 0.5 else "scale-lr", None, f"new lr {[float(f'{r:.3g}') for r in rates]}")]


def _stop_remedy(target: Target, code: str, module: Optional[str], params: dict) -> Optional[list[Applied]]:
    return [] if target.stop(code) else None


REMEDIES: dict[str, Callable[[Target, str, Optional[str], dict], Optional[list[Applied]]]] = {
    "reinit-layers": _reinit_layers_remedy,
    "reinit-units": _reinit_units_remedy,
    "swap-leaky-relu": _swap_leaky_relu_remedy,
    "halve-lr": _halve_lr_remedy,
    "rollback": _rollback_remedy,
    "stop-training": _stop_remedy,
}
