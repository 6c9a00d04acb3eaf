"""Random convolutional features (MOSAIKS, Rolf et al. 2021, Nature Communications).

K patches of ``p x p`` pixels, sampled at random from the imagery itself, serve as
fixed convolution filters. Each tile is convolved with every filter; the responses
go through ``ReLU(c - bias)`` and ``ReLU(-c - bias)`` (MOSAIKS uses both signs and a
bias of 1) and are averaged over the tile, giving ``2K`` features per tile. Nothing
is trained: the only fitting is the ridge regression on top.

Pixels are standardized per band, ``z = (value - mean) / std``, and the filters are
stored in the same standardized space. Tile borders are zero-padded (0 is the band
mean). The average runs over the output positions whose receptive field holds no
invalid pixel (fill, outside the raster): an invalid pixel never feeds a feature, not
even as a neighbour, so a tile whose left half is invalid gives the features of its
right half less the column of positions next to the invalid half.

``stride`` > 1 evaluates the filters at every ``stride``-th pixel of each row and
column only (a strided convolution): ``stride**2`` times less work, and the average
over the tile becomes an average over that regular sample of positions. The filters
keep the full pixel resolution. MOSAIKS proper is ``stride=1``, the default.

Not done: the ZCA whitening of the patches of the MOSAIKS code.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Rows of the activation matrix computed at once on the CPU: [rows, 2K] float32 stays
# in the L2 cache (1024 x 512 x 4 B = 2 MiB for K = 256), which is what makes the
# convolution fast there; the full [N, 2K, H, W] activation would be gigabytes.
_CPU_BLOCK_ROWS = 1024
# Activation elements per step on a GPU (256 MiB of float32).
_GPU_BLOCK_ELEMENTS = 1 << 26


class RandomConvExtractor:
    """MOSAIKS features: masked average of ReLU responses to random image patches.

    ``filters`` [K, bands, p, p] in standardized units (odd ``p``); ``band_means`` and
    ``band_stds`` standardize the reflectance of each band; features are
    ``[mean ReLU(conv_k - bias) for k] + [mean ReLU(-conv_k - bias) for k]``.
    ``info`` is free-form provenance (how the filters were sampled), kept in the spec.
    """

    kind = "random"
    reads_imagery = True

    def __init__(
        self,
        filters: np.ndarray,
        band_means: np.ndarray,
        band_stds: np.ndarray,
        bias: float = 1.0,
        stride: int = 1,
        info: dict | None = None,
    ):
        self.filters = np.asarray(filters, dtype=np.float32)
        self.band_means = np.asarray(band_means, dtype=np.float64)
        self.band_stds = np.asarray(band_stds, dtype=np.float64)
        self.bias = float(bias)
        self.stride = int(stride)
        self.info = dict(info or {})
        if self.band_means.shape != self.band_stds.shape or self.band_means.ndim != 1:
            raise ValueError("band_means and band_stds must be 1-d of the same length")
        if np.any(~(self.band_stds > 0)):
            raise ValueError("band standard deviations must be positive")
        if not np.all(np.isfinite(self.band_means)) or not np.all(np.isfinite(self.band_stds)):
            raise ValueError("band means and standard deviations must be finite")
        f = self.filters
        if f.ndim != 4 or f.shape[0] < 1 or f.shape[1] != self.band_means.size:
            raise ValueError(
                f"filters must be [K, {self.band_means.size}, p, p] with K >= 1, got {list(f.shape)}"
            )
        if f.shape[2] != f.shape[3] or f.shape[2] % 2 != 1:
            raise ValueError(f"filters must be square with an odd size, got {f.shape[2]} x {f.shape[3]}")
        if not np.all(np.isfinite(f)):
            raise ValueError("filters must be finite")
        if not math.isfinite(self.bias):
            raise ValueError("the bias must be finite")
        if self.stride < 1:
            raise ValueError("the stride must be at least 1")
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    # -- construction -------------------------------------------------------------

    @classmethod
    def sample(
        cls,
        tiles: np.ndarray,
        valid: np.ndarray,
        n_filters: int = 256,
        patch_size: int = 3,
        seed: int = 0,
        band_means: np.ndarray | None = None,
        band_stds: np.ndarray | None = None,
        bias: float = 1.0,
        stride: int = 1,
    ) -> "RandomConvExtractor":
        """Filters drawn from ``tiles`` [N, bands, H, W] reflectance, ``valid`` [N, H, W].

        ``n_filters`` distinct patch locations are drawn uniformly, without replacement
        (seeded ``numpy.random.default_rng``), among the locations whose ``patch_size``
        x ``patch_size`` pixels all lie inside a tile and are all valid and finite.
        Without ``band_means``/``band_stds`` they are estimated from the valid pixels.
        Raises ``ValueError`` when there are fewer such locations than filters.
        """
        tiles = np.asarray(tiles)
        valid = np.asarray(valid, dtype=bool)
        if tiles.ndim != 4 or valid.shape != (tiles.shape[0],) + tiles.shape[2:]:
            raise ValueError("tiles must be [N, bands, H, W] and valid [N, H, W]")
        n_filters, p = int(n_filters), int(patch_size)
        if n_filters < 1:
            raise ValueError("n_filters must be at least 1")
        if p < 1 or p % 2 != 1:
            raise ValueError("patch_size must be odd and positive")
        n, bands, h, w = tiles.shape
        ok = valid & np.all(np.isfinite(tiles), axis=1)
        if band_means is None or band_stds is None:
            values = np.moveaxis(tiles, 1, 0)[:, ok].astype(np.float64)  # [bands, n_valid]
            if values.shape[1] == 0:
                raise ValueError("the tiles hold no valid pixels to estimate band statistics from")
            if band_means is None:
                band_means = values.mean(axis=1)
            if band_stds is None:
                band_stds = np.maximum(values.std(axis=1), 1e-6)
        means = np.asarray(band_means, dtype=np.float64)
        stds = np.asarray(band_stds, dtype=np.float64)
        if means.shape != (bands,) or stds.shape != (bands,):
            raise ValueError(f"band_means and band_stds must have one value per band ({bands})")

        # A location (top-left corner) is usable when its whole p x p window is valid.
        if h < p or w < p:
            usable = np.zeros((n, 0, 0), bool)
        else:
            usable = np.lib.stride_tricks.sliding_window_view(ok, (p, p), axis=(1, 2)).all(axis=(-2, -1))
        per_tile = usable.reshape(n, -1).sum(axis=1)
        total = int(per_tile.sum())
        if total < n_filters:
            raise ValueError(
                f"only {total} fully valid {p}x{p} patch locations in the imagery, fewer than the "
                f"{n_filters} filters asked for; give more (or more valid) tiles or fewer filters"
            )
        rng = np.random.default_rng(seed)
        ranks = rng.choice(total, size=n_filters, replace=False)
        ends = np.cumsum(per_tile)
        tile_of = np.searchsorted(ends, ranks, side="right")
        within = ranks - (ends[tile_of] - per_tile[tile_of])
        filters = np.empty((n_filters, bands, p, p), np.float64)
        usable_w = usable.shape[2]
        for t in np.unique(tile_of):
            chosen = np.flatnonzero(tile_of == t)
            positions = np.flatnonzero(usable[t])[within[chosen]]
            for k, pos in zip(chosen, positions):
                i, j = divmod(int(pos), usable_w)
                filters[k] = tiles[t, :, i : i + p, j : j + p]
        filters = (filters - means[None, :, None, None]) / stds[None, :, None, None]
        info = {
            "method": "MOSAIKS random patches (Rolf et al. 2021), not whitened",
            "seed": int(seed),
            "n_tiles": int(n),
            "n_locations": total,
        }
        return cls(filters.astype(np.float32), means, stds, bias=bias, stride=stride, info=info)

    # -- properties ---------------------------------------------------------------

    @property
    def n_bands(self) -> int:
        return self.band_means.size

    @property
    def n_filters(self) -> int:
        return self.filters.shape[0]

    @property
    def patch_size(self) -> int:
        return self.filters.shape[2]

    @property
    def n_features(self) -> int:
        return 2 * self.n_filters

    # -- extraction ---------------------------------------------------------------

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            w = torch.as_tensor(self.filters.reshape(self.n_filters, -1), dtype=torch.float32, device=device)
            self._cache[device] = (
                torch.cat([w, -w]).t().contiguous(),  # [bands * p * p, 2K]: +filters then -filters
                torch.full((2 * self.n_filters,), -self.bias, dtype=torch.float32, device=device),
                torch.as_tensor(self.band_means, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.band_stds, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            )
        return self._cache[device]

    def _steps(self, device: torch.device, positions: int) -> tuple[int, int]:
        """(tiles, rows of output positions) per matrix product: cache-sized blocks of
        one tile on the CPU, whole tiles in bounded batches on a GPU."""
        if device.type == "cpu":
            return 1, min(positions, _CPU_BLOCK_ROWS)
        return max(1, _GPU_BLOCK_ELEMENTS // (positions * self.n_features)), positions

    def _clean_positions(self, valid: torch.Tensor) -> torch.Tensor:
        """[N, H, W] bool: the positions whose ``p x p`` receptive field, within the tile,
        holds valid pixels only (max pooling pads with -inf: the border is not invalid)."""
        if self.patch_size == 1 or bool(valid.all()):
            return valid
        invalid = (~valid).unsqueeze(1).to(torch.float32)
        near_invalid = F.max_pool2d(invalid, self.patch_size, stride=1, padding=self.patch_size // 2)
        return near_invalid[:, 0] == 0

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pixels`` [N, bands, H, W] reflectance, ``valid`` [N, H, W] bool -> [N, 2K] float32."""
        n, bands, h, w = pixels.shape
        if bands != self.n_bands:
            raise ValueError(f"expected {self.n_bands} bands, got {bands}")
        if tuple(valid.shape) != (n, h, w):
            raise ValueError(f"valid must be [N, H, W] = {[n, h, w]}, got {list(valid.shape)}")
        device = pixels.device
        weights, bias, mean, std = self._constants(device)
        valid = valid.to(device=device, dtype=torch.bool)
        out = torch.zeros(n, self.n_features, dtype=torch.float32, device=device)
        if n == 0 or h == 0 or w == 0:
            return out
        z = (pixels.float() - mean) / std
        z = torch.where(valid.unsqueeze(1), z, torch.zeros_like(z))  # no NaN or fill enters a product
        s, p = self.stride, self.patch_size
        centres = self._clean_positions(valid)[:, ::s, ::s].reshape(n, 1, -1).to(torch.float32)  # [N, 1, P]
        positions = centres.shape[2]
        tiles_per_step, rows = self._steps(device, positions)
        for t0 in range(0, n, tiles_per_step):
            t1 = min(n, t0 + tiles_per_step)
            # [tiles, P, bands * p * p]; padding p // 2 puts output position i at pixel i * s.
            cols = F.unfold(z[t0:t1], p, padding=p // 2, stride=s).transpose(1, 2).contiguous()
            acc = out[t0:t1].unsqueeze(1)  # [tiles, 1, 2K], a view of out
            for r0 in range(0, positions, rows):
                act = torch.matmul(cols[:, r0 : r0 + rows], weights).add_(bias).relu_()
                # Under autocast the product is bfloat16; the pooled sums stay float32.
                acc.baddbmm_(centres[t0:t1, :, r0 : r0 + rows], act.float())
        return out / centres.sum(dim=(1, 2)).clamp(min=1).unsqueeze(1)

    # -- model file ---------------------------------------------------------------

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        spec = {
            "kind": self.kind,
            "n_features": self.n_features,
            "n_filters": self.n_filters,
            "patch_size": self.patch_size,
            "bias": self.bias,
            "stride": self.stride,
            "info": self.info,
        }
        return spec, {"filters": self.filters, "band_means": self.band_means, "band_stds": self.band_stds}

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "RandomConvExtractor":
        extractor = cls(
            arrays["filters"],
            arrays["band_means"],
            arrays["band_stds"],
            bias=float(spec.get("bias", 1.0)),
            stride=int(spec.get("stride", 1)),
            info=spec.get("info") or {},
        )
        if "n_features" in spec and int(spec["n_features"]) != extractor.n_features:
            raise ValueError(
                f"the random extractor spec says {spec['n_features']} features but its filters give "
                f"{extractor.n_features}"
            )
        return extractor
