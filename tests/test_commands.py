from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


# --- create_token ---------------------------------------------------------------


def test_create_token_prints_a_key_that_authenticates_api_calls(user):
    key = run("create_token", "alice")[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/monitors/").status_code == 200


def test_create_token_prints_the_same_key_until_reset(user):
    first = run("create_token", "alice")[-1]
    assert run("create_token", "alice")[-1] == first
    # --reset replaces it, and the old key stops working.
    new = run("create_token", "alice", "--reset")[-1]
    assert new != first
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert client.get("/api/v1/monitors/").status_code == 401


def test_create_token_for_an_unknown_user_is_a_command_error():
    with pytest.raises(CommandError, match="nobody"):
        run("create_token", "nobody")


# --- ensure_admin ------------------------------------------------------------------


def test_ensure_admin_creates_a_superuser_and_shows_its_password_once():
    lines = run("ensure_admin")
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    password = lines[-1].rsplit(" ", 1)[-1]
    assert admin.check_password(password)
    # Once a superuser exists, nothing is created and no password is shown again.
    assert run("ensure_admin") == []
    assert User.objects.count() == 1


def test_ensure_admin_uses_the_configured_password_and_never_prints_it(settings):
    settings.LOOPR_ADMIN_PASSWORD = "s3cret-from-env"
    output = "\n".join(run("ensure_admin", "--username", "root"))
    assert "s3cret-from-env" not in output
    assert User.objects.get(username="root").check_password("s3cret-from-env")


def test_ensure_admin_does_nothing_when_any_superuser_exists():
    User.objects.create_superuser("boss", "", "pw")
    assert run("ensure_admin") == []
    assert not User.objects.filter(username="admin").exists()


def test_ensure_admin_refuses_to_take_over_an_ordinary_users_name():
    UserFactory(username="admin")
    with pytest.raises(CommandError, match="--username"):
        run("ensure_admin")
    assert not User.objects.filter(is_superuser=True).exists()
