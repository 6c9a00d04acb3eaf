"""The command line's input files: survey clusters (a CSV table, or any vector file GDAL
reads: GeoJSON, GeoPackage, shapefile) and mask polygons.

A CSV may use commas, semicolons, tabs or bars between fields, and UTF-8 or Windows'
cp1252 (as spreadsheets save it). Vector files are read with GDAL's Python bindings
(``osgeo``) where the environment has them; without them GeoJSON is still read, and
other formats are refused with a message. Every problem is a
:class:`~poverty_mapper.core.errors.PovertyMapperError` that says what to fix.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from .core.errors import PovertyMapperError
from .core.training.survey_inputs import number

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_DELIMITERS = ",;\t|"
NAN = float("nan")


@dataclass
class Table:
    """Rows of fields (text or numbers) with their location under ``__x`` and ``__y``."""

    rows: list[dict]
    fields: list[str]
    crs: str | None  # the file's own CRS, where it declares one
    notes: list[str] = field(default_factory=list)


def read_clusters_table(path: str, x_field: str, y_field: str) -> Table:
    """The clusters of a CSV file (locations in ``x_field``, ``y_field``) or a vector file."""
    p = Path(path)
    if not p.is_file():
        raise PovertyMapperError(f"The clusters file '{path}' does not exist; give a CSV file or a vector file of points.")
    if p.suffix.lower() in CSV_SUFFIXES:
        return _csv_table(p, x_field, y_field)
    return _vector_table(p, "clusters")


def read_mask_polygons(path: str) -> tuple[list[dict], str | None]:
    """The polygons of a vector file as GeoJSON-like dicts, and the file's own CRS."""
    p = Path(path)
    if not p.is_file():
        raise PovertyMapperError(f"The mask '{path}' does not exist; give a vector file of polygons (GeoJSON, GeoPackage).")
    table = _vector_table(p, "mask", keep_geometry=True)
    polygons = [r["__geometry"] for r in table.rows if (r["__geometry"] or {}).get("type") in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise PovertyMapperError(f"The mask '{path}' holds no polygons; give a vector file of polygons (GeoJSON, GeoPackage).")
    return polygons, table.crs


def _csv_table(path: Path, x_field: str, y_field: str) -> Table:
    data = path.read_bytes()
    notes = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
        notes.append(f"'{path.name}' is not UTF-8; it was read as Windows text (cp1252).")
    header = text.splitlines()[0] if text.strip() else ""
    delimiter = max(_DELIMITERS, key=header.count) if header else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    for row in reader:
        row = {k.strip() if isinstance(k, str) else k: v for k, v in row.items()}
        row["__x"], row["__y"] = number(row.get(x_field)), number(row.get(y_field))
        rows.append(row)
    fields = [f.strip() for f in (reader.fieldnames or [])]
    for name in (x_field, y_field):
        if rows and name not in fields:
            raise PovertyMapperError(f"'{path}' has no field '{name}'; its fields: {', '.join(fields)}. "
                                     "Name the location columns with --x-field and --y-field.")
    return Table(rows, fields, None, notes)


def _vector_table(path: Path, what: str, keep_geometry: bool = False) -> Table:
    try:
        from osgeo import ogr
    except ImportError:
        return _geojson_table(path, what, keep_geometry)
    ogr.UseExceptions()
    try:
        dataset = ogr.Open(str(path))
    except RuntimeError as exc:
        raise PovertyMapperError(
            f"The {what} file '{path}' cannot be read as a vector file ({str(exc).splitlines()[0]}); give a "
            f"{'CSV, ' if what == 'clusters' else ''}GeoJSON, GeoPackage or shapefile that is whole (for JSON: valid JSON)."
        ) from None
    if dataset is None or dataset.GetLayerCount() < 1:
        raise PovertyMapperError(
            f"The {what} file '{path}' cannot be read as a vector file; give a "
            f"{'CSV, ' if what == 'clusters' else ''}GeoJSON, GeoPackage or shapefile that is whole (for JSON: valid JSON)."
        )
    layer = dataset.GetLayer(0)
    srs = layer.GetSpatialRef()
    crs = None if srs is None else _crs_text(srs)
    definition = layer.GetLayerDefn()
    fields = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    rows, not_points = [], 0
    for feature in layer:
        row = {name: feature.GetField(name) for name in fields}
        geometry = feature.GetGeometryRef()
        if keep_geometry:
            row["__geometry"] = None if geometry is None else json.loads(geometry.ExportToJson())
        x = y = NAN
        if geometry is not None and not geometry.IsEmpty():
            if geometry.GetGeometryType() not in (ogr.wkbPoint, ogr.wkbPoint25D):
                not_points += 1
                geometry = geometry.Centroid()
            x, y = geometry.GetX(), geometry.GetY()
        row["__x"], row["__y"] = x, y
        rows.append(row)
    notes = [] if keep_geometry or not not_points else [
        f"{not_points} clusters are not points (lines or polygons): their centroids were taken."
    ]
    return Table(rows, fields, crs, notes)


def _crs_text(srs) -> str:
    """'EPSG:n' where the file names its authority code, else its WKT."""
    name, code = srs.GetAuthorityName(None), srs.GetAuthorityCode(None)
    return f"{name}:{code}" if name and code else srs.ExportToWkt()


def _geojson_table(path: Path, what: str, keep_geometry: bool) -> Table:
    """GeoJSON without GDAL's bindings; any other format is refused."""
    if path.suffix.lower() not in (".geojson", ".json"):
        raise PovertyMapperError(
            f"Reading '{path.name}' needs GDAL's Python bindings (osgeo), which this environment lacks; "
            f"give the {what} as GeoJSON{' or CSV' if what == 'clusters' else ''}, or install GDAL's bindings."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PovertyMapperError(f"The {what} file '{path}' is not valid GeoJSON ({exc}).") from None
    if not isinstance(data, dict):
        raise PovertyMapperError(f"The {what} file '{path}' is not GeoJSON (a FeatureCollection or a geometry).")
    features = (data.get("features") or []) if data.get("type") == "FeatureCollection" else [data]
    rows = []
    for f in features:
        f = f if isinstance(f, dict) else {}
        geometry = f.get("geometry", f) if f.get("type") == "Feature" else f
        row = dict(f.get("properties") or {})
        if keep_geometry:
            row["__geometry"] = geometry if isinstance(geometry, dict) else None
        coordinates = (geometry or {}).get("coordinates") if (geometry or {}).get("type") == "Point" else None
        ok = isinstance(coordinates, list) and len(coordinates) >= 2
        row["__x"], row["__y"] = (number(coordinates[0]), number(coordinates[1])) if ok else (NAN, NAN)
        rows.append(row)
    fields = sorted({k for r in rows for k in r if not k.startswith("__")})
    return Table(rows, fields, None, [])

