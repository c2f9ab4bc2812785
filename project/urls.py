from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from datasets_app import views as dataset_views

urlpatterns = [
    path("", dataset_views.home, name="home"),
    path("healthz", dataset_views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
