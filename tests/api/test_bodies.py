import asyncio
import io

import pytest
from starlette.requests import Request

from karet_api.bodies import exceeds_limit, read_capped
from karet_defs.errors import PayloadTooLarge


def _request(chunks: list[bytes], headers: dict[str, str] | None = None) -> Request:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "headers": raw}, receive)


def _read(request: Request, limit: int, **kwargs) -> bytes:
    sink = io.BytesIO()
    asyncio.run(read_capped(request, limit, sink, **kwargs))
    return sink.read()  # rewound by read_capped


def test_a_body_within_the_limit_is_copied_and_rewound():
    assert _read(_request([b"abc", b"de"], {"content-length": "5"}), 5) == b"abcde"


@pytest.mark.parametrize(
    ("headers", "too_large", "message", "code"),
    [
        ({"content-length": "6"}, None, "request body over 5 bytes", "payload_too_large"),
        ({}, None, "request body over 5 bytes", "payload_too_large"),
        (
            {"content-length": "6"},
            exceeds_limit("zip_too_large"),
            "request body of 6 bytes exceeds the limit of 5 bytes",
            "zip_too_large",
        ),
        ({}, exceeds_limit(), "request body exceeds the limit of 5 bytes", "payload_too_large"),
    ],
    ids=["declared", "streamed", "declared-named", "streamed-named"],
)
def test_a_body_over_the_limit_is_refused(headers, too_large, message, code):
    kwargs = {"too_large": too_large} if too_large else {}
    with pytest.raises(PayloadTooLarge, match=message) as refused:
        _read(_request([b"abc", b"def"], headers), 5, **kwargs)
    assert refused.value.code == code
