"""``poverty-mapper``: the plugin's engine on a command line, without QGIS or Qt.

    poverty-mapper predict [IMAGE] OUTPUT.tif [--model M.povmodel] [--scheduler tcp://host:8786]
    poverty-mapper predict OUTPUT.tif --mask COUNTRY.geojson   (the bundled Africa lights model, no image)
    poverty-mapper fit IMAGE CLUSTERS.csv MODEL.povmodel --outcome FIELD [--scheduler ...]
    poverty-mapper trainproxy IMAGE [NIGHTLIGHTS] MODEL.povmodel [--nightlights LIGHTS.tif]
    poverty-mapper info MODEL.povmodel

The subcommands take the parameters of the Processing algorithms (predict, fit poverty
model on survey clusters, train proxy network), with their defaults read from the
engine's own configurations, and run the same engine. A progress bar is drawn on a
terminal; elsewhere (logs, a batch system) progress comes as plain lines. Ctrl-C cancels
after the current batch, leaving no output file behind.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
from typing import Callable, Sequence

from .cli_terminal import CancelOnInterrupt, Progress

EXIT_ERROR, EXIT_CANCELED = 1, 130


def _bands(text: str):
    from .core.errors import PovertyMapperError
    from .core.imagery.bands import parse_band_list

    try:
        return parse_band_list(text)
    except PovertyMapperError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bounds(text: str) -> tuple[float, float, float, float]:
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give xmin,ymin,xmax,ymax in the image's CRS (or --crs), "
                                         "e.g. 500000,8900000,560000,8960000")
    return xmin, ymin, xmax, ymax


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("give class edges in radiance as numbers, e.g. 0.5,5") from None
    if len(values) != len(set(values)) or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError("give distinct class edges in radiance as numbers, e.g. 0.5,5")
    return values


def _add_imagery_options(parser: argparse.ArgumentParser, config, with_batch: bool = True) -> None:
    from .core.device import DEVICE_CHOICES
    from .core.imagery.radiometry import PRESETS
    from .core.options import default_of as _default

    parser.add_argument("--bands", type=_bands, default=None, metavar="3,2,1",
                        help="the image's band numbers giving the model's bands, in its order (default: guessed "
                             "from band names, else the first bands)")
    parser.add_argument("--radiometry", choices=("auto", *PRESETS), default=_default(config, "radiometry"),
                        help="how pixel values become reflectance (default: %(default)s, from the data type)")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=_default(config, "device"),
                        help="where the network runs (default: %(default)s: a CUDA GPU when PyTorch sees one)")
    if with_batch:
        parser.add_argument("--batch-size", type=int, default=_default(config, "batch_size"),
                            help="tiles read and estimated together (default: %(default)s"
                                 + ("; 0 = by device)" if _default(config, "batch_size") == 0 else ")"))


def _add_scheduler(parser: argparse.ArgumentParser) -> None:
    from .core.options import SCHEDULER_HELP

    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, help=SCHEDULER_HELP.replace("%", "%%"))


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line that says what to fix, and exit status 1 as every other error."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="poverty-mapper", description="Poverty maps from satellite imagery, without QGIS.",
        epilog="Each command has its own --help.",
    )
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{predict,fit,trainproxy,info,install-lights}")
    _add_predict_command(commands)
    _add_fit_command(commands)
    _add_trainproxy_command(commands)
    info = commands.add_parser("info", help="print a model's card", description="Prints a .povmodel file's model card.")
    info.add_argument("model", help="a .povmodel file")
    info.set_defaults(run=_info)
    install = commands.add_parser(
        "install-lights", help="set up the bundled night lights beside an installed plugin",
        description="Checks that FILE is the bundled night-lights file this plugin was built with (its SHA-256) and "
                    "copies it to the plugin's data folder ($POVERTY_MAPPER_DATA, else the user's data folder).",
    )
    install.add_argument("file", help="the downloaded blackmarble2016_africa_luminance.tif")
    install.set_defaults(run=_install_lights)
    return parser


def _add_predict_command(commands) -> None:
    from .core.inference.predict import PredictRequest
    from .core.options import default_of

    predict = commands.add_parser(
        "predict", help="write the poverty map of an image or a region",
        description="Estimates wealth for every cell of a region and writes the estimates as a GeoTIFF "
                    "(band 1: the estimate, band 2: the quality code, band 3: the 80 % interval's half width). "
                    "With no --model and no --nightlights, the bundled Africa lights model maps the region from "
                    "the NASA Black Marble night lights of 2016 that ship with the plugin: no image is needed, "
                    "--bounds with --crs, or --mask (e.g. a country's boundary), is enough; with an image, its "
                    "extent is mapped. A region outside Africa is refused with a message.",
        epilog="examples: poverty-mapper predict map.tif --bounds 15.2,-4.5,15.5,-4.3 --crs EPSG:4326; "
               "poverty-mapper predict map.tif --mask country.geojson; "
               "poverty-mapper predict scene.tif map.tif --model local.povmodel",
    )
    predict.add_argument("image", nargs="?", default=None, metavar="IMAGE",
                         help="the satellite image (a file, or a GDAL URL such as /vsis3/bucket/scene.tif); "
                              "optional for a model that reads no imagery (the default Africa lights model)")
    predict.add_argument("output", metavar="OUTPUT", help="the map to write (GeoTIFF; written atomically)")
    predict.add_argument("--model", default=None, help="a .povmodel file (default: the bundled VIIRS night-lights "
                                                       "model with --nightlights, else the bundled Africa lights "
                                                       "model, which needs no image)")
    predict.add_argument("--nightlights", default=None, metavar="LIGHTS.tif",
                         help="a night-lights raster, for a model that reads night lights")
    predict.add_argument("--bounds", type=_bounds, default=None, metavar="XMIN,YMIN,XMAX,YMAX",
                         help="map only this rectangle, in the image's CRS; without an image, the region to map, "
                              "in --crs")
    predict.add_argument("--crs", default=None, metavar="EPSG:xxxx",
                         help="without an image: the CRS of --bounds and of the map (default: the mask's CRS)")
    predict.add_argument("--mask", default=None, metavar="POLYGONS.geojson",
                         help="map only cells whose centre lies in these polygons (GeoJSON, GeoPackage, shapefile); "
                              "without an image or --bounds, the region to map")
    predict.add_argument("--mask-crs", default=None,
                         help="the CRS of the mask's coordinates (default: the file's own, else EPSG:4326 as GeoJSON "
                              "has them)")
    predict.add_argument("--stride", type=float, default=default_of(PredictRequest, "stride_m"), metavar="METRES",
                         help="distance between tile centres, the output cell size (default: %(default)g = the tile "
                              "size)")
    _add_imagery_options(predict, PredictRequest)
    _add_scheduler(predict)
    predict.set_defaults(run=_predict)


def _add_fit_command(commands) -> None:
    from .core.options import default_of
    from .core.training.clusters import ClusterFitConfig
    from .core.training.survey_inputs import EXTRACTOR_CHOICES

    def default(name: str):
        return default_of(ClusterFitConfig, name)

    fit = commands.add_parser(
        "fit", help="fit a poverty model on survey clusters",
        description="Fits a model of a survey outcome on the image's features around surveyed clusters, with "
                    "spatially blocked cross-validation, and writes it as a .povmodel file.",
    )
    fit.add_argument("image", help="the satellite image")
    fit.add_argument("clusters", help="the survey clusters: a CSV file with a row per cluster (comma, semicolon or tab "
                                      "separated), or a vector file of points (GeoJSON, GeoPackage, shapefile)")
    fit.add_argument("model", help="the .povmodel file to write")
    fit.add_argument("--outcome", required=True, help="the field holding the survey outcome (e.g. an asset index)")
    fit.add_argument("--weight", default=None, help="a field of cluster weights (e.g. households surveyed)")
    fit.add_argument("--group", default=None, help="a field of groups (country, survey round) for scores within groups")
    fit.add_argument("--x-field", default="lon", help="the CSV's x or longitude column (default: %(default)s)")
    fit.add_argument("--y-field", default="lat", help="the CSV's y or latitude column (default: %(default)s)")
    fit.add_argument("--clusters-crs", default=None,
                     help="the clusters' CRS (default: a vector file's own, else EPSG:4326)")
    fit.add_argument("--log-outcome", action="store_true", default=default("log_outcome"),
                     help="fit the outcome's logarithm")
    fit.add_argument("--box-size", type=float, default=default("box_size_m"), metavar="METRES",
                     help="side of the box around each cluster whose tiles are averaged (default: %(default)g)")
    fit.add_argument("--extractor", default=default("extractor_kind"),
                     help=f"features: {' or '.join(EXTRACTOR_CHOICES)}, or a .povmodel file whose extractor to use "
                          "(e.g. a proxy CNN from trainproxy) (default: %(default)s)")
    fit.add_argument("--nightlights", default=None,
                     help="a nightlights raster for the baseline score (default: the bundled NASA Black Marble 2016 "
                          "lights, where they cover the clusters)")
    fit.add_argument("--with-lights", action="store_true", default=default("with_lights"),
                     help="fit the bundled night lights' features beside the image features, in one ridge (such a "
                          "model cannot map yet)")
    fit.add_argument("--tile-size", type=float, default=default("tile_size_m"), metavar="METRES",
                     help="tile size for histogram and random features (default: %(default)g)")
    fit.add_argument("--folds", type=int, default=default("n_folds"),
                     help="cross-validation folds (default: %(default)s)")
    fit.add_argument("--fold-distance", type=float, default=default("fold_distance_m"), metavar="METRES",
                     help="clusters closer than this share a fold (default: the box size)")
    fit.add_argument("--min-tiles", type=int, default=default("min_tiles"),
                     help="tiles with enough valid pixels a cluster needs (default: %(default)s)")
    fit.add_argument("--min-coverage", type=float, default=default("min_covered_share"),
                     help="share of a cluster's box that must be valid pixels (default: %(default)g)")
    fit.add_argument("--seed", type=int, default=default("seed"), help="(default: %(default)s)")
    fit.add_argument("--report", default=None, help="write the fit's report (JSON) here")
    fit.add_argument("--scatter", default=None, help="write a scatter plot of out-of-fold predictions (PNG) here")
    _add_imagery_options(fit, ClusterFitConfig)
    _add_scheduler(fit)
    fit.set_defaults(run=_fit)


def _add_trainproxy_command(commands) -> None:
    from .core.options import default_of
    from .core.training.proxy import ARCHITECTURES, ProxyTrainingConfig

    def default(name: str):
        return default_of(ProxyTrainingConfig, name)

    proxy = commands.add_parser(
        "trainproxy", help="train a proxy network on night lights",
        description="Trains a CNN to tell night-light classes from daytime imagery; its features then serve "
                    "'fit --extractor MODEL'.",
    )
    proxy.add_argument("image", help="the satellite image")
    proxy.add_argument("paths", nargs="+", metavar="[NIGHTLIGHTS] MODEL",
                       help="the .povmodel file to write (the feature extractor), after the nightlights raster in "
                            "the older form IMAGE NIGHTLIGHTS MODEL")
    proxy.add_argument("--nightlights", default=None, metavar="LIGHTS.tif",
                       help="the nightlights raster that labels the tiles (default: the bundled NASA Black Marble "
                            "2016 lights, for an image in Africa)")
    proxy.add_argument("--more-images", nargs="*", default=(), help="further scenes of the same place, same bands")
    proxy.add_argument("--bounds", type=_bounds, default=None, metavar="XMIN,YMIN,XMAX,YMAX",
                       help="train only on this rectangle, in the image's CRS")
    proxy.add_argument("--network", choices=ARCHITECTURES, default=default("architecture"),
                       help="(default: %(default)s)")
    proxy.add_argument("--random-start", action="store_true", default=not default("imagenet_start"),
                       help="EfficientNet: start from random weights, not ImageNet's")
    proxy.add_argument("--frozen-blocks", type=int, default=default("frozen_blocks"),
                       help="EfficientNet: lowest blocks kept as started (default: %(default)s)")
    proxy.add_argument("--tile-size", type=float, default=default("tile_size_m"), metavar="METRES",
                       help="(default: %(default)g)")
    proxy.add_argument("--classes", type=int, default=default("n_classes"),
                       help="night-light classes (default: %(default)s)")
    proxy.add_argument("--binning", choices=("auto", "dark_then_quantiles", "quantiles"), default=default("binning"),
                       help="(default: %(default)s)")
    proxy.add_argument("--thresholds", type=_thresholds, default=None, metavar="A,B", help="fixed class edges in radiance")
    proxy.add_argument("--epochs", type=int, default=default("epochs"), help="(default: %(default)s)")
    proxy.add_argument("--learning-rate", type=float, default=default("learning_rate"), help="(default: %(default)g)")
    proxy.add_argument("--val-share", type=float, default=default("val_fraction"),
                       help="share of tiles held out, in spatial blocks (default: %(default)g)")
    proxy.add_argument("--block-size", type=int, default=default("block_size_tiles"),
                       help="side, in tiles, of the spatial blocks held out together (default: %(default)s)")
    proxy.add_argument("--start-model", default=None, help="reuse the lower layers of this model's CNN")
    proxy.add_argument("--seed", type=int, default=default("seed"), help="(default: %(default)s)")
    proxy.add_argument("--report", default=None, help="write the training report (JSON) here")
    proxy.add_argument("--plot", default=None, help="write the training curves (PNG) here")
    _add_imagery_options(proxy, ProxyTrainingConfig)
    proxy.set_defaults(run=_trainproxy)


def _predict_region(args) -> tuple[str | None, tuple[dict, ...] | None]:
    """The region's CRS (the image's, else --crs, else the mask's) and the mask polygons in it."""
    crs = args.crs
    if args.image:
        from .core.imagery.tile_reader import open_raster

        with open_raster(args.image) as ds:
            crs = ds.crs
    if not args.mask:
        return (str(crs) if crs else None), None
    from rasterio.warp import transform_geom

    from .cli_inputs import read_mask_polygons

    polygons, file_crs = read_mask_polygons(args.mask)
    mask_crs = args.mask_crs or file_crs or "EPSG:4326"
    crs = crs or mask_crs
    return str(crs), tuple(transform_geom(mask_crs, crs, g) for g in polygons)


