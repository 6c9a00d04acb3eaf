"""The command line's terminal: a progress bar (or plain lines off a terminal) and Ctrl-C
as a request to cancel after the current batch."""
from __future__ import annotations

import signal
import sys
from typing import TextIO


class Progress:
    """A bar redrawn in place on a terminal; plain lines, one per ``step`` of the run, elsewhere."""

    def __init__(self, label: str, stream: TextIO | None = None, step: float = 0.1, width: int = 30):
        self.label, self.stream, self.step, self.width = label, stream or sys.stderr, step, width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next, self._last = 0.0, -1

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self.tty:
            percent = int(100 * fraction)
            if percent != self._last:
                filled = int(self.width * fraction)
                self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}%")
                self.stream.flush()
                self._last = percent
        elif fraction >= self._next - 1e-9:
            self.stream.write(f"{self.label}: {100 * fraction:.0f} %\n")
            self.stream.flush()
            self._next = (int(fraction / self.step + 1e-9) + 1) * self.step

    def close(self) -> None:
        if self.tty and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()


class Stopped(KeyboardInterrupt):
    """A second Ctrl-C, or a second SIGTERM: stop at once (temporary files are still removed)."""


class CancelOnInterrupt:
    """Ctrl-C, or SIGTERM (a batch system's or `kill`'s request to stop), asks the engine to
    stop after its current batch; a second one stops at once. Either way the output's
    temporary file is removed, as on any other failure."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.canceled = self.stopped = False
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.canceled

    def __enter__(self) -> "CancelOnInterrupt":
        self._before = {signum: signal.getsignal(signum) for signum in self.SIGNALS}

        def ask(signum, _frame):
            if self.canceled:
                if not self.stopped:  # once: a third signal while the second unwinds is not another error
                    self.stopped = True
                    raise Stopped()
                return
            self.canceled, self.signum = True, signum
            again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            print(f"\nCanceling after the current batch ({again} again to stop at once) ...", file=sys.stderr)

        for signum in self.SIGNALS:
            signal.signal(signum, ask)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)
