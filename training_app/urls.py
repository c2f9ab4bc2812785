"""HTML pages of the training app (the `id` path converter is registered by project/urls.py)."""

from django.urls import path

from training_app.views import compare, judge, pages, preflight

urlpatterns = [
    path("", pages.run_dashboard, name="training-runs"),
    path("compare/", compare.run_compare, name="training-compare"),
    path("runs/new/", pages.run_new, name="training-run-new"),
    path("runs/new/check/", preflight.run_check, name="training-run-check"),
    path("runs/new/check/pair/", preflight.run_check_pair, name="training-run-check-pair"),
    path("runs/<id:pk>/", pages.run_detail, name="training-run"),
    path("runs/<id:pk>/live/", pages.run_live, name="training-run-live"),
    path("runs/<id:pk>/cancel/", pages.run_cancel, name="training-run-cancel"),
    path("runs/<id:pk>/export/merged/", pages.run_export_merged, name="training-run-export-merged"),
    path("runs/<id:pk>/send-failures/", pages.run_send_failures, name="training-run-send-failures"),
    path("runs/<id:pk>/playground/", pages.playground, name="training-playground"),
    path("runs/<id:pk>/judge/", judge.judge, name="training-judge"),
    path("runs/<id:pk>/judge/vote/", judge.judge_vote, name="training-judge-vote"),
    path("runs/<id:pk>/judge/ask/", judge.judge_ask, name="training-judge-ask"),
    path("runs/<id:pk>/judge/items/<slug:token>/", judge.judge_item, name="training-judge-item"),
    path("runs/<id:pk>/preference-pairs/", judge.judge_preference_pairs, name="training-preference-pairs"),
]
