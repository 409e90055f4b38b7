"""Properties of access and refresh tokens: only an unexpired, untampered token of the right kind, signed
with this instance's key and of a live family, is accepted; replaying a spent refresh token revokes all."""

import tempfile
import time
from pathlib import Path

import jwt
import pytest
from hypothesis import given, settings, strategies as st

from karet_api.services.accounts import tokens
from karet_defs.errors import Unauthorized
from karet_defs.store.local import LocalStore

KEY = tokens.signing_key("a session secret " + "x" * 40)
OTHER_KEY = tokens.signing_key("another instance's secret " + "y" * 40)
names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)


def _store() -> LocalStore:
    return LocalStore(Path(tempfile.mkdtemp(prefix="karet-tokens-")))


def _forge(key: bytes, **claims: object) -> str:
    now = int(time.time())
    base = {"iss": "karet", "sub": "alice", "typ": "access", "fam": "f", "gen": 0}
    base |= {"iat": now, "exp": now + 60}
    return jwt.encode({**base, **claims}, key, algorithm="HS256")


@given(user=names)
@settings(max_examples=25, deadline=None)
def test_a_fresh_pair_decodes_to_its_user_and_kinds(user):
    store = _store()
    family, pair = tokens.start(store, KEY, user)

    access = tokens.decode(KEY, pair.access_token, "access")
    refresh = tokens.decode(KEY, pair.refresh_token, "refresh")

    assert (access.user, access.family, refresh.user, refresh.family) == (user, family, user, family)
    assert 0 < pair.expires_in <= tokens.ACCESS_TTL_SECONDS
    assert refresh.expires - access.expires == tokens.REFRESH_TTL_SECONDS - tokens.ACCESS_TTL_SECONDS
    for token, wrong_kind in ((pair.access_token, "refresh"), (pair.refresh_token, "access")):
        with pytest.raises(Unauthorized, match="token"):
            tokens.decode(KEY, token, wrong_kind)


@given(user=names, ago=st.integers(min_value=1, max_value=10 * 365 * 24 * 3600))
@settings(max_examples=25, deadline=None)
def test_an_expired_token_is_refused(user, ago):
    now = int(time.time())
    token = _forge(KEY, sub=user, iat=now - ago - 60, exp=now - ago)
    with pytest.raises(Unauthorized) as raised:
        tokens.decode(KEY, token, "access")
    assert raised.value.code == "token_expired"


@given(position=st.integers(min_value=0), replacement=st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"))
@settings(max_examples=100, deadline=None)
def test_a_tampered_token_is_refused(position, replacement):
    _, pair = tokens.start(_store(), KEY, "alice")
    token = pair.access_token
    index = position % len(token)
    if token[index] in (replacement, "."):
        return
    tampered = token[:index] + replacement + token[index + 1 :]
    try:
        claims = tokens.decode(KEY, tampered, "access")
    except Unauthorized as exc:
        assert exc.code == "invalid_token"
    else:
        # base64's last digit of a part carries spare bits: a change there may decode to the same bytes.
        assert claims == tokens.decode(KEY, token, "access")


@given(claims=st.fixed_dictionaries({"sub": names, "typ": st.sampled_from(["access", "refresh"])}))
@settings(max_examples=25, deadline=None)
def test_a_token_signed_with_another_key_or_algorithm_is_refused(claims):
    for token in (
        _forge(OTHER_KEY, **claims),
        _forge(KEY[::-1], **claims),
        jwt.encode({"sub": claims["sub"], "typ": claims["typ"]}, KEY, algorithm="HS256"),  # no exp, iss
        "e30.e30.",  # {}.{}. with no signature
    ):
        with pytest.raises(Unauthorized):
            tokens.decode(KEY, token, claims["typ"])


def test_unsigned_tokens_are_refused():
    header_none = jwt.api_jws.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    now = int(time.time())
    body = jwt.api_jws.base64url_encode(
        f'{{"iss":"karet","sub":"alice","typ":"access","fam":"f","iat":{now},"exp":{now + 60}}}'.encode()
    ).decode()
    with pytest.raises(Unauthorized):
        tokens.decode(KEY, f"{header_none}.{body}.", "access")


@given(rotations=st.integers(min_value=1, max_value=4), replay=st.data())
@settings(max_examples=20, deadline=None)
def test_replaying_any_spent_refresh_token_revokes_the_whole_family(rotations, replay):
    store = _store()
    family, pair = tokens.start(store, KEY, "alice")
    spent = []
    for _ in range(rotations):
        spent.append(pair.refresh_token)
        _, pair = tokens.rotate(store, KEY, pair.refresh_token)
    replayed = replay.draw(st.sampled_from(spent))

    with pytest.raises(Unauthorized) as raised:
        tokens.rotate(store, KEY, replayed)

    assert raised.value.code == "token_reused"
    revoked = tokens.load_family(store, family)
    assert revoked is not None and revoked.revoked
    assert not tokens.is_live(revoked, "alice")
    with pytest.raises(Unauthorized) as after:
        tokens.rotate(store, KEY, pair.refresh_token)  # the live one dies with its family
    assert after.value.code == "token_revoked"


def test_another_users_refresh_token_never_yields_their_own_session():
    store = _store()
    alice_family, alice = tokens.start(store, KEY, "alice")
    _, bob = tokens.start(store, KEY, "bob")

    claims, rotated = tokens.rotate(store, KEY, bob.refresh_token)
    assert claims.user == "bob"
    assert tokens.decode(KEY, rotated.access_token, "access").user == "bob"

    # A token naming alice's family for bob (only forgeable with the key) is refused and harms neither.
    crossed = _forge(KEY, sub="bob", typ="refresh", fam=alice_family, exp=int(time.time()) + 600)
    with pytest.raises(Unauthorized):
        tokens.rotate(store, KEY, crossed)
    assert tokens.is_live(tokens.load_family(store, alice_family), "alice")
    assert tokens.rotate(store, KEY, alice.refresh_token)[0].user == "alice"


def test_a_family_never_outlives_seven_days_even_when_renewed():
    store = _store()
    family, pair = tokens.start(store, KEY, "alice")
    live = tokens.load_family(store, family)
    assert live is not None
    ending = tokens.Family(live.user, live.generation, False, int(time.time()) + 30, live.etag)

    renewed = tokens.renew_access(KEY, tokens.decode(KEY, pair.access_token, "access"), ending)

    assert renewed.expires_in <= 30
    assert not tokens.is_live(ending, "alice", now=time.time() + 31)
