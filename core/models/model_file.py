"""The model file: one self-describing, versioned ``.povmodel`` file.

A model file is a zip archive holding ``model.json`` (everything a person or a
program needs to know: what it predicts, the bands and scaling it expects, pixel and
tile size, the extractor, the regressor, training data and scores) and one ``.npy``
array per tensor. Arrays are read with ``allow_pickle=False`` and JSON is plain data,
so loading a model file never executes code from it. Entries carry a fixed timestamp,
so the same model always gives the same bytes.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..atomic import atomic_output
from ..errors import ModelFileError, PovertyMapperError
from ..extractors.registry import extractor_from_spec
from ..regression.ridge import RidgeRegressor
from .feature_domain import FeatureDomain
from .metadata import LightsFeatures, ModelDescription, ModelInfo, NightLightsInput, Score, Scores, Target, TrainingDomain, TrainingScenes
from .scene_domain import SceneDomain

if TYPE_CHECKING:
    from ..extractors.base import FeatureExtractor

__all__ = ["LightsFeatures", "ModelDescription", "ModelInfo", "NightLightsInput", "PovertyModel", "Score", "Scores", "Target", "TrainingDomain", "TrainingScenes", "load_model", "read_model_info", "save_model"]

FORMAT_NAME = "poverty_mapper.model"
FORMAT_VERSION = 2  # 2: typed radiometry, band_indexes, domain and scores; free-form provenance apart
MODEL_SUFFIX = ".povmodel"
_META_ENTRY = "model.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# A model file unpacks to a few megabytes (the bundled CNN's weights: 13 MiB); a zip bomb
# is refused unread. Arrays are unpacked one at a time, and only those the model uses.
MAX_UNPACKED_BYTES = 256 << 20
# A pixel or tile larger than this is no imagery a model maps (and overflows the arithmetic).
MAX_TILE_SIZE_M = 1_000_000.0
MIN_PIXEL_SIZE_M = 0.01


@dataclass(frozen=True)
class PovertyModel:
    """Feature extractor + regressor + everything needed to apply them correctly. The
    fields beside the extractor, the regressor and the feature domain are those of
    :class:`ModelDescription` (tests/engine/test_model_file.py holds them equal)."""

    name: str
    target: Target | None  # None for a feature extractor alone (a trained proxy CNN)
    bands: tuple[str, ...]  # band names, in the order the extractor expects them
    input_scaling: str  # what pixel values the extractor expects, in words
    pixel_size_m: float
    tile_size_px: int
    extractor: FeatureExtractor
    regressor: RidgeRegressor | None  # None until fitted on survey clusters
    radiometry: str | None = None  # preset key of the imagery it was trained on; None: not known
    band_indexes: tuple[int, ...] = ()  # the bands' numbers in that imagery
    domain: TrainingDomain | None = None
    scores: Scores = field(default_factory=Scores)
    provenance: dict = field(default_factory=dict)  # free-form, for people
    feature_domain: FeatureDomain | None = None  # the training clusters' features (domain checks)
    nightlights: NightLightsInput | None = None  # the lights layer a NIGHTLIGHTS band is read from
    scene_domain: SceneDomain | None = None  # what the training imagery looked like (the scene check)
    lights_features: LightsFeatures | None = None  # the bundled lights' features, read after the extractor's

    @property
    def n_features(self) -> int:
        """The features the regressor reads: the extractor's, then the bundled lights' where the model adds them."""
        return self.extractor.n_features + (self.lights_features.n_features if self.lights_features else 0)

    @property
    def tile_size_m(self) -> float:
        return self.pixel_size_m * self.tile_size_px

    @property
    def can_predict(self) -> bool:
        return self.regressor is not None and self.target is not None

    @property
    def description(self) -> ModelDescription:
        return ModelDescription(**ModelDescription.fields_of(self))

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            **ModelDescription.fields_of(self),
            extractor_kind=self.extractor.kind, n_features=self.extractor.n_features,
            alpha=None if self.regressor is None else self.regressor.alpha,
            feature_domain_dimensions=None if self.feature_domain is None else self.feature_domain.n_dimensions,
            training_scenes=None if self.scene_domain is None else self.scene_domain.facts,
        )

    def card(self) -> str:
        """A short human-readable summary (what, from what, how good)."""
        return self.info.card()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_model(model: PovertyModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    ext_spec, ext_arrays = model.extractor.to_spec()
    reg_spec, reg_arrays = model.regressor.to_spec() if model.regressor is not None else (None, {})
    dom_spec, dom_arrays = model.feature_domain.to_spec() if model.feature_domain is not None else (None, {})
    scene_spec, scene_arrays = model.scene_domain.to_spec() if model.scene_domain is not None else (None, {})
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        **model.description.to_json(),
        "extractor": ext_spec,
        "n_features": model.extractor.n_features,
        "regressor": reg_spec,
        "feature_domain": dom_spec,
    }
    if scene_spec is not None:  # only where there is one: other files keep their bytes
        meta["scene_domain"] = scene_spec
    arrays = {f"extractor/{k}": v for k, v in ext_arrays.items()}
    arrays.update({f"regressor/{k}": v for k, v in reg_arrays.items()})
    arrays.update({f"feature_domain/{k}": v for k, v in dom_arrays.items()})
    arrays.update({f"scene_domain/{k}": v for k, v in scene_arrays.items()})

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PovertyMapperError(
            f"Cannot create the folder {path.parent} for the model file ({exc.strerror}); choose another place."
        ) from exc
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        text = json.dumps(_jsonable(meta), indent=2, sort_keys=True, allow_nan=False)
        zf.writestr(zipfile.ZipInfo(_META_ENTRY, _ZIP_TIME), text.encode("utf-8"), zipfile.ZIP_DEFLATED)
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), buf.getvalue(), zipfile.ZIP_DEFLATED)
    return path


def read_model_metadata(path: str | os.PathLike) -> dict:
    """The JSON part of a model file, checked for format and version."""
    meta = _read_meta(path)
    return meta


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """What a model file says about its model, without its arrays and without torch."""
    meta = _read_meta(path)
    try:
        return _info(meta)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"{path}: the model file is incomplete or inconsistent ({exc}).") from exc


def _info(meta: dict) -> ModelInfo:
    """The description, and what the extractor's, regressor's and feature domain's specs say of them."""
    description = ModelDescription.from_json(meta)
    regressor = meta.get("regressor")
    n_features = meta.get("n_features")
    return ModelInfo(
        **ModelDescription.fields_of(description),
        extractor_kind=str(meta["extractor"]["kind"]),
        n_features=None if n_features is None else int(n_features),
        alpha=None if regressor is None else float(regressor["alpha"]),
        feature_domain_dimensions=(meta.get("feature_domain") or {}).get("dimensions"),
        training_scenes=TrainingScenes.from_json(meta.get("scene_domain")),
    )


