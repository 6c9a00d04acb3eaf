"""QGIS Processing front end over the engine."""
