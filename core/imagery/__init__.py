"""Imagery: opening rasters, matching bands, converting pixel values to reflectance, the tile grid over a region, reading tiles ahead, and night lights per tile."""
