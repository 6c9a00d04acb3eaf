"""The finished map as a project layer: styled, named and described."""
from __future__ import annotations

from datetime import date

from qgis.core import QgsLayerMetadata, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication

from ..core.models.model_file import ModelInfo
from ..provider.map_layers import map_name, unique_name
from ..provider.styling import apply_poverty_style, open_map_layer

KEYWORD_VOCABULARY = "Poverty Mapper"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyResultLayer", text)


def poverty_layer_metadata(model: ModelInfo, input_name: str, made_on: date, title: str) -> QgsLayerMetadata:
    """Title, abstract (the model, the input image, the date) and keywords of a map."""
    quantity, unit = model.target.name, model.target.unit
    metadata = QgsLayerMetadata()
    metadata.setTitle(title)
    metadata.setType("dataset")
    metadata.setAbstract(
        tr(
            "Estimated {quantity} ({unit}) for each tile of the image '{image}', made on {day} "
            "by the QGIS plugin Poverty Mapper with the model '{model}'. The values are model "
            "predictions, not survey measurements: use them to compare places, and read the "
            "model's scores before trusting differences.\n\nModel card:\n{card}"
        ).format(quantity=quantity, unit=unit, image=input_name, day=made_on.isoformat(), model=model.name, card=model.card())
    )
    metadata.addKeywords(KEYWORD_VOCABULARY, [tr("poverty"), tr("wealth"), quantity, model.name])
    metadata.addHistoryItem(
        tr("{day}: estimated from '{image}' with the model '{model}'.").format(
            day=made_on.isoformat(), image=input_name, model=model.name
        )
    )
    return metadata


def open_result_layer(
    path: str, model: ModelInfo, input_name: str, made_on: date, mask_name: str | None = None
) -> QgsRasterLayer | None:
    """The map at ``path`` styled like every poverty map, with its metadata, named after its
    model and image (unique in the project); None if unreadable."""
    quantity, unit = model.target.name, model.target.unit
    name = unique_name(map_name(model.name, input_name, mask_name), QgsProject.instance())
    layer = open_map_layer(path, quantity, unit)
    layer.setName(name)
    if not layer.isValid():
        return None
    apply_poverty_style(layer, quantity, unit)
    metadata = poverty_layer_metadata(model, input_name, made_on, name)
    metadata.setCrs(layer.crs())
    layer.setMetadata(metadata)
    return layer
