"""Accounts (SPEC §8): users and roles, tokens, pipeline visibility, rate limits and the audit log.

Everything is kept in the pipelines bucket's auth area (``_auth/``) beside Karet's admin record, so an
instance's accounts move with its store and need no database of their own.
"""
