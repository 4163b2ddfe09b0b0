from rest_framework.routers import DefaultRouter

from .views import AuditLogViewSet, TeamViewSet, TokenViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", TokenViewSet, basename="token")
router.register("audit-log", AuditLogViewSet, basename="audit-log")
