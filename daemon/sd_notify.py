"""Telling systemd how the daemon is doing, without a dependency: ``sd_notify`` is one
datagram of ``KEY=value`` lines to the Unix socket named by ``$NOTIFY_SOCKET``.

* ``READY=1`` once the station serves requests (``Type=notify`` units wait for it);
* ``STATUS=…`` a line ``systemctl status`` shows (``4 channels, 2 jobs running``);
* ``WATCHDOG=1`` at half the interval systemd asks for (``WatchdogSec=`` gives
  ``$WATCHDOG_USEC``), so a daemon whose event loop hangs is killed and restarted;
* ``STOPPING=1`` when it shuts down.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("cellrig.daemon")


class Notifier:
    """The notify socket of the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # an address starting with '@' is in the abstract namespace
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval_s = _watchdog_interval_s(env)
        self._failing = False

    @property
    def enabled(self) -> bool:
        """True under a service manager that listens."""
        return bool(self.address)

    def send(self, **values: str) -> bool:
        """Send ``KEY=value`` lines (keyword names upper-cased); False if it failed (the
        failure is logged, never raised: the station runs on without systemd)."""
        if not self.address:
            return False
        payload = "\n".join(f"{key.upper()}={value}" for key, value in values.items())
        try:
            # non-blocking: a manager that does not read must never stall the event loop
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                               | socket.SOCK_NONBLOCK) as sock:
                sock.connect(self.address)
                sock.send(payload.encode())
        except OSError as exc:
            if not self._failing:
                log.warning("cannot notify the service manager: %s", exc,
                            extra={"event": "sd-notify-failed"})
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str) -> bool:
        """The daemon serves requests."""
        return self.send(ready="1", status=status)

    def status(self, text: str) -> bool:
        """A line for ``systemctl status``."""
        return self.send(status=text)

    def watchdog(self) -> bool:
        """Still alive."""
        return self.send(watchdog="1")

    def stopping(self, status: str = "stopping") -> bool:
        """Shutting down."""
        return self.send(stopping="1", status=status)


def _watchdog_interval_s(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process
    (``$WATCHDOG_PID`` unset or this process's id)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
