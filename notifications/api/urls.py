from rest_framework.routers import SimpleRouter

from .views import ChannelViewSet, NotificationViewSet

router = SimpleRouter()
router.register("channels", ChannelViewSet, basename="channel")
router.register("notifications", NotificationViewSet, basename="notification")
urlpatterns = router.urls
