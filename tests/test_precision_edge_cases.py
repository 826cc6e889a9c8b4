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


# -- NN308: linear probing keeps a frozen backbone in eval mode on purpose --------------------

LINEAR_PROBE = '''
import torch
import torchvision


def fit_head(net, batches, opt):
    net.eval()  # the frozen trunk's batch-norm statistics must not move
    for images, labels in batches:
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()


def score(net, batches):
    net.eval()
    with torch.no_grad():
        return sum((net(x).argmax(1) == y).sum().item() for x, y in batches)


net = torchvision.models.resnet50()
{freeze}
trainable = [p for p in net.parameters() if p.requires_grad]
opt = torch.optim.SGD(trainable, lr=0.1, momentum=0.9)
for epoch in range(epochs):
    fit_head(net, train_batches, opt)
    score(net, val_batches)
'''

FREEZE_LOOP = '''for name, weight in net.named_parameters():
    if not name.startswith("fc."):
        weight.requires_grad = False'''


@pytest.mark.parametrize("freeze", [FREEZE_LOOP, "net.requires_grad_(False)\nnet.fc.requires_grad_(True)"])
def test_nn308_quiet_for_linear_probing_of_a_frozen_model(freeze: str) -> None:
    assert lines(LINEAR_PROBE.format(freeze=freeze), "NN308") == []


def test_nn308_eval_before_training_without_frozen_weights_is_reported_once() -> None:
    # nothing is frozen: the eval() at the top of the training helper is the bug, and the one in
    # score() is not reported again (the helper's eval() runs before the next step anyway)
    assert lines(LINEAR_PROBE.format(freeze=""), "NN308") == [7]
    # freezing only a part of the model says nothing about the rest
    partial = FREEZE_LOOP.replace("net.named_parameters()", "net.layer1.named_parameters()")
    assert lines(LINEAR_PROBE.format(freeze=partial), "NN308") == [7]


def test_nn308_validation_eval_still_fires_next_to_frozen_weights() -> None:
    # frozen weights, but the training helper never sets a mode: the validation eval() leaks
    source = LINEAR_PROBE.format(freeze=FREEZE_LOOP).replace(
        "    net.eval()  # the frozen trunk's batch-norm statistics must not move\n", "")
    assert lines(source, "NN308") == [15]


# -- NN302: weights-only snapshots that the program reads back only for inference ------------

STYLE_TRANSFER = '''
import torch


def fit(args, net, batches):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step, images in enumerate(batches):
        opt.zero_grad()
        perceptual_loss(net(images), images).backward()
        opt.step()
        if step % 2000 == 0:
            torch.save(net.state_dict(), f"snapshots/net_{{step}}.pth")


def render(args, net, image):
    net.load_state_dict(torch.load(args.weights))
    with torch.no_grad():
        return net.eval()(image)


def main(args):
    net = StyleNet()
{resume}    if args.command == "fit":
        fit(args, net, batches)
    else:
        render(args, net, image)
'''


def test_nn302_quiet_when_snapshots_are_only_loaded_for_inference() -> None:
    assert lines(STYLE_TRANSFER.format(resume=""), "NN302") == []


def test_nn302_still_fires_when_training_can_resume_from_them() -> None:
    resume = "    if args.resume:\n        net.load_state_dict(torch.load(args.resume))\n"
    assert lines(STYLE_TRANSFER.format(resume=resume), "NN302") == [12]
    helper = "    if args.resume:\n        load_checkpoint(net, args.resume)\n"
    assert lines(STYLE_TRANSFER.format(resume=helper), "NN302") == [12]


# -- NN312: a model of unknown size is not a deep one --------------------------------------

DEMO_SUBCLASS = '''
import torch
import torch.nn as nn
from toolkit.demos import DemoModel


class FusedStep(DemoModel):
    def __init__(self):
        super().__init__()
{layers}
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


def build():
    model = FusedStep()
    return model, torch.optim.AdamW(model.parameters(), lr=0.2)
'''


def test_nn312_quiet_for_a_subclass_of_an_unreadable_model() -> None:
    assert lines(DEMO_SUBCLASS.format(layers=""), "NN312") == []


def test_nn312_still_fires_for_a_module_with_an_unknown_layer() -> None:
    # a subclass of nn.Module is read: a layer nnlint does not know leaves it possibly deep
    own = DEMO_SUBCLASS.format(layers="        self.block = GraphBlock(8)\n").replace("(DemoModel)", "(nn.Module)")
    assert lines(own, "NN312") == [13, 18]


