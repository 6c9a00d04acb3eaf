"""The figures of the training runs: the proxy CNN's learning curves and the survey
fit's observed-against-predicted scatter."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_output

if TYPE_CHECKING:
    from .cluster_report import ClusterReport


def plot_training(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in report["epochs"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    axes[0].plot(epochs, [e["train_loss"] for e in report["epochs"]], "o-", label="train")
    axes[0].plot(epochs, [e["val_loss"] for e in report["epochs"]], "o-", label="validation blocks")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    axes[1].plot(epochs, [e["train_accuracy"] for e in report["epochs"]], "o-", label="train")
    axes[1].plot(epochs, [e["val_accuracy"] for e in report["epochs"]], "o-", label="validation blocks")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in axes[:2]:
        ax.legend()
    matrix = np.array(report["confusion_matrix_val"]["matrix"])
    axes[2].imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        axes[2].text(j, i, str(v), ha="center", va="center")
    axes[2].set(xlabel="predicted class", ylabel="true class", title="Validation confusion matrix")
    fig.suptitle(f"Nightlight proxy training: {report['image']} ({report['device']})")
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_scatter(observed: np.ndarray, predicted: np.ndarray, report: ClusterReport, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.2), constrained_layout=True)
    ax.scatter(observed, predicted, s=12, alpha=0.6)
    lo = float(min(observed.min(), predicted.min()))
    hi = float(max(observed.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="predicted = observed")
    pooled = report.cv.pooled
    ax.set(
        xlabel=f"observed {report.outcome} ({report.unit})",
        ylabel="out-of-fold prediction",
        title=f"{report.extractor} features: r² {pooled.r2:.2f}, R² {pooled.R2:.2f} (n={pooled.n})",
    )
    if report.nightlights_baseline is not None:
        b = report.nightlights_baseline.pooled
        ax.text(0.02, 0.97, f"nightlights only: r² {b.r2:.2f}, R² {b.R2:.2f}", transform=ax.transAxes, va="top")
    ax.legend(loc="lower right")
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
