"""The annotator's and reviewer's real flows in a real browser (Debian's chromium) against a live server."""

import re

import pytest
from playwright.sync_api import expect

from datasets_app.curation.services import example_create, example_set_status, example_update
from datasets_app.models import Example, ExampleLease
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAIRS = [
    ("How long should lentil soup simmer?", "About **25 minutes**, until the lentils are soft.", ["soups"]),
    ("Can I freeze lentil soup?", "Yes: cool it first, then freeze it for up to three months.", ["soups", "storage"]),
    ("Why did my bread come out dense?", "Usually too little kneading or proofing; give it more time.", ["baking"]),
    (
        "What should I take for my headache?",
        "I can't give medical advice; please ask a pharmacist or doctor.",
        ["blocked:medical"],
    ),
    ("How do I keep basil fresh?", "Stand the stems in water like flowers, away from the fridge.", ["herbs"]),
    (
        "Is it safe to eat raw cookie dough?",
        "Raw flour and eggs can carry bacteria; bake it, or use heat-treated flour.",
        [],
    ),
]


@pytest.fixture
def team(db):
    workspace = WorkspaceFactory(name="Acme Kitchen")
    annotator, lead = UserFactory(username="annie"), UserFactory(username="leo")
    MembershipFactory(workspace=workspace, user=annotator, role="annotator")
    MembershipFactory(workspace=workspace, user=lead, role="lead")
    dataset = DatasetFactory(
        workspace=workspace,
        name="Support assistant guardrails",
        description="The cooking assistant answers kitchen questions and declines medical advice.",
        guidelines="## Guardrail pairs\n\n- Tag each pair `blocked:<topic>` or `allowed:<topic>`.\n- Keep answers to **four sentences**.",
    )
    pairs = [
        example_create(dataset=dataset, user=annotator, prompt=prompt, response=response, tags=tags)
        for prompt, response, tags in PAIRS
    ]
    return {"workspace": workspace, "annotator": annotator, "lead": lead, "dataset": dataset, "pairs": pairs}


def test_annotator_searches_edits_saves_and_next_and_submits(page, team):
    soup, frozen = team["pairs"][0], team["pairs"][1]
    page.goto("/accounts/login/")
    page.fill("#id_username", "annie")
    page.fill("#id_password", "pw-for-tests-1")
    page.click("button[type=submit]")
    page.get_by_role("link", name="Support assistant guardrails").click()
    expect(page.locator("[data-row]")).to_have_count(len(PAIRS))
    page.wait_for_load_state()  # the page's script is in
    screenshot(page, "dataset-page")

    page.keyboard.press("/")  # jump to search, then live search narrows the table
    page.keyboard.type("lentil")
    expect(page.locator("[data-row]")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"\?.*q=lentil"))
    page.keyboard.press("Escape")  # out of the search box, the search kept
    expect(page.locator("[data-search]")).to_have_value("lentil")
    page.keyboard.press("j")  # J/K move through the rows, Enter opens
    expect(page.locator("[data-row].is-current")).to_contain_text("How long should lentil soup simmer?")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text(f"Pair #{soup.pk}")
    expect(page.locator("[data-counter-for=prompt]")).to_contain_text("35 chars")
    expect(page.locator("[data-counter-for=prompt]")).to_contain_text("tokens")
    expect(page.locator(".preview-box .markdown strong")).to_have_text("25 minutes")

    response = page.locator("#f-response")
    response.fill("About **20 minutes** for red lentils, 30 for green ones.")
    expect(page.locator(".preview-box .markdown strong")).to_have_text("20 minutes")  # the live preview
    screenshot(page, "editor", full_page=False)  # what the annotator sees, the action bar pinned below
    for role, text in (("user", "Red or green lentils?"), ("assistant", "Either; red ones cook faster.")):
        page.get_by_role("button", name="Add an earlier turn").click()
        turn = page.locator("[data-turn]").last
        turn.locator("select").select_option(role)
        turn.locator("textarea").fill(text)
    turns = page.locator("[data-turn]")
    expect(turns.first.get_by_label("Train on this turn")).to_be_hidden()  # a weight is the assistant's only
    turns.last.get_by_label("Train on this turn").uncheck()  # that answer is context, not trained on
    page.keyboard.press("Control+Enter")  # save & next, within the searched list
    expect(page.locator("h1")).to_contain_text(f"Pair #{frozen.pk}")
    expect(page.locator(".messages")).to_contain_text(f"Saved #{soup.pk}.")
    assert Example.objects.get(pk=soup.pk).response == "About **20 minutes** for red lentils, 30 for green ones."
    assert Example.objects.get(pk=soup.pk).history == [
        {"role": "user", "content": "Red or green lentils?"},
        {"role": "assistant", "content": "Either; red ones cook faster.", "weight": 0},
    ]

    page.locator("#f-prompt").click()
    page.keyboard.press("Alt+KeyS")  # submit
    expect(page.locator(".messages")).to_contain_text("Submitted.")
    expect(page.locator("h1 .badge")).to_have_text("Submitted")
    assert Example.objects.get(pk=frozen.pk).status == "submitted"


