"""A smoke run of the auto-run latency bench on the local store, so it cannot rot: two uploads through the
API in a child process must each become readable rows. Benchmarks are not tests: no timing is looked at.
"""

from bench.autorun import PHASES, measure


def test_uploads_become_readable_rows_through_the_api() -> None:
    result = measure("local", uploads=2)

    assert [sample["trigger"] for sample in result["samples"]] == ["webhook", "webhook"]
    assert set(result["summary"]) == set(PHASES)
