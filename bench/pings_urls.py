"""Loopr's URLs plus one baseline view for bench/pings.py:
`/ping/bench-insert` makes one durable INSERT (a row committed on its own)
and answers "OK" through the Django handler without the site's middleware
(loopr/wsgi.py passes it there: no ping URL pattern routes it): one durable
row on the Django side of the web, which a steady ping's own path (the plain
WSGI callable) now undercuts."""

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
