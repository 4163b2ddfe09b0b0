from rest_framework.routers import SimpleRouter

from .views import IncidentViewSet, MaintenanceWindowViewSet, MonitorViewSet

router = SimpleRouter()
router.register("monitors", MonitorViewSet, basename="monitor")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("maintenance-windows", MaintenanceWindowViewSet, basename="maintenancewindow")
urlpatterns = router.urls
