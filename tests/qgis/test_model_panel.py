"""The dock's model section: the bundled models by name, "Other model file…", and what is
remembered. The second bundled model here is GENERATED: the default model saved under
another name and pixel size in tmp_path, listed in place of the Kinshasa CNN."""
from __future__ import annotations

import dataclasses

import pytest
from qgis.core import QgsSettings

from poverty_mapper.core.models import defaults
from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH, DEFAULT_MODEL_KEY, DEFAULT_MODEL_PATH

DEFAULT_LABEL = "Africa night lights 2016 (NASA Black Marble) ridge v1 (no image needed)"
SECOND_NAME = "Generated second bundled model"


pytestmark = pytest.mark.usefixtures("clean_settings")  # no remembered choices before or after


@pytest.fixture()
def make_panel(qgis_app, qtbot):
    from poverty_mapper.ui.model_panel import ModelPanel

    def make():
        panel = ModelPanel()
        qtbot.addWidget(panel)
        return panel

    return make


@pytest.fixture()
def second_model(tmp_path, default_model):
    """A GENERATED model file standing in for a second bundled model."""
    from poverty_mapper.core.models.model_file import save_model

    return save_model(dataclasses.replace(default_model, name=SECOND_NAME, pixel_size_m=38.0),
                      tmp_path / "second.povmodel")


@pytest.fixture()
def two_bundled(monkeypatch, second_model):
    """The GENERATED model bundled first, then the default one: the default is not the first entry."""
    monkeypatch.setattr(defaults, "BUNDLED_MODELS", {"second": second_model, DEFAULT_MODEL_KEY: DEFAULT_MODEL_PATH})


def remember(value: str) -> None:
    QgsSettings().setValue("poverty_mapper/model_path", value)


def remembered() -> str:
    return QgsSettings().value("poverty_mapper/model_path", type=str)


def items(combo) -> list[tuple[str, str]]:
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]


def choose(combo, data) -> None:
    combo.setCurrentIndex(combo.findData(data))
    assert combo.currentData() == data


def test_bundled_models_lists_only_the_files_that_are_there(monkeypatch, tmp_path, second_model):
    monkeypatch.setattr(defaults, "BUNDLED_MODELS", {
        DEFAULT_MODEL_KEY: DEFAULT_MODEL_PATH, "missing": tmp_path / "missing.povmodel", "second": second_model,
    })
    assert defaults.bundled_models() == {DEFAULT_MODEL_KEY: DEFAULT_MODEL_PATH, "second": second_model}


def test_the_default_model_is_offered_by_name_and_chosen(make_panel):
    from poverty_mapper.ui.model_panel import OTHER_FILE

    panel = make_panel()
    assert items(panel.modelCombo)[0] == (DEFAULT_LABEL, DEFAULT_MODEL_KEY)
    assert items(panel.modelCombo)[1][1] == "africa_nightlights_viirs"
    rgb = next(text for text, data in items(panel.modelCombo) if data == "rgb_histogram")
    assert rgb.startswith("Example: LSMS Africa RGB histogram")  # offered, never the default
    assert items(panel.modelCombo)[-1] == ("Other model file…", OTHER_FILE)
    assert panel.modelCombo.currentData() == DEFAULT_MODEL_KEY
    assert panel.model_path() == str(AFRICA_LIGHTS_MODEL_PATH)
    assert panel.modelWidget.isHidden()
    assert panel.modelCard.text().startswith("Africa night lights 2016 (NASA Black Marble) ridge v1: predicts")
    assert panel.modelSummary.text().startswith("Night lights of 2016 (NASA Black Marble), bundled with the plugin: "
                                                "no image needed")
    assert panel.problem() is None


def test_a_second_bundled_model_is_offered_and_chosen_by_name(make_panel, two_bundled, second_model):
    panel = make_panel()
    assert [data for _, data in items(panel.modelCombo)][:2] == ["second", DEFAULT_MODEL_KEY]
    assert panel.modelCombo.currentData() == DEFAULT_MODEL_KEY  # nothing remembered: the default, wherever it is listed
    changed = []
    panel.modelChanged.connect(lambda: changed.append(panel.model_info().name))
    choose(panel.modelCombo, "second")
    assert panel.modelCombo.currentText() == f"{SECOND_NAME} (histogram, 38 m)"
    assert changed == [SECOND_NAME]
    assert panel.model_path() == str(second_model)
    assert panel.modelCard.text().startswith(SECOND_NAME)
    assert panel.modelWidget.isHidden()
    assert remembered() == "bundled:second"


def test_other_model_file_shows_the_file_widget_and_uses_the_file(make_panel, second_model):
    from poverty_mapper.ui.model_panel import OTHER_FILE

    panel = make_panel()
    changed = []
    panel.modelChanged.connect(lambda: changed.append(panel.model_path()))
    choose(panel.modelCombo, OTHER_FILE)
    assert not panel.modelWidget.isHidden()
    assert panel.model_path() == "" and panel.model_info() is None
    assert "Choose a model file" in panel.problem()
    panel.modelWidget.setFilePath(str(second_model))
    assert changed == ["", str(second_model)]
    assert panel.model_info().name == SECOND_NAME and panel.problem() is None
    assert remembered() == str(second_model)

    choose(panel.modelCombo, DEFAULT_MODEL_KEY)
    assert panel.modelWidget.isHidden()
    assert panel.model_path() == str(AFRICA_LIGHTS_MODEL_PATH)
    assert remembered() == f"bundled:{DEFAULT_MODEL_KEY}"


def test_a_remembered_bundled_model_is_restored(make_panel, two_bundled, second_model):
    remember("bundled:second")
    panel = make_panel()
    assert panel.modelCombo.currentData() == "second"
    assert panel.model_path() == str(second_model)
    assert panel.model_info().name == SECOND_NAME


def test_a_remembered_model_file_is_restored(make_panel, second_model):
    from poverty_mapper.ui.model_panel import OTHER_FILE

    remember(str(second_model))
    panel = make_panel()
    assert panel.modelCombo.currentData() == OTHER_FILE
    assert not panel.modelWidget.isHidden()
    assert panel.modelWidget.filePath() == str(second_model)
    assert panel.model_path() == str(second_model)
    assert panel.model_info().name == SECOND_NAME


@pytest.mark.parametrize("value", ["", "bundled:gone", "bundled:unknown", "bundled:default"],
                         ids=["older-versions", "file-gone", "unknown-key", "the-former-default-key"])
def test_the_default_model_when_nothing_or_a_lost_bundled_model_is_remembered(make_panel, monkeypatch, tmp_path,
                                                                              second_model, value):
    monkeypatch.setattr(defaults, "BUNDLED_MODELS", {
        "second": second_model, "gone": tmp_path / "gone.povmodel", DEFAULT_MODEL_KEY: DEFAULT_MODEL_PATH,
    })
    remember(value)
    panel = make_panel()
    assert "gone" not in [data for _, data in items(panel.modelCombo)]
    assert panel.modelCombo.currentData() == DEFAULT_MODEL_KEY
    assert panel.model_path() == str(DEFAULT_MODEL_PATH)
    assert panel.problem() is None
