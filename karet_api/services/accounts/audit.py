"""The audit log: logins, failed logins, token revocations, role changes, exports, imports and resets.

Each event is its own object, ``_auth/audit/<time>-<random>.json``: appends never contend (no shared file to
compare-and-swap), and keys sort by time, so reading the newest events is one listing of one prefix.
"""

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from karet_defs.store.base import ObjectStore
from karet_defs.store.reads import read_json_record

AUDIT_PREFIX = "_auth/audit/"
EVENTS = frozenset(
    {
        "login",
        "login_failed",
        "logout",
        "token_revoked",
        "user_created",
        "user_changed",
        "role_changed",
        "setup",
        "export",
        "import",
        "reset",
    }
)


@dataclass(frozen=True)
class AuditEvent:
    at: str
    event: str
    actor: str
    client: str
    details: dict[str, Any]


def record(store: ObjectStore, event: str, *, actor: str, client: str, **details: Any) -> None:
    """Append one event (``event`` is one of ``EVENTS``)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    now = time.time()
    # Microseconds, zero padded, then a random tail: lexical order is time order, and ties never collide.
    key = f"{AUDIT_PREFIX}{int(now * 1_000_000):020d}-{secrets.token_hex(4)}.json"
    at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document = {"at": at, "event": event, "actor": actor, "client": client, "details": details}
    store.put(key, json.dumps(document).encode(), content_type="application/json", if_none_match=True)


def read(
    store: ObjectStore, *, limit: int, event: str | None = None, before: str | None = None
) -> list[AuditEvent]:
    """The newest ``limit`` events (of one kind, if given), newest first, older than the key ``before``."""
    keys = [info.key for info in store.list(AUDIT_PREFIX) if before is None or info.key < before]
    found: list[AuditEvent] = []
    for key in reversed(keys):
        document = read_json_record(store, key)
        if not document or (event and document.get("event") != event):
            continue
        details = document.get("details")
        found.append(
            AuditEvent(
                at=str(document.get("at", "")),
                event=str(document.get("event", "")),
                actor=str(document.get("actor", "")),
                client=str(document.get("client", "")),
                details=details if isinstance(details, dict) else {},
            )
        )
        if len(found) >= limit:
            break
    return found