def _predict(args, progress: Callable[[float], None], is_canceled) -> None:
    from .core.errors import PovertyMapperError
    from .core.inference.lights_map import LightsMapResult
    from .core.inference.map_region import NO_REGION, RegionRequest, map_region
    from .core.inference.writer import check_geotiff_name
    from .core.models.defaults import default_model_path
    from .core.models.model_file import load_model

    check_geotiff_name(args.output)
    if not (args.image or args.bounds or args.mask):
        raise PovertyMapperError(f"{NO_REGION} (an IMAGE, --bounds with --crs, or --mask)")
    model = load_model(args.model or default_model_path(with_nightlights=args.nightlights is not None))
    print(model.card(), file=sys.stderr)
    crs, mask = _predict_region(args)
    executor = None
    if args.scheduler and model.extractor.reads_imagery:
        from .core.imagery.dask_run import DaskExecutor

        executor = DaskExecutor(args.scheduler)
    options = dict(band_indexes=args.bands, radiometry=args.radiometry, stride_m=args.stride, device=args.device,
                   batch_size=args.batch_size, nightlights_path=args.nightlights)
    result = map_region(
        RegionRequest(args.output, model, raster_path=args.image, bounds=args.bounds, crs=crs, mask_geometries=mask,
                      mask_name=args.mask, options=options),
        progress=progress, is_canceled=is_canceled, executor=executor,
    )
    if isinstance(result, LightsMapResult):
        print(f"Estimated {result.n_estimated} of {result.n_cells} cells from the bundled NASA Black Marble night "
              f"lights of {result.lights_year}; no image read. Wrote {result.output_path}.")
        return
    reading = (f"bands {','.join(map(str, result.band_indexes))}; radiometry: {result.radiometry.label}"
               if result.band_indexes else "night lights only, no image bands")
    print(f"Estimated {result.n_estimated} of {result.n_cells} cells on {result.device}; {reading}. "
          f"Wrote {result.output_path}.")
    for note in result.notes:
        print(f"Note: {note}", file=sys.stderr)


