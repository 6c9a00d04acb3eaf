"""The scene check of the bundled Kinshasa CNN on generated renders of its training scenes,
and its false alarms on the training scenes themselves.

    python scripts/evaluate_scene_shift.py [--real ../shared/data/real]
        [--model resources/models/kinshasa_cnn.povmodel] [--regions 400] [--no-shift]

Generated renders (named so; not real imagery): each shared render (2013, 2015) remapped
band by band through a lookup table of its 8-bit values: linear stretches with other
limits, gamma 0.7-1.4, per-band gains 0.8-1.25, histogram equalization, and a linear
stretch to the band statistics of a later render of the place (means 144/161/161,
spreads 54/46/47 against 136/155/139 and 32/27/31 on 2013). Each is checked as a run on
the whole render checks it (its sampled tiles only, no map is made):

    dataset=kinshasa_shift variant=<date>_<render> alarm=<0/1> statistic= threshold= shift=

``shift``: the mean change of the sampled tiles' single-tile estimates against the same
tiles of the shared render (the model's units; ``--no-shift`` skips the network).

False alarms, on random rectangular regions of the training renders (another seed than
the model's calibration; sizes from 16 cells to the whole scene, log-uniformly):

    dataset=kinshasa_shift_false_alarms variant=training_regions[_<size class>] regions= alarms= rate=

and, for a new date of the same place, the regions of one date against a domain built
from the other date alone (variant=domain_<date>_on_<other date>).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import dhs, kinshasa  # noqa: E402
from poverty_mapper.evaluation.kinshasa_renders import apply_tables, band_histograms, renders  # noqa: E402
from poverty_mapper.core.imagery.radiometry import PRESETS  # noqa: E402
from poverty_mapper.core.imagery.tile_reader import TileReader  # noqa: E402
from poverty_mapper.core.models.model_file import load_model  # noqa: E402
from poverty_mapper.core.models.scene_check import check_scene  # noqa: E402
from poverty_mapper.core.models.scene_reading import scene_read_model  # noqa: E402
from poverty_mapper.core.models.scene_domain import SIZE_CLASSES, random_rectangle, sample_positions  # noqa: E402
from poverty_mapper.core.models.scene_reference import (  # noqa: E402
    TrainingRaster, scene_domain_of, tile_estimates, whole_grid,
)

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_MODEL = ROOT / "resources" / "models" / "kinshasa_cnn.povmodel"
SEED = 12345  # not the calibration's
MIN_VALID = 0.5


def _read(model, raster: TrainingRaster, transform=None):
    """``model`` as a run reads ``raster`` (rendered by ``transform``)."""
    return scene_read_model(raster.ds, model, raster.bands, raster.radiometry, transform)


def shift_lines(model, rasters: dict[str, TrainingRaster], with_shift: bool) -> None:
    """The check of every generated render of every date, as a run on the whole render."""
    for date, raster in rasters.items():
        grid = whole_grid(raster, model)
        mask = np.ones(grid.shape, bool)
        cells = np.argwhere(mask)[sample_positions(int(mask.sum()))]
        windows = [grid.tile_window(int(r), int(c)) for r, c in cells]
        reader = TileReader(raster.ds, raster.bands, model.tile_size_px, raster.radiometry)
        windows = [w for w in windows if reader.read_dn(w)[1].mean() >= MIN_VALID]  # those the check reads
        # a network that reads each scene by its own statistics reads each render by its own
        base = tile_estimates(_read(model, raster), raster, windows) if with_shift else None
        for name, tables in renders(band_histograms(raster.ds)).items():
            transform = apply_tables(tables)
            used = _read(model, raster, transform)
            check = check_scene(raster.ds, raster.bands, raster.radiometry, model, used, grid, mask, MIN_VALID, transform)
            shift = "" if base is None else \
                f" shift={float(np.mean(tile_estimates(used, raster, windows, transform) - base)):+.2f}"
            sys.stdout.write(
                f"dataset=kinshasa_shift variant={date}_{name} alarm={int(check.alarm)} statistic={check.statistic:.2f} "
                f"threshold={check.threshold:.2f}{shift}\n"
            )
            sys.stdout.flush()


def region_alarms(model, rasters: list[TrainingRaster], n_regions: int, seed: int) -> list[tuple[int, bool]]:
    """(cells, alarm) of the check of random rectangular regions of ``rasters``, in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_regions):
        raster = rasters[i % len(rasters)]
        grid = whole_grid(raster, model)
        top, left, height, width = random_rectangle(grid.shape, rng)
        mask = np.zeros(grid.shape, bool)
        mask[top:top + height, left:left + width] = True
        check = check_scene(raster.ds, raster.bands, raster.radiometry, model, _read(model, raster), grid, mask,
                            MIN_VALID)
        if check.statistic is not None:
            out.append((int(mask.sum()), check.alarm))
    return out


def false_alarm_line(variant: str, results: list[tuple[int, bool]]) -> str:
    alarms = sum(a for _, a in results)
    rate = alarms / max(len(results), 1)
    return f"dataset=kinshasa_shift_false_alarms variant={variant} regions={len(results)} alarms={alarms} rate={rate:.3f}\n"


def false_alarm_lines(model, rasters: dict[str, TrainingRaster], n_regions: int) -> None:
    results = region_alarms(model, list(rasters.values()), n_regions, SEED)
    sys.stdout.write(false_alarm_line("training_regions", results))
    bounds = list(SIZE_CLASSES) + [None]
    for low, high in zip(bounds[:-1], bounds[1:]):
        in_class = [(n, a) for n, a in results if n >= low and (high is None or n < high)]
        sys.stdout.write(false_alarm_line(f"training_regions_{low}-{high or 'all'}_cells", in_class))
    plain = dataclasses.replace(model, regressor=None)  # the domain alone, no estimates
    for date, raster in rasters.items():
        for other, other_raster in rasters.items():
            if other == date:
                continue
            domain = scene_domain_of(plain, [raster])
            one_date = dataclasses.replace(model, scene_domain=domain)
            results = region_alarms(one_date, [other_raster], n_regions // 2, SEED + 1)
            sys.stdout.write(false_alarm_line(f"domain_{date}_on_{other}", results))
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--regions", type=int, default=400)
    parser.add_argument("--no-shift", action="store_true")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if model.scene_domain is None:
        parser.error(f"{args.model} has no scene domain (scripts/add_scene_domain.py adds it)")
    radiometry = PRESETS[dhs.KINSHASA_RADIOMETRY]
    with ExitStack() as stack:
        rasters = {
            date: TrainingRaster(stack.enter_context(rasterio.open(path)), dhs.KINSHASA_BANDS, radiometry)
            for date, path in zip(("2013", "2015"), kinshasa.training_scene_paths(args.real))
        }
        shift_lines(model, rasters, not args.no_shift)
        false_alarm_lines(model, rasters, args.regions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
