"""The dock's messages in QGIS's message bar.

Two things QGIS does on its own shape them. Its message bar keeps errors until they are
closed, so the errors of earlier runs are taken away when the next run starts. And when a
task ends QGIS says so itself ("Task complete", or "Task failed" for a cancelled task too),
after the task's own finishing code: a message pushed there would be covered. So the
messages that end a run are pushed once QGIS has spoken, and QGIS's notice about that
task is taken away where the plugin says more (or says it better: "Cancelled", not "Task
failed").
"""
from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication, QTimer

from .processing_run import LOG_TAG


def qgis_task_notices() -> tuple[str, ...]:
    """The titles of QGIS's own notices when a task ends, in QGIS's language."""
    return tuple(QCoreApplication.translate("QgisApp", title) for title in ("Task complete", "Task failed"))


class RunMessages:
    """Pushes the dock's messages and remembers them, to take them away when the next run starts."""

    def __init__(self, iface):
        self.iface = iface
        self._items: list = []

    def push(self, text: str, level: Qgis.MessageLevel, duration: int = -1) -> None:
        bar = self.iface.messageBar()
        bar.pushMessage(LOG_TAG, text, level=level, duration=duration)
        item = bar.currentItem()  # the item just pushed (a bar that keeps no items has none)
        if item is not None and item.text() == text:
            self._items.append(item)

    def error(self, message: str, details: str = "") -> None:
        """The message bar says what to fix; the log panel keeps the details."""
        QgsMessageLog.logMessage(message + ("\n" + details if details else ""), LOG_TAG, Qgis.MessageLevel.Critical)
        self.push(message, Qgis.MessageLevel.Critical)

    def clear(self) -> None:
        """Takes away the messages of earlier runs still in the bar (the log keeps them)."""
        bar = self.iface.messageBar()
        for item in self._items:
            if not sip.isdeleted(item):
                bar.popWidget(item)
        self._items = []

    def after_task(self, task_description: str, say) -> None:
        """Calls ``say`` (which pushes the run's last message) once QGIS has said that the
        task ended, and takes QGIS's notice about it away. For the task's finishing code."""
        QTimer.singleShot(0, lambda: self._after_task(task_description, say))

    def _after_task(self, task_description: str, say) -> None:
        bar = self.iface.messageBar()
        notices = qgis_task_notices()
        for item in list(bar.items()):
            if item.title() in notices and item.text() == task_description:
                bar.popWidget(item)
        say()
