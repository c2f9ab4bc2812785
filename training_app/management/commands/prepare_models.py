"""Build this machine's cache of the registered base models (safetensors + tokenizer) once."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Convert the registered base models into the local safetensors cache (INSTRUCTORY_MODEL_CACHE)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("names", nargs="*", help="Registry names (default: all).")

    def handle(self, *args: object, **options: list[str]) -> None:
        from training_app.execution import base_model_dir

        for name in options["names"] or list(settings.BASE_MODELS):
            if name not in settings.BASE_MODELS:
                self.stderr.write(f"unknown base model {name!r}; known: {', '.join(settings.BASE_MODELS)}")
                continue
            start = time.monotonic()
            directory = base_model_dir(name)
            self.stdout.write(f"{name}: {directory} ({time.monotonic() - start:.1f} s)")
