"""Edge cases of the numerics/shape rules: NN105, NN301, NN401, NN402, NN501, NN502, NN904.

Each snippet is linted with exactly one rule, run directly (a crashing rule fails the
test instead of being reported as an internal error), and compared with the lines that
carry a ``# !`` marker.
"""
from __future__ import annotations

import textwrap
from typing import Optional

import libcst as cst
import pytest

import nnlint
from nnlint.catalogue import load_catalogue, load_rule_class
from nnlint.facts import FileFacts
from nnlint.findings import Finding
from nnlint.fixes import fixed_text
from nnlint.rule import Context

CATALOGUE = load_catalogue()


def lint(source: str, code: str) -> list[Finding]:
    source = textwrap.dedent(source)
    info = CATALOGUE.get(code)
    assert info is not None, code
    rule = load_rule_class(info)()
    facts = FileFacts("snippet.py", cst.parse_module(source), module_name="snippet")
    ctx = Context("snippet.py", source, facts)
    ctx.run(rule, dict(info.options))
    return sorted(ctx.findings(), key=lambda f: f.sort_key)


def marked_lines(source: str) -> list[int]:
    return [n for n, line in enumerate(textwrap.dedent(source).splitlines(), 1) if line.rstrip().endswith("# !")]


def check(source: str, code: str) -> list[Finding]:
    findings = lint(source, code)
    assert [f.line for f in findings] == marked_lines(source), findings
    assert all(f.code == code for f in findings)
    return findings


def fixed(source: str, code: str, unsafe: bool = False) -> Optional[str]:
    source = textwrap.dedent(source)
    outcome = fixed_text(source, lint(source, code), unsafe=unsafe)
    return None if outcome is None else outcome[0]


# ---------------------------------------------------------------------------
# NN401 log of softmax

TORCH_HEADER = """
import torch
import torch.nn as nn
import torch.nn.functional as F
"""


@pytest.mark.parametrize(
    "line",
    [
        "y = torch.log(F.softmax(x, dim=1))",
        "y = F.softmax(x, 1).log()",
        "y = x.softmax(-1).log()",
        "y = (x.softmax(-1)).log_()",
        "y = torch.log(torch.softmax(x, 1))",
        "y = torch.log_(torch.softmax(x, 1))",
        "y = torch.log(nn.Softmax(dim=1)(x))",
        "y = torch.log(F.softmax(x, 1) + 1e-8)",
        "y = torch.log(1e-10 + F.softmax(x, 1))",
        "y = torch.log(F.softmax(x, 1).clamp(min=1e-8))",
        "y = torch.log(torch.clamp(F.softmax(x, 1), min=1e-8))",
        "y = F.nll_loss(torch.log(F.softmax(x, dim=1)), t)",
        "y = torch.special.softmax(x, 1).log()",
    ],
)
def test_nn401_flags_torch_spellings(line: str) -> None:
    check(TORCH_HEADER + f"def f(x, t):\n    {line}  # !\n", "NN401")


@pytest.mark.parametrize(
    "line",
    [
        "y = F.log_softmax(x, dim=1)",
        "y = torch.log(x)",
        "y = torch.log(F.sigmoid(x))",
        "y = torch.log(F.softmax(x, 1) + x)",  # adding a tensor is not an epsilon
        "y = F.softmax(x, 1).log_softmax(1)",
        "y = torch.log(torch.exp(x))",
        "y = F.softmax(torch.log(x), 1)",
        "self.log('loss', F.softmax(x, 1))",  # Lightning's self.log(name, value)
        "y = math.log(F.softmax(x, 1).max().item())",
    ],
)
def test_nn401_quiet_on_other_code(line: str) -> None:
    check(TORCH_HEADER + f"import math\ndef f(self, x, t):\n    {line}\n", "NN401")