def load_model(path: str | os.PathLike) -> PovertyModel:
    """Read a model file; raises :class:`ModelFileError` with a fix for any problem.

    Only the arrays the extractor, regressor and feature domain ask for are unpacked, one at a time, and
    each is checked: plain numbers, all finite, no larger than its entry says."""
    path = Path(path)
    with _open_zip(path) as zf:
        meta = _meta(path, zf)
        try:
            info = _info(meta)
            _check_sizes(path, info)
            ext_arrays = ModelArrays(path, zf, "extractor/")
            reg_arrays = ModelArrays(path, zf, "regressor/")
            _check_band_statistics(path, ext_arrays, len(info.bands))
            extractor = extractor_from_spec(meta["extractor"], ext_arrays)
            regressor = None if meta.get("regressor") is None else RidgeRegressor.from_spec(meta["regressor"], reg_arrays)
            dom_arrays = ModelArrays(path, zf, "feature_domain/")
            feature_domain = None if not meta.get("feature_domain") else FeatureDomain.from_spec(meta["feature_domain"], dom_arrays)
            scene_domain = None if not meta.get("scene_domain") else \
                SceneDomain.from_spec(meta["scene_domain"], ModelArrays(path, zf, "scene_domain/"))
            model = PovertyModel(
                **ModelDescription.fields_of(info), extractor=extractor, regressor=regressor, feature_domain=feature_domain,
                scene_domain=scene_domain,
            )
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            # RuntimeError: CNN weights missing or of another shape than the network's
            raise ModelFileError(f"{path}: the model file is incomplete or inconsistent ({_short(exc)}).") from exc
    if model.regressor is not None and model.n_features != model.regressor.n_features:
        raise ModelFileError(
            f"{path}: the extractor gives {_features_given(model)} but the regressor "
            f"expects {model.regressor.n_features}; the file is inconsistent."
        )
    if model.scene_domain is not None and model.scene_domain.n_bands != len(model.bands):
        raise ModelFileError(
            f"{path}: the scene domain describes {model.scene_domain.n_bands} bands but the model reads "
            f"{len(model.bands)}; the file is inconsistent."
        )
    if model.feature_domain is not None and model.feature_domain.mean.size != model.n_features:
        raise ModelFileError(
            f"{path}: the feature domain describes {model.feature_domain.mean.size} features but the extractor "
            f"gives {_features_given(model)}; the file is inconsistent."
        )
    return model


