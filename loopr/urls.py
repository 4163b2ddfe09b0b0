from django.contrib import admin
from django.urls import include, path, reverse_lazy
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from monitors.api.ping import ping
from monitors.api.urls import router as monitors_router
from monitors.views import acknowledge_by_link
from notifications.api.urls import router as notifications_router
from statuspages.api.urls import router as statuspages_router
from teams.api.urls import router as teams_router
from teams.views import accept_invitation
from workers.api.urls import router as workers_router

from .health import healthz
from .metrics import metrics

# One router so that /api/v1/ lists every resource of every app.
api = DefaultRouter()
for app_router in (monitors_router, notifications_router, workers_router, statuspages_router, teams_router):
    api.registry.extend(app_router.registry)

# The admin's "View site" link: the landing page (its branding is on LooprAdminSite).
admin.site.site_url = reverse_lazy("home")

urlpatterns = [
    path("", TemplateView.as_view(template_name="loopr/home.html"), name="home"),
    path("admin/", admin.site.urls),
    # Monitoring as code (configfile): before the router, whose resources it is not.
    path("api/v1/config/", include("configfile.api.urls")),
    path("api/v1/", include(api.urls)),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="loopr/redoc.html"), name="redoc"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("ack/<str:token>/", acknowledge_by_link, name="acknowledge"),
    # A team's invitation (its key is the secret; joining needs a login).
    path("invitations/<str:key>/", accept_invitation, name="invitation"),
    # Heartbeats' pings (no login: the uuid is the secret).
    path("ping/<uuid:key>", ping, name="ping"),
    path("ping/<uuid:key>/<str:action>", ping, name="ping-action"),
    # Public status pages (no login; a page not public is a 404 but to its owner).
    path("", include("statuspages.urls")),
]

handler400 = "loopr.errors.bad_request"
handler403 = "loopr.errors.permission_denied"
handler404 = "loopr.errors.page_not_found"
handler500 = "loopr.errors.server_error"