def _read_clusters(args, crs_to) -> tuple:
    """Clusters from a CSV (x and y columns) or a vector file, in the image's CRS. Their
    values go to the engine as read: it converts them, and counts and names what it cannot use."""
    import numpy as np

    from .cli_inputs import read_clusters_table
    from .core.errors import PovertyMapperError
    from .core.training.survey_inputs import Cluster, check_survey_fields

    table = read_clusters_table(args.clusters, args.x_field, args.y_field)
    if not table.rows:
        raise PovertyMapperError(f"'{args.clusters}' holds no clusters (a CSV with a row per cluster, or a vector file "
                                 "of points).")
    check_survey_fields(f"'{args.clusters}'", table.fields, args.outcome, args.weight, args.group)
    for note in table.notes:
        print(f"Note: {note}", file=sys.stderr)
    xs = np.array([r["__x"] for r in table.rows], np.float64)
    ys = np.array([r["__y"] for r in table.rows], np.float64)
    tx, ty = _to_image_crs(xs, ys, args.clusters_crs or table.crs or "EPSG:4326", crs_to)
    return tuple(
        Cluster(x, y, r[args.outcome], r[args.weight] if args.weight else 1.0, i, r[args.group] if args.group else None)
        for i, (x, y, r) in enumerate(zip(tx, ty, table.rows))
    )


