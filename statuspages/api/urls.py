from rest_framework.routers import SimpleRouter

from .views import StatusPageViewSet, StatusReportViewSet

router = SimpleRouter()
router.register("status-pages", StatusPageViewSet, basename="statuspage")
router.register("status-reports", StatusReportViewSet, basename="statusreport")
urlpatterns = router.urls
