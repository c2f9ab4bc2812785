"""HTML views for annotators and leads: one module per page family (see datasets_app/urls.py)."""

from datasets_app.views.pages import healthz, home

__all__ = ["healthz", "home"]
