"""The dock keeps a usable form however many notes a run leaves: the notes scroll in a
bounded area (checked on the widgets' geometry, the dock shown at 320 px wide)."""
from __future__ import annotations

import pytest
from qgis.PyQt.QtWidgets import QApplication

from dock_helpers import dock, make_dock  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("clean_settings")
FORM_MIN_PX = 200  # the form (image, region, model, options, export) keeps at least this much
# Five notes as long as a real run's (radiometry, extrapolations, out of domain, water, no NIR band).
NOTES = [
    "Note: Level-1 DN converted to top-of-atmosphere reflectance with 2e-5 * DN - 0.1 (USGS product guide, "
    "sun-angle correction omitted). This approximates the surface reflectance the model was trained on; it is "
    "not the same product.",
    "Note: 31 of 42 estimated cells lie outside the range of the survey outcomes (extrapolations): read them as "
    "'below' or 'above' that range, not as values.",
    "Note: 12 of 42 estimated cells come from imagery unlike every training cluster's (out of the model's "
    "domain): their estimates should not be trusted; the quality layer shows them.",
    "Note: Cells left without an estimate: 3 as water and 1 as cloud.",
    "Note: The imagery has no near-infrared band (or none the plugin can name), so water was not looked for: "
    "lakes and rivers get estimates like land. The quality band still flags imagery unlike the model's.",
]


def _status(n_notes: int) -> str:
    return "\n".join(["Estimated 42 of 49 cells on cpu; bands 1,2,3; radiometry: Landsat 8/9 Level-1 DN.",
                      *NOTES[:n_notes], "Output: /tmp/processing_generated/OUTPUT.tif"])


@pytest.mark.parametrize("height", [800, 560])  # a dock of the window's height; shared with Identify's panel
def test_five_notes_scroll_and_the_form_keeps_its_room(dock, qtbot, height):
    dock.resize(320, height)
    dock.show()
    qtbot.waitExposed(dock)
    dock.statusLabel.setText(_status(5))
    QApplication.processEvents()
    dock.resize(320, height)
    QApplication.processEvents()
    assert dock.height() == height
    assert dock.scrollArea.height() >= FORM_MIN_PX, dock.scrollArea.height()
    notes = dock.notesArea
    assert notes.height() == 180  # as tall as it may be: the dock has room for that and the form
    # Every note can be reached: the notes that do not fit scroll.
    label_height = dock.statusLabel.heightForWidth(notes.viewport().width())
    assert label_height > notes.viewport().height()
    assert notes.verticalScrollBar().maximum() >= label_height - notes.viewport().height() - 2
    assert notes.verticalScrollBar().isVisible()
    # Buttons, progress and notes are all inside the dock.
    bottom = notes.mapTo(dock, notes.rect().bottomLeft()).y()
    assert bottom <= dock.height()


def test_one_line_of_status_takes_little_room(dock, qtbot):
    dock.resize(320, 800)
    dock.show()
    qtbot.waitExposed(dock)
    dock.statusLabel.setText("Mapping…")
    for _ in range(3):
        QApplication.processEvents()
    assert dock.notesArea.height() < 40
    assert not dock.notesArea.verticalScrollBar().isVisible()


def test_in_a_short_dock_the_notes_give_way_before_the_form(dock, qtbot):
    dock.resize(320, 380)
    dock.show()
    qtbot.waitExposed(dock)
    dock.statusLabel.setText(_status(5))
    for _ in range(3):  # the label asks the notes area for room, which asks the dock
        QApplication.processEvents()
    assert dock.scrollArea.height() >= 150  # the form's minimum holds
    assert 40 <= dock.notesArea.height() < 180  # the notes shrink, and scroll
    assert dock.notesArea.verticalScrollBar().maximum() > 0
