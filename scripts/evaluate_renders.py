"""Maps of the bundled Kinshasa CNN on generated renders of its two shared scenes, the two
dates against each other, and r² at the DHS clusters of each date's map.

    python scripts/evaluate_renders.py [--real ../shared/data/real]
        [--model resources/models/kinshasa_cnn.povmodel] [--window-tiles 10]
        [--dates-window-tiles 0] [--renders name,name,...]

Generated renders (named so; not real imagery; evaluation.kinshasa_renders): each shared
render (2013, 2015) remapped band by band through lookup tables (linear stretches with
other limits, gamma 0.7-1.4, per-band gains 0.8-1.25, histogram equalization, a stretch to
a later render's band statistics). Each is written to a temporary GeoTIFF and mapped as
predict maps it (core.inference.predict.predict_poverty_map: scene check, neighbourhood
mean, quality band), with the same bounds and stride (the model's tile) as the map of the
shared render it was made from. A whole-scene map takes about 3 minutes on 2 CPU cores, so
the renders are mapped on one fixed window of ``--window-tiles`` tiles a side centred on
the DHS clusters' median position (the city; 0: the whole scene), the same for every
render and date. Compared cell by cell with the shared render's map:

    dataset=kinshasa_render variant=<date>_<render> mean_shift= r= n=

``mean_shift``: mean of (render's map - shared render's map) in index units; ``r``: Pearson
correlation of the cells; ``n``: cells both maps estimated. Then the two shared dates
against each other, mapped on ``--dates-window-tiles`` tiles (0, the default: the whole
scene); ``mean_shift`` is the 2015 map minus the 2013 map, ``r_ok`` the correlation over
the cells both maps code 0 ("ok") in their quality band (``n_ok`` of them):

    dataset=kinshasa_dates variant=2013_vs_2015 mean_shift= r= r_ok= n= n_ok=

and the squared Pearson correlation of each date's map with the 44 DR Congo 2013 DHS
clusters' asset wealth, the map read as the mean of its cells whose centre lies within
5 km of the cluster (a cell's estimate is already the mean over the fit's 10 km box):

    dataset=kinshasa_dhs_date variant=<date> r2= n=

The bundled model's regression was fitted on these 44 clusters (on the 2013 scene): the
r² is in-sample for the regression, not an out-of-fold score (make eval's
``dataset=kinshasa_dhs`` lines are). The bundled network reads each scene by its own mean
and spread and was trained on random gamma and histogram-equalization renders of its two dates
(docs/proxy_training.md); no setting was chosen on these lines.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import dhs, kinshasa  # noqa: E402
from poverty_mapper.evaluation.kinshasa_renders import (  # noqa: E402
    apply_tables, band_histograms, cells_within, compare_maps, renders,
)
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map  # noqa: E402
from poverty_mapper.core.inference.writer import QUALITY_OK  # noqa: E402
from poverty_mapper.core.models.model_file import load_model  # noqa: E402
from poverty_mapper.core.regression.metrics import squared_pearson  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_MODEL = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"
DATES = ("2013", "2015")
CLUSTER_RADIUS_M = 5_000.0


def window_bounds(clusters: dhs.DhsClusters, tiles: int, tile_m: float):
    """Bounds of a square of ``tiles`` tiles a side centred on the clusters' median (None: all)."""
    if tiles <= 0:
        return None
    x, y, half = float(np.median(clusters.x)), float(np.median(clusters.y)), tiles * tile_m / 2
    return (x - half, y - half, x + half, y + half)


