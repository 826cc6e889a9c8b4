"""Precision edge cases found by linting well-known, correct training code.

Each snippet is written for this file in the style of the code that produced a false positive
(the third-party code itself is not copied). Where it matters, the buggy variant is checked too,
so that the fix only removes the false positive.
"""
from __future__ import annotations

import textwrap

import pytest

import nnlint


def lines(source: str, code: str, path: str = "train.py") -> list[int]:
    return [f.line for f in nnlint.lint_source(textwrap.dedent(source), path=path, select=[code]) if f.code == code]


# -- NN309: helper of a helper that is only reached under inference_mode -------------------

FEATURE_HELPER = '''
import torch


class FeatureScore:
    def __init__(self, backbone):
        self.backbone = backbone

    def features(self, images):
        self.backbone.eval()
        return self.backbone(images).flatten(1)

    def dataset_statistics(self, loader):
        return torch.cat([self.features(batch) for batch in loader]).mean(0)

    @torch.inference_mode()
    def score(self, loader, generated):
        reference = self.dataset_statistics(loader)
        return (self.features(generated).mean(0) - reference).norm()
'''


def test_nn309_quiet_when_every_caller_chain_disables_grad() -> None:
    assert lines(FEATURE_HELPER, "NN309") == []


def test_nn309_still_fires_when_one_caller_chain_keeps_grad() -> None:
    leaky = FEATURE_HELPER + '''
    def debug(self, images):
        return self.features(images)
'''
    assert lines(leaky, "NN309") == [11]


# -- NN309: a project's own inference-mode decorator ---------------------------------------

def test_nn309_quiet_under_project_inference_decorator() -> None:
    source = '''
    from utils.torch_utils import smart_inference_mode


    @smart_inference_mode()
    def run(model, loader):
        model.eval()
        return [model(images) for images, _ in loader]
    '''
    assert lines(source, "NN309") == []


# -- NN309: unit tests that check a forward pass --------------------------------------------

PARITY_TEST = '''
import {framework}
import torch

from mypkg import TinyNet


def test_forward_shape():
    net = TinyNet()
    net.eval()
    out = net(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 10)
'''


def test_nn309_quiet_in_pytest_file() -> None:
    assert lines(PARITY_TEST.format(framework="pytest"), "NN309", path="tests/test_tiny.py") == []


def test_nn309_quiet_in_unittest_case() -> None:
    source = '''
    import unittest

    import torch


    class ParityCheck(unittest.TestCase):
        def test_logits_match(self):
            model = build()
            model.eval()
            logits = model(torch.zeros(1, 4, dtype=torch.long))
            self.assertEqual(logits.shape[0], 1)
    '''
    assert lines(source, "NN309", path="parity.py") == []


def test_nn309_still_fires_in_an_evaluation_script_named_like_a_test() -> None:
    # `test_net.py` with a `test_model()` function is an evaluation script, not a test suite
    source = '''
    import torch


    def test_model(model, loader):
        model.eval()
        correct = 0
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
        return correct
    '''
    assert lines(source, "NN309", path="test_net.py") == [9]


# -- NN304: optimizer.step(closure) ---------------------------------------------------------

def test_nn304_quiet_for_step_with_closure() -> None:
    source = '''
    import torch

    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0)
    for batch in loader:
        def closure():
            optimizer.zero_grad()
            loss = criterion(model(batch), batch)
            loss.backward()
            return loss

        for warmup in range(3):
            closure()
        optimizer.step(closure)
    '''
    assert lines(source, "NN304") == []
    assert lines(source, "NN303") == []


def test_nn304_still_fires_for_accumulation_loop_without_closure() -> None:
    source = '''
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for chunks in loader:
        for chunk in chunks:
            optimizer.zero_grad()
            criterion(model(chunk), chunk).backward()
        optimizer.step()
    '''
    assert lines(source, "NN304") == [7]


# -- NN103: a weight scaled where it is used; random weights in a unit test ------------------

def test_nn103_quiet_when_scaled_at_every_use() -> None:
    source = '''
    import torch
    import torch.nn as nn


    class AdditiveAttention(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.scale = dim ** -0.5
            self.w_a = nn.Parameter(torch.randn(dim, 1))

        def forward(self, q):
            return torch.softmax(q @ self.w_a * self.scale, dim=1)
    '''
    assert lines(source, "NN103") == []


def test_nn103_still_fires_when_one_use_is_unscaled() -> None:
    source = '''
    import torch
    import torch.nn as nn


    class AdditiveAttention(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.scale = dim ** -0.5
            self.w_a = nn.Parameter(torch.randn(dim, 1))

        def forward(self, q):
            return q @ self.w_a + (q @ self.w_a) * self.scale
    '''
    assert lines(source, "NN103") == [10]


