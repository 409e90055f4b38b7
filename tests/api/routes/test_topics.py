"""KalamDB topics over real runs: consume after a group's offset, ack, restarts, long polls, access."""

import threading
import time

import pytest

from karet_api.services import access
from karet_defs.orchestration.launch import execute_pipeline_run
from tests.conftest import API_KEY
from tests.factories import SMALL_ROWS, put_small_pipeline

BEARER = {"Authorization": f"Bearer {API_KEY}"}


def _consume(client, group="g", *, start="Earliest", topic="runs", timeout=0, limit=100):
    body = {"topic_id": topic, "start": start, "limit": limit, "partition_id": 0, "timeout_seconds": timeout}
    if group is not None:
        body["group_id"] = group
    response = client.post("/v1/api/topics/consume", json=body, headers=BEARER)
    assert response.status_code == 200, response.text
    return response.json()


def _ack(client, offset, group="g", topic="runs"):
    body = {"topic_id": topic, "group_id": group, "partition_id": 0, "upto_offset": offset}
    response = client.post("/v1/api/topics/ack", json=body, headers=BEARER)
    assert response.status_code == 200, response.text
    return response.json()


def _ops(answer):
    return [(m["op"], m["payload"]["job_id"]) for m in answer["messages"]]


def _wait_for_a_waiting_consumer(client, timeout=10.0):
    deadline = time.monotonic() + timeout
    # The app makes its feed hub on the first consume; until then nobody waits on it.
    while (hub := getattr(client.app.state, "karet_feed", None)) is None or hub.listeners == 0:
        assert time.monotonic() < deadline, "the long poll never started waiting"
        time.sleep(0.01)


@pytest.fixture
def spending(api_client, local_stores):
    put_small_pipeline(local_stores, "sales")
    return api_client


def test_a_new_group_from_earliest_gets_the_runs_and_an_ack_moves_it(spending, dagster_instance):
    first = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id

    answer = _consume(spending)

    assert _ops(answer) == [("started", first), ("ended", first)]
    message = answer["messages"][1]
    assert set(message) == {"offset", "topic_id", "partition_id", "timestamp", "key", "op", "payload"}
    assert (message["topic_id"], message["partition_id"], message["key"]) == ("runs", 0, "sales")
    assert message["payload"]["status"] == "completed" and message["payload"]["files_processed"] == 1
    assert message["timestamp"] > 1_700_000_000_000
    assert answer["next_offset"] == message["offset"] + 1 and answer["has_more"] is False
    assert _ack(spending, message["offset"]) == {"success": True, "acknowledged_offset": message["offset"]}
    second = execute_pipeline_run(dagster_instance, "sales", trigger="api").run_id

    assert _ops(_consume(spending)) == [("started", second), ("ended", second)]
    assert _ack(spending, 1)["acknowledged_offset"] == message["offset"]  # never moves back


def test_unacked_events_come_again_after_a_restart_and_nothing_else(
    make_client, local_settings, local_stores, dagster_instance
):
    put_small_pipeline(local_stores, "sales")
    before = make_client(local_settings)
    runs = [execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id for _ in range(2)]
    first_batch = _consume(before, limit=2)
    _ack(before, first_batch["messages"][-1]["offset"])
    unacked = _consume(before)
    assert _ops(unacked) == [("started", runs[1]), ("ended", runs[1])]
    before.__exit__(None, None, None)  # the API goes away between consume and ack

    after = make_client(local_settings)

    assert _consume(after)["messages"] == unacked["messages"]


def test_a_new_group_from_latest_keeps_its_start(spending, dagster_instance):
    execute_pipeline_run(dagster_instance, "sales", trigger="manual")
    assert _consume(spending, start="Latest")["messages"] == []
    later = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id

    assert _ops(_consume(spending, start="Latest")) == [("started", later), ("ended", later)]


def test_an_offset_start_and_a_stateless_read(spending, dagster_instance):
    execute_pipeline_run(dagster_instance, "sales", trigger="manual")
    everything = _consume(spending, group=None)["messages"]

    tail = _consume(spending, group=None, start={"Offset": everything[1]["offset"]})

    assert tail["messages"] == everything[1:]
    assert _consume(spending, group=None)["messages"] == everything  # no group: nothing remembered


def test_tables_topic_names_the_new_version(spending, dagster_instance):
    run_id = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id

    [message] = _consume(spending, topic="tables")["messages"]

    assert message["op"] == "version"
    assert message["payload"] == {
        "pipeline": "sales",
        "table": "t",
        "version": 0,
        "rows_added": SMALL_ROWS,
        "rows_removed": 0,
        "row_count": SMALL_ROWS,
        "job_id": run_id,
    }


def test_a_long_poll_returns_when_an_event_arrives(spending, dagster_instance):
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(_consume(spending, start="Latest", timeout=30)))
    started = time.monotonic()
    waiting.start()
    # The event must arrive while the poll waits, after it has taken "Latest" as its start.
    _wait_for_a_waiting_consumer(spending)

    run_id = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id
    waiting.join(30)

    assert answers and ("started", run_id) in _ops(answers[0])
    assert time.monotonic() - started < 25


def test_a_long_poll_with_nothing_new_waits_its_timeout(spending):
    started = time.monotonic()

    assert _consume(spending, start="Latest", timeout=1)["messages"] == []
    assert 0.9 < time.monotonic() - started < 10


def test_events_of_a_hidden_pipeline_never_reach_the_caller(
    spending, local_stores, dagster_instance, monkeypatch
):
    put_small_pipeline(local_stores, "secret")
    monkeypatch.setattr(access, "may_see", lambda stores, actor, pipeline: pipeline != "secret")
    hidden = execute_pipeline_run(dagster_instance, "secret", trigger="manual").run_id
    shown = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id

    for topic in ("runs", "tables"):
        answer = _consume(spending, group=None, topic=topic)
        assert {m["key"] for m in answer["messages"]} == {"sales"}
        assert {m["payload"]["job_id"] for m in answer["messages"]} == {shown} != {hidden}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"topic_id": "orders", "group_id": "g"}, 404, "TOPIC_NOT_FOUND"),
        ({"topic_id": "runs", "group_id": "g", "partition_id": 3}, 400, "BAD_REQUEST"),
        ({"topic_id": "runs", "group_id": "g", "limit": 0}, 400, "BAD_REQUEST"),
        ({"topic_id": "runs", "start": "Middle"}, 400, "BAD_REQUEST"),
    ],
)
def test_refusals_are_in_kalamdbs_envelope(api_client, body, status, code):
    response = api_client.post("/v1/api/topics/consume", json=body, headers=BEARER)

    assert response.status_code == status
    assert response.json()["status"] == "error" and response.json()["error"]["code"] == code


def test_a_bearer_token_is_required(make_client, local_settings):
    client = make_client(local_settings, authenticated=False)

    response = client.post("/v1/api/topics/ack", json={"topic_id": "runs", "group_id": "g", "upto_offset": 1})

    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHORIZED"
