"""The admin app with Loopr's own site (its index is the operators' dashboard)."""

from django.contrib.admin.apps import AdminConfig


class LooprAdminConfig(AdminConfig):
    # Django's documented way to replace the default site: every app's
    # `admin.site.register` then registers with Loopr's site.
    default_site = "loopr.admin.LooprAdminSite"
