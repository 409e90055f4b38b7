"""Which pipelines' events a caller may receive: ``may_see``, the one rule every event path (SSE, topics,
WebSocket) applies, asking the accounts' rule (``accounts.visibility.can_see``).

``PipelineFilter`` answers it per event for one caller without a store read per event: an answer is kept for
``RECHECK_SECONDS``, so a change of a pipeline's members reaches open streams within seconds, and the async
check reads the store on a worker thread, never in the event loop that fans events out.
"""

import time

from starlette.concurrency import run_in_threadpool

from karet_api.services.accounts import visibility
from karet_api.services.accounts.identity import Actor
from karet_defs.store.base import Stores

RECHECK_SECONDS = 5.0


def may_see(stores: Stores, actor: Actor, pipeline: str) -> bool:
    """Whether ``actor`` may see ``pipeline``'s jobs, raw files and tables."""
    return visibility.can_see(stores, actor, pipeline)


class PipelineFilter:
    """``may_see`` for one caller, remembered per pipeline for ``RECHECK_SECONDS``."""

    def __init__(self, stores: Stores, actor: Actor) -> None:
        self.stores, self.actor = stores, actor
        self._answers: dict[str, tuple[bool, float]] = {}

    def __call__(self, pipeline: str) -> bool:
        """The answer, reading the store when it is not known (call it off the event loop)."""
        known = self._known(pipeline)
        if known is not None:
            return known
        return self._remember(pipeline, may_see(self.stores, self.actor, pipeline))

    async def check(self, pipeline: str) -> bool:
        known = self._known(pipeline)
        if known is not None:
            return known
        return self._remember(pipeline, await run_in_threadpool(may_see, self.stores, self.actor, pipeline))

    def _remember(self, pipeline: str, answer: bool) -> bool:
        self._answers[pipeline] = (answer, time.monotonic())
        return answer

    def _known(self, pipeline: str) -> bool | None:
        answer = self._answers.get(pipeline)
        if answer is None or time.monotonic() - answer[1] > RECHECK_SECONDS:
            return None
        return answer[0]
