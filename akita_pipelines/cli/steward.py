"""``akita rematch``, ``akita reviews …`` and ``akita entities …``: a steward's workflow.

Decisions are remembered (``match_decisions``): a later sync, a full re-sync or a re-match never
undoes them. Unknown ids end in a one-line error and exit status 1.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

import click

from akita_pipelines.cli.common import engine as _engine
from akita_pipelines.cli.common import table as _table

KIND = click.option("--kind", type=click.Choice(["accounts", "contacts"]), default="accounts",
                    show_default=True, help="Entity ids are per kind.")
REASON = click.option("--reason", default=None, help="Why (kept in the entity's history).")
ACTOR = click.option("--by", "actor", default=None,
                     help="Who decides (default: the login name).")


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.command("rematch")
@click.option("--customer", "customer_id", default=None, help="Only this customer.")
@click.option("--dry-run", is_flag=True, help="Compute and report; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def rematch(customer_id: str | None, dry_run: bool, as_json: bool) -> None:
    """Re-match Accounts and Contacts from the stored interactions and report what moved.

    Steward decisions hold. Right after any sequence of syncs nothing should move.
    """
    from akita_pipelines.sync.rematch import rematch as run

    report = run(_engine(), customer_id=customer_id, dry_run=dry_run)
    if as_json:
        _dump(report.as_json())
        return
    verb = "would move" if dry_run else "moved"
    note = " (dry run: nothing written)" if dry_run else ""
    click.echo(f"{report.customers} customer(s) re-matched{note}: "
               f"accounts {report.accounts_before} → {report.accounts_after}, "
               f"contacts {report.contacts_before} → {report.contacts_after}, "
               f"{report.links} links; {verb} {report.moved}; "
               f"{report.reviews} open review(s)")
    shown = report.moves[:20]
    if shown:
        click.echo(_table([[m.kind, f"{m.interaction_id} ({m.interaction_type})",
                            m.rule or "unlinked", _ids(m.before), _ids(m.after)]
                           for m in shown],
                          ["entity", "record", "rule now", "its entity before",
                           "its entity now"]))
        if len(report.moves) > len(shown):
            click.echo(f"… and {len(report.moves) - len(shown)} more (--json lists all)")


def _ids(ids: tuple[int, ...], limit: int = 6) -> str:
    head = ", ".join(map(str, ids[:limit]))
    return head + (f" (+{len(ids) - limit})" if len(ids) > limit else "")


@click.group("reviews")
def reviews() -> None:
    """Candidate pairs the matcher would not merge on its own: list, accept, reject."""


@reviews.command("list")
@click.option("--customer", "customer_id", default=None)
@click.option("--status", type=click.Choice(["open", "merged", "rejected", "all"]),
              default="open", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def reviews_list(customer_id: str | None, status: str, as_json: bool) -> None:
    """The review band: each record, the entity it might be, the rule and the score."""
    from akita_pipelines.sync.steward import review_rows

    rows = review_rows(_engine(), customer_id=customer_id,
                       status=None if status == "all" else status)
    if as_json:
        _dump([{k: r[k] for k in ("id", "customer_id", "kind", "status", "interaction_id",
                                  "record", "entity_id", "candidate_id", "candidate_name",
                                  "rule", "score", "evidence", "created_at")} for r in rows])
        return
    if not rows:
        click.echo(f"no {'' if status == 'all' else status + ' '}reviews")
        return
    click.echo(_table([[r["id"], r["customer_id"], r["kind"], r["status"],
                        f"{r['interaction_id']} {r['record']}"[:50], r["entity_id"],
                        f"{r['candidate_id']} {r['candidate_name'] or ''}"[:40], r["rule"],
                        f"{r['score']:.2f}"] for r in rows],
                      ["id", "customer", "kind", "status", "record", "in", "candidate", "rule",
                       "score"]))


@reviews.command("accept")
@click.argument("review_id", type=int)
@REASON
@ACTOR
def reviews_accept(review_id: int, reason: str | None, actor: str | None) -> None:
    """The record is the candidate: merge them, for good."""
    from akita_pipelines.sync.steward import accept_review

    click.echo(accept_review(_engine(), review_id, actor=_actor(actor), reason=reason).message)


@reviews.command("reject")
@click.argument("review_id", type=int)
@REASON
@ACTOR
def reviews_reject(review_id: int, reason: str | None, actor: str | None) -> None:
    """The record is not the candidate: keep them apart, for good."""
    from akita_pipelines.sync.steward import reject_review

    click.echo(reject_review(_engine(), review_id, actor=_actor(actor), reason=reason).message)


@click.group("entities")
def entities() -> None:
    """Matched Accounts and Contacts: merge, unmerge, history, explain."""


@entities.command("merge")
@click.argument("first", type=int)
@click.argument("second", type=int)
@KIND
@REASON
@ACTOR
def entities_merge(first: int, second: int, kind: str, reason: str | None,
                   actor: str | None) -> None:
    """Two entities are one: merge them, for good."""
    from akita_pipelines.sync.steward import merge

    click.echo(merge(_engine(), kind, first, second, actor=_actor(actor), reason=reason).message)


@entities.command("unmerge")
@click.argument("entity_id", type=int)
@KIND
@click.option("--record", "record", type=int, default=None,
              help="Detach this record (an interaction id) instead of undoing the last merge.")
@REASON
@ACTOR
def entities_unmerge(entity_id: int, kind: str, record: int | None, reason: str | None,
                     actor: str | None) -> None:
    """Split an entity back into the parts its latest merge joined (or detach one record)."""
    from akita_pipelines.sync.steward import unmerge

    click.echo(unmerge(_engine(), kind, entity_id, record=record, actor=_actor(actor),
                       reason=reason).message)


@entities.command("history")
@click.argument("entity_id", type=int)
@KIND
@click.option("--json", "as_json", is_flag=True)
def entities_history(entity_id: int, kind: str, as_json: bool) -> None:
    """Every steward action and automatic merge on the entity's records: who, when, why."""
    from akita_pipelines.sync.steward import history

    rows = history(_engine(), kind, entity_id)
    if as_json:
        _dump(rows)
        return
    if not rows:
        click.echo(f"no history for {kind[:-1]} {entity_id}")
        return
    click.echo(_table([[f"{r['created_at']:%Y-%m-%d %H:%M:%S}", r["action"], r["actor"],
                        r["entity_id"], r["other_entity_id"],
                        f"{r['interaction_id']}/{r['other_interaction_id']}",
                        (r["reason"] or "")[:60]] for r in rows],
                      ["when", "action", "by", "entity", "other", "records", "why"]))


@entities.command("explain")
@click.argument("entity_id", type=int)
@KIND
@click.option("--other", type=int, default=None,
              help="Another entity: what keeps the two apart.")
def entities_explain(entity_id: int, kind: str, other: int | None) -> None:
    """The rule or decision that holds the entity's records together (or, with --other,
    keeps two entities apart)."""
    from akita_pipelines.sync.steward import explain

    for line in explain(_engine(), kind, entity_id, other):
        click.echo(line)
