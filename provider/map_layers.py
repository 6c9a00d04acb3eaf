"""A poverty map as it enters a project: named after its model and image, unique in the
project, and grouped with what says how far to trust it: above the estimate, the cells its
quality band flags, hatched (:mod:`.quality_overlay`: Identify names each one); below it,
hidden until asked for, a layer of band 3, the half-width of each cell's 80 % interval.
Used by the dock and by Processing."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from qgis.core import (
    QgsColorRampShader,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from .quality_overlay import quality_overlay

INTERVAL_BAND = 3
# GDAL's refusal of a histogram of a band of one value (min == max).
CONSTANT_BAND_HISTOGRAM = "dfMax should be strictly greater than dfMin"
ROLE_PROPERTY = "poverty_mapper/role"  # on the layers that go with a map and are no maps to export
QUALITY_ROLE, INTERVAL_ROLE = "quality", "interval"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyMapLayers", text)


def map_name(model_name: str, image_name: str, mask_name: str | None = None) -> str:
    """The name of a map: its model and image (and the polygons it was limited to)."""
    name = tr("Poverty map: {model} on {image}").format(model=model_name, image=image_name)
    return tr("{name}, within {mask}").format(name=name, mask=mask_name) if mask_name else name


def quality_name(name: str) -> str:
    """The quality layer's name for the map called ``name``."""
    prefix = tr("Poverty map: ")
    return tr("Where not to trust (quality): {}").format(name[len(prefix):] if name.startswith(prefix) else name)


def unique_name(name: str, project: QgsProject, ignore: QgsRasterLayer | None = None) -> str:
    """``name``, or ``name (2)``, ``name (3)``… when a layer of the project has it already."""
    taken = {layer.name() for layer in project.mapLayers().values() if layer is not ignore}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def interval_name(name: str) -> str:
    prefix = tr("Poverty map: ")
    return tr("80 % interval (±): {}").format(name[len(prefix):] if name.startswith(prefix) else name)


@contextmanager
def constant_bands_unreported() -> Iterator[None]:
    """Opens maps without GDAL's 'ERROR 5: ... dfMax should be strictly greater than dfMin'.

    QGIS gives a new layer of three bands or more a colour renderer stretched on each
    band's histogram; GDAL refuses the histogram of a band of one value (a map of one
    cell, an interval band of one width) with that message, which an analyst reads as an
    error. The poverty style replaces that renderer at once, so the refusal is dropped;
    any other GDAL message is passed on as GDAL prints it.
    """
    from osgeo import gdal

    passed = []

    def handler(err_class: int, err_no: int, message: str) -> None:
        if CONSTANT_BAND_HISTOGRAM not in message:
            passed.append((err_class, err_no, message))

    gdal.PushErrorHandler(handler)
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        for err_class, err_no, message in passed:
            kind = {gdal.CE_Warning: "Warning", gdal.CE_Debug: "Debug"}.get(err_class, "ERROR")
            sys.stderr.write(f"{kind} {err_no}: {message}\n")


def interval_layer(source: str, name: str) -> QgsRasterLayer | None:
    """Band 3 of the map at ``source``: light (narrow) to dark purple (wide); None if unreadable."""
    with constant_bands_unreported():  # a one-cell map: GDAL refuses its constant bands' histograms
        layer = QgsRasterLayer(source, interval_name(name))
    if not layer.isValid() or layer.bandCount() < INTERVAL_BAND:
        return None
    provider = layer.dataProvider()
    stats = provider.bandStatistics(INTERVAL_BAND, QgsRasterBandStats.Min | QgsRasterBandStats.Max, layer.extent(), 0)
    lo, hi = stats.minimumValue, stats.maximumValue
    if not (abs(lo) < 1e300 and abs(hi) < 1e300):  # no interval: GDAL reports the float limits
        lo, hi = 0.0, 1.0
    elif hi <= lo:  # one width everywhere
        lo, hi = lo - 0.5, lo + 0.5
    shader = QgsColorRampShader(lo, hi, QgsStyle.defaultStyle().colorRamp("Purples"))
    shader.classifyColorRamp(5, INTERVAL_BAND, layer.extent(), provider)
    raster_shader = QgsRasterShader()
    raster_shader.setRasterShaderFunction(shader)
    renderer = QgsSingleBandPseudoColorRenderer(provider, INTERVAL_BAND, raster_shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    layer.setRenderer(renderer)
    layer.setCustomProperty(ROLE_PROPERTY, INTERVAL_ROLE)
    layer.setTitle(tr("Half-width of each estimate's 80 % interval"))
    return layer


def is_quality_layer(layer) -> bool:
    return layer is not None and layer.customProperty(ROLE_PROPERTY) == QUALITY_ROLE


def is_companion_layer(layer) -> bool:
    """A layer that goes with a map (its quality or interval band), not a map itself."""
    return layer is not None and layer.customProperty(ROLE_PROPERTY) in (QUALITY_ROLE, INTERVAL_ROLE)


def add_map_to_project(layer: QgsRasterLayer, project: QgsProject | None = None) -> QgsVectorLayer | None:
    """Adds the map ``layer`` (named with :func:`map_name`) under a unique name, in a group
    with its quality layer above it; returns the quality layer (None for a map without one)."""
    project = project or QgsProject.instance()
    layer.setName(unique_name(layer.name(), project))
    project.addMapLayer(layer, False)
    group = project.layerTreeRoot().insertGroup(0, layer.name())
    return _fill_group(group, layer, project)


def group_loaded_map(layer: QgsRasterLayer, project: QgsProject) -> QgsVectorLayer | None:
    """For a map already in the project (loaded by Processing): a unique name, and a group with
    its quality layer where the map's node was; returns the quality layer."""
    layer.setName(unique_name(layer.name(), project, ignore=layer))
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None:
        return None
    parent = node.parent()
    group = parent.insertGroup(parent.children().index(node), layer.name())
    quality = _fill_group(group, layer, project)
    parent.removeChildNode(node)  # the map stays: the group holds it now
    return quality


def quality_layer(source: str, name: str) -> QgsVectorLayer | None:
    """The flagged cells of the map at ``source`` (:mod:`.quality_overlay`), marked as going with it."""
    layer = quality_overlay(source, quality_name(name))
    if layer is not None:
        layer.setCustomProperty(ROLE_PROPERTY, QUALITY_ROLE)
    return layer


def _fill_group(group, layer: QgsRasterLayer, project: QgsProject) -> QgsVectorLayer | None:
    quality = quality_layer(layer.source(), layer.name())
    if quality is not None:
        project.addMapLayer(quality, False)
        group.addLayer(quality)
    group.addLayer(layer)
    interval = interval_layer(layer.source(), layer.name())
    if interval is not None:
        project.addMapLayer(interval, False)
        group.addLayer(interval).setItemVisibilityChecked(False)  # there when asked for
    return quality
