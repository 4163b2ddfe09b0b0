"""What every object a `loopr.yaml` can declare carries: a `slug` that names
it stably (the file's key for it, unique per owner and type) and whether a
file manages it. The file itself (format, plan, apply, export) is the
`configfile` app's; this is only what the models need, so that they do not
depend on it."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils.text import slugify

SLUG_MAX_LENGTH = 100


class Declared(models.Model):
    slug = models.SlugField(
        max_length=SLUG_MAX_LENGTH, blank=True, db_index=False,  # the (owner, slug) constraint indexes it
        help_text="Its stable name in a loopr.yaml, unique per owner among its type; omitted: made from the name.")
    managed = models.BooleanField(
        default=False,
        help_text="Created or last applied from a loopr.yaml: edits made elsewhere show as drift in the next plan.")

    # What a slug is unique within, besides the type: the field naming the
    # objects' owner (the one place to change when objects belong to teams).
    slug_scope = "owner"

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        self.fill_slug()
        super().save(*args, **kwargs)

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
    queries per owner: which of their names' slugs are taken, then the
    numbered variants of those."""
    pending = [obj for obj in objects if not obj.slug]
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
