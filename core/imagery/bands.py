"""Matching a model's bands to the bands of a raster."""
from __future__ import annotations

import re
from typing import Sequence

from ..errors import PovertyMapperError

# Names a band of each kind goes by in descriptions (Landsat 8/9 and Sentinel-2 band
# numbers included) and the colour interpretation GDAL may give it.
_ALIASES = {
    "BLUE": ("blue", "b2", "b02", "sr_b2", "band2"),
    "GREEN": ("green", "b3", "b03", "sr_b3", "band3"),
    "RED": ("red", "b4", "b04", "sr_b4", "band4"),
    "NIR": ("nir", "b5", "b08", "sr_b5", "band5"),
    "SWIR1": ("swir1", "b6", "b11", "sr_b6", "band6"),
    "SWIR2": ("swir2", "b7", "b12", "sr_b7", "band7"),
}


def _normal(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", (text or "").lower())


def known_band(text: str | None) -> str | None:
    """The kind of band (e.g. 'BLUE') a name stands for, or None when it is not one of
    the known names. Plain 'band 2' is a band number, not Landsat band 2: unknown."""
    normal = _normal(text or "")
    if re.fullmatch(r"band\d+", normal):
        return None
    for kind, aliases in _ALIASES.items():
        if normal == kind.lower() or normal in aliases:
            return kind
    return None


def guess_band_indexes(
    model_bands: Sequence[str],
    descriptions: Sequence[str | None],
    colorinterps: Sequence[str],
) -> tuple[int, ...]:
    """1-based raster band numbers for each model band, best guess.

    By band description first, then colour interpretation (red/green/blue), else in
    order when the raster has exactly as many bands as the model.
    """
    count = len(colorinterps)
    found: list[int | None] = []
    for name in model_bands:
        aliases = _ALIASES.get(name.upper(), (name.lower(),))
        match = None
        for i, desc in enumerate(descriptions):
            if _normal(desc or "") in aliases:
                match = i + 1
                break
        if match is None and name.lower() in ("red", "green", "blue"):
            for i, ci in enumerate(colorinterps):
                if ci.lower() == name.lower():
                    match = i + 1
                    break
        found.append(match)
    if all(f is not None for f in found) and len(set(found)) == len(found):
        return tuple(int(f) for f in found)
    if count == len(model_bands):
        kinds = [(known_band(name), known_band(desc)) for name, desc in zip(model_bands, descriptions)]
        if any(wanted and found and wanted != found for wanted, found in kinds):
            raise PovertyMapperError(
                f"The model expects the bands {', '.join(model_bands)}, but the raster's bands are "
                f"{', '.join(desc or '(unnamed)' for desc in descriptions)}. Use imagery with the "
                "model's bands (or a model fitted on this imagery); if the raster does hold them, "
                "give the band numbers explicitly."
            )
        return tuple(range(1, count + 1))
    if count < len(model_bands):
        raise PovertyMapperError(
            f"The model needs {len(model_bands)} bands ({', '.join(model_bands)}) but the raster has "
            f"only {count}; use imagery with those bands, or fit a model on this image's bands."
        )
    raise PovertyMapperError(
        f"Cannot tell which of the raster's {count} bands are the model's "
        f"{', '.join(model_bands)}; give the band numbers explicitly (e.g. "
        f"{','.join(str(i + 1) for i in range(len(model_bands)))})."
    )


def check_band_indexes(band_indexes: Sequence[int], model_bands: Sequence[str], count: int) -> tuple[int, ...]:
    indexes = tuple(int(b) for b in band_indexes)
    if len(indexes) != len(model_bands):
        raise PovertyMapperError(
            f"The model needs {len(model_bands)} bands ({', '.join(model_bands)}) but "
            f"{len(indexes)} band numbers were given ({', '.join(map(str, indexes))})."
        )
    bad = [b for b in indexes if not 1 <= b <= count]
    if bad:
        raise PovertyMapperError(
            f"Band number(s) {', '.join(map(str, bad))} do not exist: the raster has {count} band(s)."
        )
    repeated = duplicate_band_message(indexes, model_bands)
    if repeated:
        raise PovertyMapperError(repeated)
    return indexes


def duplicate_band_message(band_indexes: Sequence[int], model_bands: Sequence[str]) -> str | None:
    """Why a band list that reads one raster band for several model bands is refused, or None."""
    for band in dict.fromkeys(band_indexes):
        names = [name for name, b in zip(model_bands, band_indexes) if b == band]
        if len(names) > 1:
            return (
                f"The model's bands {' and '.join(names)} would all read band {band} of the raster; "
                "each model band needs its own band: choose the raster band that holds each of them."
            )
    return None


def parse_band_list(text: str) -> tuple[int, ...] | None:
    """'3,2,1' -> (3, 2, 1); empty -> None (guess)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return tuple(int(part) for part in re.split(r"[,\s;]+", text) if part)
    except ValueError:
        raise PovertyMapperError(
            f"Band list {text!r} is not a list of band numbers; write e.g. 3,2,1."
        ) from None
