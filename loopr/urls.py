from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from monitors.api.urls import router as monitors_router
from notifications.api.urls import router as notifications_router
from workers.api.urls import router as workers_router

from .health import healthz

# One router so that /api/v1/ lists every resource of every app.
api = DefaultRouter()
for app_router in (monitors_router, notifications_router, workers_router):
    api.registry.extend(app_router.registry)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api.urls)),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
]
