"""Failed logins are limited per account and per address on every login path, and the limits cannot be dodged."""

import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"
ATTACKER = "198.51.100.66"
ELSEWHERE = "192.0.2.10"
PROXY = "10.0.0.2"


@dataclass(frozen=True)
class LoginPath:
    """One way to log in, tried the way an attacker would: a fresh client (no cookies) per attempt."""

    name: str

    def attempt(self, username: str, password: str, *, address: str = ATTACKER, forwarded_for: str | None = None):
        headers = {"REMOTE_ADDR": address}
        if forwarded_for is not None:
            headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
        credentials = {"username": username, "password": password}
        if self.name == "api":
            return APIClient().post("/api/auth/token/", credentials, format="json", **headers)
        if self.name == "admin":
            return Client().post("/admin/login/?next=/admin/", {**credentials, "next": "/admin/"}, **headers)
        return Client().post(reverse("login"), credentials, **headers)

    def logged_in(self, response) -> bool:
        if self.name == "api":
            return response.status_code == 200 and "token" in response.json()
        home = "/admin/" if self.name == "admin" else reverse("home")
        return response.status_code == 302 and response["Location"] == home

    def assert_refused_plainly(self, response) -> None:
        """The ordinary wrong-password answer, no lockout yet."""
        if self.name == "api":
            assert response.status_code == 400
            assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
        else:
            assert response.status_code == 200
            wording = "for a staff account" if self.name == "admin" else "didn't match"
            assert wording in response.content.decode()

    def assert_locked_out(self, response, *, wait: str = "15 minutes") -> None:
        assert response.status_code == 429
        assert int(response["Retry-After"]) > 0
        message = f"Too many failed login attempts. Try again in {wait}."
        if self.name == "api":
            assert response.json() == {"detail": message}
        else:
            page = response.content.decode()
            assert "<h1>Too many failed logins</h1>" in page
            assert message in page
        assert not self.logged_in(response)


PATHS = [LoginPath("browser"), LoginPath("admin"), LoginPath("api")]


@pytest.fixture(params=PATHS, ids=lambda path: path.name)
def path(request):
    return request.param


@pytest.fixture
def annie(db):
    return UserFactory(username="annie", is_staff=True)


@pytest.fixture
def leo(db):
    return UserFactory(username="leo", is_staff=True)


