"""Settings of the web the ping benchmark runs: Loopr's own, with
bench/pings_urls.py's URLs (Loopr's plus one baseline view). Used by
bench/pings.py only (DJANGO_SETTINGS_MODULE=bench.pings_site)."""

from loopr.settings import *  # noqa: F401, F403

ROOT_URLCONF = "bench.pings_urls"
