"""Mapping: a model applied to every tile of a region, and the estimate raster written."""
