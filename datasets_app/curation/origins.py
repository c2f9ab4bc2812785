"""Where a pair came from, told by the app that made it (e.g. a run's failed evaluated prompt), for the editor.

datasets_app knows no such app: settings.PAIR_ORIGINS names functions `(*, example) -> Origin | None`, imported
by name like the generator backends, so the editor can show the story of a pair without depending on its maker.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from datasets_app.models import Example


@dataclass(frozen=True)
class Origin:
    title: str  # "From run 12: a prompt the fine-tuned model failed"
    url: str  # where the origin is shown in full ("" for none)
    facts: tuple[tuple[str, str], ...]  # (label, text) in order; the page escapes both


def example_origins(*, example: Example) -> list[Origin]:
    """What every configured provider knows of where this pair came from (usually nothing: one query each)."""
    found = (import_string(path)(example=example) for path in settings.PAIR_ORIGINS)
    return [origin for origin in found if origin is not None]
