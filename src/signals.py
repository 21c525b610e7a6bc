"""SIGINT and SIGTERM during a training: `TrainingInterrupted` in the main thread, and blocks
that a first signal does not cut (README "Interruptions").

`stop_signals()` installs the handlers for the duration of a block (nested blocks share them):
the first signal raises `TrainingInterrupted` where the main thread is; inside
`StopSignals.held()` it waits until the block ends; once the trainer is `stopping` (finishing its
queued files), a signal is only remembered, and a second one calls `on_repeat`.
"""
import signal
import threading
from contextlib import contextmanager
from typing import Optional


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a training, raised in the main thread. The command-line boundary
    (src/errors.py) prints `prog: {self}` as one line and exits with `exit_code` (128 + signal)."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum, detail)
        self.signum, self.detail, self.exit_code = signum, detail, 128 + signum

    def __str__(self) -> str:
        what = "interrupted" if self.signum == signal.SIGINT else f"terminated ({signal.Signals(self.signum).name})"
        return f"{what}: {self.detail}" if self.detail else what


class StopSignals:
    """While active (main thread only): SIGINT and SIGTERM raise TrainingInterrupted where the main
    thread is. Inside `held()` the first signal is only remembered and raised when the block ends
    (a second one raises at once). Once `stopping` (the trainer finishing its queued files before it
    exits), a signal is only remembered in `signum`; a second one calls `on_repeat` (drop the writes
    not started)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.previous = {}
        self.stopping = False
        self.holding = False                    # inside held(): the first signal waits for its end
        self.signum: Optional[int] = None       # the first signal received
        self.on_repeat = None
        self.received = threading.Event()       # set by any signal (the test pauses wait on it)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return                               # signals are the main thread's business
        for signum in self.SIGNALS:
            previous = signal.getsignal(signum)
            if previous == signal.SIG_IGN:       # nohup and the like: keep ignoring it
                continue
            self.previous[signum] = previous
            signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self.previous.clear()

    def _handle(self, signum, frame) -> None:
        repeat = self.signum is not None
        self.signum = self.signum or signum
        self.received.set()
        if self.holding and not repeat:
            return                               # raised by held() when its block ends
        if not self.stopping:
            self.stopping = True
            raise TrainingInterrupted(signum)
        if repeat and self.on_repeat is not None:
            self.on_repeat()

    @contextmanager
    def held(self):
        """A block that a first signal does not cut: it is raised as TrainingInterrupted once the block
        has ended (a second signal raises at once, inside it). Not re-entrant."""
        if self.signum is not None:              # a signal before the block: stop before it
            self.stopping = True
            raise TrainingInterrupted(self.signum)
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.signum is not None and not self.stopping:     # one signal, held: the block is done
            self.stopping = True
            raise TrainingInterrupted(self.signum)


_ACTIVE_SIGNALS: Optional[StopSignals] = None


@contextmanager
def stop_signals():
    """StopSignals for the duration of the block; nested blocks share the outer one."""
    global _ACTIVE_SIGNALS
    if _ACTIVE_SIGNALS is not None:
        yield _ACTIVE_SIGNALS
        return
    stop = _ACTIVE_SIGNALS = StopSignals()
    stop.install()
    try:
        yield stop
    finally:
        stop.restore()
        _ACTIVE_SIGNALS = None
