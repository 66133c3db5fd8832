"""Match keys and plan references: how their stored strings are spelled, in one place.

The match index (``match_keys.key``) holds three spellings, and a plan names entities and
records with two more; the strings are what is stored, so their forms never change:

- ``k:<key>``: a strong key (a work email, a company domain) — :func:`strong`;
- ``id:<provider>:<id>``: an identifier another system gave the entity — :func:`own_id_key`;
- ``b:<family>:<value>``: a block a fuzzy comparison starts from — :func:`is_block`;
- ``new:<record>``: an entity a plan creates, founded by that record — :func:`new_entity`;
- ``record:<record>``: a review's candidate that is a record of the batch, not an entity yet
  — :func:`record_ref` and :func:`record_of`.
"""

from __future__ import annotations

STRONG = "k:"
BLOCK = "b:"
RECORD = "record:"


def strong(key: str) -> str:
    """The index key of a strong key: ``k:acme.com``."""
    return STRONG + key


def strong_value(key: str) -> str | None:
    """The strong key an index key holds (``k:acme.com`` → ``acme.com``), else None."""
    return key[len(STRONG):] if key.startswith(STRONG) else None


def is_block(key: str) -> bool:
    return key.startswith(BLOCK)


def own_id_key(provider: str, value: str) -> str:
    """The index key of an id a provider gave a record: ``id:salesforce:001…``."""
    return f"id:{provider}:{value}"


def new_entity(record_id: int) -> str:
    """A plan's name for the entity it creates with ``record_id`` as its founder."""
    return f"new:{record_id}"


def record_ref(record_id: int) -> str:
    """A review candidate that is a record (its entity is known only once the plan is written)."""
    return f"{RECORD}{record_id}"


def record_of(ref: object) -> int | None:
    """The record id a :func:`record_ref` names; None for an entity id or a new entity."""
    if isinstance(ref, str) and ref.startswith(RECORD):
        return int(ref[len(RECORD):])
    return None