def _to_image_crs(xs, ys, crs_from: str, crs_to):
    """Coordinates in the image's CRS; NaN for those that are not numbers or that the
    projection refuses (a latitude of 95), which the engine counts and leaves out."""
    import numpy as np
    from rasterio.errors import CRSError
    from rasterio.warp import transform

    from .core.errors import PovertyMapperError

    tx, ty = np.full(xs.size, np.nan), np.full(ys.size, np.nan)
    located = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    try:
        tx[located], ty[located] = transform(crs_from, crs_to, xs[located].tolist(), ys[located].tolist())
    except CRSError as exc:
        raise PovertyMapperError(f"'{crs_from}' is not a CRS the clusters can be read in ({exc}); "
                                 "give e.g. --clusters-crs EPSG:4326.") from None
    except Exception:  # noqa: BLE001 (PROJ refuses the whole batch for one point outside its range)
        for i in located:
            try:
                (tx[i],), (ty[i],) = transform(crs_from, crs_to, [xs[i]], [ys[i]])
            except Exception:  # noqa: BLE001 (this point alone is outside the CRS's range)
                tx[i] = ty[i] = np.nan
    bad = ~(np.isfinite(tx) & np.isfinite(ty))
    tx[bad] = ty[bad] = np.nan
    return tx, ty


