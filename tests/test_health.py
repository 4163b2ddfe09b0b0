from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError
from django.test import Client

from loopr import health
from loopr.celery import app

pytestmark = pytest.mark.django_db


class UnreachableDatabase:
    def cursor(self):
        raise OperationalError("connection refused")


@pytest.fixture
def point_broker_at() -> Iterator:
    """Point the Celery app at another broker URL for one test."""
    saved = app.conf.broker_url

    def point(url: str) -> None:
        app.conf.broker_url = url

    yield point
    app.conf.broker_url = saved


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connects hang, like a firewall dropping packets: its
    accept queue is full, so Linux drops further SYNs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield port
    filler.close()
    listener.close()


def test_healthz_is_200_when_the_database_and_the_broker_answer():
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_needs_no_login():
    # Load balancers and orchestrators poll it without credentials.
    assert Client().get("/healthz").status_code != 401


def test_healthz_is_503_when_the_broker_is_unreachable(point_broker_at):
    point_broker_at("redis://127.0.0.1:1/0")
    started = time.monotonic()
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["database"] == "ok"
    assert body["broker"].startswith("error")
    # A refused connection is an answer at once, no retry schedule to sit through.
    assert time.monotonic() - started < 1


def test_healthz_gives_up_on_a_broker_that_never_answers(point_broker_at, silent_port, monkeypatch):
    monkeypatch.setattr(health, "BROKER_TIMEOUT", 0.5)
    point_broker_at(f"redis://127.0.0.1:{silent_port}/0")
    started = time.monotonic()
    response = Client().get("/healthz")
    assert response.status_code == 503
    # It waits BROKER_TIMEOUT, not the minutes a dropped SYN takes to fail.
    assert time.monotonic() - started < 2


def test_healthz_is_503_when_the_database_is_unreachable(monkeypatch):
    monkeypatch.setattr(health, "connection", UnreachableDatabase())
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "error: OperationalError"
    assert response.json()["broker"] == "ok"
