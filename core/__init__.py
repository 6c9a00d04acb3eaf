"""The poverty-mapping engine.

Everything under ``core`` runs without QGIS or Qt: from the plugin, from the
Processing provider, from scripts and on a GPU server. A layout test enforces it.
"""
