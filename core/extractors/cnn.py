"""The nightlight-proxy CNNs of Jean et al. 2016 and the feature extractor they become.

A convolutional classifier learns nighttime-light classes from daytime tiles; its
penultimate layer is then the feature vector of a tile. Two networks, named in model
files by their ``architecture``:

- ``efficientnet_lite0`` (:mod:`.efficientnet`): the default, started from ImageNet
  weights as the method does ("reuse the lower layers"); 4.7 M weights.
- ``small_cnn`` (:class:`ProxyCNN`): four convolutions, 0.3 M weights, random start.
  Kept as the cheap network for tests and for CPUs where the larger one is too slow
  (docs/benchmarks.md measures both).

Both run on CUDA when there is one.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch
from torch import nn

from ..errors import PovertyMapperError
from .base import FeatureExtractor

# How a network's input is made from a tile's values: standardized by the training tiles'
# mean and spread (model files before the scene reading; by the scene's own where its
# radiometry differs), or by the whole scene's own mean and spread, always
# (:mod:`..imagery.scene_moments`).
TRAINING_STATISTICS = "training_statistics"
SCENE_MOMENTS = "scene_moments"
INPUT_READINGS = (TRAINING_STATISTICS, SCENE_MOMENTS)


def _block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


SMALL_CNN = "small_cnn"


class ProxyCNN(nn.Module):
    """Conv body (4 stride-2 blocks, global average pool) -> feature layer -> class head."""

    def __init__(self, in_bands: int, n_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.config = {"architecture": SMALL_CNN, "in_bands": in_bands, "n_classes": n_classes, "width": width,
                       "feature_dim": feature_dim}
        w = width
        self.body = nn.Sequential(
            _block(in_bands, w, 5),
            _block(w, 2 * w, 3),
            _block(2 * w, 4 * w, 3),
            _block(4 * w, 4 * w, 3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature = nn.Sequential(nn.Linear(4 * w, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(feature_dim, n_classes))

    @property
    def feature_dim(self) -> int:
        return int(self.config["feature_dim"])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: one ``feature_dim`` vector per tile."""
        return self.feature(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def fused_features(self) -> nn.Sequential:
        """The feature path for inference, batch norm folded into the convolutions
        (same outputs, fewer passes over memory). A copy: training ``self`` does not
        change it."""
        layers: list[nn.Module] = []
        for block in self.body:
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
                conv, bn = block[0], block[1]
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
                fused.weight.data = (conv.weight * scale.view(-1, 1, 1, 1)).detach().clone()
                fused.bias.data = (bn.bias - bn.running_mean * scale).detach().clone()
                layers += [fused, nn.ReLU(inplace=True)]
            else:
                layers.append(copy.deepcopy(block))
        layers.append(copy.deepcopy(self.feature))
        return nn.Sequential(*layers).eval()

def reuse_lower_layers(network: nn.Module, other: nn.Module) -> list[str]:
    """Initialise ``network`` from ``other`` wherever a weight has the same name and shape,
    the class head apart (transfer: "NN_B with the same lower layers, initialised from
    NN_A"). Returns the names of the copied tensors."""
    own, theirs = network.state_dict(), other.state_dict()
    copied = [k for k, v in theirs.items() if k in own and own[k].shape == v.shape and not k.startswith("head.")]
    own.update({k: theirs[k] for k in copied})
    network.load_state_dict(own)
    return copied


def build_network(config: dict) -> nn.Module:
    """The untrained network a model file's ``network`` entry describes (files written
    before there was a choice hold a ``small_cnn`` without naming it)."""
    config = dict(config)
    architecture = config.pop("architecture", SMALL_CNN)
    if architecture == SMALL_CNN:
        return ProxyCNN(**{k: int(v) for k, v in config.items()})
    from .efficientnet import ARCHITECTURE, EfficientNetProxy

    if architecture == ARCHITECTURE:
        return EfficientNetProxy(**{k: int(v) for k, v in config.items()})
    raise ValueError(f"unknown network architecture {architecture!r}")


# oneDNN's fused convolution + ReLU, the kernel PyTorch's own compiler emits for this
# pattern on CPUs. It is an internal operator of PyTorch: without it (a build without
# oneDNN) the CPU path runs conv2d then ReLU, with the same results.
_CONV_RELU = (
    getattr(torch.ops.mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None
)


def _conv_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: list[int], stride: list[int]) -> torch.Tensor:
    if _CONV_RELU is not None:
        return _CONV_RELU(x, weight, bias, padding, stride, [1, 1], 1, "relu", [], "")
    return torch.relu_(nn.functional.conv2d(x, weight, bias, stride, padding))


@functools.lru_cache(maxsize=None)
def cpu_runs_bf16_convolutions() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU (AVX-512 BW/VL/DQ or AVX-NE-CONVERT);
    elsewhere the CPU path stays in float32 even under bf16 autocast."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None and torch.backends.mkldnn.is_available() else False


class CpuFeatureNetwork:
    """The feature path of a :class:`ProxyCNN` folded for CPU inference on raw values.

    Its input is ``[values * valid (one channel per band), valid]``: the first
    convolution's weights absorb the per-band affine map to the network's input,
    ``z = values * scale + offset`` where valid and 0 elsewhere, since

        conv_w(z) = conv_{w * scale}(values * valid) + conv_{sum over bands of w * offset}(valid)

    (zero padding included: outside the tile ``valid`` is 0 too). Building the input is
    then a single conversion pass, batch norm is folded into every convolution, and each
    convolution runs fused with its ReLU on channels-last activations. The input buffer
    is kept between batches: use one instance from one thread at a time.
    """

    def __init__(self, network: ProxyCNN, scale: np.ndarray, offset: np.ndarray, dtype: torch.dtype):
        fused = network.fused_features().cpu()
        convs = [m for m in fused if isinstance(m, nn.Conv2d)]
        n_layers = len(convs)
        if [type(m) for m in fused[: 2 * n_layers]] != [nn.Conv2d, nn.ReLU] * n_layers:
            raise ValueError("expected convolution/ReLU pairs at the start of the feature path")
        w = convs[0].weight.detach().double()
        s = torch.as_tensor(scale, dtype=torch.float64).view(1, -1, 1, 1)
        o = torch.as_tensor(offset, dtype=torch.float64).view(1, -1, 1, 1)
        weights = [torch.cat([w * s, (w * o).sum(1, keepdim=True)], 1)] + [c.weight.detach() for c in convs[1:]]
        self.layers = [
            (weight.to(dtype).contiguous(memory_format=torch.channels_last), conv.bias.detach().to(dtype),
             list(conv.padding), list(conv.stride))
            for weight, conv in zip(weights, convs)
        ]
        linear = fused[-1][0]
        self.linear = (linear.weight.detach().to(dtype), linear.bias.detach().to(dtype))
        self.dtype = dtype
        self._buffer = None

    def input(self, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``[values * valid, valid]`` in the network's dtype (values must be exact in it)."""
        n, bands, h, w = values.shape
        if self._buffer is None or self._buffer.shape != (n, bands + 1, h, w):
            self._buffer = torch.empty((n, bands + 1, h, w), dtype=self.dtype)
        x = self._buffer
        x[:, :bands].copy_(values)
        if not bool(valid.numpy().all()):
            x[:, :bands].masked_fill_(~valid.unsqueeze(1), 0)
        x[:, bands].copy_(valid)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            for weight, bias, padding, stride in self.layers:
                x = _conv_relu(x, weight, bias, padding, stride)
            pooled = x.mean((2, 3), dtype=torch.float32).to(self.dtype)
            return torch.relu(nn.functional.linear(pooled, *self.linear)).float()


class CnnExtractor(FeatureExtractor):
    """Features from a trained proxy network (:class:`ProxyCNN` or EfficientNet-Lite0).

    Pixels are standardized per band with the statistics of the training tiles, or, for a
    network trained on scene moments (``input_reading``), with the scene's own
    (:meth:`standardized_by` gives them); invalid pixels are set to 0 (the band mean) before the network sees them.
    The inference copies of the network (folded; bf16 where the hardware is fast at it)
    are made on first use: train the network before extracting features with it.
    """

    kind = "cnn"
    is_network = True
    reads_digital_numbers = True
    knows_band_statistics = True
    bf16_devices = ("cpu", "cuda")

    def __init__(
        self, network: nn.Module, band_means: np.ndarray, band_stds: np.ndarray, fused: bool = True,
        input_std: float = 1.0, input_reading: str = TRAINING_STATISTICS,
    ):
        if input_reading not in INPUT_READINGS:
            raise PovertyMapperError(f"Unknown input reading {input_reading!r} in the model file; this plugin knows "
                                     f"{', '.join(INPUT_READINGS)}. Update the plugin.")
        self.network = network.eval()
        self.input_reading = input_reading
        self.band_means = np.asarray(band_means, np.float64)
        self.band_stds = np.asarray(band_stds, np.float64)
        self.fused = fused  # folded and channels-last for inference (False: the plain eager network)
        # The spread of the network's input on its training tiles (0.5 for an ImageNet-started
        # network, 1 for the small CNN): band_stds = training spread / input_std.
        self.input_std = float(input_std)
        self._device: torch.device | None = None
        self._constants: tuple[torch.Tensor, torch.Tensor] | None = None
        self._inference: nn.Module | None = None
        self._cpu_networks: dict[tuple, CpuFeatureNetwork] = {}
        self._affine: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n_features(self) -> int:
        return int(self.network.feature_dim)

    @property
    def network_cost(self) -> float:
        """The network's cost per tile against the small CNN's (the run plan shares the
        CPU's cores by it)."""
        return float(getattr(self.network, "relative_cost", 1.0))

    def class_layer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The night-light class scores' layer of the network (its head)."""
        linear = self.network.head[-1]
        return (linear.weight.detach().cpu().numpy().astype(np.float64),
                linear.bias.detach().cpu().numpy().astype(np.float64))

    @property
    def reads_scene_moments(self) -> bool:
        """Whether the network reads each band standardized by its scene's mean and spread, always."""
        return self.input_reading == SCENE_MOMENTS

    @property
    def standardizes_scenes(self) -> bool:
        """Scene standardization by mean and spread, for imagery of another radiometry; a
        network with a scene reading of its own reads every scene so instead."""
        return self.input_reading == TRAINING_STATISTICS

    def standardized_by(self, means: np.ndarray, stds: np.ndarray) -> "CnnExtractor":
        """This network standardizing bands by a scene's mean and spread, scaled as its
        training tiles were (:attr:`input_std`)."""
        return CnnExtractor(self.network, means, stds / self.input_std, fused=self.fused, input_std=self.input_std,
                            input_reading=self.input_reading)

    def standardize(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        mean, std = self._on(pixels.device)
        z = (pixels.float() - mean) / std
        return torch.where(valid.unsqueeze(1), z, torch.zeros_like(z))

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self._device != device:
            self.network.to(device)
            self._inference = None
            self._constants = (
                torch.as_tensor(self.band_means, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.band_stds, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            )
            self._device = device
        return self._constants

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Features of reflectance tiles (invalid pixels are ignored)."""
        if self._on_cpu_fast_path(pixels.device):
            return self._cpu_features(pixels, valid, np.ones_like(self.band_means), np.zeros_like(self.band_means))
        return self._run(self.standardize(pixels, valid))

    def extract_dn(self, dn: torch.Tensor, valid: torch.Tensor, radiometry) -> torch.Tensor:
        """Features straight from digital numbers (radiometry ``reflectance = scale * DN + offset``)."""
        scale = np.full_like(self.band_means, radiometry.scale)
        offset = np.full_like(self.band_means, radiometry.offset)
        if self._on_cpu_fast_path(dn.device):
            return self._cpu_features(dn, valid, scale, offset)
        self._on(dn.device)
        key = (radiometry.scale, radiometry.offset, dn.device)
        if key not in self._affine:  # z = dn * a + b, kept on the device
            self._affine[key] = tuple(
                torch.as_tensor(v, dtype=torch.float32, device=dn.device).view(1, -1, 1, 1)
                for v in (scale / self.band_stds, (offset - self.band_means) / self.band_stds)
            )
        a, b = self._affine[key]
        z = torch.addcmul(b, dn.float(), a)
        return self._run(torch.where(valid.unsqueeze(1), z, torch.zeros((), device=z.device)))

    def _on_cpu_fast_path(self, device: torch.device) -> bool:
        """The folded CPU path of :class:`CpuFeatureNetwork` (the small CNN's plain
        convolution/ReLU stack only)."""
        return self.fused and device.type == "cpu" and isinstance(self.network, ProxyCNN)

    def _cpu_features(self, values: torch.Tensor, valid: torch.Tensor, scale: np.ndarray, offset: np.ndarray) -> torch.Tensor:
        """The CPU path: :class:`CpuFeatureNetwork` in bf16 under bf16 autocast where the CPU
        runs bf16 convolutions, else float32.

        The values go into the network's dtype as they are when that is exact (float32,
        or 8-bit DN in bf16), with the affine map to the network's input folded into the
        first convolution; otherwise they are mapped in float32 first and rounded once."""
        self._on(values.device)
        bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        dtype = torch.bfloat16 if bf16 and cpu_runs_bf16_convolutions() else torch.float32
        z_scale, z_offset = scale / self.band_stds, (offset - self.band_means) / self.band_stds
        if dtype == torch.bfloat16 and values.dtype not in (torch.uint8, torch.int8):
            a, b = (torch.as_tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in (z_scale, z_offset))
            values = torch.addcmul(b, values.float(), a)
            z_scale, z_offset = np.ones_like(z_scale), np.zeros_like(z_offset)
        key = (tuple(z_scale), tuple(z_offset), dtype)
        network = self._cpu_networks.get(key)
        if network is None:
            network = self._cpu_networks[key] = CpuFeatureNetwork(self.network, z_scale, z_offset, dtype)
        return network(network.input(values, valid))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            self.network.eval()
            return self.network.features(x)
        if x.device.type == "cpu" and _CONV_RELU is not None and hasattr(self.network, "cpu_inference"):
            bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            dtype = torch.bfloat16 if bf16 and cpu_runs_bf16_convolutions() else torch.float32
            network = self._cpu_networks.get(("cpu_inference", dtype))
            if network is None:
                network = self._cpu_networks[("cpu_inference", dtype)] = self.network.cpu_inference(dtype, _CONV_RELU)
            return network(x)
        if self._inference is None:
            self._inference = self.network.fused_features().to(x.device, memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        if x.device.type == "cpu" and not cpu_runs_bf16_convolutions():  # no bf16 convolutions here: float32
            with torch.autocast("cpu", enabled=False):
                return self._inference(x).float()
        return self._inference(x).float()

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"weights/{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        arrays.update(band_means=self.band_means, band_stds=self.band_stds)
        spec = {"kind": self.kind, "n_features": self.n_features, "network": dict(self.network.config),
                "input_std": self.input_std,
                **({"input_reading": self.input_reading} if self.input_reading != TRAINING_STATISTICS else {})}
        return spec, arrays

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "CnnExtractor":
        network = build_network(spec["network"])
        state = {k.split("/", 1)[1]: torch.from_numpy(np.array(arrays[k])) for k in arrays if k.startswith("weights/")}
        network.load_state_dict(state)
        # Files of the first EfficientNet models name no input_std: theirs was 0.5, as for every EfficientNet.
        default = 0.5 if network.config["architecture"] != SMALL_CNN else 1.0
        return cls(network, arrays["band_means"], arrays["band_stds"], input_std=spec.get("input_std", default),
                   input_reading=spec.get("input_reading", TRAINING_STATISTICS))
