"""The dock's result and notes: as tall as their text, up to a bound, then scrolled; the
first to give way when the dock is short, so the form above keeps its room."""
from __future__ import annotations

from qgis.PyQt.QtCore import QEvent, QSize, Qt
from qgis.PyQt.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy

MAX_HEIGHT = 180  # about nine lines
MIN_HEIGHT = 40  # about two lines, with the scroll bar beside them


class NotesArea(QScrollArea):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("notesArea")
        self.setFrameShape(QFrame.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred)
        self.setMaximumHeight(MAX_HEIGHT)
        self._hint = 0
        self.viewport().installEventFilter(self)  # the label's new text asks its parent, the viewport, for room

    def hold(self, label: QLabel) -> None:
        """Scrolls ``label`` (word-wrapped), read from its top."""
        label.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.setWidget(label)

    def _text_height(self) -> int:
        label = self.widget()
        if label is None or not label.text():
            return 0
        return label.heightForWidth(max(self.viewport().width(), 50)) + 2 * self.frameWidth() + 2

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().sizeHint().width(), min(self._text_height(), MAX_HEIGHT))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return QSize(super().minimumSizeHint().width(), min(self._text_height(), MIN_HEIGHT))

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() in (QEvent.LayoutRequest, QEvent.Resize):
            self._refit()
        return super().eventFilter(watched, event)

    def _refit(self) -> None:
        hint = self.sizeHint().height()
        if hint != self._hint:  # only a change: the layout then asks again, without a loop
            self._hint = hint
            self.updateGeometry()
