"""Ctrl-C during training: it always stops the run, which leaves a checkpoint to resume from."""

from __future__ import annotations

import signal
import sys
import threading

from mobile_sr.core.errors import MobileSRError


class TrainingInterrupted(MobileSRError):
    """Training stopped by the user; the checkpoint written on the way out allows --resume."""

    exit_code = 130  # the shell's code for a run stopped by Ctrl-C


class InterruptWatch:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt as usual, and is also remembered: Python drops the
    exception when it lands in a weakref callback or ``__del__`` (TensorFlow runs many while it
    traces), so training checks :meth:`check` at each step. Between :meth:`hold` and :meth:`release`
    it is only remembered. Only in the main thread, and only where SIGINT has Python's default handler."""

    def __init__(self):
        self.requested = False
        self.holding = False
        self.previous_handler = None

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is threading.main_thread() and (
                signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous_handler = signal.signal(signal.SIGINT, self._handle)
            self.previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def __exit__(self, *_exc) -> None:
        if self.previous_handler is not None:
            signal.signal(signal.SIGINT, self.previous_handler)
            sys.unraisablehook = self.previous_hook

    def _handle(self, _signum, _frame) -> None:
        self.requested = True
        if not self.holding:
            raise KeyboardInterrupt

    def _unraisable(self, unraisable) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):  # a dropped Ctrl-C: check() raises it again
            self.previous_hook(unraisable)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        """Raise the Ctrl-C remembered meanwhile, if any; later ones raise at once again."""
        self.holding = False
        self.check()
