"""Choosing a combo box item by its data."""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QComboBox


def select_data(combo: QComboBox, data) -> bool:
    """Makes the item holding ``data`` current; False (and no change) when there is none."""
    index = combo.findData(data)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0
