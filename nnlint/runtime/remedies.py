"""Remedies the monitor applies in fix mode, decided on the host at a check.

The per-step remedies (gradient clipping for NR101, skipping a non-finite step for
NR301) run on the device inside the optimizer hooks (see :mod:`nnlint.runtime.stats`);
the ones here run once, when a detector asks for them.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

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