def test_nn103_quiet_in_pytest_file() -> None:
    source = '''
    import pytest
    import torch
    import torch.nn as nn


    def test_projection_runs():
        class Projection(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(8, 12))

            def forward(self, x):
                return x @ self.weight.t()

        assert Projection()(torch.zeros(2, 12)).shape == (2, 8)
    '''
    assert lines(source, "NN103", path="tests/test_projection.py") == []
    assert lines(source, "NN103", path="projection.py") == [11]


def test_nn103_positional_names_are_exempt_but_post_is_not_positional() -> None:
    source = '''
    import torch
    import torch.nn as nn


    class TalkingHeads(nn.Module):
        def __init__(self, heads, length):
            super().__init__()
            self.pos_bias = nn.Parameter(torch.randn(length, length))
            self.position_table = nn.Parameter(torch.randn(length, heads))
            self.posEmb = nn.Parameter(torch.randn(length, heads))
            self.mix_pre = nn.Parameter(torch.randn(heads, heads))
            self.mix_post = nn.Parameter(torch.randn(heads, heads))

        def forward(self, attn):
            attn = attn + self.pos_bias + (self.position_table @ self.posEmb.t())
            attn = torch.einsum("bhij,hg->bgij", attn, self.mix_pre)
            return torch.einsum("bhij,hg->bgij", attn.softmax(-1), self.mix_post)
    '''
    assert lines(source, "NN103") == [12, 13]


@pytest.mark.parametrize("name, exempt", [
    ("posTable", True), ("posW", True), ("token_pos", True), ("tokenPos", True), ("pos_enc", True),
    ("post_proj", False), ("decomposition_w", False), ("composite_w", False),
])
def test_nn103_positional_name_boundaries(name: str, exempt: bool) -> None:
    source = f'''
    import torch
    import torch.nn as nn


    class Mixer(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.{name} = nn.Parameter(torch.randn(n, n))

        def forward(self, x):
            return x @ self.{name}
    '''
    assert lines(source, "NN103") == ([] if exempt else [9])


# -- NN302: best.pt + last.pt weight exports ------------------------------------------------

LAST_EXPORT = '''
import torch

optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
best = float("inf")
for epoch in range(epochs):
    for inputs, targets in loader:
        optimizer.zero_grad()
        criterion(model(inputs), targets).backward()
        optimizer.step()
    val_loss = evaluate(model, val_loader)
    if val_loss < best:
        best = val_loss
        torch.save(model.state_dict(), out_dir + "best.pt")
    torch.save(model.state_dict(), out_dir + "{name}")
'''


def test_nn302_quiet_for_last_weights_export() -> None:
    assert lines(LAST_EXPORT.format(name="last.pt"), "NN302") == []
    assert lines(LAST_EXPORT.format(name="model_final.pth"), "NN302") == []


def test_nn302_still_fires_for_a_last_checkpoint() -> None:
    assert lines(LAST_EXPORT.format(name="last_checkpoint.pt"), "NN302") == [15]
    assert lines(LAST_EXPORT.format(name="epoch_{epoch}.pt"), "NN302") == [15]


# -- NN306: the fp16/fp32 switch written as a conditional expression (nanoGPT-style loop) -----

AMP_SWITCH_LOOP = '''
import torch

scaler = torch.cuda.amp.GradScaler(enabled=use_fp16) if use_fp16 else None
optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)
for step in range(max_steps):
    for micro in range(accumulation):
        loss = model(*next_batch()) / accumulation
        scaler.scale(loss).backward() if scaler else loss.backward()
    if clip > 0:
{unscale}        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
'''


def test_nn306_sees_the_scaled_branch_of_a_conditional_backward() -> None:
    assert lines(AMP_SWITCH_LOOP.format(unscale=""), "NN306") == [11]


def test_nn306_quiet_when_the_conditional_unscale_comes_first() -> None:
    unscale = "        scaler.unscale_(optimizer) if scaler else None\n"
    assert lines(AMP_SWITCH_LOOP.format(unscale=unscale), "NN306") == []


# -- NN904 (off by default): image-to-image pipelines ---------------------------------------

UPSCALE_DATA = '''
from torchvision.transforms import CenterCrop, Compose, Resize, ToTensor


def low_res_transform(size, factor):
    return Compose([CenterCrop(size), Resize(size // factor), ToTensor()])


def {name}(size):
    return Compose([CenterCrop(size), ToTensor()])
'''


def test_nn904_quiet_when_targets_are_images_too() -> None:
    assert lines(UPSCALE_DATA.format(name="target_transform"), "NN904") == []


def test_nn904_still_fires_next_to_a_mask_pipeline() -> None:
    assert lines(UPSCALE_DATA.format(name="mask_transform"), "NN904") == [6]


