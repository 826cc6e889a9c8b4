"""The table of known layer, activation, initialiser and loss kinds.

Everything is keyed by the canonical qualified names of :mod:`nnlint.facts.names`
(``torch.nn.Linear``, ``torch.nn.functional.softmax``, ``keras.layers.Dense``) and maps to
a framework-neutral *kind* (``"Linear"``, ``"Softmax"``, ``"Dense"``) and a *category*
(``dense``, ``conv``, ``norm``, ``activation``, ``dropout``, ``pool``, ``shape``, ...), so
that rules ask "is this a normalisation layer" instead of listing class names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

# -- categories ---------------------------------------------------------------
DENSE = "dense"
CONV = "conv"
NORM = "norm"
ACTIVATION = "activation"
DROPOUT = "dropout"
POOL = "pool"
SHAPE = "shape"  # reshapes, identity: do not change what the values mean
EMBEDDING = "embedding"
RECURRENT = "recurrent"
ATTENTION = "attention"
CONTAINER = "container"
MODEL = "model"  # an instance of a (local or project) model class
OTHER = "other"

#: activation kind -> the functional name used in ``ModelSummary.output_activation``
ACTIVATION_FUNCTIONS: Mapping[str, str] = {
    "ReLU": "relu",
    "ReLU6": "relu6",
    "LeakyReLU": "leaky_relu",
    "PReLU": "prelu",
    "RReLU": "rrelu",
    "ELU": "elu",
    "SELU": "selu",
    "CELU": "celu",
    "GELU": "gelu",
    "SiLU": "silu",
    "Mish": "mish",
    "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid",
    "Hardtanh": "hardtanh",
    "Softplus": "softplus",
    "Softsign": "softsign",
    "Sigmoid": "sigmoid",
    "LogSigmoid": "logsigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "GLU": "glu",
    "Exponential": "exp",
}
_FUNCTION_TO_KIND: Mapping[str, str] = {v: k for k, v in ACTIVATION_FUNCTIONS.items()}

#: activations meant for hidden layers (seed 001: ReLU family as the default non-linearity)
HIDDEN_ACTIVATIONS = frozenset(
    {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
     "Mish", "Hardswish", "Softplus"}
)
#: saturating activations whose derivative vanishes for large inputs (seeds 000, 002, 003)
SATURATING_ACTIVATIONS = frozenset({"Sigmoid", "Tanh", "Hardsigmoid", "Hardtanh", "Softsign"})
RELU_LIKE = frozenset({"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU"})


@dataclass(frozen=True)
class Kind:
    kind: str
    category: str


def _table(category: str, names: str, prefix: str) -> dict[str, Kind]:
    return {f"{prefix}.{n}": Kind(n, category) for n in names.split()}


_TORCH = "torch.nn"
TORCH_LAYERS: dict[str, Kind] = {}
TORCH_LAYERS.update(_table(DENSE, "Linear LazyLinear Bilinear", _TORCH))
TORCH_LAYERS.update(_table(
    CONV,
    "Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d LazyConv1d LazyConv2d "
    "LazyConv3d LazyConvTranspose1d LazyConvTranspose2d LazyConvTranspose3d",
    _TORCH,
))
TORCH_LAYERS.update(_table(
    NORM,
    "BatchNorm1d BatchNorm2d BatchNorm3d SyncBatchNorm LazyBatchNorm1d LazyBatchNorm2d "
    "LazyBatchNorm3d LayerNorm GroupNorm InstanceNorm1d InstanceNorm2d InstanceNorm3d "
    "LazyInstanceNorm1d LazyInstanceNorm2d LazyInstanceNorm3d RMSNorm LocalResponseNorm",
    _TORCH,
))
TORCH_LAYERS.update(_table(ACTIVATION, " ".join(ACTIVATION_FUNCTIONS) + " Softmax2d Tanhshrink Threshold", _TORCH))
TORCH_LAYERS["torch.nn.Softmax2d"] = Kind("Softmax", ACTIVATION)
TORCH_LAYERS.update(_table(DROPOUT, "Dropout Dropout1d Dropout2d Dropout3d AlphaDropout FeatureAlphaDropout", _TORCH))
TORCH_LAYERS.update(_table(
    POOL,
    "MaxPool1d MaxPool2d MaxPool3d AvgPool1d AvgPool2d AvgPool3d AdaptiveAvgPool1d "
    "AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d "
    "LPPool1d LPPool2d",
    _TORCH,
))
TORCH_LAYERS.update(_table(SHAPE, "Flatten Unflatten Identity", _TORCH))
TORCH_LAYERS.update(_table(EMBEDDING, "Embedding EmbeddingBag", _TORCH))
TORCH_LAYERS.update(_table(RECURRENT, "RNN LSTM GRU RNNCell LSTMCell GRUCell", _TORCH))
TORCH_LAYERS.update(_table(
    ATTENTION,
    "MultiheadAttention Transformer TransformerEncoder TransformerDecoder TransformerEncoderLayer "
    "TransformerDecoderLayer",
    _TORCH,
))
TORCH_LAYERS.update(_table(CONTAINER, "Sequential ModuleList ModuleDict", _TORCH))

_F = "torch.nn.functional"
TORCH_FUNCTIONS: dict[str, Kind] = {}
for _kind, _fn in ACTIVATION_FUNCTIONS.items():
    TORCH_FUNCTIONS[f"{_F}.{_fn}"] = Kind(_kind, ACTIVATION)
for _fn in ("relu", "sigmoid", "tanh", "softmax", "log_softmax", "selu", "celu", "rrelu", "prelu"):
    TORCH_FUNCTIONS[f"torch.{_fn}"] = Kind(_FUNCTION_TO_KIND[_fn], ACTIVATION)
TORCH_FUNCTIONS.update({
    "torch.special.expit": Kind("Sigmoid", ACTIVATION),
    "torch.special.softmax": Kind("Softmax", ACTIVATION),
    "torch.special.log_softmax": Kind("LogSoftmax", ACTIVATION),
    f"{_F}.relu_": Kind("ReLU", ACTIVATION),
    f"{_F}.elu_": Kind("ELU", ACTIVATION),
    f"{_F}.leaky_relu_": Kind("LeakyReLU", ACTIVATION),
    f"{_F}.softmin": Kind("Softmin", ACTIVATION),
    "torch.relu_": Kind("ReLU", ACTIVATION),
    "torch.sigmoid_": Kind("Sigmoid", ACTIVATION),
    "torch.tanh_": Kind("Tanh", ACTIVATION),
    f"{_F}.linear": Kind("Linear", DENSE),
    f"{_F}.conv1d": Kind("Conv1d", CONV),
    f"{_F}.conv2d": Kind("Conv2d", CONV),
    f"{_F}.conv3d": Kind("Conv3d", CONV),
    f"{_F}.batch_norm": Kind("BatchNorm", NORM),
    f"{_F}.layer_norm": Kind("LayerNorm", NORM),
    f"{_F}.group_norm": Kind("GroupNorm", NORM),
    f"{_F}.instance_norm": Kind("InstanceNorm", NORM),
    f"{_F}.rms_norm": Kind("RMSNorm", NORM),
    f"{_F}.dropout": Kind("Dropout", DROPOUT),
    f"{_F}.dropout1d": Kind("Dropout", DROPOUT),
    f"{_F}.dropout2d": Kind("Dropout", DROPOUT),
    f"{_F}.dropout3d": Kind("Dropout", DROPOUT),
    f"{_F}.alpha_dropout": Kind("Dropout", DROPOUT),
    "torch.dropout": Kind("Dropout", DROPOUT),
    f"{_F}.max_pool1d": Kind("MaxPool", POOL),
    f"{_F}.max_pool2d": Kind("MaxPool", POOL),
    f"{_F}.max_pool3d": Kind("MaxPool", POOL),
    f"{_F}.avg_pool1d": Kind("AvgPool", POOL),
    f"{_F}.avg_pool2d": Kind("AvgPool", POOL),
    f"{_F}.avg_pool3d": Kind("AvgPool", POOL),
    f"{_F}.adaptive_avg_pool1d": Kind("AdaptiveAvgPool", POOL),
    f"{_F}.adaptive_avg_pool2d": Kind("AdaptiveAvgPool", POOL),
    f"{_F}.adaptive_max_pool2d": Kind("AdaptiveMaxPool", POOL),
    "torch.flatten": Kind("Flatten", SHAPE),
    "torch.reshape": Kind("Reshape", SHAPE),
    "torch.squeeze": Kind("Reshape", SHAPE),
    "torch.unsqueeze": Kind("Reshape", SHAPE),
    "torch.transpose": Kind("Reshape", SHAPE),
    "torch.permute": Kind("Reshape", SHAPE),
})

#: tensor methods: ``x.softmax(-1)``, ``x.view(n, -1)``
TENSOR_METHODS: Mapping[str, Kind] = {
    "relu": Kind("ReLU", ACTIVATION),
    "relu_": Kind("ReLU", ACTIVATION),
    "sigmoid": Kind("Sigmoid", ACTIVATION),
    "sigmoid_": Kind("Sigmoid", ACTIVATION),
    "tanh": Kind("Tanh", ACTIVATION),
    "tanh_": Kind("Tanh", ACTIVATION),
    "softmax": Kind("Softmax", ACTIVATION),
    "log_softmax": Kind("LogSoftmax", ACTIVATION),
    **{m: Kind("Reshape", SHAPE) for m in (
        "view", "reshape", "flatten", "squeeze", "unsqueeze", "permute", "transpose",
        "contiguous", "view_as", "reshape_as", "float", "double", "half", "bfloat16", "to",
        "clone", "squeeze_", "unsqueeze_", "resize", "resize_as", "cuda", "cpu", "type", "type_as",
    )},
}

#: tensor methods that keep what the values mean (``out.view(b, -1)``, ``out.float()``, ``out.cuda()``)
RESHAPE_METHODS = frozenset(name for name, kind in TENSOR_METHODS.items() if kind.category == SHAPE)

_K = "keras.layers"
KERAS_LAYERS: dict[str, Kind] = {}
KERAS_LAYERS.update(_table(DENSE, "Dense EinsumDense", _K))
KERAS_LAYERS.update(_table(
    CONV,
    "Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose Conv3DTranspose SeparableConv1D "
    "SeparableConv2D DepthwiseConv1D DepthwiseConv2D Convolution1D Convolution2D Convolution3D",
    _K,
))
KERAS_LAYERS.update(_table(
    NORM, "BatchNormalization LayerNormalization GroupNormalization UnitNormalization", _K
))
KERAS_LAYERS["keras.layers.normalization.batch_normalization.BatchNormalization"] = Kind("BatchNormalization", NORM)
KERAS_LAYERS.update({
    f"{_K}.ReLU": Kind("ReLU", ACTIVATION),
    f"{_K}.LeakyReLU": Kind("LeakyReLU", ACTIVATION),
    f"{_K}.PReLU": Kind("PReLU", ACTIVATION),
    f"{_K}.ELU": Kind("ELU", ACTIVATION),
    f"{_K}.Softmax": Kind("Softmax", ACTIVATION),
    f"{_K}.Activation": Kind("Activation", ACTIVATION),  # resolved from its argument
})
KERAS_LAYERS.update(_table(
    DROPOUT, "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D AlphaDropout GaussianDropout", _K
))
KERAS_LAYERS.update(_table(
    POOL,
    "MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D AveragePooling3D "
    "GlobalAveragePooling1D GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPooling1D "
    "GlobalMaxPooling2D GlobalMaxPooling3D MaxPool1D MaxPool2D MaxPool3D AvgPool1D AvgPool2D",
    _K,
))
KERAS_LAYERS.update(_table(SHAPE, "Flatten Reshape Permute RepeatVector Input InputLayer Identity", _K))
KERAS_LAYERS.update(_table(EMBEDDING, "Embedding", _K))
KERAS_LAYERS.update(_table(RECURRENT, "LSTM GRU SimpleRNN Bidirectional ConvLSTM2D", _K))
KERAS_LAYERS.update(_table(ATTENTION, "MultiHeadAttention Attention", _K))

#: Keras activation identifiers (``activation="relu"``, ``Activation("softmax")``)
KERAS_ACTIVATIONS: Mapping[str, Optional[str]] = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "selu": "SELU",
    "celu": "CELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "swish": "SiLU",
    "mish": "Mish",
    "hard_swish": "Hardswish",
    "hard_silu": "Hardswish",
    "softplus": "Softplus",
    "softsign": "Softsign",
    "sigmoid": "Sigmoid",
    "hard_sigmoid": "Hardsigmoid",
    "log_sigmoid": "LogSigmoid",
    "tanh": "Tanh",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
    "exponential": "Exponential",
    "linear": None,
}
#: callables passed as ``activation=``: ``tf.nn.relu``, ``keras.activations.softmax``
ACTIVATION_CALLABLES: dict[str, str] = {}
for _name, _kind in KERAS_ACTIVATIONS.items():
    if _kind is not None:
        ACTIVATION_CALLABLES[f"keras.activations.{_name}"] = _kind
        ACTIVATION_CALLABLES[f"tensorflow.nn.{_name}"] = _kind
        ACTIVATION_CALLABLES[f"tensorflow.math.{_name}"] = _kind
ACTIVATION_CALLABLES.update({
    "tensorflow.sigmoid": "Sigmoid",
    "tensorflow.tanh": "Tanh",
    "tensorflow.nn.leaky_relu": "LeakyReLU",
    "keras.ops.softmax": "Softmax",
    "keras.ops.sigmoid": "Sigmoid",
    "keras.ops.relu": "ReLU",
    "keras.ops.tanh": "Tanh",
})
for _qual, _k in TORCH_FUNCTIONS.items():
    if _k.category == ACTIVATION:
        ACTIVATION_CALLABLES[_qual] = _k.kind


@dataclass(frozen=True)
class FunctionalLayer:
    """A TF1-style layer function that makes and applies a layer in one call
    (``tf.layers.dense(x, 10, activation=tf.nn.softmax)``)."""

    kind: str
    category: str
    #: the keyword naming its activation
    activation_keyword: str
    #: the activation it applies when that keyword is left out (``None``: linear)
    default_activation: Optional[str]
    #: position and keyword of its output width
    units: tuple[int, str] = (1, "units")


_DENSE_TF = FunctionalLayer("Dense", DENSE, "activation", None)
_CONV_TF = FunctionalLayer("Conv2D", CONV, "activation", None, (1, "filters"))
# tf.contrib.layers / slim default to ReLU; tflearn to linear and names activations with strings
_DENSE_CONTRIB = FunctionalLayer("Dense", DENSE, "activation_fn", "ReLU", (1, "num_outputs"))
_CONV_CONTRIB = FunctionalLayer("Conv2D", CONV, "activation_fn", "ReLU", (1, "num_outputs"))
_DENSE_TFLEARN = FunctionalLayer("Dense", DENSE, "activation", None, (1, "n_units"))
_CONV_TFLEARN = FunctionalLayer("Conv2D", CONV, "activation", None, (1, "nb_filter"))
TF_FUNCTIONAL_LAYERS: Mapping[str, FunctionalLayer] = {
    **{f"{p}.dense": _DENSE_TF for p in ("tensorflow.layers", "tensorflow.compat.v1.layers")},
    **{f"{p}.{c}": _CONV_TF for p in ("tensorflow.layers", "tensorflow.compat.v1.layers")
       for c in ("conv1d", "conv2d", "conv3d")},
    **{f"{p}.fully_connected": _DENSE_CONTRIB
       for p in ("tensorflow.contrib.layers", "tensorflow.contrib.slim", "tf_slim")},
    **{f"{p}.{c}": _CONV_CONTRIB for p in ("tensorflow.contrib.layers", "tensorflow.contrib.slim", "tf_slim")
       for c in ("conv2d", "convolution2d")},
    **{f"{p}.fully_connected": _DENSE_TFLEARN for p in ("tflearn", "tflearn.layers.core")},
    **{f"{p}.conv_2d": _CONV_TFLEARN for p in ("tflearn", "tflearn.layers.conv")},
}

#: layer/op kind as it appears in ``ModelSummary.layers`` -> its category
KIND_CATEGORIES: dict[str, str] = {}
for _kinds in (TORCH_LAYERS, KERAS_LAYERS, TORCH_FUNCTIONS, TENSOR_METHODS):
    for _k in _kinds.values():
        KIND_CATEGORIES.setdefault(_k.kind, _k.category)
for _activation in ACTIVATION_FUNCTIONS:
    KIND_CATEGORIES.setdefault(_activation, ACTIVATION)

KERAS_MODEL_CLASSES = frozenset({"keras.Model", "keras.models.Model", "keras.Sequential", "keras.models.Sequential"})
KERAS_SEQUENTIAL = frozenset({"keras.Sequential", "keras.models.Sequential"})
KERAS_FUNCTIONAL = frozenset({"keras.Model", "keras.models.Model"})
TORCH_MODULE_BASES = frozenset({
    "torch.nn.Module",
    "pytorch_lightning.LightningModule",
    "lightning.LightningModule",
    "lightning.pytorch.LightningModule",
    "pytorch_lightning.core.LightningModule",
    "lightning.pytorch.core.LightningModule",
})
KERAS_MODEL_BASES = frozenset({"keras.Model", "keras.models.Model", "keras.layers.Layer", "keras.Layer"})


def layer_kind(qualname: Optional[str]) -> Optional[Kind]:
    """The kind of a layer class (``torch.nn.Linear`` -> Linear/dense), ``None`` if unknown."""
    if qualname is None:
        return None
    found = TORCH_LAYERS.get(qualname) or KERAS_LAYERS.get(qualname)
    if found is None and qualname.startswith("keras.layers."):
        # keras.layers.core.dense.Dense and other deep spellings
        found = KERAS_LAYERS.get("keras.layers." + qualname.rsplit(".", 1)[-1])
    return found


def function_kind(qualname: Optional[str]) -> Optional[Kind]:
    """The kind of a functional op (``torch.nn.functional.softmax`` -> Softmax/activation)."""
    if qualname is None:
        return None
    return TORCH_FUNCTIONS.get(qualname)


def activation_from_identifier(value: object) -> Optional[str]:
    """Activation kind of a Keras identifier string, ``None`` for linear/unknown."""
    if isinstance(value, str):
        return KERAS_ACTIVATIONS.get(value.lower())
    return None


def framework_of(qualname: str) -> Optional[str]:
    if qualname.startswith("torch") or qualname.startswith(("pytorch_lightning", "lightning")):
        return "torch"
    if qualname.startswith(("keras", "tensorflow")):
        return "keras"
    return None


# -- losses -------------------------------------------------------------------
@dataclass(frozen=True)
class LossKind:
    kind: str
    #: what the prediction argument should be: logits, log_probs, probs, values
    expects: str
    framework: str
    #: position and keyword of the prediction argument for functional losses
    prediction_index: int = 0
    prediction_keyword: str = "input"


TORCH_LOSS_CLASSES: Mapping[str, LossKind] = {
    "torch.nn.CrossEntropyLoss": LossKind("cross_entropy", "logits", "torch"),
    "torch.nn.NLLLoss": LossKind("nll", "log_probs", "torch"),
    "torch.nn.BCELoss": LossKind("bce", "probs", "torch"),
    "torch.nn.BCEWithLogitsLoss": LossKind("bce_with_logits", "logits", "torch"),
    "torch.nn.MultiLabelSoftMarginLoss": LossKind("multilabel_soft_margin", "logits", "torch"),
    "torch.nn.KLDivLoss": LossKind("kl_div", "log_probs", "torch"),
    "torch.nn.MSELoss": LossKind("mse", "values", "torch"),
    "torch.nn.L1Loss": LossKind("l1", "values", "torch"),
    "torch.nn.SmoothL1Loss": LossKind("smooth_l1", "values", "torch"),
    "torch.nn.HuberLoss": LossKind("huber", "values", "torch"),
}
TORCH_LOSS_FUNCTIONS: Mapping[str, LossKind] = {
    f"{_F}.cross_entropy": LossKind("cross_entropy", "logits", "torch"),
    f"{_F}.nll_loss": LossKind("nll", "log_probs", "torch"),
    f"{_F}.binary_cross_entropy": LossKind("bce", "probs", "torch"),
    f"{_F}.binary_cross_entropy_with_logits": LossKind("bce_with_logits", "logits", "torch"),
    f"{_F}.multilabel_soft_margin_loss": LossKind("multilabel_soft_margin", "logits", "torch"),
    f"{_F}.kl_div": LossKind("kl_div", "log_probs", "torch"),
    f"{_F}.mse_loss": LossKind("mse", "values", "torch"),
    f"{_F}.l1_loss": LossKind("l1", "values", "torch"),
    f"{_F}.smooth_l1_loss": LossKind("smooth_l1", "values", "torch"),
    f"{_F}.huber_loss": LossKind("huber", "values", "torch"),
}

#: library multi-layer perceptrons whose last layer is a plain linear one: qualname -> (position,
#: keyword) of the argument listing the layer widths, the last of which is the output width
LIBRARY_MLPS: Mapping[str, tuple[int, str]] = {
    "torchdrug.layers.MLP": (1, "hidden_dims"),
    "torchvision.ops.MLP": (1, "hidden_channels"),
    "torch_geometric.nn.MLP": (0, "channel_list"),
}

#: library estimators that train the module they are given with a loss of their own when none is
#: passed: qualname -> (the keyword naming the loss, the loss class used when it is left out).
#: skada's deep domain-adaptation estimators fall back to ``CrossEntropyLoss`` on ``base_criterion``.
ESTIMATOR_DEFAULT_LOSSES: Mapping[str, tuple[str, str]] = {
    f"skada.deep.{name}": ("base_criterion", "torch.nn.CrossEntropyLoss")
    for name in ("DeepCoral", "DAN", "DANN", "CDAN", "DeepJDOT", "MCC", "SPA", "MFSAN", "SourceOnly", "TargetOnly")
}

#: Keras loss identifiers; ``expects`` is for from_logits=False
KERAS_LOSS_NAMES: Mapping[str, str] = {
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
    "binary_focal_crossentropy": "binary_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "binarycrossentropy": "binary_crossentropy",
    "mse": "mse",
    "mean_squared_error": "mse",
    "mae": "l1",
    "mean_absolute_error": "l1",
    "huber": "huber",
}
KERAS_LOSS_CLASSES: Mapping[str, str] = {
    "CategoricalCrossentropy": "categorical_crossentropy",
    "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
    "BinaryCrossentropy": "binary_crossentropy",
    "BinaryFocalCrossentropy": "binary_crossentropy",
    "MeanSquaredError": "mse",
    "MeanAbsoluteError": "l1",
    "Huber": "huber",
}
KERAS_LOSS_FUNCTIONS: Mapping[str, str] = {
    "categorical_crossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
}
KERAS_LOSS_MODULES = ("keras.losses", "keras.metrics", "keras.backend", "tensorflow.losses", "keras.ops")

#: TensorFlow losses that take logits (TF1 ``tf.losses`` and ``tf.nn``): qualname -> (kind, logits keyword, position)
#: TF 1.x losses whose first parameter is a ``_sentinel`` refusing positional arguments (0.x took
#: ``(logits, labels)`` positionally)
TF_SENTINEL_LOSSES = frozenset({
    "tensorflow.nn.softmax_cross_entropy_with_logits", "tensorflow.nn.sparse_softmax_cross_entropy_with_logits",
    "tensorflow.nn.sigmoid_cross_entropy_with_logits"})
#: calls that make a file TensorFlow 1 graph code
TF1_GRAPH_CALLS = frozenset({"tensorflow.placeholder", "tensorflow.Session", "tensorflow.InteractiveSession",
                             "tensorflow.compat.v1.placeholder", "tensorflow.compat.v1.Session"})
TF_LOGITS_LOSSES: Mapping[str, tuple[str, str, int]] = {
    "tensorflow.nn.softmax_cross_entropy_with_logits": ("categorical_crossentropy", "logits", 1),
    "tensorflow.nn.softmax_cross_entropy_with_logits_v2": ("categorical_crossentropy", "logits", 1),
    "tensorflow.nn.sparse_softmax_cross_entropy_with_logits": ("sparse_categorical_crossentropy", "logits", 1),
    "tensorflow.nn.sigmoid_cross_entropy_with_logits": ("binary_crossentropy", "logits", 1),
    "tensorflow.losses.softmax_cross_entropy": ("categorical_crossentropy", "logits", 1),
    "tensorflow.losses.sparse_softmax_cross_entropy": ("sparse_categorical_crossentropy", "logits", 1),
    "tensorflow.losses.sigmoid_cross_entropy": ("binary_crossentropy", "logits", 1),
}
