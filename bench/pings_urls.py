"""Loopr's URLs plus one baseline view for bench/pings.py:
`/ping/bench-insert` makes one durable INSERT (a row committed on its own)
and answers "OK", through the same handler as a real ping (its path takes
the same route through loopr/wsgi.py): what a durable ping could cost at the
least on this web tier."""

from django.db import connection
from django.http import HttpResponse
from django.urls import path

from loopr.urls import urlpatterns as loopr_urlpatterns

TABLE = "bench_insert"  # made by bench/pings.py in its own database


def bench_insert(request):
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (at, body) VALUES (now(), %s) RETURNING id", [""])
        cursor.fetchone()
    response = HttpResponse("OK\n", content_type="text/plain; charset=utf-8")
    response["Content-Length"] = len(response.content)
    return response


urlpatterns = [path("ping/bench-insert", bench_insert), *loopr_urlpatterns]
