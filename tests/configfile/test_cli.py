"""The command lines: bin/loopr-config against a real running web process,
and manage.py loopr_config against the local database."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from monitors.models import Monitor
from notifications.models import Channel
from teams.models import ApiToken
from tests.configfile.conftest import EXAMPLE_VARIABLES, readme_example
from tests.factories import RegionFactory, UserFactory
from tests.support.processes import ROOT

CLIENT = str(ROOT / "bin" / "loopr-config")


def loopr_config(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CLIENT, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_the_client_plans_applies_and_exports_against_a_running_loopr(processes, tmp_path):
    user = UserFactory(username="ci")
    RegionFactory(name="eu-west")
    base = processes.web(workers=1)
    env = {"PATH": "/usr/bin:/bin", "LOOPR_URL": base, "LOOPR_TOKEN": ApiToken.objects.cli_key(user),
           **EXAMPLE_VARIABLES}
    config = tmp_path / "loopr.yaml"
    config.write_text(readme_example())

    # A plan with changes: a readable diff, exit 2 with --detailed-exitcode, nothing written.
    planned = loopr_config("plan", "-f", str(config), "--detailed-exitcode", env=env)
    assert planned.returncode == 2, planned.stderr
    assert "+ create monitor shop" in planned.stdout and '    url: "https://shop.example/health"' in planned.stdout
    assert "Plan: 7 to create, 0 to update, 0 to delete." in planned.stdout
    assert not Monitor.objects.exists()

    applied = loopr_config("apply", "-f", str(config), env=env)
    assert applied.returncode == 0, applied.stderr
    assert "Applied 7 change(s)." in applied.stdout
    assert Channel.objects.get(slug="opsgenie").secret == EXAMPLE_VARIABLES["OPSGENIE_API_KEY"]

    unchanged = loopr_config("plan", "-f", str(config), "--detailed-exitcode", env=env)
    assert unchanged.returncode == 0 and "No changes" in unchanged.stdout

    # An edit shows as an update, old -> new.
    config.write_text(readme_example().replace("interval: 30", "interval: 45"))
    drift = loopr_config("plan", "-f", str(config), "--detailed-exitcode", env=env)
    assert drift.returncode == 2 and "~ update monitor db\n    interval: 30 -> 45" in drift.stdout

    exported = tmp_path / "exported.yaml"
    assert loopr_config("export", "-f", str(exported), env=env).returncode == 0
    assert EXAMPLE_VARIABLES["OPSGENIE_API_KEY"] not in exported.read_text()
    assert [m["slug"] for m in yaml.safe_load(exported.read_text())["monitors"]] == ["db", "nightly-backup", "shop"]
    again = loopr_config("plan", "-f", str(exported), "--detailed-exitcode", env=env)
    assert again.returncode == 0, again.stdout + again.stderr

    # Errors: each path on stderr, exit 1.
    config.write_text(readme_example().replace("op: eq, value: 200", "op: equals, value: 200"))
    failed = loopr_config("plan", "-f", str(config), env=env)
    assert failed.returncode == 1 and "monitors[0].assertions[0].op: unknown op 'equals'" in failed.stderr
    config.write_text(readme_example())
    unset = loopr_config("plan", "-f", str(config),
                         env={k: v for k, v in env.items() if k != "OPSGENIE_API_KEY"})
    assert unset.returncode == 1 and "channels[1].secret: The variable OPSGENIE_API_KEY is not set." in unset.stderr
    refused = loopr_config("plan", "-f", str(exported), env={**env, "LOOPR_TOKEN": "wrong"})
    assert refused.returncode == 1


def test_the_management_command_plans_applies_and_exports(db, tmp_path, capsys, monkeypatch):
    user = UserFactory(username="ops")
    RegionFactory(name="eu-west")
    monkeypatch.setenv("OPSGENIE_API_KEY", EXAMPLE_VARIABLES["OPSGENIE_API_KEY"])
    config = tmp_path / "loopr.yaml"
    config.write_text(readme_example())
    with pytest.raises(SystemExit) as planned:
        call_command("loopr_config", "plan", "--user", "ops", "-f", str(config), "--detailed-exitcode")
    assert planned.value.code == 2 and "+ create channel opsgenie" in capsys.readouterr().out
    call_command("loopr_config", "apply", "--user", "ops", "-f", str(config))
    assert "Applied 7 change(s)." in capsys.readouterr().out
    assert Monitor.objects.filter(owner=user, managed=True).count() == 3
    exported = tmp_path / "out.yaml"
    call_command("loopr_config", "export", "--user", "ops", "-f", str(exported))
    call_command("loopr_config", "plan", "--user", "ops", "-f", str(exported), "--detailed-exitcode")
    assert "No changes" in capsys.readouterr().out
    with pytest.raises(CommandError, match=r"monitors\[0\]\.url"):
        config.write_text(readme_example().replace("https://shop.example/health", "ftp://shop.example/"))
        call_command("loopr_config", "plan", "--user", "ops", "-f", str(config))
