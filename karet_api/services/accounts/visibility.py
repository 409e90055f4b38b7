"""Who may see a pipeline (Karet E4): its owner and members, plus every lead and admin.

The record is ``pipelines/<slug>/access.json`` ``{"owner", "members"}``, inside the pipeline's folder so a
rename carries it and a delete removes it. A pipeline without one (made before accounts, or by the API
key's service identity) is shared: every user sees it. A user who may not see a pipeline is told it does
not exist (404, never 403) and does not find it in lists; ``can_see`` and ``visible_slugs`` are the one
rule every route and reader (SQL, events) asks.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass

from karet_api.services.accounts.identity import Actor
from karet_api.services.accounts.users import Role, load_user
from karet_defs.catalog import list_slugs
from karet_defs.errors import InvalidSlug, NotFound, NotOwner, UnknownUser
from karet_defs.slugs import sanitise_slug
from karet_defs.store import keys
from karet_defs.store.base import ObjectStore, Stores
from karet_defs.store.reads import read_json_record


@dataclass(frozen=True)
class Access:
    owner: str
    members: tuple[str, ...]

    def admits(self, name: str) -> bool:
        return name == self.owner or name in self.members


def load_access(store: ObjectStore, slug: str) -> Access | None:
    """The owner and members of a pipeline, or None when it is shared with every user."""
    document = read_json_record(store, keys.access_key(slug))
    if document is None:
        return None
    # A damaged record reads as {}: it hides the pipeline from all but leads and admins, never shares it.
    owner = document.get("owner")
    members = document.get("members")
    return Access(
        owner if isinstance(owner, str) else "",
        tuple(m for m in members if isinstance(m, str)) if isinstance(members, list) else (),
    )


def sees_everything(actor: Actor) -> bool:
    return actor.role >= Role.lead


def can_see(stores: Stores, actor: Actor, slug: str) -> bool:
    """Whether ``actor`` may see the pipeline ``slug`` (true for one that does not exist: that is a 404 of
    its own)."""
    if sees_everything(actor):
        return True
    try:
        slug = sanitise_slug(slug)
    except InvalidSlug:
        return True  # no pipeline has that name; the route refuses it (422) on its own
    access = load_access(stores.pipelines, slug)
    return access is None or access.admits(actor.name)


def ensure_visible(stores: Stores, actor: Actor, slug: str) -> None:
    """Raise the 404 of a missing pipeline when ``actor`` may not see ``slug``."""
    if not can_see(stores, actor, slug):
        raise NotFound(f"pipeline {slug!r} not found")


def visible_slugs(stores: Stores, actor: Actor, slugs: Iterable[str] | None = None) -> list[str]:
    """The pipelines (every one, or of ``slugs``) that ``actor`` may see, in the given order."""
    candidates = list_slugs(stores) if slugs is None else slugs
    return [slug for slug in candidates if can_see(stores, actor, slug)]


def claim(stores: Stores, actor: Actor, slug: str) -> None:
    """Make a user the owner of a pipeline they just created or imported; the service leaves it shared."""
    if actor.service:
        stores.pipelines.delete(
            keys.access_key(slug)
        )  # an imported archive's record names another instance's user
        return
    _write(stores.pipelines, slug, Access(actor.name, ()))


def set_members(
    stores: Stores, actor: Actor, slug: str, members: list[str], owner: str | None = None
) -> Access:
    """Replace the members (and, for leads and admins, the owner); the owner or a lead may do it."""
    current = load_access(stores.pipelines, slug)
    if current is not None and current.owner != actor.name and not sees_everything(actor):
        raise NotOwner("only the pipeline's owner or a lead may change its members")
    if current is None and not sees_everything(actor):
        raise NotOwner("only a lead may restrict a shared pipeline")
    new_owner = owner or (current.owner if current and current.owner else actor.name)
    if owner and current and owner != current.owner and not sees_everything(actor):
        raise NotOwner("only a lead may hand a pipeline to another owner")
    for name in {new_owner, *members}:
        if name != actor.name and load_user(stores.pipelines, name) is None:
            raise UnknownUser(f"no user {name!r}")
    access = Access(new_owner, tuple(sorted(set(members) - {new_owner})))
    _write(stores.pipelines, slug, access)
    return access


def share(stores: Stores, actor: Actor, slug: str) -> None:
    """Share a pipeline with every user again (leads and admins)."""
    if not sees_everything(actor):
        raise NotOwner("only a lead may share a pipeline with everybody")
    stores.pipelines.delete(keys.access_key(slug))


def _write(store: ObjectStore, slug: str, access: Access) -> None:
    body = json.dumps({"owner": access.owner, "members": list(access.members)}).encode()
    store.put(keys.access_key(slug), body, content_type="application/json")
