from django.core.management.base import BaseCommand

from datasets_app.demo import seed_demo


class Command(BaseCommand):
    help = "Create the demo users, workspace and datasets (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        created = seed_demo()
        for name, count in created.items():
            self.stdout.write(f"{name}: {count} new pairs")
