"""Keeping the running Dagster webserver in step with the store: coalesced code location reloads.

Structure lives in definitions built when the code location loads, so after a pipeline is created,
deleted, renamed, imported, or its tables/sources change, the location must reload. Requests made while a
reload runs coalesce into one follow-up reload; nothing is queued without bound.
"""

import logging
import threading
from urllib.parse import urlparse

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

_log = logging.getLogger("karet.reload")
LOCATION_NAME = "karet"


class DefinitionsReloader:
    """Asks the webserver at ``dagster_url`` to reload the ``karet`` location; a no-op without a URL."""

    def __init__(self, dagster_url: str) -> None:
        self._url = urlparse(dagster_url) if dagster_url else None
        self._lock = threading.Lock()
        self._running = False
        self._pending = False
        self.completed = 0

    def request(self) -> None:
        """Schedule a reload soon; returns at once."""
        if self._url is None:
            return
        with self._lock:
            if self._running:
                self._pending = True
                return
            self._running = True
        threading.Thread(target=self._loop, name="karet-reload", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._reload_once()
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                self._pending = False

    def _reload_once(self) -> None:
        assert self._url is not None
        client = DagsterGraphQLClient(
            self._url.hostname or "127.0.0.1",
            port_number=self._url.port,
            use_https=self._url.scheme == "https",
        )
        try:
            info = client.reload_repository_location(LOCATION_NAME)
            _log.info("reloaded code location %s: %s", LOCATION_NAME, info.status)
        except (DagsterGraphQLClientError, OSError) as exc:
            _log.warning("code location reload failed: %s", exc)
        self.completed += 1
