"""Admin pieces shared by every app's ModelAdmins (the project is not an
installed app: Django's autodiscovery never imports this module by itself)."""

from __future__ import annotations

import json
from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import NestedObjects, quote
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections, models, router, transaction
from django.db.models.deletion import get_candidate_relations_to_delete
from django.urls import NoReverseMatch, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst

from teams import audit
from teams.choices import Role
from teams.models import Membership, Team

from .querysets import team_id_of


class AuditedAdmin:
    """Every change made in the admin to a team's objects writes the entry
    the API writes for it (teams/audit.py), in the same transaction: adding
    (`create`), changing (`update`, or `pause`/`resume`, with the fields that
    changed, many-to-many ones and inline parts included) and deleting, one
    object or selected ones. The admin's add, change and delete views run in
    a transaction already; its actions do not, so each action that changes
    objects wraps each change in `audit.change`."""

    def save_model(self, request, obj, form, change: bool) -> None:
        if change:
            # As stored, before the form's values: the form has already put them on `obj`.
            obj._audit_before = audit.snapshot(type(obj)._base_manager.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    # Django calls these after the object, its many-to-many fields and its
    # inlines are saved (and whatever save_related did after them), inside
    # the view's transaction.
    def log_addition(self, request, obj, message):
        audit.record(request, "create", obj)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        before = getattr(obj, "_audit_before", None)
        changes = audit.diff(before, audit.snapshot(obj)) if before is not None else {}
        if changes:  # saving a page without changing anything changes nothing
            audit.record(request, audit.update_action(obj, changes), obj, changes)
        return super().log_change(request, obj, message)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic(savepoint=False):
            audit.record(request, "delete", obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            audit.record_many(request, "delete", list(queryset))
            super().delete_queryset(request, queryset)


class OwnedByUserAdmin(AuditedAdmin):
    """The admin shows a staff user only what the API would show them (the
    model's `visible_to(user)`: their teams' objects); superusers see
    everything. The same holds for what its forms offer to pick (a monitor's
    channels, a window's monitors), and a team is offered only where the
    user may write (editor or above)."""

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def get_field_queryset(self, db, db_field, request):
        queryset = super().get_field_queryset(db, db_field, request)
        related = db_field.remote_field.model._default_manager.using(db)
        if related.model is Team:
            return (queryset if queryset is not None else related.all()).of(request.user, Role.EDITOR)
        if not hasattr(related, "visible_to"):
            return queryset
        return (queryset if queryset is not None else related.all()).visible_to(request.user)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._may_write(request, obj)

    @staticmethod
    def _may_write(request, obj) -> bool:
        # A viewer of a team sees its objects here, read-only.
        if obj is None or request.user.is_superuser:
            return True
        return Membership.objects.filter(team_id=team_id_of(obj), user=request.user,
                                         role__in=Role.at_least(Role.EDITOR)).exists()


class TeamOwnedForm(forms.ModelForm):
    """A team-owned object's form: left empty, the team is the personal
    team of its owner (the creator: whoever adds it, unless a superuser
    picks another), as in the API."""

    creator = None  # set per request by OwnedModelAdmin.get_form

    def clean(self) -> dict:
        data = super().clean()
        if "team" in self.fields and data.get("team") is None and not self.instance.team_id:
            owner = data.get("owner") or self.creator
            if owner is not None:
                data["team"] = Team.objects.personal_for(owner)
        return data


class OwnedModelAdmin(OwnedByUserAdmin):
    """For a team-owned model: a new object is created by whoever adds it
    (its `owner`), in their personal team unless they pick another team
    where they are an editor. Only a superuser sees or changes the creator."""

    form = TeamOwnedForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a class made for this request
        form.creator = request.user
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "team" and field is not None:
            field.required = False
            field.help_text = "Empty: the personal team of its creator. Its members see it."
        return field

    def get_changeform_initial_data(self, request) -> dict:
        return {"team": Team.objects.personal_for(request.user).pk, **super().get_changeform_initial_data(request)}

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [(name, {**options, "fields": _without_owner(options["fields"])}) for name, options in fieldsets]

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.is_superuser else [name for name in shown if name != "owner"]

    def save_model(self, request, obj, form, change: bool) -> None:
        if not change and (obj.owner_id is None or not request.user.is_superuser):
            obj.owner = request.user
        super().save_model(request, obj, form, change)


def _without_owner(fields) -> list:
    # A fieldset's entry is a field name or a tuple of names shown on one line.
    kept = []
    for entry in fields:
        if isinstance(entry, (list, tuple)):
            entry = tuple(name for name in entry if name != "owner")
            if entry:
                kept.append(entry)
        elif entry != "owner":
            kept.append(entry)
    return kept


class SlugFreeInTeam(forms.ModelForm):
    """A declarable object moved to another team keeps its slug (a file
    names it by it): refused, naming `team`, where the slug is taken."""

    def clean(self) -> dict:
        data = super().clean()
        team, obj = data.get("team"), self.instance
        if obj.pk and obj.slug and team is not None and team.pk != obj.team_id and obj.slug_taken(team.pk, obj.slug):
            self.add_error("team", f"Another {obj._meta.verbose_name} of {team} has the slug {obj.slug!r} "
                                   "(its name in a loopr.yaml): rename that one first.")
        return data


class DeclaredAdmin:
    """For a model a loopr.yaml can declare (loopr/declarative.py): its slug
    and whether a file manages it are shown, not edited here (a slug is made
    from the name; a file or the API sets another). Editing a managed object
    is allowed, with a warning: the next plan shows the edit as drift, and
    the next apply puts the file's values back."""

    MANAGED_WARNING = ("“{}” is managed by a loopr.yaml: changes made here show as drift in the next plan, and "
                       "the next apply of the file puts its values back. Change the file instead.")

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "slug", "managed"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (SlugFreeInTeam, form), {})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            obj = self.get_object(request, object_id)
            if obj is not None and obj.managed:
                self.message_user(request, self.MANAGED_WARNING.format(obj), messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and obj.managed and form.has_changed():
            self.message_user(request, self.MANAGED_WARNING.format(obj), messages.WARNING)


class ReadOnlyAdmin:
    """For what Loopr records by itself (results, incidents, the delivery
    log, nodes): shown, never added or edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdmin, admin.TabularInline):
    extra = 0
    can_delete = False


class EstimatedCountPaginator(Paginator):
    """Pages whose total is counted exactly while it is small and estimated
    by PostgreSQL's planner beyond: `COUNT(*)` over ten million results
    takes longer than the rest of the page together, on every page.

    The exact count stops at EXACT_UP_TO rows (a count of a LIMITed
    subquery), so even a filter that matches millions costs a bounded scan;
    the estimate is the plan's row count for the very query (the table's
    statistics, through whatever filter and partitions it has). An estimate
    can be off either way: the last pages may come out empty, or the pages
    beyond it are reached with `?p=`, filters and search."""

    EXACT_UP_TO = 1000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()
        counted = queryset[: self.EXACT_UP_TO + 1].count()
        if counted <= self.EXACT_UP_TO:
            return counted
        if connections[queryset.db].vendor != "postgresql":
            return queryset.count()  # the SQLite quick start: small, and no plan to read
        return max(counted, planned_rows(queryset))


def planned_rows(queryset: models.QuerySet) -> int:
    """The rows PostgreSQL's planner expects `queryset` to return (EXPLAIN: planned, not run)."""
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class BigTableAdmin:
    """A changelist over a table of millions of rows: its total estimated
    (EstimatedCountPaginator), never the whole table's count next to a
    filtered one, and sorted only in orders an index serves (`sortable_by`,
    set by each admin), so that a page is an index scan that stops after
    its rows."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False


class OwnedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A sidebar filter by a related object that lists only the objects the
    user may see (`visible_to`): a staff user's teams' monitors, not everyone's."""

    # With more than this, listing them all would make every page as long
    # as a hundred thousand monitors: the sidebar then lists only the one
    # chosen (from its own page, or `?<field>__id__exact=`), or none.
    MAX_CHOICES = 100

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin) or ()
        visible = field.remote_field.model._default_manager.visible_to(request.user)
        if ordering:
            visible = visible.order_by(*ordering)
        choices = [(obj.pk, str(obj)) for obj in visible[: self.MAX_CHOICES + 1]]
        if len(choices) <= self.MAX_CHOICES:
            return choices
        try:
            return [(obj.pk, str(obj)) for obj in visible.filter(pk__in=self.lookup_val or [])]
        except (ValueError, ValidationError):
            return []  # not an id: the changelist says the filter is wrong

    def has_output(self) -> bool:
        # Shown while applied, even with only the chosen object listed, so that it can be cleared.
        return bool(self.lookup_val) or super().has_output()