def _fit(args, progress, is_canceled) -> None:
    from .core.imagery.tile_reader import open_raster
    from .core.training.clusters import ClusterFitConfig, fit_clusters
    from .core.training.survey_inputs import extractor_fields

    with open_raster(args.image) as ds:
        clusters = _read_clusters(args, ds.crs)
    config = ClusterFitConfig(
        image_path=args.image, clusters=clusters, model_path=args.model, outcome_name=args.outcome,
        **extractor_fields(args.extractor), band_indexes=args.bands, radiometry=args.radiometry, box_size_m=args.box_size,
        tile_size_m=args.tile_size, log_outcome=args.log_outcome, use_weights=bool(args.weight), n_folds=args.folds,
        fold_distance_m=args.fold_distance, min_tiles=args.min_tiles, min_covered_share=args.min_coverage,
        nightlights_path=args.nightlights, report_path=args.report, scatter_path=args.scatter, device=args.device,
        seed=args.seed, batch_size=args.batch_size, scheduler=args.scheduler, with_lights=args.with_lights,
    )
    result = fit_clusters(config, progress, is_canceled)
    from .core.regression.metrics import describe_r2

    pooled = result.report.cv.pooled
    print(f"Out-of-fold scores on {pooled.n} clusters: {describe_r2(pooled.r2)} (squared Pearson, signed), "
          f"R² {pooled.R2:.3f}. Wrote {result.model_path}.")
    baseline = result.report.nightlights_baseline
    if baseline is not None:
        lights = "Nightlights" if args.nightlights else "The bundled NASA Black Marble 2016 lights"
        print(f"{lights} alone: {describe_r2(baseline.pooled.r2)}, R² {baseline.pooled.R2:.3f}.")
    for note in result.notes:
        print(f"Note: {note}", file=sys.stderr)


