'''
## What it does
Reports a torchvision image pipeline that converts images to tensors but never normalises
them. It looks for a `transforms.Compose([...])` (also `transforms.v2.Compose`) that turns images into float tensors (`ToTensor()`, or `ToImage()` + `ToDtype(torch.float32, scale=True)`)
but never normalises them with `Normalize(mean, std)`.

Off by default (opinionated): some models normalise inside `forward` (many pretrained
wrappers do), and some pipelines feed `[0, 1]` images on purpose (generative models that
rescale themselves, masks). The rule stays quiet when the pipeline contains a transform it
does not know (a custom class or `Lambda` may normalise), when the `Compose` is nested in
another `Compose` that normalises, and for target/mask/label pipelines
(`target_transform=`, a variable named like `mask_transform`, or returned by a function
named like `target_transform()`). When such a target pipeline crops or resizes images into
`[0, 1]` tensors too (super-resolution, denoising), the file's input pipelines are not reported
either.

## Why is this bad?
`ToTensor` only scales pixels to `[0, 1]`: every input is positive with a mean around
0.4-0.5, so all the first layer's weight updates for one unit share a sign and training
zig-zags instead of descending; pretrained networks expect the statistics they were
trained with (ImageNet mean/std) and lose accuracy without them.

## Example
```python
from torchvision import transforms

train_transform = transforms.Compose([  # NN904
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
])
```

## Use instead
```python
from torchvision import transforms

train_transform = transforms.Compose([
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
```
In Keras, add a `keras.layers.Normalization` (adapted to the data) or `Rescaling` layer at
the model's input.

## Source
Seed 001_05b9fd847e40edfb.txt, "归一化输入数据" (normalise the input data): for training,
subtract the data set's mean and divide by its standard deviation; inputs centred on zero
with constant variance make the network easier to train, and every test input must be
normalised the same way. Seed 000_15ef46e869a43bad.txt also lists input standardisation
among the remedies for unstable gradients.

In short: Scale image inputs to [0, 1] and normalise them with the data set's mean and standard
deviation. Public reference: torchvision documentation, `transforms.ToTensor` and
`transforms.Normalize`, https://pytorch.org/vision/stable/transforms.html; LeCun et al., "Efficient
BackProp" (1998), section 4.3.
'''
from __future__ import annotations

from typing import Optional

import libcst as cst

from nnlint.facts.names import keyword, literal
from nnlint.rule import Context, Rule

_PREFIXES = ("torchvision.transforms.", "torchvision.transforms.v2.")
_TARGET_WORDS = ("target", "mask", "label", "seg", "gt")
#: a target that is itself an image (a mask or label map is not)
_IMAGE_TARGET_WORDS = ("target", "high_res", "hr_", "clean", "sharp")
#: torchvision transforms known not to normalise; anything else (a custom class, `Lambda`, a nested
#: `Compose`/`RandomApply` or a variable) might, and keeps the rule quiet
_KNOWN = frozenset({
    "ToTensor", "ToImage", "ToDtype", "ConvertImageDtype", "PILToTensor", "ToPILImage", "ToPureTensor",
    "Resize", "CenterCrop", "RandomCrop", "RandomResizedCrop", "FiveCrop", "TenCrop", "Pad",
    "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "RandomAffine", "RandomPerspective",
    "ColorJitter", "Grayscale", "RandomGrayscale",
    "GaussianBlur", "RandomErasing", "RandomInvert", "RandomPosterize", "RandomSolarize",
    "RandomAdjustSharpness", "RandomAutocontrast", "RandomEqualize", "AutoAugment", "RandAugment",
    "TrivialAugmentWide", "AugMix", "ElasticTransform", "RandomIoUCrop", "RandomZoomOut",
    "ScaleJitter", "RandomShortestSize", "RandomResize", "Normalize",
})


