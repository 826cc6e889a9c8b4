"""The monitor under ``torch.distributed`` (DDP): every rank reads the same statistics.

At each check the collector packs everything it reads back (the rows, the losses, the
ReLU activity masks, its own timings) into one tensor and all-reduces it: one small
collective per check, none per step. Norms are combined as the root mean square over
ranks (exact for gradients, which DDP has already averaged), counts and losses as the
mean, activity masks so that a unit active on any rank is active. The detectors then see
the same window on every rank, so every host-side decision (a finding, a rollback, a
learning-rate back-off, a re-initialisation, a stop) is the same on every rank, and the
replicas never diverge. The per-step skip of a non-finite step is decided from the
gradients after DDP's all-reduce (a NaN on one rank is a NaN on all) and from the weights
after the step, which are the same on every rank.

A check is a collective: every rank must run the same steps (as DDP itself requires),
and ``mon.check()`` / ``mon.state_dict()`` must be called on every rank or on none.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch


def rank_and_size() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when none is initialised."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def all_reduce_mean(tensor: torch.Tensor, world_size: int) -> None:
    """In place: the mean over ranks (a NaN or Inf on any rank stays one)."""
    torch.distributed.all_reduce(tensor)
    tensor.div_(world_size)


@contextlib.contextmanager
def same_random_numbers(model: Any, seed: int) -> Iterator[None]:
    """Random numbers drawn inside are the same on every rank (a re-initialisation must
    not make the replicas differ), and the caller's random streams are left as they were."""
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