@pytest.fixture
def behind_one_proxy(settings):
    """The deployment's TRUSTED_PROXY_COUNT=1, as settings.py derives it for Axes and for DRF's throttles."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def lock_account(path: LoginPath, username: str, settings, **where) -> None:
    """Wrong passwords up to the account limit; the last one already gets the lockout answer."""
    for _ in range(settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES - 1):
        path.assert_refused_plainly(path.attempt(username, "wrong-guess", **where))
    path.assert_locked_out(path.attempt(username, "wrong-guess", **where))


def lock_address(path: LoginPath, settings, *, forwarded_for, **where) -> None:
    """Failures up to the address limit, each for another account (so no account limit is met) and each with the
    X-Forwarded-For that forwarded_for(attempt) gives."""
    limit = settings.LOGIN_LOCKOUT_ADDRESS_FAILURES
    for attempt in range(limit - 1):
        path.assert_refused_plainly(
            path.attempt(f"someone{attempt}", "guess", forwarded_for=forwarded_for(attempt), **where)
        )
    path.assert_locked_out(path.attempt(f"someone{limit}", "guess", forwarded_for=forwarded_for(limit), **where))


def test_a_few_mistakes_still_let_the_right_password_in(path, annie, settings):
    for _ in range(settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES - 1):
        path.assert_refused_plainly(path.attempt("annie", "wrong-guess"))
    assert path.logged_in(path.attempt("annie", PASSWORD))


def test_wrong_passwords_then_the_right_one_is_refused_with_the_lockout_answer(path, annie, settings):
    lock_account(path, "annie", settings)
    path.assert_locked_out(path.attempt("annie", PASSWORD))
    # the account is locked, not just the address: the right password from elsewhere is refused too
    path.assert_locked_out(path.attempt("annie", PASSWORD, address=ELSEWHERE))


def test_a_new_forwarded_address_per_attempt_does_not_escape_the_address_limit(path, annie, settings):
    assert settings.TRUSTED_PROXY_COUNT == 0
    lock_address(path, settings, forwarded_for=lambda attempt: f"203.0.113.{attempt}")
    path.assert_locked_out(path.attempt("annie", PASSWORD, forwarded_for="203.0.113.250"))
    # annie herself is not locked: from her own address she gets in
    assert path.logged_in(path.attempt("annie", PASSWORD, address=ELSEWHERE))


def test_behind_one_trusted_proxy_each_forwarded_client_is_counted_apart(path, annie, settings, behind_one_proxy):
    # every request comes through the proxy, which appends the attacker's address to whatever the attacker sent
    lock_address(path, settings, address=PROXY, forwarded_for=lambda attempt: f"192.0.2.{attempt}, {ATTACKER}")
    path.assert_locked_out(path.attempt("annie", PASSWORD, address=PROXY, forwarded_for=f"192.0.2.99, {ATTACKER}"))
    assert path.logged_in(path.attempt("annie", PASSWORD, address=PROXY, forwarded_for=ELSEWHERE))


def test_the_lock_ends_by_itself_after_the_cool_off(path, annie, settings):
    lock_account(path, "annie", settings)
    path.assert_locked_out(path.attempt("annie", PASSWORD))
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    time.sleep(1.5)
    assert path.logged_in(path.attempt("annie", PASSWORD))


def test_failures_during_a_lockout_do_not_extend_it(path, annie, settings):
    lock_account(path, "annie", settings)
    time.sleep(1.5)
    # an attacker keeps trying during the lockout, long after the failure that locked the account
    path.assert_locked_out(path.attempt("annie", "wrong-guess"))
    # with a one-second cool-off the lock ended one second after the locking failure, whatever came later
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    assert path.logged_in(path.attempt("annie", PASSWORD))


def test_another_account_is_unaffected_from_another_address_and_from_the_same_one(path, annie, leo, settings):
    assert settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES < settings.LOGIN_LOCKOUT_ADDRESS_FAILURES
    lock_account(path, "annie", settings)
    assert path.logged_in(path.attempt("leo", PASSWORD, address=ELSEWHERE))
    assert path.logged_in(path.attempt("leo", PASSWORD))  # same address, still under the address limit


def test_axes_reset_unlocks_at_once(path, annie, settings):
    lock_account(path, "annie", settings)
    call_command("axes_reset")
    assert path.logged_in(path.attempt("annie", PASSWORD))


def test_the_login_forms_keep_csrf_protection(annie):
    for url in (reverse("login"), "/admin/login/"):
        response = Client(enforce_csrf_checks=True).post(url, {"username": "annie", "password": PASSWORD})
        assert response.status_code == 403, url


def test_odd_input_to_the_token_endpoint_is_refused_plainly_not_a_server_error(annie, behind_one_proxy):
    api = LoginPath("api")
    # a forwarded value that is no address, and a username longer than any account's
    api.assert_refused_plainly(api.attempt("annie", "wrong-guess", address=PROXY, forwarded_for="not-an-address"))
    api.assert_refused_plainly(api.attempt("a" * 1000, "wrong-guess", address=PROXY, forwarded_for=ATTACKER))
    assert api.logged_in(api.attempt("annie", PASSWORD, address=PROXY, forwarded_for=ELSEWHERE))


def throttle_allows(settings) -> int:
    return int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"].split("/")[0])


def test_the_token_throttle_is_not_dodged_by_a_new_forwarded_header(settings):
    # requests without credentials check no password, so only the throttle counts them
    api = APIClient()
    for attempt in range(throttle_allows(settings)):
        response = api.post("/api/auth/token/", {}, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}")
        assert response.status_code == 400
    response = api.post("/api/auth/token/", {}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.250")
    assert response.status_code == 429
    assert "throttled" in response.json()["detail"]


def test_behind_one_trusted_proxy_the_token_throttle_counts_each_forwarded_client(settings, behind_one_proxy):
    api = APIClient(REMOTE_ADDR=PROXY)
    for attempt in range(throttle_allows(settings)):
        api.post("/api/auth/token/", {}, format="json", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}, {ATTACKER}")
    throttled = api.post("/api/auth/token/", {}, format="json", HTTP_X_FORWARDED_FOR=ATTACKER)
    assert throttled.status_code == 429
    other = api.post("/api/auth/token/", {}, format="json", HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert other.status_code == 400
