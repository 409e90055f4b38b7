"""Karet's single admin (§4.14) and the signing of sessions, one concern per module.

``secret`` resolves the session secret and derives the signing keys from it, ``cookies`` writes and checks
the ``karet_session`` cookie, ``passwords`` hashes and verifies argon2id passwords, ``admin`` keeps the
admin record (setup, login, password change) and ``state`` is what an app keeps between requests, built once
by ``create_app``. Who a request is (the API key, an access token, this cookie) is decided in
``services.accounts.identity``.
"""
