"""The Dagster UI in a real browser: pip's playwright driving Debian's Chromium, headless.

Screenshots land in ``test-artifacts/`` (gitignored): the asset catalog, the Salesforce group,
a partition's metadata, the Materialize dialog with one partition chosen, the finished run and
the partition's new materialisation.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from akita_pipelines_tests.e2e.stack import ARTIFACTS, Stack, wait_for

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
