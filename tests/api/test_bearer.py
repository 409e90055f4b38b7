import pytest
from starlette.requests import Request

from karet_api.bearer import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), ("Bearer", ""), (None, "")],
)
def test_bearer_token(header, token):
    headers = [(b"authorization", header.encode())] if header else []
    assert bearer_token(Request({"type": "http", "headers": headers})) == token
