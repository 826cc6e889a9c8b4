"""A small PyTorch sequence model with numerically unstable and shape-scrambling code.

Lines marked ``# bug (NNxxx)`` are the problems nnlint reports; see ``nnlint explain NNxxx``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class TemporalClassifier(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(x))
        b, c, t = x.shape
        # view() does not move data: this scrambles channels and time steps.
        x = x.view(b, t, c)  # bug (NN502)
        return self.fc(x).mean(dim=1)


def attention(scores: torch.Tensor) -> torch.Tensor:
    # exp() overflows for large scores; softmax subtracts the maximum first.
    return torch.exp(scores) / torch.exp(scores).sum(dim=-1, keepdim=True)  # bug (NN402)


def nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Small probabilities underflow to 0 and log(0) is -inf; use log_softmax.
    log_probs = torch.log(F.softmax(logits, dim=1))  # bug (NN401)
    return F.nll_loss(log_probs, target)