PYTEST_OPTIMIZER = '''
import pytest
import torch
import torch.nn as nn


def test_step_updates_weights():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(6)])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    before = model[0].weight.clone()
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, model[0].weight)
'''


def test_nn312_quiet_in_a_unit_test() -> None:
    assert lines(PYTEST_OPTIMIZER, "NN312", path="tests/test_step.py") == []
    assert lines(PYTEST_OPTIMIZER, "NN312", path="step.py") == [9]


# -- NN103: a heads x heads mixing matrix whose product is layer-normalised ------------------

REATTENTION = '''
import torch
import torch.nn as nn


class Reattention(nn.Module):
    def __init__(self, dim, heads=8):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.head_mixing_weights = nn.Parameter(torch.randn({shape}))
        self.mix_norm = nn.Sequential(Channels(last=True), nn.LayerNorm(heads), Channels(last=False))
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
        attn = torch.einsum("bhij,hg->bgij", attn, self.head_mixing_weights)
{after}        return self.out((attn @ v).transpose(1, 2).reshape(b, n, -1))
'''
NORM_AFTER = "        attn = self.mix_norm(attn)\n"


def test_nn103_quiet_for_a_normalised_head_mixing_matrix() -> None:
    assert lines(REATTENTION.format(shape="heads, heads", after=NORM_AFTER), "NN103") == []
    functional = "        attn = torch.nn.functional.layer_norm(attn.transpose(1, -1), (self.heads,))\n"
    assert lines(REATTENTION.format(shape="heads, heads", after=functional), "NN103") == []


def test_nn103_head_mixing_still_fires_without_a_normalisation() -> None:
    assert lines(REATTENTION.format(shape="heads, heads", after=""), "NN103") == [11]
    # used before it is normalised, or not a square mixing matrix
    used_first = "        print(attn.mean())\n" + NORM_AFTER
    assert lines(REATTENTION.format(shape="heads, heads", after=used_first), "NN103") == [11]
    assert lines(REATTENTION.format(shape="dim, heads", after=NORM_AFTER), "NN103") == [11]


# -- NN204: how the sigmoid + BCELoss finding speaks -----------------------------------------

def messages(source: str, code: str) -> dict[int, str]:
    found = nnlint.lint_source(textwrap.dedent(source), path="train.py", select=[code])
    return {f.line: f.message for f in found if f.code == code}


SIGMOID_CRITIC = '''
import torch
import torch.nn as nn
from lightning.pytorch import LightningModule, Trainer


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1), nn.Sigmoid())

    def forward(self, x):
        return self.score(x)


critic = Critic()
bce = nn.BCELoss()


def critic_loss(x, y):
    return bce(critic(x), y)


def plain_step(x, y):
    return critic_loss(x, y)


def mixed_step(x, y, scaler):
    with torch.autocast(device_type="cuda", dtype=torch.float16):
        loss = critic_loss(x, y)
    scaler.scale(loss).backward()


def cpu_step(x, y):
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        return bce(critic(x), y)


@torch.cuda.amp.autocast()
def decorated_step(x, y):
    return bce(critic(x), y)


class LitCritic(LightningModule):
    def __init__(self):
        super().__init__()
        self.critic = Critic()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return bce(torch.sigmoid(self.critic.score[2](x)), y)


trainer = Trainer(precision="{precision}")
'''


def test_nn204_says_when_autocast_makes_it_a_crash() -> None:
    found = messages(SIGMOID_CRITIC.format(precision="16-mixed"), "NN204")
    assert sorted(found) == [21, 36, 41, 51]
    autocast = [line for line, message in found.items() if "unsafe to autocast" in message]
    # the helper is reached from an autocast block (and from a plain one: any autocast caller counts),
    # the decorated helper and the Lightning step under a mixed-precision Trainer; not CPU autocast
    assert sorted(autocast) == [21, 41, 51]
    assert "sigmoid output of Critic" in found[36] and "clamped at 100" in found[36]


def test_nn204_model_output_and_explicit_sigmoid_outside_autocast() -> None:
    found = messages(SIGMOID_CRITIC.format(precision="32-true").replace("    with torch.autocast(device_type=\"cuda\"",
                                                                        "    with torch.autocast(enabled=False, device_type=\"cuda\""),
                     "NN204")
    assert "unsafe to autocast" not in found[21] and "sigmoid output of Critic" in found[21]
    assert "sigmoid taken before the loss" in found[51]
