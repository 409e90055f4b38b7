"""Who is calling and what role they hold (DRLS: auditor ⊂ engineer ⊂ lead ⊂ admin).

``current_actor`` says who the caller is (``services.accounts.identity``); ``require_role(minimum)`` is the
one dependency a route declares its minimum role with, and the role shows in the OpenAPI document as
``x-required-role``. ``authorize`` guards every protected router: it applies the route's declared role, or
for a route that declares none a safe default (reads need an auditor, writes an engineer), rate-limits
writes (the POSTs an auditor may send, such as SQL, under the SQL limit), and answers 404 under a
pipeline the caller may not see.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from karet_api.deps import ClientAddress, LimiterDep, SettingsDep, StoreDep
from karet_api.services.accounts import identity, visibility
from karet_api.services.accounts.identity import Actor
from karet_api.services.accounts.users import Role
from karet_defs.errors import Forbidden

__all__ = ["Actor", "Admin", "Auditor", "Engineer", "Lead", "Role", "current_actor", "require_role"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = "public"


def current_actor(request: Request, settings: SettingsDep, stores: StoreDep) -> Actor:
    """The caller: the API key's service ``api`` (an admin), a user's access token, or the admin's session."""
    return identity.require(request, settings, stores.pipelines)


def require_role(minimum: Role) -> Callable[[Actor], Actor]:
    """A dependency refusing (403 ``forbidden``) a caller whose role is below ``minimum``."""

    def check(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if actor.role < minimum:
            raise Forbidden(
                f"this needs the {minimum.name} role; {actor.name} is {actor.role.name}",
                extra={"required_role": minimum.name},
            )
        return actor

    check.required_role = minimum  # type: ignore[attr-defined]
    return check


Auditor = Annotated[Actor, Depends(require_role(Role.auditor))]
Engineer = Annotated[Actor, Depends(require_role(Role.engineer))]
Lead = Annotated[Actor, Depends(require_role(Role.lead))]
Admin = Annotated[Actor, Depends(require_role(Role.admin))]


def declared_role(route: APIRoute) -> Role | None:
    """The highest role the route's own dependencies demand, if any declares one."""
    roles = [role for role in _declared(route.dependant) if role is not None]
    return max(roles) if roles else None


def route_role(route: APIRoute) -> Role:
    """The route's minimum role: the declared one, else auditor for reads and engineer for writes."""
    declared = declared_role(route)
    if declared is not None:
        return declared
    # ``methods`` is None only on Starlette routes to endpoint classes; FastAPI's always name theirs.
    reads_only = route.methods is not None and route.methods <= READ_METHODS
    return Role.auditor if reads_only else Role.engineer


def authorize(
    request: Request,
    actor: Annotated[Actor, Depends(current_actor)],
    stores: StoreDep,
    limiter: LimiterDep,
    client: ClientAddress,
) -> Actor:
    """The guard of every protected router: pipeline visibility, role, and the write rate limit."""
    slug = request.path_params.get("slug")
    if isinstance(slug, str):
        # First: a hidden pipeline is a 404 to everyone who may not see it, whatever their role.
        visibility.ensure_visible(stores, actor, slug)
    route = request.scope.get("route")
    role = route_role(route) if isinstance(route, APIRoute) else Role.engineer
    if isinstance(route, APIRoute) and declared_role(route) is None:
        require_role(role)(actor)
    if request.method not in READ_METHODS:
        user = None if actor.service else actor.name
        # A POST an auditor may send changes nothing: it carries SQL or a document to check, so it counts
        # against the SQL limit, and a page re-querying its panels is not throttled as if it were editing.
        if role is Role.auditor:
            limiter.hit_sql(client, user)
        else:
            limiter.hit_writes(client, user)
    return actor


def document_roles(app: FastAPI, guarded: Iterable[APIRouter]) -> None:
    """Add each operation's minimum role to the OpenAPI document (``x-required-role`` and the description):
    the routes of ``guarded`` (the routers ``authorize`` guards) have one, the others are public."""
    protected = {id(route) for router in guarded for route in router.routes}
    roles = {
        (method.lower(), context.path_format): _role_of(context.route, id(context.route) in protected)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.route, APIRoute) and context.path_format
        for method in context.route.methods or ()
    }
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        if fresh:
            for path, item in document.get("paths", {}).items():
                for method, operation in item.items():
                    role = roles.get((method, path))
                    if role is None:
                        continue
                    operation["x-required-role"] = role
                    note = "Public." if role == PUBLIC else f"Minimum role: `{role}`."
                    operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _role_of(route: APIRoute, guarded: bool) -> str:
    declared = declared_role(route)
    if declared is not None:
        return declared.name
    return route_role(route).name if guarded else PUBLIC


def _declared(dependant: Dependant) -> Iterator[Role | None]:
    for dependency in _walk(dependant):
        yield getattr(dependency.call, "required_role", None)


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _walk(dependency)
