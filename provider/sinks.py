"""Vector outputs that appear under their name only when complete.

``parameterAsSink`` creates (and so overwrites) the destination file at once: a failed
or canceled run would leave a half-written layer, and the earlier file of that name
would be gone. :func:`atomic_sink` writes a file destination into a hidden folder
beside it instead, and moves the finished file(s) into place when the block ends
without an exception. Other destinations (temporary or memory layers, database URIs)
are passed through unchanged.

Every feature the sink refuses stops the run with the writer's error, and the finished
file is re-opened and its features counted before it replaces anything: GDAL reports a
full disk only in its log, and an earlier layer must never give way to a damaged one.
"""
from __future__ import annotations

import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from qgis.core import (
    QgsFeatureSink,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingOutputLayerDefinition,
    QgsProperty,
    QgsProviderRegistry,
)
from osgeo import ogr
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QVariant

from ..core.atomic import (
    check_not_an_input,
    check_writable_folder,
    incomplete_output_problem,
    partial_path,
    remove_abandoned_partials,
)
from ..core.errors import PovertyMapperError

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


def _present(value) -> bool:
    """Whether an attribute value is one every format stores and reads back as a value:
    not NULL, not a text of blanks alone (a shapefile reads it as NULL), not NaN."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return not (isinstance(value, float) and math.isnan(value))


def check_sink_folder(value, context: QgsProcessingContext, what: str) -> None:
    """Refuse, before any work, a file destination in a folder that cannot be written."""
    final = _file_destination(value, context)
    if final is None:
        return
    try:
        check_writable_folder(final, what)
    except PovertyMapperError as exc:
        raise QgsProcessingException(str(exc)) from None


class CheckedSink:
    """A feature sink that raises on a feature it could not write, and counts those it
    wrote and, per field, the values they hold (to be found again when read back)."""

    def __init__(self, sink: QgsFeatureSink, destination: str, file: Path | None = None, names: list[str] = ()):
        self.sink, self.destination, self.file, self.count = sink, destination, file, 0
        self.names = list(names)
        self.values_per_field: dict[str, int] = dict.fromkeys(self.names, 0)

    def addFeature(self, feature, flags=QgsFeatureSink.Flags()) -> bool:  # noqa: N802 (QGIS API)
        if not self.sink.addFeature(feature, flags):
            error = self.sink.lastError() if hasattr(self.sink, "lastError") else ""
            problem = _tr("Could not write a feature to {} ({}).").format(
                self.destination, error or _tr("the writer gave no reason")
            )
            raise QgsProcessingException(problem if self.file is None else incomplete_output_problem(self.file, problem))
        self.count += 1
        for name, value in zip(self.names, feature.attributes()):
            self.values_per_field[name] = self.values_per_field.get(name, 0) + _present(value)
        return True


@contextmanager
def atomic_sink(
    algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context: QgsProcessingContext,
    fields, geometry_type, crs,
) -> Iterator[tuple[QgsFeatureSink, str]]:
    """``algorithm.parameterAsSink(...)`` as a context manager yielding (sink, destination).

    For a file destination the features go to a hidden folder beside it; the file(s)
    are moved into place when the block completes and removed when it raises."""
    final = _file_destination(parameters.get(name), context)
    if final is not None:
        _check_not_an_input(algorithm, parameters, context, final)
    if final is None:
        sink, dest = algorithm.parameterAsSink(parameters, name, context, fields, geometry_type, crs)
        if sink is None:
            raise QgsProcessingException(_tr("Cannot create the output layer {}; choose another destination.").format(dest))
        yield CheckedSink(sink, dest), dest
        return

    remove_abandoned_partials(final)
    staging = partial_path(final)
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
            raise QgsProcessingException(_creation_problem(final, str(exc).replace(str(staged), str(final)))) from None
        if sink is None:
            raise QgsProcessingException(_creation_problem(final, ""))
        dest = staged_dest.replace(str(staged), str(final))
        checked = CheckedSink(sink, str(final), final, fields.names())
        yield checked, dest
        sip.delete(sink)  # closes the file: everything is on disk
        sink = None
        _check_written_layer(staged, final, checked.count, checked.values_per_field)
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


def _check_not_an_input(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext, final: Path) -> None:
    """Refuse a destination that is the file of one of the algorithm's input layers or files."""
    inputs = {}
    for definition in algorithm.parameterDefinitions():
        if definition.isDestination() or parameters.get(definition.name()) in (None, ""):
            continue
        path = _file_of(parameters[definition.name()], context)
        if path:
            inputs[definition.description() or definition.name()] = path
    try:
        check_not_an_input(final, inputs)
    except PovertyMapperError as exc:
        raise QgsProcessingException(str(exc)) from None


