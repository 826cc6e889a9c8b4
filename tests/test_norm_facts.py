"""nnlint.facts.norms: is a layer's output normalised before the next layer uses it?"""
from __future__ import annotations

import textwrap

import libcst as cst

from nnlint.facts import FileFacts


def facts_of(source: str) -> FileFacts:
    return FileFacts("model.py", cst.parse_module(textwrap.dedent(source)))


def _unnormalised(source: str) -> dict[str, bool]:
    facts = facts_of(source)
    return {f"{model.name}.{layer.attribute or layer.kind}": facts.norms.unnormalised_output(model, layer)
            for model in facts.models.models for layer in model.layers if layer.category in ("dense", "conv")}


def test_paths_to_the_next_layer() -> None:
    found = _unnormalised("""
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 16, 3, bias=False)
                self.bn = nn.BatchNorm2d(16)
                self.conv2 = nn.Conv2d(16, 16, 3, bias=False)
                self.conv3 = nn.Conv2d(16, 16, 3, bias=False)
                self.conv4 = nn.Conv2d(16, 16, 1)

            def forward(self, x):
                x = self.bn(self.conv1(x))
                x = F.relu(self.conv2(x))
                y = self.conv3(x)
                return self.conv4(y) * y
    """)
    assert found == {"Net.conv1": False, "Net.conv2": True, "Net.conv3": False, "Net.conv4": False}


def test_functional_norms_and_transformer_style() -> None:
    facts = facts_of("""
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4, bias=False)

            def forward(self, x):
                return F.layer_norm(self.fc(x), (4,))
    """)
    model = facts.models.models[0]
    assert facts.norms.functional_norm_in(model)
    assert facts.norms.transformer_style  # F.layer_norm
    plain = facts_of("""
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 1))
    """)
    assert not plain.norms.transformer_style
    assert not plain.norms.functional_norm_in(plain.models.models[0])