class _CountingCollector(NestedObjects):
    """The admin's collector of what a delete takes along, except that rows
    of the `counted` models are left as querysets (to be counted), never
    loaded one by one to be listed."""

    def __init__(self, *args, counted: tuple[type[models.Model], ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.counted = counted

    def can_fast_delete(self, objs, from_field=None):
        # Asked with a related model and the foreign key that cascades to it.
        return (from_field is not None and from_field.remote_field.on_delete is models.CASCADE
                and objs in self.counted)

    def counts(self) -> Counter:
        totals: Counter = Counter()
        for queryset in self.fast_deletes:
            _count_cascade(queryset, totals)
        return totals


def _count_cascade(queryset: models.QuerySet, totals: Counter) -> None:
    """Rows of `queryset` and, recursively, the rows that cascade from them."""
    totals[queryset.model] += queryset.count()
    for relation in get_candidate_relations_to_delete(queryset.model._meta):
        if relation.field.remote_field.on_delete is models.CASCADE:
            related = relation.related_model._base_manager.using(queryset.db)
            _count_cascade(related.filter(**{f"{relation.field.name}__in": queryset.values("pk")}), totals)


class CountedDeleteAdmin:
    """The delete confirmation (one object or "delete selected") counts the
    rows of `delete_counts` instead of listing each: a monitor's results
    over 90 days are a quarter of a million lines, and loading them all
    would take longer than anyone waits for the page."""

    delete_counts: tuple[type[models.Model], ...] = ()

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        if not objs:
            return [], {}, set(), []
        site = self.admin_site
        collector = _CountingCollector(using=router.db_for_write(type(objs[0])), origin=objs,
                                       counted=self.delete_counts)
        collector.collect(objs)
        perms_needed: set = set()

        def listed(obj) -> str:
            # As django.contrib.admin.utils.get_deleted_objects formats each row.
            opts = obj._meta
            if not site.is_registered(type(obj)):
                return f"{capfirst(opts.verbose_name)}: {obj}"
            if not site.get_model_admin(type(obj)).has_delete_permission(request, obj):
                perms_needed.add(opts.verbose_name)
            try:
                url = reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])
            except NoReverseMatch:
                return f"{capfirst(opts.verbose_name)}: {obj}"
            return format_html('{}: <a href="{}">{}</a>', capfirst(opts.verbose_name), url, obj)

        to_delete = collector.nested(listed)
        protected = [listed(obj) for obj in collector.protected]
        model_count = {model._meta.verbose_name_plural: len(rows) for model, rows in collector.model_objs.items()}
        for model, count in collector.counts().items():
            if not count:
                continue
            name = model._meta.verbose_name_plural
            model_count[name] = count
            to_delete.append(f"{capfirst(name)}: {count}")
            if site.is_registered(model) and not site.get_model_admin(model).has_delete_permission(request):
                perms_needed.add(model._meta.verbose_name)
        return to_delete, model_count, perms_needed, protected


