"""Workspace API keys: admins make and revoke them; a request's bearer secret is looked up by its hash.

A key acts as its creator, limited to its workspace and capped at the lower of its own role and the creator's
role there now. So a key stops working when it is revoked, when its creator leaves the workspace (or their
account is removed or deactivated), and it can never do more than the person who made it may do today.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from datasets_app.curation.limits import texts_require
from datasets_app.curation.selectors import membership_get, role_require
from datasets_app.errors import NotAllowed
from datasets_app.models import ROLE_RANK, Role, Workspace
from openai_app.models import ApiKey, KeyRole

SECRET_PREFIX = "sk-inst-"  # noqa: S105 - the prefix every key starts with, not a secret
SHOWN_CHARS = len(SECRET_PREFIX) + 4  # what the key list shows of a secret
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class KeyAccess:
    """What a request with a valid key may do: act as `user` in `workspace` with `role`."""

    key: ApiKey
    user: AbstractBaseUser
    workspace: Workspace
    role: str

    def allows(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    def require(self, role: str) -> None:
        if not self.allows(role):
            raise NotAllowed(f"this needs an API key with the {role} role; this key acts as {self.role}")


# --- reads


def api_key_list(*, workspace: Workspace, by: AbstractBaseUser) -> QuerySet[ApiKey]:
    """Every key of the workspace, revoked ones too, newest first (admins only)."""
    role_require(user=by, workspace=workspace, role=Role.ADMIN)
    return workspace.api_keys.select_related("created_by", "revoked_by").order_by("-created_at", "-id")


def api_key_get(*, workspace: Workspace, by: AbstractBaseUser, pk: int) -> ApiKey:
    key = api_key_list(workspace=workspace, by=by).filter(pk=pk).first()
    if key is None:
        raise Http404("no such API key")
    return key


def key_access(*, secret: str) -> KeyAccess | None:
    """What the secret may do, or None when it opens nothing (unknown, revoked, its creator gone or left)."""
    key = ApiKey.objects.select_related("workspace", "created_by").filter(secret_hash=secret_hash(secret)).first()
    if key is None or key.revoked or key.created_by is None or not key.created_by.is_active:
        return None
    membership = membership_get(user=key.created_by, workspace=key.workspace)
    if membership is None:
        return None
    role = min(Role(key.role), Role(membership.role), key=ROLE_RANK.__getitem__)
    _touch(key)
    return KeyAccess(key=key, user=key.created_by, workspace=key.workspace, role=role.value)


def _touch(key: ApiKey) -> None:
    """Record use, with one conditional UPDATE at most once a minute (not a write per request)."""
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_EVERY)
    ApiKey.objects.filter(stale, pk=key.pk).update(last_used_at=now)


# --- writes


@transaction.atomic
def api_key_create(*, workspace: Workspace, by: AbstractBaseUser, name: str, role: str) -> tuple[ApiKey, str]:
    """Make a key (workspace admins); returns it with its secret, which is never stored and never shown again."""
    role_require(user=by, workspace=workspace, role=Role.ADMIN)
    name = name.strip()
    texts_require(name=name)
    if not name:
        raise ValidationError({"name": ["name the key, e.g. after the script or team that uses it"]})
    if role not in KeyRole.values:
        raise ValidationError({"role": [f"must be one of {', '.join(KeyRole.values)}"]})
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        role=role,
        created_by=by,
        secret_hash=secret_hash(secret),
        prefix=secret[:SHOWN_CHARS],
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey, by: AbstractBaseUser) -> ApiKey:
    """Revoke a key (workspace admins): it stops working at once. Revoking a revoked key changes nothing."""
    role_require(user=by, workspace=key.workspace, role=Role.ADMIN)
    now = timezone.now()
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=by, updated_at=now)
    key.refresh_from_db()
    return key
