"""Hostile clients with nothing but open sockets: idle connections and slowloris tricklers.

Used by tests/test_abuse.py (hundreds) and bench/bench_abuse.py (thousands, from a child process so
the attacker does not share the exporter's interpreter): ``python -m tests.abuse HOST:PORT IDLE SLOW``.
A connection the server closes is opened again, so the pressure lasts as long as the attack.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

TRICKLE_EVERY = 0.5  # seconds between the bytes a slowloris sends


class Attack:
    """``idle`` connections that send nothing and ``slow`` ones that trickle a request line, per address."""

    def __init__(self, address: tuple[str, int], idle: int, slow: int) -> None:
        self.address, self.idle, self.slow = address, idle, slow
        self._idle: list[socket.socket] = []
        self._slow: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, name="slowloris", daemon=True)

    def _open(self, first_bytes: bytes) -> socket.socket | None:
        try:
            conn = socket.create_connection(self.address, timeout=5)
            if first_bytes:
                conn.sendall(first_bytes)
            conn.setblocking(False)
            return conn
        except OSError:
            return None

    def start(self) -> Attack:
        self._idle = [c for c in (self._open(b"") for _ in range(self.idle)) if c]
        self._slow = [c for c in (self._open(b"GET /metr") for _ in range(self.slow)) if c]
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(TRICKLE_EVERY):
            for pool, first in ((self._slow, b"GET /metr"), (self._idle, b"")):
                for index, conn in enumerate(pool):
                    if self._stop.is_set():
                        return
                    if self._alive(conn, b"i" if first else b""):
                        continue
                    conn.close()
                    replacement = self._open(first)
                    if replacement is not None:
                        pool[index] = replacement

    @staticmethod
    def _alive(conn: socket.socket, byte: bytes) -> bool:
        try:
            if conn.recv(1) == b"":
                return False  # the server hung up (its deadline)
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            if byte:
                conn.send(byte)
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True

    @property
    def opened(self) -> tuple[int, int]:
        """Idle and slow connections currently held."""
        return len(self._idle), len(self._slow)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for conn in self._idle + self._slow:
            with contextlib.suppress(OSError):
                conn.close()


def main(argv: list[str]) -> None:
    host, _, port = argv[0].rpartition(":")
    attack = Attack((host, int(port)), int(argv[1]), int(argv[2])).start()
    idle, slow = attack.opened
    print(f"attacking {argv[0]}: {idle} idle, {slow} slow", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        attack.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