# The dashboard's order: what needs someone first.
DASHBOARD_STATUSES = ("down", "degraded", "maintenance", "up", "paused", "pending")
DASHBOARD_INCIDENTS = 20
# Failed notifications are counted up to here ("1000+" beyond): a bounded scan.
FAILED_COUNTED_UP_TO = 1000


class LooprAdminSite(admin.AdminSite):
    """The admin whose index is the operators' dashboard: monitors by status,
    open incidents, regions and nodes online, failing notifications — each
    linking to its filtered list — in a fixed number of queries however many
    monitors there are, each showing only what the user may see."""

    site_header = site_title = "Loopr"
    index_title = "Loopr administration"
    index_template = "admin/loopr_dashboard.html"

    def index(self, request, extra_context=None):
        return super().index(request, {**dashboard(request.user), **(extra_context or {})})


def dashboard(user) -> dict:
    # Imported here: this module is loaded with the admin app, before any app's models.
    from monitors.choices import MonitorStatus
    from monitors.models import Incident, Monitor
    from monitors.regions import Region, live_cutoff
    from notifications.choices import DeliveryStatus
    from notifications.models import Notification
    from workers.choices import SERVING_STATES

    counts = dict(Monitor.objects.visible_to(user).order_by().values_list("status").annotate(models.Count("id")))
    monitors_url = reverse("admin:monitors_monitor_changelist")
    statuses = [
        {"label": MonitorStatus(value).label, "color": MonitorStatus(value).color, "count": counts.get(value, 0),
         "url": f"{monitors_url}?status__exact={value}"}
        for value in DASHBOARD_STATUSES
    ]
    open_incidents = Incident.objects.visible_to(user).open()
    incidents = list(open_incidents.select_related("monitor").order_by("started_at")[:DASHBOARD_INCIDENTS])
    open_count = open_incidents.count()  # always, so that the page's queries are the same however many

    regions = None
    if user.has_perm("workers.view_region"):
        # Regions and probe nodes are the operator's fleet, shared by every user.
        serving = models.Q(nodes__state__in=SERVING_STATES, nodes__last_heartbeat_at__gte=live_cutoff())
        regions = list(Region.objects.order_by("name").annotate(
            online=models.Count("nodes", filter=serving), total=models.Count("nodes")))
        nodes_url = reverse("admin:workers_workernode_changelist")
        for region in regions:
            region.nodes_url = f"{nodes_url}?region__id__exact={region.pk}"

    failed = Notification.objects.visible_to(user).filter(status=DeliveryStatus.FAILED).order_by()
    failed_count = failed[: FAILED_COUNTED_UP_TO + 1].count()
    return {
        "monitor_statuses": statuses,
        "monitor_total": sum(counts.values()),
        "monitors_url": monitors_url,
        "open_incidents": incidents,
        "open_incident_count": open_count,
        "open_incidents_url": reverse("admin:monitors_incident_changelist") + "?state=open",
        "regions": regions,
        "regions_online": sum(1 for region in regions or () if region.online),
        "failed_notifications": (f"{FAILED_COUNTED_UP_TO}+" if failed_count > FAILED_COUNTED_UP_TO
                                 else failed_count),
        "failed_notifications_url": reverse("admin:notifications_notification_changelist") + "?status__exact=failed",
    }