def _file_of(value, context: QgsProcessingContext) -> str | None:
    """The file behind a parameter value: a layer, a layer id of the project, or a path."""
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source.staticValue()
    if isinstance(value, str) and context.project() is not None and context.project().mapLayer(value) is not None:
        value = context.project().mapLayer(value)
    if isinstance(value, QgsMapLayer):
        return QgsProviderRegistry.instance().decodeUri(value.providerType(), value.source()).get("path")
    if isinstance(value, str):
        return QgsProviderRegistry.instance().decodeUri("ogr", value).get("path") or value
    return None


def _creation_problem(final: Path, writer_error: str) -> str:
    """A layer that could not be created: a full disk said as such (GDAL's own error then
    is a page of SQL), any other reason in its first line."""
    detail = writer_error.splitlines()[0][:300] if writer_error else _tr("the writer gave no reason")
    return incomplete_output_problem(
        final, _tr("Cannot create the output layer {} ({}); choose another destination.").format(final, detail)
    )


def _read_back(staged: Path) -> tuple[int, dict[str, int], str] | None:
    """(features, values per field name, the FID column's name) of the written layer;
    None when it does not open."""
    try:
        dataset = ogr.Open(str(staged))  # None, or RuntimeError where GDAL's exceptions are on
        if dataset is None or dataset.GetLayerCount() != 1:
            return None
        layer = dataset.GetLayer(0)
        definition = layer.GetLayerDefn()
        names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        values = dict.fromkeys(names, 0)
        count = 0
        for feature in layer:  # every record read: a truncated .dbf shows here
            count += 1
            for i, name in enumerate(names):
                values[name] += feature.IsFieldSetAndNotNull(i) and _present(feature.GetField(i))
        return count, values, layer.GetFIDColumn() or ""
    except RuntimeError:
        return None
    finally:
        dataset = layer = None  # closes the file


def _missing_values(written: dict[str, int], read: dict[str, int], fid_column: str) -> str | None:
    """The first field whose values did not all read back, as a phrase; None when all did.
    A field may come back as the format's FID column (GeoPackage 'fid') or under a
    shortened name (a shapefile's 10 characters)."""
    by_lower = {name.lower(): name for name in read}
    for name, n in written.items():
        if name.lower() == fid_column.lower():
            continue
        found = by_lower.get(name.lower()) or by_lower.get(name[:10].lower())
        if found is None:
            return _tr("no field {}").format(name)
        if read[found] != n:
            return _tr("{} of {} values in the field {}").format(read[found], n, name)
    return None


def _check_written_layer(staged: Path, final: Path, expected: int, values: dict[str, int]) -> None:
    """Re-open the written layer and read every feature back: a file that does not give
    every feature written, with its attribute values, never replaces anything."""
    found = _read_back(staged)
    problem = None
    if found is None:
        problem = _tr("no layer")
    elif found[0] != expected:
        problem = _tr("{} of {} features").format(found[0], expected)
    else:
        problem = _missing_values(values, found[1], found[2])
    if problem is not None:
        raise QgsProcessingException(
            incomplete_output_problem(final, _tr("The output {} was not written whole: it reads back with {}.").format(final, problem))
        )


def _move_into_place(staging: Path, final: Path) -> None:
    """Move the written file(s) over the earlier ones, all or none: the earlier file(s)
    are first moved aside into ``staging``, and moved back if anything cannot be moved."""
    written = sorted(p for p in staging.iterdir() if p.is_file())
    earlier_names = {p.name for p in written}
    if final.suffix.lower() == ".shp":
        earlier_names |= {final.with_suffix(s).name for s in _STALE_SHAPEFILE_SIDECARS}
    aside = staging / "earlier"
    aside.mkdir()
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        # The main file first aside and last in: until it moves, a reader finds the earlier layer.
        for name in sorted(earlier_names, key=lambda n: n != final.name):
            if (final.parent / name).exists():
                os.replace(final.parent / name, aside / name)
                moved_aside.append(name)
        for path in sorted(written, key=lambda p: p.name == final.name):
            os.replace(path, final.parent / path.name)
            moved_in.append(path.name)
    except OSError as exc:
        for name in moved_in:
            (final.parent / name).unlink(missing_ok=True)
        for name in moved_aside:
            os.replace(aside / name, final.parent / name)
        raise QgsProcessingException(
            _tr("Cannot replace {} ({}); the earlier file is unchanged. Close the layers that use it, "
                "check that it may be changed, or choose another destination.").format(final, exc.strerror)
        ) from None


def _rename_layer_to_load(context: QgsProcessingContext, staged_dest: str, dest: str) -> None:
    layers = context.layersToLoadOnCompletion()
    if staged_dest in layers:
        layers[dest] = layers.pop(staged_dest)
        context.setLayersToLoadOnCompletion(layers)
