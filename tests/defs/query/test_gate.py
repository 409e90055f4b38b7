"""The process's query slots: taken and given back, a short wait for one, then a refusal with Retry-After."""

import threading
import time

import pytest

from karet_defs.errors import QueryConcurrencyExceeded
from karet_defs.query.gate import QueryGate


def test_a_free_slot_is_taken_at_once_and_given_back():
    gate = QueryGate(1, wait_seconds=0.0)

    with gate.slot():
        pass
    with gate.slot():  # the first one was released, even though it was the only one
        pass


def test_beyond_the_slots_a_query_is_refused_after_the_wait():
    gate = QueryGate(2, wait_seconds=0.2)

    with gate.slot(), gate.slot():
        started = time.monotonic()
        with pytest.raises(QueryConcurrencyExceeded, match="all 2 query slots are busy") as refused:
            with gate.slot():
                pass
        waited = time.monotonic() - started

    assert 0.15 <= waited < 2
    assert (refused.value.code, refused.value.retry_after) == ("rate_limited", 1)


def test_a_slot_freed_during_the_wait_is_taken():
    gate = QueryGate(1, wait_seconds=5.0)
    taken = threading.Event()
    release = threading.Event()

    def hold():
        with gate.slot():
            taken.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(5)
    threading.Timer(0.1, release.set).start()
    with gate.slot():
        pass
    holder.join(5)


def test_a_slot_is_given_back_when_the_query_fails():
    gate = QueryGate(1, wait_seconds=0.0)

    with pytest.raises(ZeroDivisionError), gate.slot():
        raise ZeroDivisionError
    with gate.slot():
        pass
