"""Whole-operation deadlines for sockets, enforced by one thread.

A per-read socket timeout alone lets a peer trickle one byte every few seconds forever: our API
client would lose a worker to a trickling answer. (The HTTP server needs none of this: aiohttp parks
a slow client without a thread and closes it at its keep-alive deadline.)
``SocketWatchdog`` shuts down a socket whose deadline passed; the blocked read returns at once and its
owner cleans up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class SocketWatchdog:
    def __init__(self, name: str, tick: float = 0.1) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tick = tick
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._deadlines[sock] = time.monotonic() + seconds

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            with self._lock:
                late = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
                for sock in late:
                    del self._deadlines[sock]
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
