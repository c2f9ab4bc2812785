"""Joining a workspace in a real browser: an admin invites from the members page, the invited user accepts
on their home page and only then sees the workspace."""

import pytest
from playwright.sync_api import expect

from datasets_app.models import Membership
from tests.browser.conftest import log_in, screenshot
from tests.factories import DatasetFactory, MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_invites_and_the_invited_user_accepts_on_the_home_page(browser, page, context, live_server):
    workspace = WorkspaceFactory(name="Acme Kitchen")
    DatasetFactory(workspace=workspace, name="Support assistant guardrails")
    admin, nina = UserFactory(username="ada"), UserFactory(username="nina")
    MembershipFactory(workspace=workspace, user=admin, role="admin")

    log_in(context, live_server, admin)
    page.goto("/")
    page.get_by_role("link", name="Members").click()
    form = page.locator("[data-invite-form]")
    form.get_by_label("Username").fill("nina")
    form.get_by_label("Role").select_option("lead")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator(".messages")).to_contain_text("Invited nina as lead. They become a member once they accept.")
    expect(page.locator("[data-invitation=nina]")).to_contain_text("Lead")
    screenshot(page, "members-page")
    assert not Membership.objects.filter(user=nina).exists()

    invited = browser.new_context(base_url=live_server.url)
    try:
        log_in(invited, live_server, nina)
        home = invited.new_page()
        home.goto("/")
        expect(home.locator("[data-invitations]")).to_contain_text("Acme Kitchen as lead, from ada")
        expect(home.get_by_role("link", name="Support assistant guardrails")).to_have_count(0)
        home.get_by_role("button", name="Accept").click()
        expect(home.locator(".messages")).to_contain_text("You joined Acme Kitchen as lead.")
        expect(home.get_by_role("link", name="Support assistant guardrails")).to_be_visible()
    finally:
        invited.close()
    assert Membership.objects.get(user=nina).role == "lead"

    page.reload()
    expect(page.locator("[data-member=nina]")).to_contain_text("Lead")
    expect(page.locator("[data-pending]")).to_contain_text("No pending invitations.")
