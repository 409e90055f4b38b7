"""Promotion through environments with approvals: the flow, the refusals, and races with one winner."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from karet_defs.errors import (
    ApprovalDecided,
    ApprovalPending,
    ConcurrentChange,
    Conflict,
    InvalidTransition,
    MissingFields,
)
from karet_defs.history import promotion, versions
from karet_defs.store import keys
from karet_defs.templates import install_template, template_files

BLANK = json.loads(template_files("blank")["pipeline.json"])


def _config(**extra) -> bytes:
    return json.dumps({**BLANK, **extra}).encode()


@pytest.fixture
def reviewed(stores):
    """Pipeline `p` in reviewed mode: version 1 in production, version 2 saved to development."""
    install_template(stores, "p", "blank", exclusive=True)
    versions.record_live(stores, "p", author="ann", note=None, source="template")
    versions.set_promotion(stores, "p", "reviewed")
    saved = versions.save_config(stores, "p", _config(layout={"v": 2}), author="ann")
    assert (saved.version.version, saved.version.environment, saved.live) == (2, "development", False)
    return "p"


def _environments(stores, slug="p"):
    history, _ = versions.read_history(stores.pipelines, slug)
    return {v.version: v.environment for v in history.versions}


def test_a_version_reaches_production_through_qa_uat_and_two_approvals(stores, reviewed):
    assert promotion.promote(stores, "p", 2, actor="ann") == promotion.Transition("promoted", "qa")

    to_uat = promotion.promote(stores, "p", 2, actor="ann")
    assert (to_uat.status, to_uat.environment) == ("pending_approval", "qa")
    assert [r.id for _, r in promotion.list_requests(stores, "pending")] == [to_uat.approval_request_id]
    promotion.approve(stores, to_uat.approval_request_id, actor="lee", reason="fine")
    assert _environments(stores)[2] == "uat"
    assert stores.pipelines.get(keys.config_key("p")) == template_files("blank")["pipeline.json"]

    to_production = promotion.promote(stores, "p", 2, actor="ann")
    slug, done = promotion.approve(stores, to_production.approval_request_id, actor="lee", reason=None)

    assert (slug, done.status, done.environment, done.live_changed) == ("p", "approved", "production", True)
    assert _environments(stores) == {1: "retired", 2: "production"}
    assert stores.pipelines.get(keys.config_key("p")) == _config(layout={"v": 2})
    assert versions.config_version_of(stores, "p") == 2


def test_retire_puts_back_the_version_it_replaced(stores, reviewed):
    promotion.promote(stores, "p", 2, actor="a")
    for _ in range(2):
        promotion.approve(
            stores, promotion.promote(stores, "p", 2, actor="a").approval_request_id, actor="l", reason=None
        )

    retired = promotion.retire(stores, "p", 2, actor="lee")

    assert (retired.status, retired.live_changed) == ("retired", True)
    assert _environments(stores) == {1: "production", 2: "retired"}
    assert stores.pipelines.get(keys.config_key("p")) == template_files("blank")["pipeline.json"]
    with pytest.raises(InvalidTransition):
        promotion.retire(stores, "p", 1, actor="lee")  # it replaced nothing


def test_demote_takes_uat_back_to_qa_and_rejects_its_pending_request(stores, reviewed):
    promotion.promote(stores, "p", 2, actor="a")
    promotion.approve(
        stores, promotion.promote(stores, "p", 2, actor="a").approval_request_id, actor="l", reason=None
    )
    pending = promotion.promote(stores, "p", 2, actor="a").approval_request_id

    assert promotion.demote(stores, "p", 2, actor="lee") == promotion.Transition("demoted", "qa")

    _, history = promotion.find_request(stores, pending)
    assert (history.approval(pending).status, _environments(stores)[2]) == ("rejected", "qa")
    with pytest.raises(InvalidTransition):
        promotion.demote(stores, "p", 2, actor="lee")


def test_refusals_name_their_cause(stores, reviewed):
    with pytest.raises(InvalidTransition):
        promotion.promote(stores, "p", 1, actor="a")  # production has no next environment
    promotion.promote(stores, "p", 2, actor="a")
    request = promotion.promote(stores, "p", 2, actor="a").approval_request_id
    with pytest.raises(ApprovalPending):
        promotion.promote(stores, "p", 2, actor="a")
    with pytest.raises(MissingFields, match="reason is required"):
        promotion.reject(stores, request, actor="lee", reason="  ")
    promotion.reject(stores, request, actor="lee", reason="no")
    with pytest.raises(ApprovalDecided, match="already rejected"):
        promotion.approve(stores, request, actor="lee", reason=None)
    assert _environments(stores)[2] == "qa"


def _race(*calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call()
        except Conflict as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_of_two_promotions_of_one_version_one_wins(stores, reviewed):
    outcomes = _race(*[lambda: promotion.promote(stores, "p", 2, actor="a")] * 2)

    winners = [o for o in outcomes if isinstance(o, promotion.Transition)]
    assert len(winners) == 1 and winners[0].environment == "qa"
    assert isinstance(next(o for o in outcomes if o not in winners), ConcurrentChange)
    assert _environments(stores)[2] == "qa"


def test_an_approval_racing_a_rejection_has_one_winner(stores, reviewed):
    promotion.promote(stores, "p", 2, actor="a")
    request = promotion.promote(stores, "p", 2, actor="a").approval_request_id

    outcomes = _race(
        lambda: promotion.approve(stores, request, actor="l1", reason="yes"),
        lambda: promotion.reject(stores, request, actor="l2", reason="no"),
    )

    assert sum(isinstance(o, ApprovalDecided) for o in outcomes) == 1
    _, history = promotion.find_request(stores, request)
    status = history.approval(request).status
    assert _environments(stores)[2] == ("uat" if status == "approved" else "qa")