def test_nn401_through_variables_and_layers() -> None:
    check(
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.softmax = nn.Softmax(dim=-1)
                self.log_softmax = nn.LogSoftmax(dim=-1)

            def forward(self, x):
                a = torch.log(self.softmax(x))  # !
                b = self.log_softmax(x)
                return a, b

        def entropy(logits, eps=1e-6):
            p = F.softmax(logits, dim=-1)
            h = -(p * torch.log(p)).sum(-1)  # !
            h2 = -(p * (p + eps).log()).sum(-1)  # guarded entropy: correct as written
            h3 = -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(-1)
            sm = nn.Softmax(dim=1)
            q = torch.log(sm(logits))  # !
            return h, h2, q

        def segmentation_loss(output, target):
            softmax2d = torch.nn.Softmax2d()  # over the channels, like nn.Softmax(dim=1)
            probabilities = softmax2d(output)
            a = torch.log(probabilities)  # !
            b = torch.log(nn.Softmax2d()(output))  # !
            c = nn.LogSoftmax(dim=1)(output)
            d = torch.log(nn.Sigmoid()(output))
            return F.nll_loss(a, target), b, c, d

        def reassigned(logits):
            p = F.softmax(logits, dim=-1)
            p = p.mean(0)
            return torch.log(p)

        def branch(logits, flag):
            if flag:
                p = F.softmax(logits, -1)
            else:
                p = logits
            return torch.log(p)
        """,
        "NN401",
    )


def test_nn401_tensorflow_and_jax() -> None:
    check(
        """
        import tensorflow as tf
        import tensorflow.compat.v1 as tf1
        import jax
        import jax.numpy as jnp
        from tensorflow import keras

        def f(logits):
            a = tf.math.log(tf.nn.softmax(logits))  # !
            b = tf1.log(tf1.nn.softmax(logits, axis=-1))  # !
            c = tf.math.log(keras.activations.softmax(logits))  # !
            d = jnp.log(jax.nn.softmax(logits))  # !
            e = tf.nn.log_softmax(logits)
            g = tf.math.log(tf.nn.sigmoid(logits))
            return a, b, c, d, e, g
        """,
        "NN401",
    )


def test_nn401_numpy_log_is_not_a_tensor_log() -> None:
    check(
        """
        import numpy as np
        import torch.nn.functional as F
        from scipy.special import softmax

        def f(x):
            return np.log(softmax(x)), np.log(F.softmax(x, 1).numpy())
        """,
        "NN401",
    )


@pytest.mark.parametrize(
    "before, after",
    [
        ("torch.log(F.softmax(x, dim=1))", "F.log_softmax(x, dim=1)"),
        ("F.softmax(x, 1).log()", "F.log_softmax(x, 1)"),
        ("x.softmax(-1).log()", "x.log_softmax(-1)"),
        ("(x + 1).softmax(-1).log()", "(x + 1).log_softmax(-1)"),
        ("(x.softmax(dim=-1)).log()", "x.log_softmax(dim=-1)"),
        ("torch.log((torch.softmax(x, 1)))", "torch.log_softmax(x, 1)"),
        ("2 * (torch.log(F.softmax(x, 1)))", "2 * (F.log_softmax(x, 1))"),
        ("torch.log(F.softmax(x, dim=1, dtype=torch.float32))", "F.log_softmax(x, dim=1, dtype=torch.float32)"),
    ],
)
def test_nn401_fix_torch(before: str, after: str) -> None:
    source = TORCH_HEADER + f"def f(x):\n    return {before}\n"
    assert fixed(source, "NN401") == textwrap.dedent(source).replace(before, after)


def test_nn401_fix_keeps_multiline_arguments() -> None:
    source = TORCH_HEADER + (
        "def f(x):\n"
        "    return torch.log(\n"
        "        F.softmax(\n"
        "            x,\n"
        "            dim=1,\n"
        "        )\n"
        "    )\n"
    )
    result = fixed(source, "NN401")
    assert result is not None
    assert result.endswith("    return F.log_softmax(\n            x,\n            dim=1,\n        )\n")


def test_nn401_fix_tensorflow() -> None:
    source = "import tensorflow as tf\ny = tf.math.log(tf.nn.softmax(logits, axis=-1))\n"
    assert fixed(source, "NN401") == "import tensorflow as tf\ny = tf.nn.log_softmax(logits, axis=-1)\n"
    compat = "import tensorflow.compat.v1 as tf\ny = tf.log(tf.math.softmax(logits))\n"
    assert fixed(compat, "NN401") == "import tensorflow.compat.v1 as tf\ny = tf.math.log_softmax(logits)\n"


@pytest.mark.parametrize(
    "source",
    [
        # the replacement name is not imported
        "import torch\nfrom torch.nn.functional import softmax\ny = torch.log(softmax(x, 1))\n",
        # through a variable, an epsilon, a layer, an extra argument, Keras 2 has no activations.log_softmax
        "import torch\nimport torch.nn.functional as F\np = F.softmax(x, 1)\ny = torch.log(p)\n",
        "import torch\nimport torch.nn.functional as F\ny = torch.log(F.softmax(x, 1) + 1e-8)\n",
        "import torch\nimport torch.nn as nn\ny = torch.log(nn.Softmax(1)(x))\n",
        "import torch\nimport torch.nn.functional as F\ny = torch.log(F.softmax(x, 1), out=buf)\n",
        "import tensorflow as tf\ny = tf.math.log(tf.keras.activations.softmax(x))\n",
    ],
)
def test_nn401_no_fix_where_unsure(source: str) -> None:
    findings = lint(source, "NN401")
    assert len(findings) == 1 and findings[0].fix is None


def test_nn401_fix_with_imported_log_softmax() -> None:
    source = "import torch\nfrom torch.nn.functional import softmax, log_softmax\ny = torch.log(softmax(x, 1))\n"
    assert fixed(source, "NN401") == source.replace("torch.log(softmax(x, 1))", "log_softmax(x, 1)")


# ---------------------------------------------------------------------------
# NN402 hand-written softmax


@pytest.mark.parametrize(
    "line",
    [
        "y = torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True)",
        "y = torch.exp(x) / torch.sum(torch.exp(x), dim=1, keepdim=True)",
        "y = x.exp() / x.exp().sum(1, keepdim=True)",
        "y = torch.div(torch.exp(x), torch.exp(x).sum())",
        "y = np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)",
        "y = tf.exp(x) / tf.reduce_sum(tf.exp(x), axis=-1, keepdims=True)",
        "y = tf.math.exp(x) / tf.math.reduce_sum(tf.math.exp(x))",
        "y = torch.exp(self.fc(h)) / torch.exp(self.fc(h)).sum(-1, keepdim=True)",
        # a softmin (normalised kernel): exponent <= 0, but all terms underflow to 0 / 0 for large x
        "y = torch.exp(-x / h) / torch.exp(-x / h).sum(0, keepdim=True)",
        "y = torch.exp(-x) / torch.exp(-x).sum()",
    ],
)
def test_nn402_flags(line: str) -> None:
    header = "import torch\nimport numpy as np\nimport tensorflow as tf\n"
    check(header + f"def f(self, x, h):\n    {line}  # !\n", "NN402")


@pytest.mark.parametrize(
    "line",
    [
        "y = torch.exp(x - x.max(dim=-1, keepdim=True).values) / torch.exp(x - x.max(dim=-1, keepdim=True).values).sum(-1, keepdim=True)",
        "y = torch.exp(x - x.amax(1, keepdim=True)) / torch.exp(x - x.amax(1, keepdim=True)).sum(1, keepdim=True)",
        "y = torch.exp(x - torch.max(x, 1, keepdim=True)[0]) / torch.exp(x - torch.max(x, 1, keepdim=True)[0]).sum(1)",
        "y = torch.exp(-d ** 2 / s) / torch.exp(-d ** 2 / s).sum()",  # a Gaussian window: reaches exp(0)
        "y = torch.exp(-(d ** 2) / (2 * s ** 2)) / torch.exp(-(d ** 2) / (2 * s ** 2)).sum()",
        # a softmin shifted by its minimum: the largest term is exp(0) = 1
        "y = torch.exp(-(d - d.min())) / torch.exp(-(d - d.min())).sum()",
        "y = torch.exp(-(d - d.min()) / s) / torch.exp(-(d - d.min()) / s).sum()",
        "y = torch.exp(x) / (1 + torch.exp(x))",  # a sigmoid, not a softmax
        "y = torch.exp(x) / torch.exp(d).sum()",  # different tensors
        "y = torch.exp(x) / x.sum()",
        "y = torch.exp(torch.tanh(x)) / torch.exp(torch.tanh(x)).sum()",
        "y = torch.exp(F.log_softmax(x, 1)) / torch.exp(F.log_softmax(x, 1)).sum(1)",
        "y = torch.softmax(x, -1)",
    ],
)
def test_nn402_quiet(line: str) -> None:
    header = "import torch\nimport torch.nn.functional as F\n"
    check(header + f"def f(x, d, s):\n    {line}\n", "NN402")


def test_nn402_variables() -> None:
    check(
        """
        import torch

        def manual(logits):
            e = logits.exp()
            probs = e / e.sum(-1, keepdim=True)  # !
            total = e.sum(-1, keepdim=True)
            probs2 = e / total  # !
            e2 = torch.exp(logits)
            e2 /= e2.sum(1, keepdim=True)  # !
            return probs, probs2, e2

        def shifted(logits):
            z = logits - logits.max(dim=-1, keepdim=True).values
            e = torch.exp(z)
            return e / e.sum(-1, keepdim=True)

        def shifted_in_place(logits):
            logits -= logits.max()
            return torch.exp(logits) / torch.exp(logits).sum()

        def log_probs(x):
            lp = torch.log_softmax(x, 1)
            return lp.exp() / lp.exp().sum(1, keepdim=True)
        """,
        "NN402",
    )


def test_nn402_softmax_per_group() -> None:
    findings = check(
        """
        import torch
        from torch_scatter import scatter_add, scatter_max, scatter
        from torch_geometric.utils import scatter as pyg_scatter, softmax as segment_softmax

        def softmax(src, index, num_nodes=None):
            out = src.exp()
            out = out / scatter_add(out, index, dim=0, dim_size=num_nodes)[index]  # !
            return out

        def attention(self, q, k, dst, n):
            exp = self.dot(q[dst], k).exp()
            z = scatter(exp, dst, dim=0, dim_size=n, reduce="mean")
            alpha = exp / z[dst]  # !
            z2 = pyg_scatter(exp, dst, 0, n, reduce="sum")
            beta = exp / (z2[dst] + 1e-16)  # !
            return alpha, beta

        def buffers(scores, idx, n):
            e = torch.exp(scores)
            a = e / torch.zeros(n).index_add_(0, idx, e)[idx]  # !
            b = e / torch.zeros(n, device=e.device).scatter_add_(0, idx, e)[idx]  # !
            c = e / e.new_zeros(n, e.size(1)).scatter_add_(0, idx.unsqueeze(-1).expand_as(e), e)[idx]  # !
            return a, b, c

        def shifted(src, index, n):
            out = (src - scatter(src, index, dim=0, reduce="max")[index]).exp()
            a = out / scatter_add(out, index, dim=0, dim_size=n)[index]
            m = scatter_max(src, index, dim=0, dim_size=n)[0]
            e = torch.exp(src - m[index])
            b = e / (scatter_add(e, index, dim=0, dim_size=n)[index] + 1e-16)
            return a, b

        def look_alikes(self, src, index, other, n):
            e = src.exp()
            a = e / scatter(e, index, dim=0, reduce="max")[index]  # not a sum
            b = e / scatter_add(e, index, dim=0)[other]  # gathered by another index
            c = e / scatter_add(other.exp(), index, dim=0)[index]  # another tensor's sum
            d = e / torch.ones(n).index_add_(0, index, e)[index]  # not a zero buffer
            f = e / torch.scatter_add(e, 0, index, e)[index]  # torch.scatter_add(input, dim, index, src)
            g = segment_softmax(src, index)
            h = e / scatter(e, index, 0, None, n, "max")[index]  # torch_scatter's positional reduce
            i = e / scatter(e, index, dim=0, reduce=self.aggr)[index]  # unknown reduction
            return a, b, c, d, f, g, h, i
        """,
        "NN402",
    )
    assert all(f.fix is None for f in findings)  # one global max could underflow a whole group


# ---------------------------------------------------------------------------
# NN105 dropout always on

DROPOUT_MODULE = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import functional as Fn
from torch.nn.functional import dropout


class Base(nn.Module):
    pass


class Net(Base):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        a = F.dropout(x, 0.5)  # !
        b = F.dropout(x, p=0.2, training=self.training)
        c = F.dropout(x, 0.2, True)
        d = F.dropout2d(x)  # !
        e = F.alpha_dropout(x, 0.5)
        g = Fn.dropout3d(x, p=0.1)  # !
        h = dropout(x)  # !
        i = F.dropout(x, 0.5, training=False)
        j = F.dropout(x, 0.5, self.training)
        if self.training:
            k = F.dropout(x, 0.5)
        return self.block(x)

    def block(self, x):
        return F.dropout(x, 0.3)  # !

    def not_called_by_forward(self, x):
        return F.dropout(x, 0.3)


class PlainObject:
    def forward(self, x):
        return F.dropout(x, 0.3)


def free_function(x):
    return F.dropout(x, 0.5)
"""


def test_nn105_torch() -> None:
    check(DROPOUT_MODULE, "NN105")


def test_nn105_torch_fix_is_unsafe_and_adds_training() -> None:
    source = textwrap.dedent(DROPOUT_MODULE)
    assert fixed(source, "NN105") is None  # unsafe only
    result = fixed(source, "NN105", unsafe=True)
    assert result is not None
    assert "a = F.dropout(x, 0.5, training=self.training)" in result
    assert "d = F.dropout2d(x, training=self.training)" in result
    assert "g = Fn.dropout3d(x, p=0.1, training=self.training)" in result
    assert "return F.dropout(x, 0.3, training=self.training)  # !" in result
    assert lint(result, "NN105") == []


def test_nn105_fix_keeps_trailing_comma_layout() -> None:
    source = textwrap.dedent(
        """
        import torch.nn as nn
        import torch.nn.functional as F

        class Net(nn.Module):
            def forward(this, x):
                return F.dropout(
                    x,
                    p=0.25,
                )
        """
    )
    result = fixed(source, "NN105", unsafe=True)
    assert result is not None and "p=0.25, training=this.training,\n" in result


def test_nn105_lightning_and_project_base() -> None:
    check(
        """
        import pytorch_lightning as pl
        import torch.nn.functional as F

        class Model(pl.LightningModule):
            def forward(self, x):
                return F.dropout(x, 0.1)  # !
        """,
        "NN105",
    )


def test_nn105_tensorflow_graph_mode() -> None:
    check(
        """
        import tensorflow as tf
        from tensorflow.contrib.layers import dropout

        KEEP = 0.5
        x = tf.placeholder(tf.float32, [None, 784])
        is_training = tf.placeholder(tf.bool, shape=())
        keep_prob = tf.placeholder_with_default(1.0, shape=())
        a = tf.nn.dropout(x, 0.5)  # !
        b = tf.nn.dropout(x, keep_prob=KEEP)  # !
        c = tf.nn.dropout(x, rate=0.2)  # !
        d = tf.nn.dropout(x, keep_prob=keep_prob)
        e = tf.nn.dropout(x, keep_prob=1.0)
        f = dropout(x, 0.5, is_training=is_training)
        g = dropout(x, 0.5)  # !
        h = tf.cond(is_training, lambda: tf.nn.dropout(x, 0.5), lambda: x)
        i = tf.layers.dropout(x, 0.5, training=is_training)

        def layer(inputs, keep):
            return tf.nn.dropout(inputs, keep)
        """,
        "NN105",
    )


def test_nn105_tensorflow_local_constant() -> None:
    check(
        """
        import tensorflow.compat.v1 as tf

        def build():
            x = tf.placeholder(tf.float32, [None, 10])
            keep_prob = 0.5
            return tf.nn.dropout(x, keep_prob)  # !
        """,
        "NN105",
    )


def test_nn105_tf2_eager_without_graph_is_quiet_outside_keras_call() -> None:
    check(
        """
        import tensorflow as tf

        def augment(x):
            return tf.nn.dropout(x, rate=0.1)

        class Block(tf.keras.layers.Layer):
            def call(self, x, training=None):
                y = tf.nn.dropout(x, rate=0.1)  # !
                if training:
                    y = tf.nn.dropout(y, rate=0.1)
                return y
        """,
        "NN105",
    )


# ---------------------------------------------------------------------------
# NN301 Saver / initializer before the optimizer's slots


def test_nn301_module_level_and_functions() -> None:
    check(
        """
        import tensorflow.compat.v1 as tf
        import tensorflow as tf2

        def build(loss):
            saver = tf.train.Saver()  # !
            init = tf.global_variables_initializer()  # !
            opt = tf.train.AdamOptimizer(0.001)
            train = opt.minimize(loss)
            return saver, init, train

        def build_ok(loss):
            opt = tf.train.AdamOptimizer(0.001)
            train = opt.minimize(loss)
            saver = tf.train.Saver()
            init = tf.global_variables_initializer()

        def stateless(loss):
            saver = tf.train.Saver()
            train = tf.train.GradientDescentOptimizer(0.1).minimize(loss)

        def keras_sgd_without_momentum(loss):
            saver = tf.train.Saver()
            tf2.keras.optimizers.SGD(0.1).minimize(loss, var_list=[])

        def explicit_lists(loss):
            weights_only = tf.train.Saver(tf.trainable_variables())
            everything = tf.train.Saver(var_list=tf.global_variables())  # !
            deferred = tf.train.Saver(defer_build=True)
            train = tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss)

        def other_function(loss):
            return tf2.compat.v1.train.Saver()

        def apply(grads_and_vars):
            s = tf2.compat.v1.train.Saver(max_to_keep=3)  # !
            init = tf.initialize_all_variables()  # !
            opt = tf2.keras.optimizers.SGD(0.1, momentum=0.9)
            opt.apply_gradients(grads_and_vars)

        def variables_initializer(loss):
            init = tf.variables_initializer(tf.global_variables())  # !
            init2 = tf.variables_initializer([w])
            tf.train.RMSPropOptimizer(0.01).minimize(loss)
        """,
        "NN301",
    )


def test_nn301_reports_once_per_snapshot_and_names_the_optimizer() -> None:
    findings = check(
        """
        import tensorflow as tf

        loss = tf.reduce_mean(tf.square(tf.placeholder(tf.float32)))
        saver = tf.train.Saver()  # !
        step1 = tf.train.AdamOptimizer().minimize(loss)
        step2 = tf.train.AdagradOptimizer(0.1).minimize(loss)
        """,
        "NN301",
    )
    assert "AdamOptimizer.minimize()" in findings[0].message


# ---------------------------------------------------------------------------
# NN502 reshape used as transpose


def test_nn502_reorders() -> None:
    check(
        """
        import torch

        def f(x, y):
            b, c, t = x.shape
            a1 = x.view(b, t, c)  # !
            a2 = x.reshape(b, c * t)
            a3 = x.view(b, -1)
            a4 = x.transpose(1, 2).contiguous().view(b, t, c)
            a5 = x.contiguous().view(b, t, c)  # !
            a6 = torch.reshape(x, (t, b, c))  # !
            a7 = y.view(b, t, c)
            a8 = x.reshape([b, t, c])  # !
            a9 = x.view(b, c, t)
            a10 = x.view(b, c // 2, 2, t)
            a11 = x.view(size=(b, t, c))
            a12 = x.view(b * t, c)  # !

        def gram_matrix(y):
            (b, ch, h, w) = y.size()
            features = y.view(b, ch, w * h)
            mixed = y.view(b * h, ch, w)  # !
            return features

        def tokens(feature_map):
            b, c, h, w = feature_map.shape
            good = feature_map.reshape(b, c, h * w)
            return feature_map.reshape(b, h * w, c)  # !

        def tensorflow_style(x):
            import tensorflow as tf
            n, h, w = x.shape
            return tf.reshape(x, (n, w, h))  # !
        """,
        "NN502",
    )


def test_nn502_sizes_read_one_by_one() -> None:
    check(
        """
        def encode(self, images):
            encoded = self.resnet(images)
            batch_size = encoded.shape[0]
            features = encoded.shape[1]
            num_pixels = encoded.shape[2] * encoded.shape[3]
            pooled = encoded.view(batch_size, features, -1)
            ordered = encoded.view(batch_size, features, num_pixels)
            return encoded.view(batch_size, num_pixels, features)  # !

        def quantize(self, x):
            for layer in self.layers:
                flat = x.view(x.size(0), -1, x.size(1))  # !
                tokens = x.view(x.size(0), x.size(1), -1)
                rows = x.view(x.size(0), -1)
                last = x.view(-1, x.size(-1))
                x = layer(x)
            return x

        def other_tensor(x, y):
            n = y.size(0)
            c = y.size(1)
            return x.view(c, n)

        def rebound(x, layer):
            n = x.size(0)
            c = x.size(1)
            x = layer(x)
            return x.view(c, n)
        """,
        "NN502",
    )


def test_nn502_nanogpt_attention_is_fine() -> None:
    check(
        """
        import torch.nn as nn
        import torch.nn.functional as F

        class CausalSelfAttention(nn.Module):
            def forward(self, x):
                B, T, C = x.size()
                q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
                k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                att = (q @ k.transpose(-2, -1))
                att = F.softmax(att, dim=-1)
                y = att @ v
                y = y.transpose(1, 2).contiguous().view(B, T, C)
                return y
        """,
        "NN502",
    )


def test_nn502_follows_reassignment() -> None:
    check(
        """
        def transposed(x):
            B, T, C = x.size()
            x = x.transpose(1, 2)
            return x.reshape(B, C, T)

        def maybe_permuted(x, flag):
            b, c, t = x.size()
            if flag:
                x = x.permute(0, 2, 1)
            return x.view(b, t, c)

        def size_rebound(x):
            b, c, t = x.shape
            c = 3
            return x.view(b, t, c)

        def unchanged(x):
            b, c, t = x.size()
            y = x * 2
            return x.view(t, c, b)  # !
        """,
        "NN502",
    )


# ---------------------------------------------------------------------------
# NN904 image inputs not normalised


def test_nn904() -> None:
    check(
        """
        import torch
        from torchvision import transforms
        import torchvision.transforms.v2 as T
        from torchvision.transforms import Compose, ToTensor, Normalize
        from torchvision.datasets import MNIST

        a = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor()])  # !
        b = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
        c = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])  # !
        d = T.Compose([T.ToImage(), T.ToDtype(torch.float32)])
        e = Compose([ToTensor()])  # !
        f = Compose([ToTensor(), Normalize([0.1], [0.3])])
        mask_transform = transforms.Compose([transforms.ToTensor()])
        g = transforms.Compose([transforms.ToTensor(), transforms.Lambda(lambda x: x * 2 - 1)])
        h = transforms.Compose([transforms.ToTensor(), MyNormalize()])
        base = transforms.Compose([transforms.Resize(32), transforms.ToTensor()])
        full = transforms.Compose([base, transforms.Normalize((0.5,), (0.5,))])
        ds = MNIST(
            "data",
            transform=transforms.Compose([transforms.ToTensor()]),  # !
            target_transform=transforms.Compose([transforms.ToTensor()]),
        )
        pil_only = transforms.Compose([transforms.Resize(32), transforms.PILToTensor()])
        """,
        "NN904",
    )


def test_nn904_is_off_by_default() -> None:
    info = CATALOGUE.get("NN904")
    assert info is not None and info.default is False


# ---------------------------------------------------------------------------
# NN501 BatchNorm trained with batch size 1


def test_nn501_torch_loader_in_training_loop() -> None:
    check(
        """
        import argparse
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 8, 3)
                self.bn = nn.BatchNorm2d(8)
                self.fc = nn.Linear(8, 10)

            def forward(self, x):
                return self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))

        class Plain(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 10)

            def forward(self, x):
                return self.fc(x)

        ONE = 1
        model = Net()
        plain = Plain()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train_loader = DataLoader(train_set, batch_size=1, shuffle=True)  # !
        const_loader = DataLoader(train_set, batch_size=ONE)  # !
        default_loader = DataLoader(train_set, shuffle=True)  # !
        big_loader = DataLoader(train_set, batch_size=32)
        test_loader = DataLoader(test_set, batch_size=1)
        plain_loader = DataLoader(train_set, batch_size=1)
        sampler_loader = DataLoader(train_set, batch_sampler=sampler)

        for x, y in train_loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        for i, (x, y) in enumerate(tqdm(const_loader)):
            F.cross_entropy(model(x), y).backward()
        for x, y in default_loader:
            F.cross_entropy(model(x), y).backward()
        for x, y in big_loader:
            F.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for x, y in test_loader:
                model(x)
        for x, y in plain_loader:
            F.cross_entropy(plain(x), y).backward()
        for x, y in sampler_loader:
            F.cross_entropy(model(x), y).backward()
        """,
        "NN501",
    )


def test_nn501_pre_batched_data_with_default_batch_size_is_quiet() -> None:
    check(
        """
        import torch.nn as nn
        import torch.nn.functional as F
        from torch.utils.data import DataLoader

        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
        loader = DataLoader(batches)
        for x, y in loader:
            x, y = x.squeeze(0), y.squeeze(0)
            F.mse_loss(model(x), y).backward()
        """,
        "NN501",
    )


def test_nn501_loader_passed_to_train_function() -> None:
    check(
        """
        import argparse
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        from torch.utils.data import DataLoader

        def train(model, device, loader, optimizer):
            model.train()
            for data, target in loader:
                optimizer.zero_grad()
                loss = F.nll_loss(model(data), target)
                loss.backward()
                optimizer.step()

        def main():
            parser = argparse.ArgumentParser()
            parser.add_argument("--batch-size", type=int, default=1)
            args = parser.parse_args()
            model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(10))
            optimizer = torch.optim.Adam(model.parameters())
            train_loader = DataLoader(train_set, batch_size=args.batch_size)  # !
            eval_loader = DataLoader(test_set, batch_size=1)
            train(model, "cpu", train_loader, optimizer)
            evaluate(model, eval_loader)
        """,
        "NN501",
    )


def test_nn501_keras_fit() -> None:
    check(
        """
        from tensorflow import keras

        model = keras.Sequential([
            keras.layers.Dense(64, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        plain = keras.Sequential([keras.layers.Dense(10)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=1, epochs=3)  # !
        model.fit(x, y, batch_size=32)
        model.fit(x, y)
        plain.fit(x, y, batch_size=1)
        """,
        "NN501",
    )


def test_nn401_log_of_a_model_that_ends_in_softmax() -> None:
    check(
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        classifier = nn.Sequential(nn.Linear(10, 3), nn.Softmax(dim=1))
        logits_model = nn.Sequential(nn.Linear(10, 3))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(10, 3)

            def forward(self, x):
                return F.softmax(self.fc(x), dim=1)

        net = Net()

        def step(x, y):
            a = F.nll_loss(torch.log(classifier(x)), y)  # !
            probs = net(x)
            b = F.nll_loss(probs.log(), y)  # !
            c = F.nll_loss(torch.log(logits_model(x)), y)
            return a, b, c
        """,
        "NN401",
    )


def test_log_of_sigmoid_spellings_and_guarded_probabilities() -> None:
    source = '''import torch
import torch.nn as nn
import tensorflow as tf

class AnchorLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.sig = nn.Sigmoid()

    def forward(self, x, y):
        pt = self.sig(x)
        neg = torch.log(1 - pt)
        pos = x.sigmoid().log()
        tf_pos = tf.math.log(tf.sigmoid(x) + 1e-7)
        return neg + pos + tf_pos

def asymmetric(x, y, eps=1e-8):
    xs_pos = torch.sigmoid(x)
    xs_neg = 1 - xs_pos
    return y * torch.log(xs_pos.clamp(min=eps)) + (1 - y) * torch.log(xs_neg.clamp(min=eps))

def not_a_sigmoid(x):
    return torch.log(1 - torch.tanh(x) ** 2) + torch.log(2 - torch.sigmoid(x))
'''
    found = nnlint.lint_source(source, path="losses.py", select=["NN403"])
    assert [(f.line, "1 - sigmoid" in f.message) for f in found] == [(12, True), (13, False), (14, False)]