# -- NN302: a checkpoint helper method that only takes `self` (crashed with an IndexError) ----

TRAINER_SAVE = '''
import torch


class Trainer:
    def __init__(self, model, data):
        self.model = model
        self.data = data
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def run_loop(self):
        for step, batch in enumerate(self.data):
            self.opt.zero_grad()
            self.model(batch).mean().backward()
            self.opt.step()
            if step % 1000 == 0:
                self.save()

    def save(self):
        torch.save(self.model.state_dict(), f"model{{step:06d}}.pt")
{extra}'''


def test_nn302_helper_with_only_self_does_not_crash() -> None:
    assert lines(TRAINER_SAVE.format(extra=""), "NN302") == [20]
    with_opt = '        torch.save(self.opt.state_dict(), "opt.pt")\n'
    assert lines(TRAINER_SAVE.format(extra=with_opt), "NN302") == []


# -- NN303: the gradients are cleared by a project helper imported from another file ---------

def test_nn303_quiet_with_imported_zero_grad_helper() -> None:
    source = '''
    import torch

    from .fp16_util import zero_grad


    class Trainer:
        def __init__(self, model):
            self.model = model
            self.params = list(model.parameters())
            self.opt = torch.optim.AdamW(self.params, lr=1e-4)

        def run_loop(self, data):
            for batch in data:
                zero_grad(self.params)
                self.model(batch).mean().backward()
                self.opt.step()
    '''
    assert lines(source, "NN303") == []
    assert lines(source.replace("zero_grad(self.params)", "pass"), "NN303") == [17]


# -- NN101: squeeze-and-excitation rescales the conv output it pools ------------------------

SE_BLOCK = '''
import torch.nn as nn
import torch.nn.functional as F


class SqueezeExciteBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.reduce = nn.Conv2d(channels, channels // 8, 1)
        self.expand = nn.Conv2d(channels // 8, channels, 1)

    def forward(self, x):
        out = self.conv(F.relu(self.bn(x)))
        gate = F.adaptive_avg_pool2d(out, 1)
        gate = F.relu(self.reduce(gate))
        gate = self.expand(gate).sigmoid()
        return {result}
'''


def test_nn101_quiet_when_the_conv_output_also_leaves_the_block() -> None:
    assert lines(SE_BLOCK.format(result="out * gate + x"), "NN101") == []


def test_nn101_still_fires_when_the_only_path_is_an_unnormalised_conv() -> None:
    assert lines(SE_BLOCK.format(result="gate"), "NN101") == [10]


# -- NN307: a shape smoke test at the bottom of a model file --------------------------------

SMOKE_TEST = '''
import torch
import torch.nn as nn


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())

    def forward(self, x):
        return self.features(x).mean((2, 3))


def test(images=None):
    net = TinyNet()
    x = {data}
    print(net(x).shape)
'''


def test_nn307_quiet_for_a_smoke_test_on_random_input() -> None:
    assert lines(SMOKE_TEST.format(data="torch.randn(2, 3, 32, 32)"), "NN307") == []


def test_nn307_still_fires_on_real_images() -> None:
    assert lines(SMOKE_TEST.format(data="images"), "NN307") == [18]


# -- NN103: a TF1 regression whose fan-in is tiny -------------------------------------------

REGRESSION_TF1 = '''
import tensorflow as tf

x = tf.placeholder(tf.float32, [None, {n_in}])
y = tf.placeholder(tf.float32, [None, 1])
W = tf.Variable(tf.random_normal([{n_in}, 1]), name="weight")
b = tf.Variable(tf.random_normal([1]), name="bias")
cost = tf.reduce_mean(tf.square(tf.matmul(x, W) + b - y))
'''


def test_nn103_quiet_for_a_tiny_fan_in() -> None:
    assert lines(REGRESSION_TF1.format(n_in=3), "NN103") == []


def test_nn103_still_fires_for_a_wide_fan_in() -> None:
    assert lines(REGRESSION_TF1.format(n_in=784), "NN103") == [6]


# -- NN101 / NN307: throw-away models in a pytest file --------------------------------------

def test_nn101_and_nn307_quiet_in_pytest_file() -> None:
    source = '''
    import pytest
    import torch
    import torch.nn as nn


    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 2, bias=False)
            self.bn = nn.BatchNorm1d(2)

        def forward(self, x):
            return self.bn(self.b(self.a(x)))


    def test_hooks_keep_dtype(batch):
        probe = Probe()
        with torch.no_grad():
            assert probe(batch).dtype == batch.dtype
    '''
    assert lines(source, "NN101", path="tests/test_hooks.py") == []
    assert lines(source, "NN307", path="tests/test_hooks.py") == []
    assert lines(source, "NN101", path="hooks.py") == [10]
    assert lines(source, "NN307", path="hooks.py") == [21]
