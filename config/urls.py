from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from deployments import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("webhooks/", include("webhooks.urls")),
    path("api/", include("deployments.api.urls")),
    path("api/", include("reporting.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("reporting.dashboard_urls")),
    path("", include("deployments.dashboard.urls")),
]

handler400 = "deployments.dashboard.errors.bad_request"
handler403 = "deployments.dashboard.errors.permission_denied"
handler404 = "deployments.dashboard.errors.not_found"
handler500 = "deployments.dashboard.errors.server_error"
