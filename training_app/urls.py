"""HTML pages of the training app (the `id` path converter is registered by project/urls.py)."""

from django.urls import path

from training_app.views import pages

urlpatterns = [
    path("", pages.run_dashboard, name="training-runs"),
    path("runs/new/", pages.run_new, name="training-run-new"),
    path("runs/<id:pk>/", pages.run_detail, name="training-run"),
    path("runs/<id:pk>/live/", pages.run_live, name="training-run-live"),
    path("runs/<id:pk>/cancel/", pages.run_cancel, name="training-run-cancel"),
    path("runs/<id:pk>/send-failures/", pages.run_send_failures, name="training-run-send-failures"),
    path("runs/<id:pk>/playground/", pages.playground, name="training-playground"),
]
