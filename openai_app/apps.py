from django.apps import AppConfig


class OpenAIAppConfig(AppConfig):
    name = "openai_app"
    verbose_name = "OpenAI-compatible API"

    def ready(self) -> None:
        from openai_app.jobs import on_run_finished
        from training_app.signals import run_finished

        run_finished.connect(on_run_finished, dispatch_uid="openai_app.jobs.on_run_finished")
