"""The surface every emulator offers tests and the demo, in Python and over ``/__sandbox/``.

Each emulator's wire protocol is written from its provider's documentation and shares no code
with the others; what they share is this interface, so the admin endpoint, the sandbox server
and the tests drive any of them the same way, and the bookkeeping behind it that no provider
defines (:class:`AdminSurface`: queued faults, ground truth). The first parameter is
positional-only: emulators name it after their provider (an ``sobject`` on Salesforce, an
interaction type elsewhere).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from akita_pipelines.sandbox.webhooks import WebhookOutbox


class Emulator(Protocol):
    """A provider emulator with seeded records, OAuth or API keys, and faults to inject."""

    stats: dict[str, int]

    def credentials(self) -> dict[str, str]:
        """What an integration needs to connect (client id and secret, tokens, keys)."""

    def records(self, interaction_type: str, /,
                include_deleted: bool = False) -> list[dict[str, Any]]:
        """The stored records of one type, as the provider would serve them."""

    def touch(self, interaction_type: str, count: int, /) -> list[str]:
        """Change ``count`` live records now; their ids."""

    def create(self, interaction_type: str, count: int, /) -> list[str]:
        """Create ``count`` records now; their ids."""

    def delete(self, interaction_type: str, ids: list[str], /) -> None:
        """Delete (archive, soft-delete) these records now."""

    def expire_tokens(self) -> None:
        """Make every issued access token expire (refresh tokens stay valid)."""

    def inject(self, fault: str, count: int = 1, /) -> None:
        """Make the next ``count`` requests fail the way ``fault`` names."""

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """The provider's HTTP API."""


class WorldEmulator(Emulator, Protocol):
    """An emulator whose records come from the seeded world of companies and people."""

    def ground_truth(self) -> dict[tuple[str, str, str], str]:
        """(provider, type, record id) → the world entity the record describes."""


class TouchesNamed(WorldEmulator, Protocol):
    """An emulator that can also touch records named by id."""

    def touch(self, interaction_type: str, count: int | None = None,
              ids: list[str] | None = None, /) -> list[str]:
        """Change the named records (or ``count`` random live ones) now; their ids."""


class PushingEmulator(WorldEmulator, Protocol):
    """An emulator that pushes change notifications (webhooks) as its provider does."""

    webhooks: WebhookOutbox

    def subscribe_webhook(self, url: str, /) -> dict[str, Any]:
        """Subscribe ``url``: the signing secret and the provider's account id."""

    def poke(self) -> None:
        """Deliver what is due now (notifications, retries)."""

Id = TypeVar("Id")


def known(table: Mapping[Id, Any], ids: Iterable[Id], what: str) -> list[Id]:
    """``ids`` as a list, every one of them in ``table``; KeyError naming the first unknown
    one (a test or the admin endpoint named a record the emulator never had)."""
    wanted = list(ids)
    missing = [i for i in wanted if i not in table]
    if missing:
        raise KeyError(f"no {what} with id {missing[0]!r}")
    return wanted


def own_name(aliases: Mapping[str, str], names: Collection[str], name: str, what: str) -> str:
    """The emulator's own name for ``name``: an interaction type (``accounts``) through
    ``aliases``, or already one of ``names``; KeyError naming ``what`` for anything else."""
    found = aliases.get(name, name)
    if found not in names:
        raise KeyError(f"unknown {what} {name!r}")
    return found


class AdminSurface:
    """The bookkeeping of the admin surface, the same in every world emulator: the faults
    queued for the next responses and the ground truth of the seeded records. What a fault
    looks like on the wire is each emulator's own (it lists them in :attr:`FAULTS`)."""

    #: The faults :meth:`inject` accepts.
    FAULTS: ClassVar[frozenset[str]] = frozenset({"rate_limit", "server_error", "bad_record",
                                                  "truncated"})
    lock: threading.RLock
    faults: list[str]
    truth: dict[tuple[str, str, str], str]

    def inject(self, fault: str, count: int = 1, /) -> None:
        """Make the next ``count`` API responses fail the way ``fault`` (one of
        :attr:`FAULTS`) names."""
        if fault not in self.FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self.lock:
            self.faults.extend([fault] * count)

    def ground_truth(self) -> dict[tuple[str, str, str], str]:
        """``{(provider, "accounts"|"contacts", id): entity_id}`` for the seeded records
        (records created later, by ``create`` or churn, are no world entities)."""
        with self.lock:
            return dict(self.truth)
