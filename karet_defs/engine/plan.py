"""Planning a mapping's share of a table run: the mapping's signature, and from the state the table's last
commit recorded, which raw files to evaluate and whose rows leave the table. A mapping whose signature
changed is evaluated again over all its files; otherwise only new and changed raw files are."""

import hashlib
import json
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass

from karet_defs.config.models import AnalyticTable, Mapping, Pipeline, SourceContainer
from karet_defs.config.walk import dimension_ids, mapping_roots
from karet_defs.engine import delta
from karet_defs.engine.context import RunContext
from karet_defs.store.base import ObjectInfo

# Bumped whenever the engine would evaluate the same file differently, so tables are re-evaluated.
ENGINE_FORMAT = 3


def mapping_signature(
    pipeline: Pipeline,
    mapping: Mapping,
    table: AnalyticTable,
    dimensions: MappingOf[str, str] | None = None,
) -> str:
    """Changes whenever the mapping's rows could change for the same raw files: its definition, its
    source's, the lookups', the dimensions' it uses (``dimensions``: their fingerprints, files included),
    the table's (schema, keys, assertions) and the engine's own format."""
    source = pipeline.source(mapping.source_container_id)
    parts: list[object] = [
        ENGINE_FORMAT,
        mapping.model_dump(mode="json", by_alias=True),
        source.model_dump(mode="json", by_alias=True) if source else None,
        [lookup.model_dump(mode="json") for lookup in pipeline.lookup_mappings],
        table.model_dump(mode="json", by_alias=True),
    ]
    used = dimension_ids(*mapping_roots(mapping), source.record_filter if source else None)
    if used:  # appended only when used, so the signatures of configs without dimensions stay as they were
        parts.append([(d, (dimensions or {}).get(d)) for d in used])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class MappingPlan:
    """One mapping's share of a table run: which raw files to evaluate and which rows to drop."""

    mapping: Mapping
    source: SourceContainer
    signature: str
    files: list[ObjectInfo]  # every current raw file of the mapping's source
    to_process: list[ObjectInfo]
    gone: set[str]  # raw files whose rows leave the table (changed or removed)
    full: bool  # every row of the mapping is replaced
    previous: delta.MappingState | None

    def replace_all(self) -> None:
        """Evaluate every file again and replace every row of the mapping."""
        self.full, self.to_process, self.gone = True, list(self.files), set()

    @property
    def kept(self) -> dict[str, str]:
        """The raw files whose rows the table keeps, with the ETags they were evaluated at."""
        if self.full or self.previous is None:
            return {}
        return {k: v for k, v in self.previous.files.items() if k not in self.gone}


def plan_mapping(
    run: RunContext, table: AnalyticTable, mapping: Mapping, state: delta.TableState | None
) -> MappingPlan | None:
    """The plan of ``mapping`` over the run's raw files, given the table's recorded ``state`` (None:
    unknown); None when the mapping's source does not exist."""
    source = run.pipeline.source(mapping.source_container_id)
    if source is None:
        return None
    prefix = source.resolved_prefix(run.slug)
    files = [info for key, info in run.inputs.infos.items() if key.startswith(prefix)]
    signature = mapping_signature(run.pipeline, mapping, table, run.dimensions.fingerprints)
    previous = (state or {}).get(mapping.id)
    if previous is None or previous.signature != signature:
        return MappingPlan(mapping, source, signature, files, list(files), set(), True, previous)
    current = {info.key: info.etag for info in files}
    changed = {key for key, etag in current.items() if previous.files.get(key) not in (None, etag)}
    removed = set(previous.files) - set(current)
    to_process = [info for info in files if previous.files.get(info.key) != info.etag]
    full = False
    if table.dedup_keys and (changed or removed or _sorts_before(to_process, previous.files)):
        # Which row wins a duplicate key depends on every file's rows: evaluate them all again.
        full, to_process = True, list(files)
    return MappingPlan(mapping, source, signature, files, to_process, changed | removed, full, previous)


def _sorts_before(new: list[ObjectInfo], held: MappingOf[str, str]) -> bool:
    """Whether a new or changed raw file sorts before one the table already holds."""
    return bool(new and held) and min(info.key for info in new) < max(held)
