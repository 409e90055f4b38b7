"""The distributed stack, started once for the package; tests needing it skip only if a service is absent."""

from collections.abc import Iterator

import pytest

from tests.scaleout.stack import Stack, require_services, running_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Iterator[Stack]:
    """Postgres + Celery on Redis + code server, webserver, daemon and two workers, for this package."""
    require_services()
    with running_stack(tmp_path_factory.mktemp("scaleout"), moto_server) as stack:
        yield stack
