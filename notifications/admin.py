from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from loopr.admin import (
    BigTableAdmin,
    CountedDeleteAdmin,
    DeclaredAdmin,
    OwnedByUserAdmin,
    OwnedModelAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    OwnedRelatedFieldListFilter,
    TeamOwnedForm,
)
from monitors.models import Monitor
from teams import audit
from .choices import ChannelKind, DeliveryStatus
from .models import Channel, DeliveryAttempt, EscalationPolicy, Notification
from .services import send_test
from .transports.email import prints_to_console

# Monitors named in the "no channel" warning; the rest are counted.
NAMED_SILENT_MONITORS = 5


def notification_count(**conditions) -> Coalesce:
    """Notifications of each channel matching `conditions`, as a subquery, so
    that several counts do not multiply each other's joins."""
    counted = (
        Notification.objects.filter(channel=OuterRef("pk"), **conditions)
        .order_by().values("channel").annotate(n=Count("pk")).values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class AlertReachWarnings:
    """On the pages where alerts are set up (monitors, channels), says what
    keeps them from reaching anyone: a new user's first monitor has no
    channel, and email goes only to the console until EMAIL_URL is set."""

    def changelist_view(self, request, extra_context=None):
        self.warn_about_alert_reach(request)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.warn_about_alert_reach(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def warn_about_alert_reach(self, request) -> None:
        # A POST redirects to a GET that warns again: once is enough.
        if request.method != "GET":
            return
        # Their teams' monitors (a superuser's too: not every monitor there is).
        silent = Monitor.objects.filter(team__memberships__user=request.user).silent()
        # The names shown, and a count only when there are more: never every name of a large fleet.
        names = list(silent.values_list("name", flat=True)[: NAMED_SILENT_MONITORS + 1])
        if names:
            total = silent.count() if len(names) > NAMED_SILENT_MONITORS else len(names)
            self.message_user(request, format_html(
                "No alert reaches anyone about {} of your monitors ({}): they have no enabled channel. "
                '<a href="{}">Add an email or webhook channel</a>, then choose it under Alerts on each monitor '
                "(a channel marked default is chosen for your new monitors).",
                total, _some(names, total), reverse("admin:notifications_channel_add"),
            ), messages.WARNING)
        if prints_to_console() and Channel.objects.visible_to(request.user).filter(
            kind=ChannelKind.EMAIL, enabled=True
        ).exists():
            self.message_user(request, "Email is only printed to the console of the worker, not sent: EMAIL_URL "
                              "is the console backend (the default). Set EMAIL_URL to your SMTP server, e.g. "
                              "smtp+tls://user:password@smtp.example.com:587.", messages.WARNING)


def _some(names: list[str], total: int) -> str:
    shown = ", ".join(names[:NAMED_SILENT_MONITORS])
    more = total - NAMED_SILENT_MONITORS
    return f"{shown} and {more} more" if more > 0 else shown


class ChannelForm(TeamOwnedForm):
    """The secret is write-only here too: typed in, never shown; left blank,
    the stored one stays. (A webhook's signing secret is made by Loopr and
    shown once, in a message.)"""

    secret = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="The kind's token or key (see the README's table of kinds). Never shown; leave blank to keep "
                  "the stored one. Webhooks: leave blank, Loopr makes their signing secret.",
    )

    class Meta:
        model = Channel
        fields = "__all__"

    def clean_secret(self) -> str:
        typed = self.cleaned_data.get("secret", "")
        if self.instance.pk and not typed:
            return self.instance.secret
        return typed


@admin.register(Channel)
class ChannelAdmin(AlertReachWarnings, CountedDeleteAdmin, DeclaredAdmin, OwnedModelAdmin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "target", "team", "owner", "is_default", "enabled", "monitor_count", "sent", "failed",
                    "created_at"]
    list_filter = ["kind", "enabled", "is_default"]
    search_fields = ["name", "target", "owner__username"]
    readonly_fields = ["created_at"]
    actions = ["send_test_message", "rotate_secret"]
    # Every alert ever sent to the channel goes with it.
    delete_counts = (Notification,)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("team", "owner").annotate(
            monitor_total=Count("monitors", distinct=True),
            sent_total=notification_count(status=DeliveryStatus.SENT),
            failed_total=notification_count(status=DeliveryStatus.FAILED),
        )

    @admin.display(description="monitors", ordering="monitor_total")
    def monitor_count(self, obj: Channel) -> int:
        return obj.monitor_total

    @admin.display(description="sent", ordering="sent_total")
    def sent(self, obj: Channel) -> int:
        return obj.sent_total

    @admin.display(description="failed", ordering="failed_total")
    def failed(self, obj: Channel) -> int:
        return obj.failed_total

    def save_model(self, request, obj: Channel, form, change: bool) -> None:
        if not change:
            obj.new_secret()
        super().save_model(request, obj, form, change)
        if not change and obj.is_signed:  # a token the user typed in is never shown back
            self._show_secret(request, obj)

    @admin.action(description="Send a test message")
    def send_test_message(self, request, queryset):
        for channel in queryset:
            _, attempt = send_test(channel)
            if attempt is None:
                self.message_user(request, f"{channel}: a worker is already sending the test.", messages.WARNING)
            elif attempt.ok:
                self.message_user(request, f"{channel}: test message sent ({self._outcome(attempt)}).",
                                  messages.SUCCESS)
            else:
                self.message_user(request, f"{channel}: test message failed: {self._outcome(attempt)}",
                                  messages.ERROR)

    @admin.action(description="Rotate the signing secret (webhooks)")
    def rotate_secret(self, request, queryset):
        for channel in queryset.filter(kind=ChannelKind.WEBHOOK):
            with audit.change(request, channel, "rotate-secret"):
                channel.rotate_secret()
            self._show_secret(request, channel)
        skipped = queryset.exclude(kind=ChannelKind.WEBHOOK).count()
        if skipped:
            self.message_user(request, f"Skipped {skipped} channel(s) that are not webhooks.", messages.WARNING)

    def _show_secret(self, request, channel: Channel) -> None:
        # The only time anyone sees it: the form never shows it again.
        self.message_user(request, f"Signing secret of {channel}, shown only now: {channel.secret}",
                          messages.WARNING)

    @staticmethod
    def _outcome(attempt: DeliveryAttempt) -> str:
        parts = [str(attempt.status_code) if attempt.status_code else "", attempt.error or attempt.reply]
        return " ".join(p for p in parts if p)[:300]


class DeliveryAttemptInline(ReadOnlyInline):
    model = DeliveryAttempt
    fields = ["at", "outcome", "status_code", "reply", "error", "duration_ms"]
    readonly_fields = fields


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin, BigTableAdmin, OwnedByUserAdmin, admin.ModelAdmin):
    """The delivery log: who was told about what, when, and what came back."""

    list_display = ["created_at", "event", "channel", "monitor", "incident", "status", "attempts", "sent_at",
                    "short_error"]
    list_filter = ["status", "event", "channel__kind", ("channel", OwnedRelatedFieldListFilter)]
    search_fields = ["channel__name", "channel__target", "monitor__name"]
    list_select_related = ["channel", "monitor", "incident__monitor"]
    readonly_fields = ["id", "channel", "monitor", "incident", "event", "status", "attempts", "created_at",
                       "sent_at", "next_attempt_at", "leased_until", "last_error", "context"]
    fields = readonly_fields
    inlines = [DeliveryAttemptInline]
    sortable_by = ["created_at"]  # newest first (the default order, indexed)

    def lookup_allowed(self, lookup, value, request=None):
        # Linked from an incident or a monitor without list filters listing them all.
        return lookup in {"incident__id__exact", "monitor__id__exact"} or super().lookup_allowed(
            lookup, value, request
        )

    @admin.display(description="last error")
    def short_error(self, obj: Notification) -> str:
        return obj.last_error[:120]



@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(DeclaredAdmin, OwnedModelAdmin, admin.ModelAdmin):
    list_display = ["name", "step_count", "repeat_minutes", "team", "owner", "created_at"]
    search_fields = ["name", "owner__username"]
    readonly_fields = ["created_at"]

    @admin.display(description="steps")
    def step_count(self, obj: EscalationPolicy) -> int:
        return len(obj.steps or [])
