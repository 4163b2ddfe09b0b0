"""Settings of the web the ping benchmark runs: Loopr's own, with
bench/pings_urls.py's URLs (Loopr's plus one baseline view). Used by
bench/pings.py only (DJANGO_SETTINGS_MODULE=bench.pings_site)."""

from loopr.settings import *  # noqa: F401, F403

ROOT_URLCONF = "bench.pings_urls"

# One database connection per web thread for the whole run (Loopr's default
# renews them every 60 s): the bench reads the CPU of those backends.
DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405