def map_render(model, source: Path, tables, out_dir: Path, name: str, bounds) -> tuple[np.ndarray, np.ndarray, object]:
    """The estimate and quality bands (and transform) of predict's map of ``source``
    remapped through ``tables`` (None: the source itself)."""
    raster = source
    if tables is not None:
        raster = out_dir / f"{name}.tif"
        with rasterio.open(source) as ds:
            data, profile = ds.read(), ds.profile
        data[:3] = apply_tables(tables)(data[:3])
        with rasterio.open(raster, "w", **profile) as out:
            out.write(data)
    out_path = out_dir / f"{name}_map.tif"
    predict_poverty_map(PredictRequest(str(raster), str(out_path), model, bounds=bounds, device="cpu"))
    with rasterio.open(out_path) as ds:
        values = ds.read(1, masked=True).filled(np.nan).astype(np.float64)
        quality = ds.read(2)
        transform = ds.transform
    if tables is not None:
        raster.unlink()
    out_path.unlink()
    return values, quality, transform


def _f(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{value:+.3f}"


def render_lines(model, scenes: dict[str, Path], bounds, names: list[str] | None, out_dir: Path) -> None:
    for date, path in scenes.items():
        with rasterio.open(path) as ds:
            tables_of = renders(band_histograms(ds))
        base, _, _ = map_render(model, path, None, out_dir, f"{date}_original", bounds)
        for name, tables in tables_of.items():
            if name == "original" or (names and name not in names):
                continue
            values, _, _ = map_render(model, path, tables, out_dir, f"{date}_{name}", bounds)
            c = compare_maps(values, base)
            sys.stdout.write(f"dataset=kinshasa_render variant={date}_{name} mean_shift={_f(c.mean_shift)} "
                             f"r={c.r:.3f} n={c.n}\n")
            sys.stdout.flush()


def cluster_estimates(values: np.ndarray, transform, clusters: dhs.DhsClusters) -> np.ndarray:
    """Mean of the map's cells within 5 km of each cluster (NaN where none is estimated)."""
    out = np.full(len(clusters), np.nan)
    for i, (x, y) in enumerate(zip(clusters.x, clusters.y)):
        near = cells_within(transform, values.shape, x, y, CLUSTER_RADIUS_M) & np.isfinite(values)
        if near.any():
            out[i] = values[near].mean()
    return out


def date_lines(model, scenes: dict[str, Path], bounds, clusters: dhs.DhsClusters, out_dir: Path) -> None:
    maps = {date: map_render(model, path, None, out_dir, f"{date}_date", bounds) for date, path in scenes.items()}
    (v13, q13, _), (v15, q15, _) = maps["2013"], maps["2015"]
    both = compare_maps(v15, v13)
    ok = compare_maps(v15, v13, (q13 == QUALITY_OK) & (q15 == QUALITY_OK))
    sys.stdout.write(f"dataset=kinshasa_dates variant=2013_vs_2015 mean_shift={_f(both.mean_shift)} r={both.r:.3f} "
                     f"r_ok={ok.r:.3f} n={both.n} n_ok={ok.n}\n")
    for date, (values, _, transform) in maps.items():
        estimates = cluster_estimates(values, transform, clusters)
        seen = np.isfinite(estimates)
        r2 = squared_pearson(clusters.wealth[seen], estimates[seen]) if seen.sum() >= 2 else float("nan")
        sys.stdout.write(f"dataset=kinshasa_dhs_date variant={date} r2={r2:.3f} n={int(seen.sum())}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--window-tiles", type=int, default=10)
    parser.add_argument("--dates-window-tiles", type=int, default=0)
    parser.add_argument("--renders", default="", help="comma-separated render names (default: all)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    scenes = dict(zip(DATES, kinshasa.training_scene_paths(args.real)))
    clusters = dhs.load_dhs_clusters(args.real / dhs.KINSHASA_CLUSTERS, crs="EPSG:3857")
    names = [n for n in args.renders.split(",") if n] or None
    with tempfile.TemporaryDirectory(prefix="renders_") as tmp:
        render_lines(model, scenes, window_bounds(clusters, args.window_tiles, model.tile_size_m), names, Path(tmp))
        date_lines(model, scenes, window_bounds(clusters, args.dates_window_tiles, model.tile_size_m), clusters, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
