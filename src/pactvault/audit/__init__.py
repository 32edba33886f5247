"""Append-only, hash-chained audit journal."""

from pactvault.audit.journal import Actor, record, verify_chain

__all__ = ["Actor", "record", "verify_chain"]