def test_lead_approves_one_and_rejects_one_with_a_comment(page, context, live_server, team):
    first, second = team["pairs"][2], team["pairs"][3]
    for pair in (first, second):
        example_set_status(example=pair, user=team["annotator"], action="submit")
    log_in(context, live_server, team["lead"])
    page.goto(f"/datasets/{team['dataset'].pk}/")
    page.get_by_role("button", name="Next to review").click()
    expect(page.locator("h1")).to_contain_text(f"Pair #{first.pk}")
    page.keyboard.press("Alt+KeyA")  # approve, and the queue moves on
    expect(page.locator("h1")).to_contain_text(f"Pair #{second.pk}")
    expect(page.locator(".messages")).to_contain_text(f"Approved #{first.pk}.")

    page.keyboard.press("Alt+KeyR")  # reject: the comment box opens, focused
    expect(page.locator("[data-reject-comment]")).to_be_focused()
    page.keyboard.type("Say which pharmacist; and tag it blocked:medical.")
    page.keyboard.press("Control+Enter")
    expect(page.locator(".messages")).to_contain_text("That was the last one in this queue for now.")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "approved"
    assert (second.status, second.review_comment) == ("rejected", "Say which pharmacist; and tag it blocked:medical.")
    assert not ExampleLease.objects.exists()


def test_a_stale_save_shows_the_conflict_view_and_keeping_mine_works(page, context, live_server, team):
    pair = team["pairs"][4]
    log_in(context, live_server, team["annotator"])
    page.goto(f"/examples/{pair.pk}/")
    example_update(example=pair, user=team["lead"], expected_version=1, response="Trim the stems and keep it in water.")
    page.locator("#f-response").fill("Stand the stems in a glass of water on the counter.")
    page.keyboard.press("Control+s")
    expect(page.locator("h1")).to_have_text("Someone saved this pair while you were editing it")
    expect(page.locator("[data-theirs=response]")).to_have_text("Trim the stems and keep it in water.")
    expect(page.locator("[data-mine=response]")).to_have_text("Stand the stems in a glass of water on the counter.")
    expect(page.locator(".diff ins").first).to_be_visible()
    assert Example.objects.get(pk=pair.pk).response == "Trim the stems and keep it in water."  # not overwritten
    page.get_by_role("button", name="Keep my version").click()
    expect(page.locator(".messages")).to_contain_text("Saved (version 3).")
    assert Example.objects.get(pk=pair.pk).response == "Stand the stems in a glass of water on the counter."


XSS = (
    "<script>window.__xss = 1; alert('script');</script>"
    "<img src=x onerror=\"window.__xss = 2; alert('img')\">"
    "[click me](javascript:window.__xss=3) {{ request.user }}"
)


def test_an_xss_payload_renders_as_text_and_no_script_runs(page, context, live_server, team, problems):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    hostile = example_create(
        dataset=team["dataset"],
        user=team["annotator"],
        prompt=f"Prompt {XSS}",
        response=f"Response {XSS}",
        tags=["<b>x</b>"],
    )
    example_update(example=hostile, user=team["annotator"], expected_version=1, response=f"Edited {XSS}")
    log_in(context, live_server, team["annotator"])
    for url in (f"/datasets/{team['dataset'].pk}/", f"/examples/{hostile.pk}/", f"/examples/{hostile.pk}/history/"):
        page.goto(url)
        expect(page.locator("main")).to_contain_text("<script>window.__xss = 1;")
    page.goto(f"/examples/{hostile.pk}/")
    expect(page.locator(".preview-box .markdown a", has_text="click me")).not_to_have_attribute(
        "href", re.compile("javascript")
    )
    page.locator("#f-response").fill(f"Typed {XSS}")  # the live preview, rendered by the server
    expect(page.locator(".preview-box .markdown")).to_contain_text("Typed <script>")
    page.locator(".preview-box .markdown a", has_text="click me").click()
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    # Leave the page without saving: the unsaved-changes question is not this test's business.
    page.evaluate("window.onbeforeunload = null")