def _proxy_paths(args) -> tuple[str | None, str]:
    """The nightlights raster (None: the bundled lights) and the model file, from
    ``IMAGE MODEL [--nightlights L]`` or the older ``IMAGE NIGHTLIGHTS MODEL``."""
    from .core.errors import PovertyMapperError

    if len(args.paths) == 1:
        return args.nightlights, args.paths[0]
    if len(args.paths) == 2 and args.nightlights is None:
        return args.paths[0], args.paths[1]
    raise PovertyMapperError(
        "trainproxy takes IMAGE MODEL.povmodel [--nightlights LIGHTS.tif] (or IMAGE NIGHTLIGHTS MODEL.povmodel), not "
        f"{len(args.paths) + 1} paths{' and --nightlights' if args.nightlights else ''}."
    )


def _trainproxy(args, progress, is_canceled) -> None:
    from .core.training.proxy import ProxyTrainingConfig, train_proxy

    nightlights, model = _proxy_paths(args)
    config = ProxyTrainingConfig(
        image_path=args.image, nightlights_path=nightlights, model_path=model,
        more_image_paths=tuple(args.more_images), report_path=args.report, plot_path=args.plot, bounds=args.bounds,
        tile_size_m=args.tile_size, architecture=args.network, imagenet_start=not args.random_start,
        frozen_blocks=args.frozen_blocks, n_classes=args.classes, binning=args.binning, thresholds=args.thresholds,
        epochs=args.epochs, learning_rate=args.learning_rate, start_model_path=args.start_model,
        val_fraction=args.val_share, block_size_tiles=args.block_size, seed=args.seed, band_indexes=args.bands, radiometry=args.radiometry,
        device=args.device, batch_size=args.batch_size,
    )
    result = train_proxy(config, progress, is_canceled, status=lambda line: print(line, file=sys.stderr))
    if "labels" in result.report:
        print(f"Night lights: {result.report['labels']}.")
    print(f"Wrote {result.model_path}.")


def _info(args, progress, is_canceled) -> None:
    from .core.models.model_file import load_model

    print(load_model(args.model).card())


def _install_lights(args, progress, is_canceled) -> None:
    from .core.imagery.lights_file import install_lights

    print(f"The bundled night lights are set up: {install_lights(args.file)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the exit status (0, 1 for an error, 130 when canceled)."""
    from .core.errors import Canceled, PovertyMapperError

    args = build_parser().parse_args(argv)
    bar = Progress(args.command)
    # The handlers stay until the status is known: a second Ctrl-C while the first one's
    # cancel is reported must not end in a traceback.
    with CancelOnInterrupt() as interrupt:
        try:
            args.run(args, bar, interrupt)
        except (Canceled, KeyboardInterrupt):
            bar.close()
            print("poverty-mapper: canceled; no output was written.", file=sys.stderr)
            return 128 + interrupt.signum if interrupt.signum == signal.SIGTERM else EXIT_CANCELED
        except (PovertyMapperError, FileNotFoundError) as exc:
            bar.close()
            print(f"poverty-mapper: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    bar.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
