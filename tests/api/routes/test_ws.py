"""The WebSocket push at /v1/ws: authentication, subscriptions by topic, events of real runs, access."""

import pytest
from starlette.websockets import WebSocketDisconnect

from karet_api.services import access
from karet_defs.orchestration.launch import execute_pipeline_run
from tests.conftest import API_KEY
from tests.factories import put_small_pipeline


def _until(socket, topic, op):
    received = []
    while True:
        message = socket.receive_json()
        received.append(message)
        if message.get("topic") == topic and message.get("op") == op:
            return received


def test_subscribed_topics_are_pushed_live(api_client, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")
    with api_client.websocket_connect("/v1/ws") as socket:
        assert socket.receive_json() == {"type": "authenticated", "user": "api"}
        socket.send_json({"type": "subscribe", "topics": ["runs", "tables"]})
        assert socket.receive_json() == {"type": "subscribed", "topics": ["runs", "tables"], "pipelines": []}

        run_id = execute_pipeline_run(dagster_instance, "sales", trigger="manual").run_id
        received = _until(socket, "runs", "ended")

    assert [(m["topic"], m["op"]) for m in received] == [
        ("runs", "started"),
        ("tables", "version"),
        ("runs", "ended"),
    ]
    assert {m["payload"]["job_id"] for m in received} == {run_id}
    assert all(m["type"] == "event" and m["pipeline"] == "sales" for m in received)
    assert [m["offset"] for m in received] == sorted(m["offset"] for m in received)


def test_a_browser_authenticates_with_its_first_message(make_client, local_settings):
    client = make_client(local_settings, authenticated=False)
    with client.websocket_connect("/v1/ws") as socket:
        socket.send_json({"type": "authenticate", "token": API_KEY})

        assert socket.receive_json() == {"type": "authenticated", "user": "api"}


@pytest.mark.parametrize("first", [{"type": "authenticate", "token": "wrong"}, {"type": "subscribe"}])
def test_without_a_valid_token_the_socket_is_closed(make_client, local_settings, first):
    client = make_client(local_settings, authenticated=False)
    with client.websocket_connect("/v1/ws") as socket:
        socket.send_json(first)

        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()

    assert closed.value.code == 1008


def test_unknown_topics_and_bad_messages_are_answered_with_an_error(api_client):
    with api_client.websocket_connect("/v1/ws") as socket:
        socket.receive_json()
        socket.send_json({"type": "subscribe", "topics": ["orders"]})
        unknown = socket.receive_json()
        socket.send_text("not json")
        bad = socket.receive_json()

    assert (unknown["type"], unknown["code"]) == ("error", "topic_not_found")
    assert (bad["type"], bad["code"]) == ("error", "invalid_message")


def test_only_named_pipelines_and_never_hidden_ones(api_client, local_stores, dagster_instance, monkeypatch):
    for slug in ("sales", "other", "secret"):
        put_small_pipeline(local_stores, slug)
    monkeypatch.setattr(access, "may_see", lambda stores, actor, pipeline: pipeline != "secret")
    with api_client.websocket_connect("/v1/ws") as everything, api_client.websocket_connect("/v1/ws") as one:
        everything.receive_json()
        one.receive_json()
        everything.send_json({"type": "subscribe", "topics": ["runs"]})
        one.send_json({"type": "subscribe", "topics": ["runs"], "pipelines": ["sales"]})
        everything.receive_json()
        one.receive_json()
        for slug in ("secret", "other", "sales"):
            execute_pipeline_run(dagster_instance, slug, trigger="manual")

        seen_by_all = _until(everything, "runs", "ended") + _until(everything, "runs", "ended")
        seen_by_one = _until(one, "runs", "ended")

    assert [m["pipeline"] for m in seen_by_all] == ["other", "other", "sales", "sales"]
    assert [m["pipeline"] for m in seen_by_one] == ["sales", "sales"]
