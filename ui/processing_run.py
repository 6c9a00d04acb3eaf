"""Running a Processing algorithm of the plugin in a background task, from a widget.

The task's context and feedback must live as long as the task: a ``ProcessingRun``
owns all three, and a started run stays alive until QGIS has deleted its task, whatever
becomes of the widget that started it. (QGIS calls the task's ``finished`` after its
thread ends, and on success post-processes with the context and feedback there; a
widget unloaded in between must not take them with it.) Both the prediction and the
exports of the dock go through it.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsExpressionContext,
    QgsExpressionContextUtils,
    QgsMessageLog,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)


class CollectingFeedback(QgsProcessingFeedback):
    """Keeps the errors, messages and warnings the algorithm reports, to show them in the dock."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803 (QGIS API)
        self.errors.append(error)
        super().reportError(error, fatalError)

    def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
        self.infos.append(info)
        super().pushInfo(info)

    def pushWarning(self, warning: str) -> None:  # noqa: N802 (QGIS API)
        self.warnings.append(warning)
        super().pushWarning(warning)


# Started runs whose task QGIS has not deleted yet (see the module's docstring).
_LIVE_RUNS: set["ProcessingRun"] = set()


class ProcessingRun:
    def __init__(
        self,
        algorithm_id: str,
        parameters: dict,
        on_executed: Callable[[bool, dict], None],
        on_progress: Callable[[float], None] | None = None,
    ):
        self.algorithm_id = algorithm_id
        self.parameters = parameters
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        # Built here, in the main thread, as QGIS's own Processing dialogs do: with an empty
        # expression context the task would build the project's scope itself, in its thread,
        # racing the map canvas that builds it in the main thread (a crash, now and then).
        expressions = QgsExpressionContext()
        expressions.appendScopes(QgsExpressionContextUtils.globalProjectLayerScopes(None))
        self.context.setExpressionContext(expressions)
        self.feedback = CollectingFeedback()
        self.task: QgsProcessingAlgRunnerTask | None = None
        self._on_executed = on_executed
        self._on_progress = on_progress

    def start(self) -> str | None:
        """Queue the task; returns why it could not start (None when it did)."""
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(self.algorithm_id)
        if algorithm is None:
            return "The Poverty Mapper Processing provider is not loaded; re-enable the plugin."
        self.task = QgsProcessingAlgRunnerTask(algorithm, self.parameters, self.context, self.feedback)
        if self.task.isCanceled():  # the algorithm refused the parameters while preparing
            return self.error_message("The algorithm refused its parameters.")
        self.task.executed.connect(self._on_executed)
        if self._on_progress is not None:
            self.task.progressChanged.connect(self._on_progress)
        _LIVE_RUNS.add(self)
        self.task.destroyed.connect(lambda *_: _LIVE_RUNS.discard(self))
        QgsApplication.taskManager().addTask(self.task)
        return None

    def error_message(self, fallback: str) -> str:
        return (self.feedback.errors[-1] if self.feedback.errors else "") or fallback

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


LOG_TAG = "Poverty Mapper"


def show_error(iface, message: str, details: str = "") -> None:
    """The message bar says what to fix; the log panel keeps the details."""
    QgsMessageLog.logMessage(message + ("\n" + details if details else ""), LOG_TAG, Qgis.MessageLevel.Critical)
    iface.messageBar().pushMessage(LOG_TAG, message, level=Qgis.MessageLevel.Critical)