class ImageInputsNotNormalized(Rule):
    code = "NN904"
    name = "image-inputs-not-normalized"
    severity = "info"
    default = False
    fixable = False
    options = {}

    def check(self, ctx: Context) -> None:
        composes = [call for call in ctx.facts.calls() if _transform_name(ctx, call) == "Compose"]
        unnormalised = [c for c in composes if _unnormalised_float_pipeline(ctx, c)]
        # image-to-image work (super-resolution, denoising): the targets are [0, 1] images too,
        # so the inputs stay in the same range on purpose
        if any(_is_target_pipeline(ctx, compose, _IMAGE_TARGET_WORDS) and _resizes(ctx, compose)
               for compose in unnormalised):
            return
        for compose in unnormalised:
            if _is_target_pipeline(ctx, compose) or self._normalised_later(ctx, compose, composes):
                continue
            ctx.report(compose, "image pipeline converts to tensors but never applies Normalize")

    def _normalised_later(self, ctx: Context, inner: cst.Call, composes: list[cst.Call]) -> bool:
        """Is ``inner`` (directly or through a variable) a step of a Compose that normalises?"""
        for outer in composes:
            if outer is inner:
                continue
            steps = _steps(outer)
            if steps is None:
                continue
            includes = any(
                step is inner or (isinstance(step, cst.Name) and ctx.facts.dataflow.resolve(step) is inner)
                for step in steps
            )
            if includes and any(_transform_name(ctx, s) == "Normalize" for s in steps if isinstance(s, cst.Call)):
                return True
        return False


def _unnormalised_float_pipeline(ctx: Context, compose: cst.Call) -> bool:
    """Only known transforms, a conversion to float images, and no ``Normalize``."""
    steps = _steps(compose)
    if steps is None:
        return False
    kinds = [_transform_name(ctx, step) if isinstance(step, cst.Call) else None for step in steps]
    if any(kind is None or kind not in _KNOWN for kind in kinds):
        return False
    return "Normalize" not in kinds and _makes_float_image(ctx, steps, kinds)


def _resizes(ctx: Context, compose: cst.Call) -> bool:
    """Crops or resizes: what is converted is an image with a size, not a label."""
    return any(isinstance(step, cst.Call) and (_transform_name(ctx, step) or "").endswith(("Crop", "Resize"))
               for step in _steps(compose) or ())


def _transform_name(ctx: Context, call: cst.Call) -> Optional[str]:
    qualname = ctx.facts.names.qualname(call.func)
    if qualname is None:
        return None
    for prefix in _PREFIXES:
        if qualname.startswith(prefix) and "." not in qualname[len(prefix):]:
            return qualname[len(prefix):]
    return None


def _steps(compose: cst.Call) -> Optional[list[cst.BaseExpression]]:
    if len(compose.args) != 1 or compose.args[0].star:
        return None
    value = compose.args[0].value
    if not isinstance(value, (cst.List, cst.Tuple)):
        return None
    if any(isinstance(element, cst.StarredElement) for element in value.elements):
        return None
    return [element.value for element in value.elements]


def _makes_float_image(ctx: Context, steps: list[cst.BaseExpression], kinds: list[Optional[str]]) -> bool:
    if "ToTensor" in kinds or "ConvertImageDtype" in kinds:
        return True
    for step, kind in zip(steps, kinds):
        if kind == "ToDtype" and isinstance(step, cst.Call) and literal(keyword(step, "scale"), False) is True:
            return True
    return False


def _is_target_pipeline(ctx: Context, compose: cst.Call, words: tuple[str, ...] = _TARGET_WORDS) -> bool:
    """Passed as ``target_transform=``/``mask_transform=`` or assigned to a target-like name."""
    parent = ctx.facts.parent(compose)
    if isinstance(parent, cst.Arg) and parent.keyword is not None:
        return any(word in parent.keyword.value.lower() for word in words)
    if isinstance(parent, cst.Assign):
        for target in parent.targets:
            name = target.target
            text = name.value if isinstance(name, cst.Name) else (
                name.attr.value if isinstance(name, cst.Attribute) else "")
            if any(word in text.lower() for word in words):
                return True
    if isinstance(parent, cst.DictElement) and isinstance(parent.key, cst.SimpleString):
        key = parent.key.evaluated_value
        return isinstance(key, str) and any(word in key.lower() for word in words)
    if isinstance(parent, cst.Return):
        for ancestor in ctx.facts.ancestors(parent):
            if isinstance(ancestor, cst.FunctionDef):
                return any(word in ancestor.name.value.lower() for word in words)
    return False
