"""Vector outputs that appear under their name only when complete.

``parameterAsSink`` creates (and so overwrites) the destination file at once: a failed
or canceled run would leave a half-written layer, and the earlier file of that name
would be gone. :func:`atomic_sink` writes a file destination into a hidden folder
beside it instead, and moves the finished file(s) into place when the block ends
without an exception. Other destinations (temporary or memory layers, database URIs)
are passed through unchanged.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from qgis.core import (
    QgsFeatureSink,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsProperty,
)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication

# Formats written as one file, or as a shapefile's set of files with the same stem.
ATOMIC_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb", ".sqlite", ".csv", ".kml"}
# 'memory:', 'ogr:dbname=...', 'postgres:...' (as QGIS tells a provider key from a path: a
# drive letter such as 'C:' is too short to be one).
_PROVIDER_PREFIX = re.compile(r"^[A-Za-z_]{3,}:")
# Sidecars an earlier shapefile may have that the new one does not rewrite.
_STALE_SHAPEFILE_SIDECARS = (".qix", ".sbn", ".sbx", ".fix", ".qpj", ".cpg", ".prj")


def _tr(text: str) -> str:
    return QCoreApplication.translate("atomic_sink", text)


def _file_destination(value, context: QgsProcessingContext) -> Path | None:
    """The file a sink parameter value names, when it is a plain file path we can stage."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        prop = value.sink
        if prop.propertyType() != QgsProperty.StaticProperty:
            return None
        value = prop.staticValue()
    if not isinstance(value, str) or "|" in value or _PROVIDER_PREFIX.match(value):
        return None  # TEMPORARY_OUTPUT, memory:, ogr:/postgres: URIs, layer options
    path = Path(value)
    if path.suffix.lower() not in ATOMIC_SUFFIXES or not path.is_absolute() or not path.parent.is_dir():
        return None
    return path


@contextmanager
def atomic_sink(
    algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
    fields, geometry_type, crs,
) -> Iterator[tuple[QgsFeatureSink, str]]:
    """``algorithm.parameterAsSink(...)`` as a context manager yielding (sink, destination).

    For a file destination the features go to a hidden folder beside it; the file(s)
    are moved into place when the block completes and removed when it raises."""
    final = _file_destination(parameters.get(name), context)
    if final is None:
        sink, dest = algorithm.parameterAsSink(parameters, name, context, fields, geometry_type, crs)
        if sink is None:
            raise QgsProcessingException(_tr("Cannot create the output layer {}; choose another destination.").format(dest))
        yield sink, dest
        return

    staging = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.partial"
    staged = staging / final.name
    original = parameters[name]
    if isinstance(original, QgsProcessingOutputLayerDefinition):
        value = QgsProcessingOutputLayerDefinition(original)
        value.sink = QgsProperty.fromValue(str(staged))
    else:
        value = str(staged)
    sink = None
    try:
        try:
            staging.mkdir()
        except OSError as exc:
            raise QgsProcessingException(
                _tr("Cannot write in {} ({}); choose another destination.").format(final.parent, exc.strerror)
            ) from None
        try:
            sink, staged_dest = algorithm.parameterAsSink(
                {**parameters, name: value}, name, context, fields, geometry_type, crs
            )
        except QgsProcessingException as exc:
            raise QgsProcessingException(str(exc).replace(str(staged), str(final))) from None
        if sink is None:
            raise QgsProcessingException(_tr("Cannot create the output layer {}; choose another destination.").format(final))
        dest = staged_dest.replace(str(staged), str(final))
        yield sink, dest
        sip.delete(sink)  # closes the file: everything is on disk
        sink = None
        _move_into_place(staging, final)
        _rename_layer_to_load(context, staged_dest, dest)
    except BaseException:
        if sink is not None:
            sip.delete(sink)
        context_layers = context.layersToLoadOnCompletion()
        for key in [k for k in context_layers if str(staging) in k]:
            del context_layers[key]
        context.setLayersToLoadOnCompletion(context_layers)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, final: Path) -> None:
    written = sorted(staging.iterdir())
    if final.suffix.lower() == ".shp":
        names = {p.name for p in written}
        for suffix in _STALE_SHAPEFILE_SIDECARS:
            stale = final.with_suffix(suffix)
            if stale.name not in names:
                stale.unlink(missing_ok=True)
    # The main file last: until it moves, a reader still finds the earlier layer whole
    # (for a shapefile, as whole as a multi-file format can be).
    try:
        for path in sorted(written, key=lambda p: p.name == final.name):
            os.replace(path, final.parent / path.name)
    except OSError as exc:
        raise QgsProcessingException(
            _tr("Cannot replace {} ({}); close the layers that use it or choose another "
                "destination.").format(final, exc.strerror)
        ) from None


def _rename_layer_to_load(context: QgsProcessingContext, staged_dest: str, dest: str) -> None:
    layers = context.layersToLoadOnCompletion()
    if staged_dest in layers:
        layers[dest] = layers.pop(staged_dest)
        context.setLayersToLoadOnCompletion(layers)
