"""Writing what a training run made: the model file, its report and its figure."""
from __future__ import annotations

from typing import Callable

from ..atomic import write_json
from ..models.model_file import PovertyModel, save_model


def write_training_outputs(
    model: PovertyModel,
    model_path: str,
    report: dict,
    report_path: str | None = None,
    figure_path: str | None = None,
    draw_figure: Callable[[str], None] | None = None,
) -> None:
    """The model file, then the report (JSON) and the figure (PNG) where asked for.

    Each is written whole under a temporary name and then renamed, so an earlier file
    of the same name stays until the new one is complete.
    """
    save_model(model, model_path)
    if report_path:
        write_json(report_path, report)
    if figure_path and draw_figure is not None:
        draw_figure(figure_path)
