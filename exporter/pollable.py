"""Each SdkAppId's pollable tasks of one account, kept from the store's change feed.

The liveness pass compares the running list's TaskIDs with these every 5 s. Rebuilding them from a
snapshot of every record each pass was 30 % of the exporter's busy time at 10,000 tasks; following
the change feed visits only the tasks that changed since the last pass (about a hundred).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from exporter.model import TaskKey
from exporter.store import TaskStore


class PollableByApp:
    """SdkAppId -> {TaskID: key} of the pollable tasks ``in_account``; one reader (the liveness loop)."""

    def __init__(self, store: TaskStore, in_account: Callable[[TaskKey], bool] = lambda key: True) -> None:
        self.store = store
        self.in_account = in_account
        self._cursor = 0
        self._by_app: dict[int, dict[str, TaskKey]] = {}

    def current(self) -> Mapping[int, Mapping[str, TaskKey]]:
        """As of now; the mappings are the index's own: read them before the next ``current()``."""
        changes = self.store.changed_since(self._cursor)
        self._cursor = changes.cursor
        if changes.resync:
            self._by_app.clear()
        for key, record in changes.records.items():
            if not self.in_account(key):
                continue
            if record is not None and record.pollable:
                self._by_app.setdefault(key[0], {})[key[1]] = key
            else:
                tasks = self._by_app.get(key[0])
                if tasks is not None:
                    tasks.pop(key[1], None)
                    if not tasks:
                        del self._by_app[key[0]]
        return self._by_app
