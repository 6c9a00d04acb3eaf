"""Per-band histograms of standardized reflectance (Yeh et al. 2020's baseline features)."""
from __future__ import annotations

import numpy as np
import torch

# Bin edges of the Yeh et al. 2020 histograms: [-1e5, -5.0, -4.9, ..., 4.9, 5.0, 1e5]
# on standardized band values, i.e. 102 bins (see ../shared/data/README.md).
YEH_BIN_EDGES = np.concatenate([[-1e5], np.round(np.linspace(-5.0, 5.0, 101), 10), [1e5]])


# Integer pixel types whose every value can be tabulated: (lowest value, number of values).
_DN_LEVELS = {torch.uint8: (0, 256), torch.int16: (-32768, 65536), torch.uint16: (0, 65536)}


# How frequencies become features, by the extractor kind a model file names: the plain
# frequencies (Yeh et al. 2020, the default model), or their square roots (the Hellinger
# embedding: a bin that almost no tile reaches no longer dwarfs the common ones once
# standardized; better on the LSMS validation splits, see docs/fit_clusters.md).
TRANSFORMS = {"histogram": "frequency", "histogram_sqrt": "sqrt"}


class HistogramExtractor:
    """Per-band histograms of standardized reflectance, as frequencies (or their roots).

    ``z = (value - mean) / std`` per band, binned on ``edges``; each band's counts
    are divided by the number of valid pixels of the tile, and the bands' histograms
    are concatenated. Invalid pixels (fill, outside the raster) are not counted.
    With ``transform="sqrt"`` the features are the square roots of the frequencies,
    and the kind is ``histogram_sqrt`` (a plugin that does not know it refuses the file
    instead of reading it as frequencies).
    """

    reads_imagery = True

    def __init__(
        self, band_means: np.ndarray, band_stds: np.ndarray, edges: np.ndarray = YEH_BIN_EDGES,
        transform: str = "frequency",
    ):
        if transform not in TRANSFORMS.values():
            raise ValueError(f"unknown histogram transform {transform!r}; use one of {sorted(TRANSFORMS.values())}")
        self.transform = transform
        self.kind = next(k for k, t in TRANSFORMS.items() if t == transform)
        self.band_means = np.asarray(band_means, dtype=np.float64)
        self.band_stds = np.asarray(band_stds, dtype=np.float64)
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.band_means.shape != self.band_stds.shape or self.band_means.ndim != 1:
            raise ValueError("band_means and band_stds must be 1-d of the same length")
        if not np.all(self.band_stds > 0) or not np.all(np.isfinite(self.band_means)):
            raise ValueError("band standard deviations must be positive and band means finite")
        if self.edges.ndim != 1 or self.edges.size < 2 or not np.all(np.diff(self.edges) > 0):
            raise ValueError("bin edges must be increasing")
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._tables: dict[tuple, torch.Tensor] = {}

    @property
    def n_bands(self) -> int:
        return self.band_means.size

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    @property
    def n_features(self) -> int:
        return self.n_bands * self.n_bins

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = (
                torch.as_tensor(self.band_means, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.band_stds, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.edges[1:-1], dtype=torch.float32, device=device),
            )
        return self._cache[device]

    def _bins(self, pixels: torch.Tensor) -> torch.Tensor:
        """Bin of every value: bin i holds edges[i] <= z < edges[i+1], as numpy.histogram."""
        mean, std, inner_edges = self._constants(pixels.device)
        return torch.bucketize((pixels.float() - mean) / std, inner_edges, right=True)

    def _frequencies(self, bins: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Counts per tile and band of ``bins`` [N, B, H, W] over valid pixels, as frequencies."""
        n, bands = bins.shape[:2]
        slots = n * bands * self.n_bins
        offsets = (torch.arange(n * bands, device=bins.device) * self.n_bins).view(n, bands, 1, 1)
        # Invalid pixels go to one extra slot that is dropped, rather than weighting every pixel.
        index = torch.where(valid.unsqueeze(1), bins + offsets, torch.full((), slots, device=bins.device))
        counts = torch.bincount(index.flatten(), minlength=slots + 1)[:slots].view(n, bands * self.n_bins)
        n_valid = valid.flatten(1).sum(1).clamp(min=1).to(torch.float32)
        return counts.to(torch.float32) / n_valid.unsqueeze(1)

    def _finish(self, frequencies: torch.Tensor) -> torch.Tensor:
        return frequencies.clamp(min=0).sqrt() if self.transform == "sqrt" else frequencies

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if pixels.shape[1] != self.n_bands:
            raise ValueError(f"expected {self.n_bands} bands, got {pixels.shape[1]}")
        return self._finish(self._frequencies(self._bins(pixels), valid))

    def extract_dn(self, dn: torch.Tensor, valid: torch.Tensor, radiometry) -> torch.Tensor:
        """The same features from digital numbers: for 8- and 16-bit imagery the bin of
        every possible DN is looked up in a table built with the exact float path, so
        the result is identical and much cheaper. Invalid pixels must hold DN 0."""
        if dn.shape[1] != self.n_bands:
            raise ValueError(f"expected {self.n_bands} bands, got {dn.shape[1]}")
        if dn.dtype not in _DN_LEVELS:
            return self.extract(radiometry.apply_torch(dn), valid)
        return self._finish(self._dn_frequencies(dn, valid, radiometry))

    def _dn_frequencies(self, dn: torch.Tensor, valid: torch.Tensor, radiometry) -> torch.Tensor:
        table = self._dn_table(radiometry, dn.dtype, dn.device)  # [bands, levels] bin of each DN
        n, bands = dn.shape[:2]
        low, levels = _DN_LEVELS[dn.dtype]
        if dn.device.type == "cpu":
            return torch.from_numpy(self._dn_frequencies_numpy(dn.numpy(), valid.numpy(), table.numpy(), low))
        if dn.dtype == torch.uint8:
            # Count DN values first (256 per band), then map counts to bins with the table.
            # Invalid pixels hold DN 0 (TileReader.read_dn guarantees it): they are counted
            # in DN 0 of every band and taken out again, which saves a masking pass.
            offsets = (torch.arange(n * bands, device=dn.device, dtype=torch.int32) * levels).view(n, bands, 1, 1)
            dn_counts = torch.bincount((dn + offsets).flatten(), minlength=n * bands * levels)
            dn_counts = dn_counts.view(n, bands, levels).to(torch.float32)
            n_valid = torch.count_nonzero(valid.flatten(1), dim=1).to(torch.float32)
            dn_counts[:, :, 0] -= (valid[0].numel() - n_valid).unsqueeze(1)
            onehot = torch.nn.functional.one_hot(table, self.n_bins).to(torch.float32)  # [bands, levels, bins]
            counts = torch.einsum("nbl,blk->nbk", dn_counts, onehot).reshape(n, bands * self.n_bins)
            return counts / n_valid.clamp(min=1).unsqueeze(1)
        flat = table.flatten()
        band_base = (torch.arange(bands, device=dn.device, dtype=torch.int64) * levels).view(1, bands, 1, 1)
        bins = flat[dn.to(torch.int64) - low + band_base]
        return self._frequencies(bins, valid)

    def _dn_frequencies_numpy(self, dn: np.ndarray, valid: np.ndarray, table: np.ndarray, low: int) -> np.ndarray:
        """CPU path: numpy's bincount per tile and band is several times faster here
        than one large torch bincount. Invalid pixels hold DN 0 and are taken out of
        the bin of DN 0 again."""
        n, bands = dn.shape[:2]
        n_valid = np.count_nonzero(valid.reshape(n, -1), axis=1)
        n_invalid = valid[0].size - n_valid
        counts = np.empty((n, bands, self.n_bins), np.float32)
        for k in range(bands):
            bins_of_dn = table[k]
            zero_bin = bins_of_dn[0 - low]
            for i in range(n):
                row = dn[i, k].ravel()
                if dn.dtype == np.uint8:
                    counts[i, k] = np.bincount(bins_of_dn, weights=np.bincount(row, minlength=256), minlength=self.n_bins)
                else:
                    counts[i, k] = np.bincount(bins_of_dn.take(row.astype(np.int64) - low if low else row), minlength=self.n_bins)
                counts[i, k, zero_bin] -= n_invalid[i]
        frequencies = counts / np.maximum(n_valid, 1).astype(np.float32)[:, None, None]
        return frequencies.reshape(n, bands * self.n_bins)

    def _dn_table(self, radiometry, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (radiometry, dtype, device)
        if key not in self._tables:
            low, levels = _DN_LEVELS[dtype]
            values = torch.arange(low, low + levels, dtype=torch.float32).view(1, 1, 1, -1).expand(1, self.n_bands, 1, levels)
            reflectance = radiometry.apply_torch(values)
            self._tables[key] = self._bins(reflectance).view(self.n_bands, levels).to(device)
        return self._tables[key]

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return (
            {"kind": self.kind, "n_features": self.n_features},
            {"band_means": self.band_means, "band_stds": self.band_stds, "edges": self.edges},
        )

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "HistogramExtractor":
        transform = TRANSFORMS.get(spec.get("kind", "histogram"))
        if transform is None:
            raise ValueError(f"not a histogram extractor: {spec.get('kind')!r}")
        return cls(arrays["band_means"], arrays["band_stds"], arrays["edges"], transform)
