"""Graceful stops on SIGTERM / SIGINT: remember the signal, stop at a safe point.

A scheduler preempts a job with SIGTERM (then SIGKILL after a grace
period); a user stops one with Ctrl-C (SIGINT). `SignalFlag` replaces the
handlers of those signals with one that only records the signal, so the
training loop can finish the step it is in, save its state and stop
(`vtrain.callbacks.AtomicBackupAndRestore(save_on_signals=...)` does that
and raises `Preempted`). A second signal while the first is pending gets
the previous handler at once: pressing Ctrl-C twice still interrupts.

>>> import os, signal
>>> flag = SignalFlag([signal.SIGTERM])
>>> flag.install()
True
>>> os.kill(os.getpid(), signal.SIGTERM)  # recorded, the process goes on
>>> flag.received == signal.SIGTERM
True
>>> flag.uninstall(redeliver=False)  # acted on: not delivered again
"""

import signal
import threading


def exit_code(signum):
    """The exit status of a run stopped by `signum`: 128 + its number, as shells report it.

    Example:
    >>> exit_code(signal.SIGTERM), exit_code(signal.SIGINT)
    (143, 130)
    """
    return 128 + int(signum)


class Preempted(SystemExit):
    """Training stopped on a signal after saving its state; re-running resumes it.

    A `SystemExit` (like `KeyboardInterrupt`, not caught by `except
    Exception`): left uncaught, the process exits with `code`, 128 + the
    signal's number (143 for SIGTERM, 130 for SIGINT), as a process killed
    by that signal would report through a shell. Attributes: `code`,
    `signal` (its number), `message` (one line: what was received, where
    training stopped, where the state is), `epoch` (0-based) and
    `batches_done` (batches of that epoch trained before the stop).

    Example:
    >>> error = Preempted(signal.SIGTERM, "Stopped.", epoch=2, batches_done=7)
    >>> error.code, str(error)
    (143, 'Stopped.')
    """

    def __init__(self, signum, message, epoch=None, batches_done=None):
        super().__init__(exit_code(signum))
        self.signal, self.message = int(signum), message
        self.epoch, self.batches_done = epoch, batches_done

    def __str__(self):
        return self.message


def signal_name(signum):
    """`"SIGTERM"` for `signal.SIGTERM`, and so on.

    Example:
    >>> signal_name(signal.SIGINT)
    'SIGINT'
    """
    return signal.Signals(signum).name


class SignalFlag:
    """Records the first of `signals` instead of acting on it, while installed.

    Only the main thread may install signal handlers; elsewhere `install`
    returns False and changes nothing (the signals keep their handlers).

    Args:
        signals: signal numbers, e.g. `[signal.SIGTERM, signal.SIGINT]`.
    """

    def __init__(self, signals):
        self.signals = [signal.Signals(s) for s in signals]
        self.received = None
        self._previous = {}

    @property
    def installed(self):
        """True between `install()` and `uninstall()`."""
        return bool(self._previous)

    def install(self):
        """Replaces the handlers; returns False outside the main thread."""
        if self.installed or not self.signals:
            return self.installed
        if threading.current_thread() is not threading.main_thread():
            return False
        self.received = None
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return True

    def uninstall(self, redeliver=True):
        """Puts the previous handlers back (a no-op when not installed).

        A signal recorded but not acted on is then delivered to them
        (unless `redeliver=False`, for the caller that acted on it): a
        SIGTERM that arrived as training ended still stops the process.
        """
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if previous and redeliver and self.received is not None:
            signal.raise_signal(self.received)

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = signum
            return
        # A second signal: the user or the scheduler insists.
        handler = self._previous.get(signal.Signals(signum), signal.SIG_DFL)
        self.uninstall(redeliver=False)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)
