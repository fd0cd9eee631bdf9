"""Top-level URLs: clinician pages, the REST API with its schema, authentication and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("", include("cases.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("models/", include("inference.urls")),
    path("api/v1/", include("cases.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler400 = "leukemia_portal.errors.bad_request"
handler403 = "leukemia_portal.errors.permission_denied"
handler404 = "leukemia_portal.errors.page_not_found"
handler500 = "leukemia_portal.errors.server_error"