def test_an_annotator_cannot_reach_a_lead_action_by_url(page, context, live_server, team):
    pair = team["pairs"][0]
    log_in(context, live_server, team["annotator"])
    page.goto(f"/examples/{pair.pk}/")
    expect(page.get_by_role("button", name=re.compile("^Approve"))).to_have_count(0)
    # A hand-made Approve button (as from the browser's developer tools) posts a real form: the server says no.
    page.evaluate(
        """() => {
            const button = document.createElement("button");
            button.name = "intent"; button.value = "approve"; button.id = "sneaky"; button.textContent = "Approve";
            document.querySelector("#editor").append(button);
        }"""
    )
    page.click("#sneaky")
    expect(page.locator("h1")).to_have_text("Your role does not allow this")
    assert Example.objects.get(pk=pair.pk).status == "draft"
    token = page.evaluate("document.querySelector('meta[name=csrf-token]').content")
    refused = page.request.post(
        f"/datasets/{team['dataset'].pk}/queue/review/", headers={"X-CSRFToken": token}, max_redirects=0
    )
    assert refused.status == 403


def test_unsaved_edits_survive_a_reload_and_leaving_asks_first(page, context, live_server, team):
    pair = team["pairs"][5]
    asked = []

    def on_dialog(dialog):
        asked.append(dialog.type)
        dialog.accept()

    page.on("dialog", on_dialog)
    log_in(context, live_server, team["annotator"])
    page.goto(f"/examples/{pair.pk}/")
    page.locator("#f-response").fill("Bake it, or heat-treat the flour at 75 °C first.")
    expect(page.locator("[data-save-state]")).to_have_text("Unsaved changes (kept in this browser)")
    page.wait_for_timeout(400)  # the draft is written 300 ms after the last keystroke
    page.reload()
    assert asked == ["beforeunload"]
    expect(page.locator("[data-draft-banner]")).to_be_visible()
    expect(page.locator("#f-response")).to_have_value(pair.response)
    page.get_by_role("button", name="Restore them").click()
    expect(page.locator("#f-response")).to_have_value("Bake it, or heat-treat the flour at 75 °C first.")
    page.keyboard.press("Control+s")
    expect(page.locator(".messages")).to_contain_text("Saved (version 2).")
    assert Example.objects.get(pk=pair.pk).response == "Bake it, or heat-treat the flour at 75 °C first."
    drafts = page.evaluate("Object.keys(localStorage).filter(key => key.startsWith('instructory:draft:'))")
    assert drafts == []
    page.reload()
    expect(page.locator("[data-draft-banner]")).to_be_hidden()


def test_rows_are_chosen_with_the_keyboard_for_a_bulk_action_and_help_is_one_key_away(page, context, live_server, team):
    log_in(context, live_server, team["annotator"])
    page.goto(f"/datasets/{team['dataset'].pk}/")
    page.wait_for_load_state()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    expect(page.locator("#shortcuts")).to_contain_text("Save & next")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts")).to_be_hidden()

    expect(page.locator("[data-bulk-apply]")).to_be_disabled()
    for key in ("j", "x", "j", "j", "x"):  # select the first and the third row
        page.keyboard.press(key)
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected")
    page.select_option("[data-bulk-action]", "add_tag")
    page.fill("[data-bulk-field=tag] input", "reviewed-by-annie")
    page.click("[data-bulk-apply]")
    expect(page.locator(".messages")).to_contain_text("2 pairs tagged.")
    first, third = team["pairs"][0], team["pairs"][2]
    tagged = [example.pk for example in Example.objects.order_by("id") if "reviewed-by-annie" in example.tags]
    assert tagged == [first.pk, third.pk]
