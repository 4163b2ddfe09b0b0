"""What every object a `loopr.yaml` can declare carries: a `slug` that names
it stably (the file's key for it, unique per team and type) and whether a
file manages it. The file itself (format, plan, apply, export) is the
`configfile` app's; this is only what the models need, so that they do not
depend on it."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, models, transaction
from django.utils.text import slugify

SLUG_MAX_LENGTH = 100
# Times a write whose made-up slugs another writer took first (two creations
# of the same name at once) is tried again with the next free numbers.
SLUG_ATTEMPTS = 5


class SlugTaken(Exception):
    """A slug given (not made from the name) was taken by another writer
    meanwhile: the API answers a 400 naming `slug`."""


class Declared(models.Model):
    slug = models.SlugField(
        max_length=SLUG_MAX_LENGTH, blank=True, db_index=False,  # the (team, slug) constraint indexes it
        help_text="Its stable name in a loopr.yaml, unique per team among its type; omitted: made from the name.")
    managed = models.BooleanField(
        default=False,
        help_text="Created or last applied from a loopr.yaml: edits made elsewhere show as drift in the next plan.")

    # What a slug is unique within, besides the type: the field naming the
    # objects' team (a loopr.yaml describes one team). Models list TeamOwned
    # before Declared, so that the team is filled before the slug.
    slug_scope = "team"

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        write_with_free_slugs([self], lambda: super(Declared, self).save(*args, **kwargs))

    def fill_slug(self) -> None:
        """A slug from the name, if it has none (bulk creation calls this
        too: bulk_create does not go through save)."""
        fill_slugs([self])

    def slug_taken(self, scope_id: int | None, slug: str) -> bool:
        return type(self).objects.filter(**{f"{self.slug_scope}_id": scope_id}, slug=slug).exclude(pk=self.pk).exists()


def base_slug(name: str) -> str:
    # Room left for a "-NNNN" suffix.
    return slugify(name)[:SLUG_MAX_LENGTH - 10].strip("-") or "unnamed"


def free_slug(name: str, taken: set[str]) -> str:
    """The name's slug, or with -2, -3… when taken; added to `taken`."""
    base = slug = base_slug(name)
    number = 1
    while slug in taken:
        number += 1
        slug = f"{base}-{number}"
    taken.add(slug)
    return slug


def fill_slugs(objects: Iterable[Declared]) -> None:
    """Slugs for many new objects of one model at once, in at most two
    queries per team: which of their names' slugs are taken, then the
    numbered variants of those."""
    pending = [obj for obj in objects if not obj.slug]
    for obj in pending:
        fill_scope = getattr(obj, f"fill_{obj.slug_scope}", None)  # TeamOwned.fill_team: a slug is unique in it
        if fill_scope is not None:
            fill_scope()
    by_scope: dict[int, list[Declared]] = {}
    for obj in pending:
        by_scope.setdefault(getattr(obj, f"{obj.slug_scope}_id"), []).append(obj)
    for scope_id, group in by_scope.items():
        model = type(group[0])
        owned = model.objects.filter(**{f"{model.slug_scope}_id": scope_id})
        bases = {base_slug(obj.name) for obj in group}
        taken = set(owned.filter(slug__in=bases).values_list("slug", flat=True))
        if taken:
            numbered = models.Q()
            for base in taken:
                numbered |= models.Q(slug__startswith=f"{base}-")
            taken |= set(owned.filter(numbered).values_list("slug", flat=True))
        for obj in group:
            obj.slug = free_slug(obj.name, taken)


def write_with_free_slugs(objects: list[Declared], write):
    """`write()` (the insert or update of `objects`), in a transaction,
    after filling their missing slugs. Another writer may take one of those
    slugs between reading which are free and inserting (the (team, slug)
    constraint then refuses the row): the write is tried again in a
    savepoint with the next free numbers. A clash on a slug that was given
    is SlugTaken."""
    made = [obj for obj in objects if not obj.slug]
    fill_slugs(made)
    if not made:
        try:
            with transaction.atomic(savepoint=False):  # nothing to try again: no savepoint's queries
                return write()
        except IntegrityError as exc:
            if _is_slug_clash(exc):
                raise SlugTaken(str(exc.__cause__ or exc)) from exc
            raise
    new = [obj for obj in objects if obj._state.adding and obj.pk is None]
    for attempt in range(1, SLUG_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return write()
        except IntegrityError as exc:
            if not _is_slug_clash(exc):
                raise
            if attempt == SLUG_ATTEMPTS:
                raise SlugTaken(str(exc.__cause__ or exc)) from exc
            for obj in new:  # rolled back: inserted again (bulk_create set ids on its earlier batches)
                obj.pk, obj._state.adding = None, True
            for obj in made:
                obj.slug = ""
            fill_slugs(made)
    return None  # not reached


def _is_slug_clash(exc: IntegrityError) -> bool:
    # psycopg names the constraint a row broke; the slug constraints are "<model>_team_slug".
    diag = getattr(exc.__cause__, "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    return name.endswith("_slug") or (diag is None and "slug" in str(exc))
