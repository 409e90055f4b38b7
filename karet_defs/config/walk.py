"""Walking expression trees: every node of an AstNode, depth first."""

from collections.abc import Iterator

from pydantic import BaseModel

from karet_defs.config.models import AstNode, LookupRef, Mapping


def iter_nodes(node: AstNode) -> Iterator[AstNode]:
    """The node and all its descendants, parents before children."""
    stack: list[BaseModel] = [node]
    while stack:
        current = stack.pop()
        yield current  # type: ignore[misc]
        children: list[BaseModel] = []
        for name in type(current).model_fields:
            value = getattr(current, name)
            if isinstance(value, BaseModel):
                children.append(value)
            elif isinstance(value, list):
                children.extend(v for v in value if isinstance(v, BaseModel))
        stack.extend(reversed(children))


def lookup_ids(mapping: Mapping) -> list[str]:
    """Top-level lookup ids a mapping's expressions reference, in first-use order."""
    roots = [c.expr for c in mapping.columns] + ([mapping.where] if mapping.where is not None else [])
    found: dict[str, None] = {}
    for root in roots:
        for node in iter_nodes(root):
            if isinstance(node, LookupRef):
                found[node.lookup_id.split(".", 1)[0]] = None
    return list(found)
