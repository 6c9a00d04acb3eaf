"""Installing the plugin's missing packages for QGIS's Python, from the desktop: a toolbar
button opens a dialog that shows what will be installed where (PyTorch's CPU build, or its
CUDA build where an NVIDIA GPU is found and the user chooses it, with what each downloads),
runs pip in a background task with progress and a Cancel, and says what to do when it cannot."""
from __future__ import annotations

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAction, QDialog, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QRadioButton, QVBoxLayout,
)

from .dependencies import TORCH_BUILDS, DependencyProblem, InstallOutcome, InstallPlan, install_plan, install_progress
from .dependencies import nvidia_gpu_name, run_install, why_not_installable


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
        self._gpu: str | None = None  # the NVIDIA GPU found, for PyTorch's CUDA build
        self.setWindowTitle(tr("Poverty Mapper: install dependencies"))
        layout = QVBoxLayout(self)
        self.summary = QLabel(tr("The plugin needs {} for QGIS's Python. They are installed into {}, which QGIS "
                                 "reads at start-up.").format(", ".join(plan.requirements), plan.target))
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.cpuRadio, self.cudaRadio = self._torch_choice(layout)
        self.progress = QProgressBar()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.installButton = QPushButton(tr("Install"))
        self.installButton.clicked.connect(self.install)
        self.cancelButton = QPushButton(tr("Cancel"))
        self.cancelButton.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.installButton)
        buttons.addWidget(self.cancelButton)
        layout.addLayout(buttons)
        for widget in (self.progress, self.log, self.status):
            layout.addWidget(widget)
        self._show_command()

    def _torch_choice(self, layout) -> tuple[QRadioButton | None, QRadioButton | None]:
        """CPU or CUDA build of PyTorch, with what each downloads; CUDA only with an NVIDIA GPU."""
        if not self.plan.installs_torch:
            return None, None
        group = QGroupBox(tr("PyTorch"))
        inner = QVBoxLayout(group)
        cpu = QRadioButton(tr("CPU build: {}. Runs on any computer.").format(TORCH_BUILDS["cpu"].download))
        gpu = self._gpu = nvidia_gpu_name()
        if gpu:
            cuda = QRadioButton(tr("CUDA build, for the NVIDIA GPU found ({}): {}.").format(
                gpu, TORCH_BUILDS["cuda"].download))
        else:
            cuda = QRadioButton(tr("CUDA build: no NVIDIA GPU was found on this computer."))
            cuda.setEnabled(False)
        for button in (cpu, cuda):
            button.setToolTip(tr("From {} alone").format(TORCH_BUILDS["cpu" if button is cpu else "cuda"].index))
            inner.addWidget(button)
        cpu.setChecked(self.plan.torch_build == "cpu" or not gpu)
        cuda.setChecked(not cpu.isChecked())
        cpu.toggled.connect(self._on_build_chosen)
        layout.addWidget(group)
        return cpu, cuda

    def _on_build_chosen(self) -> None:
        self.plan = self.plan.with_torch_build("cpu" if self.cpuRadio.isChecked() else "cuda")
        self._show_command()

    def _show_command(self) -> None:
        self.log.setPlainText(tr("Commands:\n{}").format(self.plan.manual_command()))

    def install(self) -> None:
        problem = why_not_installable(self.plan)
        if problem:
            self._end(False, problem)
            return
        self.installButton.setEnabled(False)
        for radio in (self.cpuRadio, self.cudaRadio):
            if radio is not None:
                radio.setEnabled(False)  # the build chosen when it started
        self.status.setText(tr("Installing…"))
        self.task = InstallTask(self.plan)
        self.task.progressChanged.connect(lambda value: self.progress.setValue(int(value)))
        self.task.lineRead.connect(self.log.appendPlainText)
        self.task.taskCompleted.connect(lambda: self._end(True))
        self.task.taskTerminated.connect(lambda: self._end(False))
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        """Stops pip while it runs (nothing is left in the target folder); else closes the dialog."""
        if self.task is not None:
            self.status.setText(tr("Cancelling: pip is stopped and what it downloaded removed…"))
            self.cancelButton.setEnabled(False)
            self.task.cancel()
        else:
            self.reject()

    def _end(self, ok: bool, problem: str | None = None) -> None:
        outcome = self.task.outcome if self.task else None
        self.task = None
        self.cancelButton.setEnabled(True)
        if ok:
            self.progress.setValue(100)
            self.status.setText(tr("Installed into {}. Restart QGIS to load Poverty Mapper.").format(self.plan.target))
        elif problem is not None:
            self.status.setText(problem)
        elif outcome is not None and outcome.canceled:
            self.progress.setValue(0)
            self.status.setText(tr("Cancelled: nothing was installed ({} is as it was).").format(self.plan.target))
        elif outcome is not None and outcome.problem:
            self.status.setText(outcome.problem)
        else:
            tail = outcome.tail() if outcome else ""
            self.status.setText(tr(
                "Installing failed (the last lines of pip are above); nothing was installed. Check the network "
                "connection, or run the commands shown above in a terminal, then restart QGIS. {}").format(tail[-300:]))
        self.installButton.setEnabled(not ok)
        if not ok:
            for radio, enabled in ((self.cpuRadio, True), (self.cudaRadio, bool(self._gpu))):
                if radio is not None:
                    radio.setEnabled(enabled)
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