def _features_given(model: PovertyModel) -> str:
    if model.lights_features is None:
        return f"{model.extractor.n_features} features"
    return (f"{model.extractor.n_features} features (and the bundled lights {model.lights_features.n_features}, "
            f"{model.n_features} in all)")


def _short(exc: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, cut at ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def _check_sizes(path: Path, info: ModelInfo) -> None:
    pixel, tile = info.pixel_size_m, info.tile_size_px
    if not (tile >= 1 and math.isfinite(pixel) and pixel >= MIN_PIXEL_SIZE_M and pixel * tile <= MAX_TILE_SIZE_M and info.bands):
        raise ModelFileError(
            f"{path}: the model file gives no usable tile size, pixel size or bands (pixel {pixel:g} m, "
            f"tile {tile} px, {len(info.bands)} bands); the file is damaged."
        )


def _check_band_statistics(path: Path, arrays: "ModelArrays", n_bands: int) -> None:
    """An extractor that standardizes the bands has a mean and a spread per band."""
    if "band_means" not in arrays and "band_stds" not in arrays:
        return
    means, stds = arrays["band_means"], arrays["band_stds"]
    if means.shape != (n_bands,) or stds.shape != (n_bands,):
        raise ModelFileError(
            f"{path}: the model expects {n_bands} bands but its band statistics have "
            f"{means.size} and {stds.size} values; the file is inconsistent."
        )
    if not np.all(stds > 0):
        raise ModelFileError(f"{path}: a band's standard deviation is zero or negative; the file is damaged.")


class ModelArrays(Mapping):
    """The arrays under ``prefix`` in an open model file, each unpacked when first asked for
    and checked: plain numbers, finite, and no larger than the entry says."""

    def __init__(self, path: Path, zf: zipfile.ZipFile, prefix: str):
        self.path, self.zf, self.prefix = path, zf, prefix
        self._names = [i.filename[len(prefix):-4] for i in zf.infolist()
                       if i.filename.startswith(prefix) and i.filename.endswith(".npy")]
        self._loaded: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._loaded:
            if key not in self._names:
                raise KeyError(f"{self.prefix}{key}")
            self._loaded[key] = _read_array(self.path, self.zf, f"{self.prefix}{key}.npy")
        return self._loaded[key]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _read_array(path: Path, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    info = zf.getinfo(name)
    try:
        with zf.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)(fh)
        if dtype.kind not in "biuf":
            raise ModelFileError(f"{path}: refused an array that is not plain numeric data ({name}: {dtype}).")
        if math.prod(shape) * dtype.itemsize > info.file_size:
            raise ModelFileError(f"{path}: the array {name} claims more data than its entry holds; the file is damaged.")
        with zf.open(info) as fh:
            array = np.lib.format.read_array(fh, allow_pickle=False)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise ModelFileError(
            f"{path} is not a readable poverty model file (damaged: its array {name} cannot be read: {exc})."
        ) from exc
    except ValueError as exc:
        raise ModelFileError(f"{path}: refused an array that is not plain numeric data ({name}: {exc}).") from exc
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelFileError(
            f"{path}: the array {name} holds NaN or infinite values; the file is damaged. Fit the model "
            "again or use another model file."
        )
    return array


def _read_meta(path: str | os.PathLike) -> dict:
    """The checked JSON part of a model file (arrays are read by :func:`load_model`)."""
    path = Path(path)
    with _open_zip(path) as zf:
        return _meta(path, zf)


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    """The model file as an open zip, refused unread when it would unpack to too much."""
    if not path.is_file():
        raise ModelFileError(f"Model file not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not a readable poverty model file (damaged or not a .povmodel file: {exc})."
        ) from exc
    with zf:
        unpacked = sum(info.file_size for info in zf.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise ModelFileError(
                f"{path} would unpack to {unpacked / 2**20:.0f} MiB, far more than a model file "
                "holds; refused as damaged or hostile."
            )
        yield zf


def _meta(path: Path, zf: zipfile.ZipFile) -> dict:
    try:
        meta = json.loads(zf.read(_META_ENTRY).decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, KeyError, EOFError, OSError) as exc:
        # RuntimeError: an encrypted entry
        raise ModelFileError(
            f"{path} is not a readable poverty model file (damaged or not a .povmodel file: {exc})."
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: the model description is not valid JSON ({exc}).") from exc
    _check_format(path, meta)
    return meta


def _check_format(path: Path, meta: object) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a poverty model file (no '{FORMAT_NAME}' header).")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: the model file has no valid format version.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in model format {version}, newer than this plugin reads "
            f"({FORMAT_VERSION}); update the Poverty Mapper plugin."
        )
