"""An MNIST-style PyTorch classifier with the mistakes the seed documents warn about.

Lines marked ``# bug (NNxxx)`` are the problems nnlint reports; see ``nnlint explain NNxxx``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader


class DeepSigmoidNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # A deep stack of saturating activations: gradients shrink by <= 0.25 per layer.
        self.features = nn.Sequential(  # bug (NN102)
            nn.Linear(784, 256),
            nn.Sigmoid(),
            nn.Linear(256, 256),
            nn.Sigmoid(),
            nn.Linear(256, 256),
            nn.Sigmoid(),
            nn.Linear(256, 128),
            nn.Sigmoid(),
            nn.Linear(128, 128),
            nn.Sigmoid(),
        )
        # A bias right before batch norm is wasted: BN subtracts the mean anyway (opinionated, off by default).
        self.fc = nn.Linear(128, 64)  # bug (NN901)
        self.bn = nn.BatchNorm1d(64)
        # No bias and no normalisation after it: every unit's boundary passes through the origin.
        self.hidden = nn.Linear(64, 64, bias=False)  # bug (NN101)
        self.out = nn.Linear(64, 10)
        # The output layer applies softmax, and CrossEntropyLoss applies log-softmax again.
        self.softmax = nn.Softmax(dim=1)  # bug (NN201)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x.flatten(1))
        x = F.relu(self.bn(self.fc(x)))
        x = F.relu(self.hidden(x))
        x = F.dropout(x, p=0.5)  # bug (NN105): functional dropout ignores model.eval()
        return self.softmax(self.out(x))


def train(train_set, epochs: int = 5) -> DeepSigmoidNet:
    model = DeepSigmoidNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(train_set, batch_size=1, shuffle=True)  # bug (NN501): BatchNorm on one example
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
    return model
