"""The Dagster UI in a real browser: pip's playwright driving Debian's Chromium, headless.

Screenshots land in ``test-artifacts/screenshots/`` (gitignored): the asset catalog, the
Salesforce group, a partition's metadata, the Materialize dialog with one partition chosen, the
finished run and the partition's new materialisation (01-06); the matched accounts' events,
checks and lineage (07-09); a UI backfill's dialog and a backfilled partition (10-11); a revoked
grant on its run and partition pages (12-13); a late integration on its check and partition
(14-15).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from akita_pipelines_tests.e2e.stack import ARTIFACTS, Stack, StoredRun, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SHOTS = ARTIFACTS / "screenshots"
#: Metadata every Integration Object materialisation must show.
METADATA_KEYS = ("records_fetched", "records_staged", "quarantined", "created", "matched",
                 "merged", "api_calls", "retries", "rate_limit_waits", "cursor",
                 "history_window", "duration_seconds")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # The UI fills in partition counts and metadata lazily; on a busy machine that takes longer
    # than expect()'s 5 s default.
    expect.set_options(timeout=60_000)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, base_url=stack.url)
    context.set_default_timeout(60_000)
    opened = context.new_page()
    yield opened
    context.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _dismiss_community_dialog(page: Page) -> None:
    """The UI asks once per instance to join the community; skip it if it shows up."""
    try:
        page.get_by_role("button", name="Skip").click(timeout=5_000)
    except PlaywrightTimeout:
        pass


def test_ui_groups_metadata_and_materialise_one_partition(page: Page, stack: Stack) -> None:
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    stack.wait_for_sensor_runs()

    # The catalog lists the provider's assets in their own group.
    page.goto("/assets")
    _dismiss_community_dialog(page)
    expect(page.get_by_text("salesforce / accounts").first).to_be_visible()
    _shot(page, "01-asset-catalog")
    page.goto("/locations/akita_pipelines/asset-groups/salesforce")
    for interaction_type in ("accounts", "contacts", "deals", "tickets", "tasks"):
        expect(page.get_by_text(interaction_type, exact=True).first).to_be_visible()
    expect(page.get_by_text("3 partitions").first).to_be_visible()
    _shot(page, "02-salesforce-group")

    # A partition's page shows the sync's metadata.
    acme, _, initech = stack.integrations
    page.goto(f"/assets/salesforce/accounts?view=partitions&partition={acme}")
    expect(page.get_by_text(acme, exact=True).first).to_be_visible()
    for key in METADATA_KEYS:
        expect(page.get_by_role("cell", name=key, exact=True)).to_be_visible()
    _shot(page, "03-partition-metadata")

    # Materialise one partition from the UI: Materialize… → choose the partition → launch.
    before = {r.run_id for r in stack.stored_runs()}
    page.goto("/assets/salesforce/accounts?view=partitions")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem").filter(has_text=initech).click()
    dialog.get_by_text("Launch runs to materialize").click()  # closes the partition menu
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    _shot(page, "04-materialize-dialog")
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))).to_be_visible()
    page.get_by_role("link", name="View").first.click()
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f-]{36}"))
    run_id = page.url.rsplit("/", 1)[1]
    assert run_id not in before

    # It went through the queue, ran, and succeeded; the UI says so too.
    run = wait_for(lambda: next((r for r in stack.stored_runs() if r.run_id == run_id
                                 and r.status in ("SUCCESS", "FAILURE", "CANCELED")), None),
                   timeout=180, what=f"run {run_id} to finish")
    assert run.status == "SUCCESS"
    assert run.partition == initech
    page.reload()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    _shot(page, "05-run-succeeded")

    page.goto(f"/assets/salesforce/accounts?view=partitions&partition={initech}")
    expect(page.get_by_text(run_id[:8]).first).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^trigger\s+manual"))).to_be_visible()
    _shot(page, "06-partition-after-materialise")


def _new_runs(stack: Stack, before: set[str], *, count: int, what: str,
              match: Callable[[StoredRun], bool]) -> list[StoredRun]:
    """Wait until ``count`` new runs matching ``match`` have finished."""
    def done() -> list[StoredRun] | None:
        stack.check_alive()
        runs = [r for r in stack.stored_runs() if r.run_id not in before and match(r)]
        finished = [r for r in runs if r.status in ("SUCCESS", "FAILURE", "CANCELED")]
        return finished if len(finished) >= count else None
    return wait_for(done, timeout=240, what=what)


def test_matched_assets_show_the_syncs_with_evaluated_checks(page: Page, stack: Stack) -> None:
    stack.wait_for_sensor_runs()
    page.goto("/assets/accounts?view=events")
    _dismiss_community_dialog(page)
    for key in ("created", "matched", "merged", "open_reviews", "integration"):
        expect(page.get_by_role("cell", name=key, exact=True).first).to_be_visible()
    expect(page.get_by_text("Never materialized")).to_have_count(0)
    _shot(page, "07-matched-accounts-events")
    page.goto("/assets/accounts?view=checks")
    for check in ("accounts_unique_domain", "quarantine_rate"):
        expect(page.get_by_text(check).first).to_be_visible()
    expect(page.get_by_text("Not evaluated")).to_have_count(0)
    _shot(page, "08-matched-accounts-checks")
    # Lineage: every provider's accounts feed the matched table.
    data = stack.control.execute(
        "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { "
        "... on AssetNode { dependencyKeys { path } } } }", {"key": {"path": ["accounts"]}})
    upstream = {"/".join(k["path"]) for k in data["assetNodeOrError"]["dependencyKeys"]}
    assert "salesforce/accounts" in upstream
    page.goto("/assets/accounts?view=lineage&lineageScope=upstream")
    page.wait_for_load_state("networkidle")
    _shot(page, "09-matched-accounts-lineage")


def test_ui_backfill_of_a_provider_rereads_history(page: Page, stack: Stack) -> None:
    stack.wait_for_sensor_runs()
    acme = stack.integrations[0]
    before = {r.run_id for r in stack.stored_runs()}
    page.goto("/locations/akita_pipelines/asset-groups/salesforce")
    _dismiss_community_dialog(page)
    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="All", exact=True).click()  # the dialog starts empty
    expect(dialog.get_by_text("3 partitions").first).to_be_visible()
    # The history start as a flat tag: no nested run config to find.
    dialog.get_by_text("0 tags").click()  # the Tags section starts folded
    dialog.get_by_role("button", name="Add tags").click()
    editor = page.get_by_role("dialog").filter(has_text="Add tags to run")
    editor.get_by_placeholder("Tag Key").fill("akita/since")
    editor.get_by_placeholder("Tag Value").fill("2020-01-01")
    editor.get_by_role("button", name=re.compile("Apply|Save")).click()
    expect(dialog.get_by_text("1 tags").first).to_be_visible()
    _shot(page, "10-backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    runs = _new_runs(stack, before, count=len(stack.integrations), what="the UI backfill's runs",
                     match=lambda r: "dagster/backfill" in r.tags)
    assert all(r.status == "SUCCESS" for r in runs), [(r.run_id, r.status) for r in runs]
    for run in runs:  # tagged like every other run, so the provider limit held
        assert run.tags["akita/provider"] == "salesforce"
        assert run.tags["akita/integration"] == run.partition
        assert run.tags["akita/customer"] == (run.partition or "").split(".", 1)[1]
        assert run.tags["akita/trigger"] == "backfill"
    page.goto(f"/assets/salesforce/accounts?view=partitions&partition={acme}")
    expect(page.get_by_role("row", name=re.compile(r"^trigger\s+backfill"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^full\s+true", re.I))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^history_window\s+2020-01-01"))
           ).to_be_visible()
    _shot(page, "11-partition-after-ui-backfill")


def test_a_broken_integration_says_why_and_what_to_do(page: Page, stack: Stack,
                                                      tmp_path: Path) -> None:
    stack.wait_for_sensor_runs()
    broken = stack.integrations[-1]
    info = dict(stack.sandbox_urls["salesforce"])
    config = json.dumps({"base_url": info.pop("base_url")})
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(info))
    bad.write_text(json.dumps({**info, "refresh_token": "revoked-by-the-customer"}))
    customer = broken.split(".", 1)[1]
    add = ["integrations", "add", broken, "--customer", customer, "--config", config,
           "--replace", "--credentials-file"]
    assert stack.akita(*add, str(bad)).returncode == 0
    try:
        failed = stack.akita("resync", broken, "--type", "accounts", "--wait", "--timeout",
                             "200", "--url", stack.url)
        assert failed.returncode == 1
        run_id = failed.stdout.split("queued run ", 1)[1].split()[0]
        page.goto(f"/runs/{run_id}")
        _dismiss_community_dialog(page)
        expect(page.get_by_text(re.compile(r"\[config\] AuthError")).first).to_be_visible()
        expect(page.get_by_text(re.compile("re-authorise")).first).to_be_visible()
        _shot(page, "12-broken-run")
        page.goto(f"/assets/salesforce/accounts?view=partitions&partition={broken}")
        expect(page.get_by_text(re.compile("re-authorise")).first).to_be_visible()
        _shot(page, "13-broken-partition")
    finally:
        assert stack.akita(*add, str(good)).returncode == 0
        assert stack.akita("integrations", "enable", broken).returncode == 0


def test_a_late_integration_is_flagged(page: Page, stack: Stack) -> None:
    stack.wait_for_sensor_runs()
    late = stack.integrations[1]
    # The scheduler stops (an outage): nothing syncs, and globex was due three hours ago.
    assert stack.dagster("sensor", "stop", "akita_scheduler_sensor").returncode == 0
    try:
        stack.akita_sql("UPDATE integration_objects SET next_due_at = :at "
                        "WHERE integration_id = :id AND interaction_type = 'accounts'",
                        at=datetime.now(UTC) - timedelta(hours=3), id=late)
        page.goto("/assets/salesforce/accounts?view=checks")
        _dismiss_community_dialog(page)

        def flagged() -> bool:
            page.reload()
            try:
                expect(page.get_by_text(late).first).to_be_visible(timeout=5_000)
            except AssertionError:
                return False
            return True

        wait_for(flagged, timeout=240, what=f"the on_time check to flag {late}", interval=5)
        expect(page.get_by_text("on_time").first).to_be_visible()
        _shot(page, "14-late-check")
        page.goto(f"/assets/salesforce/accounts?view=partitions&partition={late}")
        expect(page.get_by_text(re.compile(r"late")).first).to_be_visible()
        _shot(page, "15-late-partition")
    finally:
        assert stack.dagster("sensor", "start", "akita_scheduler_sensor").returncode == 0
