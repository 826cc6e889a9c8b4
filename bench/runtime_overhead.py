"""Cost of the runtime monitor: python bench/runtime_overhead.py [--check-every N]

Times a training step with and without ``nnlint.monitor`` (all default detectors and the
default overhead budget, which spreads module-output statistics and gradient norms over
steps as their measured cost demands; read back every ``--check-every`` steps, default
the monitor's own) in one run, interleaving blocks of plain and monitored steps
on two identical copies of the model so that drift in the machine's speed hits both
alike, and prints the median over rounds of the monitored/plain block-time ratio. A CPU
block is 50 steps, a whole period of the default check (25) and sample (10) intervals,
so each block pays its share of read-backs and update-norm samples.

Models: a small (8 x 128, batch 64) and a medium (3 x 1024, batch 256) MLP on the CPU
(always); on a CUDA GPU a GPT-2-small style decoder (124M,
bf16 autocast, batch 8 x 1024) and ResNet-50 (bf16 autocast, batch 64, 224 x 224), both
defined here (no torchvision, no downloaded weights). Without CUDA the GPU models are
skipped with a message.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nnlint  # noqa: E402


# -- models -------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.act = nn.GELU()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.out(self.act(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int = 50304, ctx: int = 1024, dim: int = 768, layers: int = 12, heads: int = 12):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(ctx, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied, as in GPT-2

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)  # reused three times, as in torchvision
        self.down: Optional[nn.Module] = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def resnet50(classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                               nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def small_mlp() -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(32, 128), nn.ReLU()]
    for _ in range(7):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(128, 10))


def cpu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))


# -- timing -------------------------------------------------------------------

def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Callable, amp: Optional[torch.dtype],
              device: str) -> Callable[[Optional[object]], None]:
    x, y = batch()

    def step(mon: Optional[object]) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=amp, enabled=amp is not None):
            out = model(x)
            loss = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        optimizer.step()
        if mon is not None:
            mon.observe_loss(loss)
    return step


def measure(name: str, build: Callable[[], nn.Module], batch: Callable, device: str, amp: Optional[torch.dtype],
            block: int, rounds: int, check_every: Optional[int], activation_every: int = 1) -> float:
    torch.manual_seed(0)
    plain_model = build().to(device)
    watched_model = copy.deepcopy(plain_model)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-4)
    watched_opt = torch.optim.AdamW(watched_model.parameters(), lr=1e-4)
    plain = make_step(plain_model, plain_opt, batch, amp, device)
    watched = make_step(watched_model, watched_opt, batch, amp, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    kwargs = {"use_config": False, "sink": lambda f: None}
    if check_every:
        kwargs["check_every"] = check_every
    kwargs["activation_every"] = activation_every
    plain_times, watched_times = [], []
    plain_cpu, watched_cpu = [], []  # process CPU time: blind to time lost to other jobs
    with nnlint.monitor(watched_model, watched_opt, **kwargs) as mon:
        for _ in range(3):  # warm-up (allocator, kernels, the monitor's buffers)
            plain(None)
            watched(mon)
        sync()
        for _ in range(rounds):
            for fn, arg, times, cpu in ((plain, None, plain_times, plain_cpu),
                                        (watched, mon, watched_times, watched_cpu)):
                sync()
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(block):
                    fn(arg)
                sync()
                times.append((time.perf_counter() - start) / block)
                cpu.append((time.process_time() - start_cpu) / block)
    p, w = statistics.median(plain_times), statistics.median(watched_times)
    # Each round times a plain block and then a monitored one: the ratio within a round
    # cancels most of the drift in the machine's speed (other jobs on a shared box).
    paired = statistics.median(b / a for a, b in zip(plain_times, watched_times))
    cpu_text = ""
    if device == "cpu":
        cpu_ratio = statistics.median(b / a for a, b in zip(plain_cpu, watched_cpu))
        cpu_text = f", CPU-time ratio {cpu_ratio:.3f}x"
    collector = mon._collector
    print(f"{name:34} plain {p * 1e3:8.2f} ms/step   monitored {w * 1e3:8.2f} ms/step   "
          f"ratio {paired:.3f}x (of medians {w / p:.3f}x{cpu_text})   ({len(mon.findings)} findings; "
          f"module outputs every {collector.activation_every} (norms every {collector.norm_every}), gradient norms every {collector.grad_every} steps)")
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check-every", type=int, default=None)
    parser.add_argument("--activation-every", type=int, default=1,
                        help="module-output statistics every k steps (default 1: every step)")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), check_every="
          f"{args.check_every or 'default'}, activation_every={args.activation_every} (floor); load average {load} "
          f"on {os.cpu_count()} CPUs (a loaded machine makes the ratio noisy: run it several times)")
    measure("CPU small MLP 32-128x8-10, batch 64", small_mlp,
            lambda: (torch.randn(64, 32), torch.randint(0, 10, (64,))), "cpu", None,
            block=50, rounds=args.rounds, check_every=args.check_every,
            activation_every=args.activation_every)
    measure("CPU medium MLP 784-1024x3-10, batch 256", cpu_mlp,
            lambda: (torch.randn(256, 784), torch.randint(0, 10, (256,))), "cpu", None,
            block=50, rounds=args.rounds, check_every=args.check_every,
            activation_every=args.activation_every)
    if not torch.cuda.is_available():
        print("CUDA is not available: skipping the GPU models (GPT-2 small bf16 8x1024, ResNet-50 bf16 64)")
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    measure("GPU GPT-2 small (124M) bf16 8x1024", GPT,
            lambda: (torch.randint(0, 50304, (8, 1024), device="cuda"),
                     torch.randint(0, 50304, (8, 1024), device="cuda")),
            "cuda", torch.bfloat16, block=50, rounds=args.rounds, check_every=args.check_every,
            activation_every=args.activation_every)
    measure("GPU ResNet-50 bf16 batch 64", resnet50,
            lambda: (torch.randn(64, 3, 224, 224, device="cuda"), torch.randint(0, 1000, (64,), device="cuda")),
            "cuda", torch.bfloat16, block=50, rounds=args.rounds, check_every=args.check_every,
            activation_every=args.activation_every)


if __name__ == "__main__":
    main()
