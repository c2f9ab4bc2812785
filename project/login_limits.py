"""Failed-login limits on every login path (browser, admin, API token), on top of django-axes.

Every path calls authenticate(); LoginLimitBackend, first in AUTHENTICATION_BACKENDS, refuses a locked account or
address before a password is checked, and Axes records each failure in the database (shared by all web servers).
This module gives Axes what it lacks here:
- the client's address, trusting X-Forwarded-For only as far as TRUSTED_PROXY_COUNT proxies (the rule DRF applies
  to its throttles with NUM_PROXIES);
- two limits, per address and per account, where Axes has one;
- Django's request where DRF hands Axes its wrapper, so a lockout met inside ObtainAuthToken reaches AxesMiddleware;
- the lockout answer: 429 saying when to try again, JSON with `detail` for the API, a page for the browser and admin.
"""

import ipaddress
import math
from datetime import datetime

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework.response import Response

USERNAME_MAX_LENGTH = AccessAttempt._meta.get_field("username").max_length


def _address(text: str | None) -> str | None:
    """A valid IP address in canonical form, or None (the attempt row's column only takes addresses)."""
    try:
        return str(ipaddress.ip_address((text or "").strip().split("%")[0]))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind N trusted proxies the Nth X-Forwarded-For entry from the right.

    Entries further left come from the client itself and are ignored, so a new header per attempt changes nothing.
    """
    remote = _address(request.META.get("REMOTE_ADDR"))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if settings.TRUSTED_PROXY_COUNT <= 0 or not forwarded:
        return remote
    entries = forwarded.split(",")
    # A proxy that forwards no address counts against the proxy's own.
    return _address(entries[-min(settings.TRUSTED_PROXY_COUNT, len(entries))]) or remote


def client_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username tried, cut to the column's length: the API takes any length, and the failure must still count."""
    username = credentials.get(get_user_model().USERNAME_FIELD) if credentials else request.POST.get("username")
    return None if username is None else str(username)[:USERNAME_MAX_LENGTH]


def django_request(request):  # type: ignore[no-untyped-def]
    """Django's HttpRequest under DRF's wrapper: Axes marks the lockout on it, where AxesMiddleware looks."""
    return getattr(request, "_request", request)


class LoginLimitBackend(AxesStandaloneBackend):
    """Refuses a login while its account or address is locked out, before any password is checked."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        return super().authenticate(django_request(request), username, password, **kwargs)


class LoginLimitHandler(AxesDatabaseHandler):
    """Axes' database handler with two limits: failures per address and failures per account."""

    def _limits_reached(self, request: HttpRequest, credentials: dict | None) -> list[QuerySet]:
        """The recent failures (of this address, of this account) that reached their limit."""
        recent = AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request))
        counted = [
            (recent.filter(ip_address=request.axes_ip_address), settings.LOGIN_LOCKOUT_ADDRESS_FAILURES),
            (
                recent.filter(username=get_client_username(request, credentials)),
                settings.LOGIN_LOCKOUT_ACCOUNT_FAILURES,
            ),
        ]
        return [
            attempts
            for attempts, limit in counted
            if (attempts.aggregate(failures=Sum("failures_since_start"))["failures"] or 0) >= limit
        ]

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        return settings.AXES_LOCK_OUT_AT_FAILURE and bool(self._limits_reached(request, credentials))

    def locked_until(self, request: HttpRequest, credentials: dict | None = None) -> datetime | None:
        """When the lock on this address or account ends at the latest; None if there is none."""
        cool_off = get_cool_off(request)
        ends = [
            attempts.aggregate(last=Max("attempt_time"))["last"] + cool_off
            for attempts in self._limits_reached(request, credentials)
        ]
        return max(ends, default=None)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        request = django_request(request)
        if request is not None:
            AxesProxyHandler.update_request(request)
        super().user_login_failed(sender, credentials, request, **kwargs)
        # Axes locks at its one limit (the larger of the two); the other may be reached first.
        if request is not None and not request.axes_locked_out and self.is_locked(request, credentials):
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=request.axes_ip_address,
            )


def _in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minutes"


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """429 with when to try again: JSON `detail` where the view answered as the API, a page anywhere else."""
    now = timezone.now()
    handler = AxesProxyHandler.get_implementation()
    until = handler.locked_until(request, credentials) if isinstance(handler, LoginLimitHandler) else None
    until = max(until or now, now)
    seconds = max(1, math.ceil((until - now).total_seconds()))
    detail = f"Too many failed login attempts. Try again in {_in_words(seconds)}."
    if isinstance(original_response, Response):
        response: HttpResponse = JsonResponse({"detail": detail}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"detail": detail, "until": until}, status=429)
    response["Retry-After"] = str(seconds)
    return response
