"""The progress bar of a training run, split between its named phases."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import Canceled

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class Phase:
    """One phase's share of the progress bar, from ``start`` to ``start + share``."""

    name: str
    start: float
    share: float
    progress: ProgressCallback
    is_canceled: CancelCheck

    def report(self, fraction: float) -> None:
        """Moves the bar to ``fraction`` (0-1, clipped) of the way through this phase."""
        # At most 1.0: the shares' sum may round a hair above it.
        self.progress(min(1.0, self.start + self.share * min(1.0, max(0.0, fraction))))

    def check_canceled(self) -> None:
        """Raises :class:`Canceled` when the user has asked to stop."""
        if self.is_canceled():
            raise Canceled()


class PhasedProgress:
    """Splits the progress bar between phases in proportion to their weights.

    Only a phase that reports moves the bar; the share of one that does not is passed
    over when a later phase reports, or at :meth:`done`.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        progress: ProgressCallback | None = None,
        is_canceled: CancelCheck | None = None,
    ):
        total = sum(weights.values())
        if any(w < 0 for w in weights.values()) or total <= 0:
            raise ValueError(f"phase weights must be zero or more, and not all zero: {dict(weights)}")
        self._progress = progress or (lambda _f: None)
        is_canceled = is_canceled or (lambda: False)
        self.phases: dict[str, Phase] = {}
        start = 0.0
        for name, weight in weights.items():
            self.phases[name] = Phase(name, start, weight / total, self._progress, is_canceled)
            start += weight / total

    def __getitem__(self, name: str) -> Phase:
        return self.phases[name]

    def done(self) -> None:
        """The bar at its end."""
        self._progress(1.0)
