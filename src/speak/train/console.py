"""What a user sees and does while something trains: plain progress lines with an ETA (for logs and pipes) and a
Ctrl-C that stops between two steps."""

from __future__ import annotations

import signal
import sys
import threading
import time


class PlainProgress:
    """Progress for a log file or a pipe: a line at each log step, and at least one every `every_s` seconds, each
    with an ETA from the steps done so far."""

    def __init__(self, total: int, start: int, every_s: float = 30.0) -> None:
        self.total, self.start, self.every_s = total, start, every_s
        self.t0 = self.last = time.perf_counter()

    def eta(self, step: int) -> str:
        done = step - self.start
        if done <= 0:
            return "eta ?"
        left = (time.perf_counter() - self.t0) / done * (self.total - step)
        return f"eta {int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"

    def line(self, step: int, text: str) -> None:
        print(" ".join(x for x in (f"step {step}/{self.total}", text, self.eta(step)) if x), file=sys.stderr, flush=True)
        self.last = time.perf_counter()

    def tick(self, step: int) -> None:
        if time.perf_counter() - self.last >= self.every_s:
            self.line(step, "")


class InterruptFlag:
    """While training, the first Ctrl-C (SIGINT) only raises a flag, so the loop stops between two steps with a
    consistent checkpoint; a second Ctrl-C interrupts at once. Only in the main thread (where signals arrive)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous = None
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.raised = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
