"""The nightlight-proxy CNN of Jean et al. 2016, in plain ``torch.nn``.

A small convolutional classifier learns nighttime-light classes from daytime tiles;
its penultimate layer is then the feature vector of a tile. The network is sized
for CPUs (about 0.3 M weights); it runs on CUDA when there is one.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch import nn


def _block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ProxyCNN(nn.Module):
    """Conv body (4 stride-2 blocks, global average pool) -> feature layer -> class head."""

    def __init__(self, in_bands: int, n_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.config = {"in_bands": in_bands, "n_classes": n_classes, "width": width, "feature_dim": feature_dim}
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

    def reuse_lower_layers(self, other: "ProxyCNN") -> list[str]:
        """Initialise from ``other`` wherever a weight has the same name and shape
        (transfer: "NN_B with the same lower layers, initialised from NN_A").
        Returns the names of the copied tensors."""
        own = self.state_dict()
        copied = [k for k, v in other.state_dict().items() if k in own and own[k].shape == v.shape and not k.startswith("head.")]
        own.update({k: other.state_dict()[k] for k in copied})
        self.load_state_dict(own)
        return copied


class CnnExtractor:
    """Features from a trained :class:`ProxyCNN`.

    Pixels are standardized per band with the statistics of the training tiles;
    invalid pixels are set to 0 (the band mean) before the network sees them.
    """

    kind = "cnn"

    def __init__(self, network: ProxyCNN, band_means: np.ndarray, band_stds: np.ndarray, fused: bool = True):
        self.network = network.eval()
        self.band_means = np.asarray(band_means, np.float64)
        self.band_stds = np.asarray(band_stds, np.float64)
        self.fused = fused  # batch norm folded and channels-last for inference (False: plain eager network)
        self._device: torch.device | None = None
        self._constants: tuple[torch.Tensor, torch.Tensor] | None = None
        self._inference: nn.Module | None = None
        self._cpu_bf16_module: torch.jit.ScriptModule | None = None
        self._affine: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def n_features(self) -> int:
        return int(self.network.config["feature_dim"])

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
        return self._run(self.standardize(pixels, valid))

    def extract_dn(self, dn: torch.Tensor, valid: torch.Tensor, radiometry) -> torch.Tensor:
        """Features straight from digital numbers: radiometry and standardization are one
        multiply-add per pixel (``z = dn * a + b``), invalid pixels set to 0.

        When the network runs in bf16 on the CPU and the DN are 8-bit (exact in bf16),
        this is done in bf16 too: half the memory traffic of the step that, in float32,
        took about as long as the network itself."""
        self._on(dn.device)
        dtype = torch.bfloat16 if dn.dtype == torch.uint8 and self._cpu_bf16_active(dn.device) else torch.float32
        a, b = self._dn_affine(radiometry, dn.device, dtype)
        z = torch.addcmul(b, dn.to(dtype), a)
        return self._run(torch.where(valid.unsqueeze(1), z, torch.zeros((), dtype=dtype, device=z.device)))

    def _cpu_bf16_active(self, device: torch.device) -> bool:
        return (
            self.fused and device.type == "cpu"
            and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )

    def _dn_affine(self, radiometry, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (radiometry, device, dtype)
        if key not in self._affine:
            a = radiometry.scale / self.band_stds
            b = (radiometry.offset - self.band_means) / self.band_stds
            self._affine[key] = tuple(
                torch.as_tensor(v, dtype=torch.float32, device=device).view(1, -1, 1, 1).to(dtype) for v in (a, b)
            )
        return self._affine[key]

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            self.network.eval()
            return self.network.features(x)
        x = x.contiguous(memory_format=torch.channels_last)
        if self._cpu_bf16_active(x.device):
            return self._cpu_bf16(x)
        if self._inference is None:
            self._inference = self.network.fused_features().to(x.device, memory_format=torch.channels_last)
        return self._inference(x)

    def _cpu_bf16(self, x: torch.Tensor) -> torch.Tensor:
        """bf16 on the CPU: bf16 weights, traced and frozen so oneDNN fuses each
        convolution with its ReLU (measured faster than eager autocast, which runs the
        ReLUs as separate passes)."""
        x = x.to(torch.bfloat16)
        with torch.autocast("cpu", enabled=False):
            if self._cpu_bf16_module is None:
                module = self.network.fused_features().to(torch.bfloat16, memory_format=torch.channels_last)
                with warnings.catch_warnings():
                    # TorchScript is deprecated in favour of torch.compile, which needs a
                    # compiler toolchain at run time; tracing still works and is what fuses here.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._cpu_bf16_module = torch.jit.freeze(torch.jit.trace(module, x, check_trace=False))
            return self._cpu_bf16_module(x)

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"weights/{k}": v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}
        arrays.update(band_means=self.band_means, band_stds=self.band_stds)
        return {"kind": self.kind, "n_features": self.n_features, "network": dict(self.network.config)}, arrays

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "CnnExtractor":
        config = {k: int(v) for k, v in spec["network"].items()}
        network = ProxyCNN(**config)
        state = {k.split("/", 1)[1]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("weights/")}
        network.load_state_dict(state)
        return cls(network, arrays["band_means"], arrays["band_stds"])
