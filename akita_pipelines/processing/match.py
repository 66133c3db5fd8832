"""Processor v1: deterministic matching of incoming records to a customer's entities.

Accounts match by registered domain, contacts by normalised email; a record that was linked
before keeps its entity (rule ``source_id``). Contacts, deals, tickets and tasks are linked to
their account through the provider's own reference (``account_ref``) and, for contacts without
one, through their work-email domain. When nothing matches, a new entity is planned.

The functions only plan: the caller looks up the existing entities, applies the plan in one
transaction and resolves the new entities' keys to ids. Planning is order-independent: input is
sorted first, and a new entity's key is derived from what identifies it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: An entity is either an existing id or the key of an entity this plan creates.
EntityRef = int | str


@dataclass(frozen=True)
class AccountCandidate:
    interaction_id: int
    name: str | None
    domain: str | None  # registered, non-free-mail domain, already normalised
    phone: str | None
    linked_account_id: int | None = None  # its current link, if any


@dataclass(frozen=True)
class ContactCandidate:
    interaction_id: int
    email: str | None  # normalised
    name: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    account_ref_account_id: int | None = None  # the account its provider says it belongs to
    email_domain: str | None = None  # registered, non-free-mail domain of its email
    linked_contact_id: int | None = None


@dataclass(frozen=True)
class Link:
    interaction_id: int
    entity: EntityRef
    rule: str
    score: float = 1.0
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewEntity:
    key: str
    values: Mapping[str, Any]
    account: EntityRef | None = None  # contacts: the account they belong to


@dataclass
class MatchPlan:
    links: list[Link] = field(default_factory=list)
    new_entities: list[NewEntity] = field(default_factory=list)
    #: existing contact id → account it should now point to
    contact_accounts: dict[int, EntityRef] = field(default_factory=dict)

    def count(self, rule: str) -> int:
        return sum(1 for link in self.links if link.rule == rule)


def match_accounts(candidates: Iterable[AccountCandidate],
                   existing_by_domain: Mapping[str, int]) -> MatchPlan:
    """Plan links for incoming accounts given the customer's accounts keyed by domain."""
    plan = MatchPlan()
    planned: dict[str, str] = {}
    for cand in sorted(candidates, key=lambda c: (c.domain or "", c.interaction_id)):
        if cand.linked_account_id is not None:
            plan.links.append(Link(cand.interaction_id, cand.linked_account_id, "source_id"))
            continue
        if cand.domain and cand.domain in existing_by_domain:
            plan.links.append(Link(cand.interaction_id, existing_by_domain[cand.domain], "domain",
                                   evidence={"domain": cand.domain}))
            continue
        if cand.domain and cand.domain in planned:
            plan.links.append(Link(cand.interaction_id, planned[cand.domain], "domain",
                                   evidence={"domain": cand.domain}))
            continue
        key = f"domain:{cand.domain}" if cand.domain else f"interaction:{cand.interaction_id}"
        if cand.domain:
            planned[cand.domain] = key
        plan.new_entities.append(NewEntity(key, {"name": cand.name, "domain": cand.domain,
                                                 "phone": cand.phone}))
        plan.links.append(Link(cand.interaction_id, key, "new",
                               evidence={"domain": cand.domain} if cand.domain else {}))
    return plan


def match_contacts(candidates: Iterable[ContactCandidate],
                   existing_by_email: Mapping[str, int],
                   accounts_by_domain: Mapping[str, int]) -> MatchPlan:
    """Plan links for incoming contacts given the customer's contacts keyed by email and
    accounts keyed by domain (for contacts whose provider names no account)."""
    plan = MatchPlan()
    planned: dict[str, str] = {}
    for cand in sorted(candidates, key=lambda c: (c.email or "", c.interaction_id)):
        account: EntityRef | None = cand.account_ref_account_id
        if account is None and cand.email_domain:
            account = accounts_by_domain.get(cand.email_domain)
        if cand.linked_contact_id is not None:
            entity: EntityRef = cand.linked_contact_id
            plan.links.append(Link(cand.interaction_id, entity, "source_id"))
        elif cand.email and cand.email in existing_by_email:
            entity = existing_by_email[cand.email]
            plan.links.append(Link(cand.interaction_id, entity, "email",
                                   evidence={"email": cand.email}))
        elif cand.email and cand.email in planned:
            plan.links.append(Link(cand.interaction_id, planned[cand.email], "email",
                                   evidence={"email": cand.email}))
            continue
        else:
            key = f"email:{cand.email}" if cand.email else f"interaction:{cand.interaction_id}"
            if cand.email:
                planned[cand.email] = key
            plan.new_entities.append(NewEntity(key, {
                "email": cand.email, "name": cand.name, "first_name": cand.first_name,
                "last_name": cand.last_name, "phone": cand.phone}, account=account))
            plan.links.append(Link(cand.interaction_id, key, "new",
                                   evidence={"email": cand.email} if cand.email else {}))
            continue
        if account is not None and isinstance(entity, int):
            plan.contact_accounts[entity] = account
    return plan
