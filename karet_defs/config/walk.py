"""Walking expression trees: every node of an AstNode, depth first."""

from collections.abc import Iterator

from pydantic import BaseModel

from karet_defs.config.models import AstNode, DimRef, LookupRef, Mapping


def iter_nodes(node: AstNode) -> Iterator[AstNode]:
    """The node and all its descendants, parents before children."""
    stack: list[AstNode] = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def children(node: AstNode) -> list[AstNode]:
    """The node's direct operands, in field order."""
    found: list[BaseModel] = []
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, BaseModel))
    return found  # type: ignore[return-value]


def lookup_ids(mapping: Mapping) -> list[str]:
    """Top-level lookup ids a mapping's expressions reference, in first-use order."""
    found: dict[str, None] = {}
    for node in _mapping_nodes(mapping):
        if isinstance(node, LookupRef):
            found[node.lookup_id.split(".", 1)[0]] = None
    return list(found)


def dimension_ids(*roots: AstNode | None) -> list[str]:
    """Dimension ids the expressions reference, in first-use order."""
    found: dict[str, None] = {}
    for root in roots:
        if root is not None:
            found.update((node.dim_id, None) for node in iter_nodes(root) if isinstance(node, DimRef))
    return list(found)


def mapping_roots(mapping: Mapping) -> list[AstNode]:
    """The expressions of a mapping: its columns', then its ``where``."""
    return [c.expr for c in mapping.columns] + ([mapping.where] if mapping.where is not None else [])


def _mapping_nodes(mapping: Mapping) -> Iterator[AstNode]:
    for root in mapping_roots(mapping):
        yield from iter_nodes(root)
