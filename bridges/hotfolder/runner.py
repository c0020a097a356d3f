"""The hot folder's side of the host job runner: never give up on an input because the server
was away.

Jobs run through ``brushlink.plugin.host.HostRunner`` (one connection shared by every worker
thread, reconnecting and resubmitting on its own). While the server cannot be reached the
runner waits and tries again with backoff, logging what it waits for; the input stays in the
inbox meanwhile. Only errors about the request itself (a bad image, a model that cannot do the
kind) reach the caller, and they send the input to failed/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from brushlink.plugin.errors import ServerUnavailable, Unauthorized
from brushlink.plugin.host import HostRunner
from brushlink.plugin.host import Stopped as HostStopped
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import Job

T = TypeVar("T")


class ServerGone(Exception):
    """The server stayed away longer than ``give_up_after`` (``--once`` only); not the input's fault."""


class Stopped(ServerGone):
    """The watcher is stopping; the input stays in the inbox for the next start."""


class Runner:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        home: Path | None = None,
        log: Callable[[str], None] = print,
        give_up_after: float | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.give_up_after = give_up_after
        self.host = HostRunner(
            url, token, home=home, retry_for=give_up_after, max_backoff=max_backoff, on_wait=log
        )
        self.url = self.host.url

    def max_pixels(self) -> int | None:
        value = self._guard(self.host.welcome).limits.get("max_pixels")
        return int(value) if value else None

    def run(self, job: Job, label: str) -> Result:
        """Run one job to its end; waits while the server is unreachable, raises request errors."""
        result: Result = self._guard(lambda: self.host.run(job))
        return result

    def _guard(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except HostStopped as exc:
            raise Stopped("stopping") from exc
        except (ServerUnavailable, Unauthorized) as exc:
            raise ServerGone(
                f"the server at {self.url} stayed unreachable for {self.give_up_after:g} s "
                f"({exc.message})"
            ) from exc

    def stop_waiting(self) -> None:
        """Wake the workers waiting for the server; jobs already running may still finish."""
        self.host.stop_waiting()

    def stop(self) -> None:
        """Wake any waiting worker and close the connection (running jobs end as ``Stopped``)."""
        self.host.close(wait=0)
