"""NN307 findings reported where the fix goes: the ``model.train()`` an inference script calls instead
of ``model.eval()``, and the loading of a pretrained model that a script training nothing runs."""
from __future__ import annotations

import nnlint
from test_more_fixes import check

NET = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(x))


"""

INFERENCE = NET + """\
def main(clips):
    model = Net()
    model.load_state_dict(torch.load("net.pt"))
    model.train()
    with torch.no_grad():
        for clip in clips:
            print(model(clip))
"""

PRETRAINED = """\
from torchvision import models


def main(images, device):
    model = models.resnet18(pretrained=True).to(device)
    for image in images:
        print(model(image.unsqueeze(0)).argmax())
"""


def _lines(source: str) -> list[tuple[int, list[int]]]:
    return [(f.line, [r.line for r in f.related]) for f in nnlint.lint_source(source, path="m.py", select=["NN307"])]


def test_train_instead_of_eval_is_reported_at_train_with_the_model_call_related() -> None:
    assert _lines(INFERENCE) == [(18, [21])]


def test_train_instead_of_eval_is_replaced_by_eval() -> None:
    check(INFERENCE, "NN307", INFERENCE.replace("    model.train()\n", "    model.eval()\n"))


def test_pretrained_model_is_reported_where_it_is_loaded() -> None:
    assert _lines(PRETRAINED) == [(5, [7])]


def test_pretrained_model_gets_eval_where_it_is_loaded() -> None:
    check(PRETRAINED, "NN307", PRETRAINED.replace(".to(device)\n", ".to(device).eval()\n"))
