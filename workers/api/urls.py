from rest_framework.routers import SimpleRouter

from .views import RegionViewSet, WorkerNodeViewSet

router = SimpleRouter()
router.register("regions", RegionViewSet, basename="region")
router.register("nodes", WorkerNodeViewSet, basename="node")
urlpatterns = router.urls
