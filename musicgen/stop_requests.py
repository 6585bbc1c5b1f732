"""Clean stops on SIGINT and SIGTERM: the training loop finishes its step and writes the last checkpoint."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger(__name__)


class StopRequests:
    """Turns the first SIGINT or SIGTERM into a clean stop after the current step (with a last checkpoint).

    A second signal interrupts at once. Handlers are only installed in the main thread,
    where Python delivers signals; they are restored on exit.
    """

    def __enter__(self) -> StopRequests:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: object) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(number).name
        logger.warning("%s received: stopping after this step and writing the last checkpoint "
                       "(send it again to stop at once)", self.signal_name)

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
