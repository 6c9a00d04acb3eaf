"""A PNG quicklook of an estimate raster: the map in colour with a titled legend,
optionally beside the true-colour image it was made from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ..models.metadata import legend_from_tags, lights_from_tags

MAX_SIDE = 1200  # pixels of the image panel; larger scenes are read decimated
DPI = 110


def _metres(text: str | None) -> str:
    """A cell size tag as the title gives it: "611 m", "960 m" ("? m" when unknown)."""
    try:
        return f"{float(text):.0f} m"
    except (TypeError, ValueError):
        return "? m"


def _true_colour(path: str | Path, band_indexes: tuple[int, int, int]) -> tuple[np.ndarray, tuple]:
    with rasterio.open(path) as ds:
        factor = max(1, int(np.ceil(max(ds.width, ds.height) / MAX_SIDE)))
        shape = (3, ds.height // factor, ds.width // factor)
        rgb = ds.read(list(band_indexes), out_shape=shape, resampling=Resampling.average).astype(np.float64)
        bounds = ds.bounds
    valid = np.all(rgb > 0, axis=0)
    out = np.zeros(rgb.shape[1:] + (3,))
    for i in range(3):
        values = rgb[i][valid]
        if values.size:
            lo, hi = np.percentile(values, (2, 98))
            out[..., i] = np.clip((rgb[i] - lo) / max(hi - lo, 1e-9), 0, 1)
    return out, (bounds.left, bounds.right, bounds.bottom, bounds.top)


def write_quicklook(
    estimate_path: str | Path,
    png_path: str | Path,
    image_path: str | Path | None = None,
    image_bands: tuple[int, int, int] | None = None,
) -> Path:
    """The quicklook of ``estimate_path`` (beside the image, where given) as a PNG."""
    import matplotlib.pyplot as plt

    fig, _ = quicklook_figure(estimate_path, image_path, image_bands)
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=DPI)
    plt.close(fig)
    return png_path


def quicklook_figure(
    estimate_path: str | Path,
    image_path: str | Path | None = None,
    image_bands: tuple[int, int, int] | None = None,
):
    """The quicklook's matplotlib figure (at the PNG's resolution) and the map's axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(estimate_path) as ds:
        values = ds.read(1, masked=True)
        b = ds.bounds
        tags = ds.tags()
        title = ds.descriptions[0] or "estimate"
        flagged = _flagged_cells(ds)
    extent = (b.left, b.right, b.bottom, b.top)
    panels = 2 if image_path else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 6.8), squeeze=False, constrained_layout=True, dpi=DPI)
    if image_path:
        bands = image_bands or _guess_rgb_bands(image_path, tags)
        rgb, img_extent = _true_colour(image_path, bands)
        ax = axes[0, 0]
        ax.imshow(rgb, extent=img_extent)
        ax.set_title(f"Image: {Path(image_path).name}", fontsize=9)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
    ax = axes[0, -1]
    norm = None
    scale = legend_from_tags(tags)
    if scale is not None:  # the model's fixed scale, the survey mean at the middle colour
        from matplotlib.colors import TwoSlopeNorm

        lo, hi, mean = scale
        norm = TwoSlopeNorm(vcenter=min(max(mean, lo + 1e-9), hi - 1e-9), vmin=lo, vmax=hi)
    im = ax.imshow(values, extent=extent, cmap="RdYlBu", interpolation="nearest", norm=norm)
    cbar = fig.colorbar(im, ax=ax, shrink=0.8, extend="both" if norm is not None else "neither")
    cbar.set_label(title, labelpad=16 if norm is not None else 4)  # room for the survey-mean mark's words
    if scale is not None:  # the survey mean marked on the scale
        cbar.ax.axhline(scale[2], color="black", linewidth=1.5)
        cbar.ax.text(1.05, scale[2], " survey\n mean", transform=cbar.ax.get_yaxis_transform(), va="center", fontsize=6)
    lights = lights_from_tags(tags)
    ax.set_title(
        f"Poverty map: {tags.get('QUANTITY', 'estimate')}\nmodel: {tags.get('MODEL', '?')}\n"
        f"cell {_metres(tags.get('CELL_SIZE_M'))} (grey = no data)" + (f", from the {lights}" if lights else ""),
        fontsize=9,
    )
    ax.set_facecolor("#bbbbbb")
    if flagged is not None and flagged.any():
        _hatch(ax, flagged, extent)
        ax.set_xlabel(f"hatched: {int(flagged.sum())} cells extrapolated or from imagery unlike the model's "
                      "(read with care)", fontsize=7)
    for a in axes[0]:
        a.tick_params(labelsize=7)
        a.ticklabel_format(style="plain", useOffset=False)
    fig.text(0.01, 0.005, "Model estimates, not survey measurements: compare places, not absolute values.", fontsize=7)
    return fig, ax


def _flagged_cells(ds) -> np.ndarray | None:
    """Cells whose estimate the map's quality band flags (1 extrapolation, 3 out of the
    model's domain), or None for a raster without that band."""
    band = next((i + 1 for i, d in enumerate(ds.descriptions) if i and (d or "").startswith("quality")), None)
    if band is None:
        return None
    quality = ds.read(band)
    return (quality == 1) | (quality == 3)


def _hatch(ax, flagged: np.ndarray, extent: tuple) -> None:
    """Hatching over the flagged cells (one square per cell)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    left, right, bottom, top = extent
    w, h = (right - left) / flagged.shape[1], (top - bottom) / flagged.shape[0]
    squares = [Rectangle((left + c * w, top - (r + 1) * h), w, h) for r, c in np.argwhere(flagged)]
    ax.add_collection(PatchCollection(squares, facecolor="none", edgecolor="#333333", linewidth=0, hatch="///"))


def _guess_rgb_bands(image_path: str | Path, tags: dict) -> tuple[int, int, int]:
    """Red, green, blue band numbers: from the estimate's SOURCE_BANDS (model order
    blue, green, red) when present, else the first three bands reversed."""
    source = [int(b) for b in tags.get("SOURCE_BANDS", "").split(",") if b.strip()]
    if len(source) == 3:
        return source[2], source[1], source[0]
    return 3, 2, 1
