"""Installing the plugin's missing packages for QGIS's Python, from the desktop: a toolbar
button opens a dialog that shows what will be installed where, runs pip in a background
task with progress, and says what to do when it cannot."""
from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import QAction, QDialog, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout

from .dependencies import DependencyProblem, InstallOutcome, InstallPlan, install_plan, install_progress, run_install
from .dependencies import why_not_installable


def tr(text: str) -> str:
    return QCoreApplication.translate("DependencyInstaller", text)


class InstallTask(QgsTask):
    """pip in the background; ``lineRead`` carries its output to the dialog."""

    lineRead = pyqtSignal(str)  # noqa: N815 (Qt signal naming)

    def __init__(self, plan: InstallPlan):
        super().__init__(tr("Installing Poverty Mapper's dependencies"), QgsTask.CanCancel)
        self.plan = plan
        self.outcome: InstallOutcome | None = None
        self._done = 0.0

    def run(self) -> bool:
        self.outcome = run_install(self.plan, self._line, self.isCanceled)
        return self.outcome.ok

    def _line(self, line: str) -> None:
        self._done = install_progress(line, self._done)
        self.setProgress(self._done)
        self.lineRead.emit(line)


class InstallDialog(QDialog):
    finished_install = pyqtSignal(bool)  # True: installed (restart QGIS)

    def __init__(self, plan: InstallPlan, parent=None):
        super().__init__(parent)
        self.plan = plan
        self.task: InstallTask | None = None
        self.setWindowTitle(tr("Poverty Mapper: install dependencies"))
        layout = QVBoxLayout(self)
        self.summary = QLabel(tr("The plugin needs {} for QGIS's Python. They are installed into {} (PyTorch's CPU "
                                 "build alone takes several hundred MB), which QGIS reads at start-up.").format(
            ", ".join(plan.requirements), plan.target))
        self.summary.setWordWrap(True)
        self.progress = QProgressBar()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setPlainText(tr("Command:\n{}").format(plan.manual_command()))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.installButton = QPushButton(tr("Install"))
        self.installButton.clicked.connect(self.install)
        for widget in (self.summary, self.installButton, self.progress, self.log, self.status):
            layout.addWidget(widget)

    def install(self) -> None:
        problem = why_not_installable(self.plan)
        if problem:
            self._end(False, problem)
            return
        self.installButton.setEnabled(False)
        self.status.setText(tr("Installing…"))
        self.task = InstallTask(self.plan)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task.lineRead.connect(self.log.appendPlainText)
        self.task.taskCompleted.connect(lambda: self._end(True))
        self.task.taskTerminated.connect(lambda: self._end(False))
        QgsApplication.taskManager().addTask(self.task)

    def _end(self, ok: bool, problem: str | None = None) -> None:
        if ok:
            self.progress.setValue(100)
            self.status.setText(tr("Installed into {}. Restart QGIS to load Poverty Mapper.").format(self.plan.target))
        elif problem is not None:
            self.status.setText(problem)
        else:
            tail = self.task.outcome.tail() if self.task and self.task.outcome else ""
            self.status.setText(tr(
                "Installing failed (the last lines of pip are above). Check the network connection, or run the "
                "command shown above in a terminal, then restart QGIS. {}").format(tail[-300:]))
        self.installButton.setEnabled(not ok)
        self.finished_install.emit(ok)


class InstallerEntry:
    """The toolbar button that opens the dialog, while the plugin stands in for itself."""

    def __init__(self, iface, problems: list[DependencyProblem]):
        self.iface = iface
        self.plan = install_plan(problems)
        self.dialog: InstallDialog | None = None
        self.toolbar = iface.addToolBar(tr("Poverty Mapper"))
        self.toolbar.setObjectName("PovertyMapperToolbar")
        self.action = QAction(tr("Install dependencies"), iface.mainWindow())
        self.action.triggered.connect(self.open)
        self.toolbar.addAction(self.action)

    def open(self) -> InstallDialog:
        if self.dialog is None:
            self.dialog = InstallDialog(self.plan, self.iface.mainWindow())
        self.dialog.show()
        return self.dialog

    def unload(self) -> None:
        self.action.deleteLater()
        self.toolbar.deleteLater()
        if self.dialog is not None:
            self.dialog.deleteLater()
