"""Small models and a training loop shared by the runtime tests."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn


def mlp(width: int = 32, depth: int = 3, inputs: int = 16, outputs: int = 1) -> nn.Module:
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)


def standard_normal_relu_net(depth: int = 6, width: int = 64) -> nn.Module:
    """A ReLU MLP with N(0, 1) weights: activations grow layer after layer (the bad-init fault)."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        nn.init.normal_(linear.weight, std=1.0)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def regression_batch(batch: int = 32, inputs: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, inputs)
    return x, x[:, :1] * 0.5 + x[:, 1:2].sin()


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    steps: int,
    batch: Callable[[], tuple[torch.Tensor, torch.Tensor]] = regression_batch,
    mon: Optional[Any] = None,
    loss_fn: Callable[..., torch.Tensor] = nn.functional.mse_loss,
) -> list[float]:
    losses = []
    for _ in range(steps):
        x, y = batch()
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if mon is not None:
            mon.observe_loss(loss)
        losses.append(loss.detach())
    return [float(v) for v in losses]


def hook_count(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    count = len(optimizer._optimizer_step_pre_hooks) + len(optimizer._optimizer_step_post_hooks)
    for module in model.modules():
        count += len(module._forward_hooks) + len(module._forward_pre_hooks)
        count += len(module._backward_hooks) + len(getattr(module, "_backward_pre_hooks", {}))
    for param in model.parameters():
        hooks = getattr(param, "_post_accumulate_grad_hooks", None)
        count += len(hooks) if hooks else 0
    return count
