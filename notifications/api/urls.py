from rest_framework.routers import SimpleRouter

from .views import ChannelViewSet, EscalationPolicyViewSet, NotificationViewSet

router = SimpleRouter()
router.register("channels", ChannelViewSet, basename="channel")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("escalation-policies", EscalationPolicyViewSet, basename="escalationpolicy")
urlpatterns = router.urls
