"""docker-compose.yml, the Dockerfile and docker/start.

Docker cannot run where the tests run, so these check what can be checked
without it: the compose file parses (anchors and merge keys included), it has
the services a deployment needs, every Loopr container runs a Procfile entry
or a documented command, and the settings accept the environment each
service gets.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dev import read_procfile

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "/app/docker/start"
CENTRAL = ("web", "beat", "dispatcher", "worker")
PROBES = {"probe-eu-west": "eu-west", "probe-us-east": "us-east"}
# Commands a container may run that are not Procfile entries; each is one the
# documentation (and dev.py run) uses.
DOCUMENTED_COMMANDS = [
    ["python", "manage.py", "migrate", "--no-input"],
]
# What the operator would put in .env; only to fill in ${...} here.
OPERATOR_ENV = {"SECRET_KEY": "the-operators-secret-key", "POSTGRES_PASSWORD": "the-database-password",
                "REDIS_PASSWORD": "the-broker-password", "LOOPR_NODE_TOKEN_EU_WEST": "lnt_eu",
                "LOOPR_NODE_TOKEN_US_EAST": "lnt_us"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    return read_procfile((ROOT / "Procfile").read_text())


def procfile_entry(service: dict) -> str | None:
    command = service.get("command")
    if isinstance(command, list) and len(command) == 2 and command[0] == ENTRY:
        return command[1]
    return None


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, as far as this file uses them."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator == "?":
            raise KeyError(f"{name} is required: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?::([-?])([^}]*))?\}", substitute, value)


def environment(service: dict, env: dict[str, str] = OPERATOR_ENV) -> dict[str, str]:
    return {name: interpolate(str(value), env) for name, value in service.get("environment", {}).items()}


def expand(command: str, env: dict[str, str]) -> list[str]:
    """The arguments /bin/sh makes of a Procfile command in this environment."""
    result = subprocess.run(
        ["/bin/sh", "-c", f"set -- {command}; printf '%s\\n' \"$@\""],
        env=env, capture_output=True, text=True, check=True,
    )
    return result.stdout.splitlines()


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+?)(?<!\\)$", (ROOT / "Dockerfile").read_text(), re.M | re.S):
        env.update(re.findall(r"(\w+)=(\S+)", line))
    env.pop("PATH", None)  # the image's, with its /opt/venv
    return env


def test_the_file_parses_with_its_anchors_merged(compose, services):
    # Merge keys resolve: the shared build, init and restart reach the services.
    assert services["web"]["build"] == services["probe-eu-west"]["build"] == "."
    assert services["worker"]["init"] is True
    assert services["beat"]["restart"] == "unless-stopped"
    # ... and a key set beside a merge wins over the merged one.
    assert services["migrate"]["restart"] == "no"
    assert not any(key.startswith("<<") for service in services.values() for key in service)


def test_it_has_every_service_a_deployment_needs(services):
    assert set(services) == {"postgres", "redis", "migrate", *CENTRAL, *PROBES}


def test_postgres_and_redis_have_health_checks_and_named_volumes(compose, services):
    for name, data_dir in [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")]:
        service = services[name]
        assert service["healthcheck"]["test"], name
        # The data lives in a named volume, declared at the top level.
        [volume] = service["volumes"]
        volume_name, target = volume.split(":")
        assert target == data_dir
        assert volume_name in compose["volumes"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])


def test_redis_never_evicts_and_keeps_the_queues_across_restarts(services):
    command = services["redis"]["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize("entry", ["beat", "dispatcher"])
def test_exactly_one_beat_and_one_dispatcher_run(services, entry):
    running = [name for name, service in services.items() if procfile_entry(service) == entry]
    assert running == [entry]
    # Nothing asks for more than one of it.
    deploy = services[entry].get("deploy", {})
    assert deploy.get("replicas", 1) == 1
    assert services[entry].get("scale", 1) == 1


def test_the_dispatcher_alone_consumes_the_dispatch_queue_and_the_worker_does_not(procfile):
    queues = {name: expand(command, {})[expand(command, {}).index("--queues") + 1].split(",")
              for name, command in procfile.items() if "--queues" in command}
    assert queues["dispatcher"] == ["dispatch"]
    assert [name for name, consumed in queues.items() if "dispatch" in consumed] == ["dispatcher"]


def test_every_loopr_container_runs_a_procfile_entry_or_a_documented_command(services, procfile):
    for name, service in services.items():
        if name in {"postgres", "redis"}:
            continue
        entry = procfile_entry(service)
        if entry is not None:
            assert entry in procfile, f"{name} runs {entry!r}, which the Procfile does not have"
        else:
            assert service["command"] in DOCUMENTED_COMMANDS, f"{name} runs {service['command']!r}"
    # Each central process runs its own entry; the probes run the probe entry.
    assert {name: procfile_entry(services[name]) for name in CENTRAL} == {name: name for name in CENTRAL}
    assert {procfile_entry(services[name]) for name in PROBES} == {"probe"}


def test_the_image_runs_the_web_entry_by_default():
    [cmd] = re.findall(r"^CMD (.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert json.loads(cmd) == [ENTRY, "web"]


def test_migrate_runs_once_before_the_central_processes_start(services):
    migrate = services["migrate"]
    assert migrate["command"][:3] == ["python", "manage.py", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in CENTRAL:
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["postgres"]["condition"] == depends_on["redis"]["condition"] == "service_healthy", name


def test_long_running_services_restart_unless_stopped(services):
    for name, service in services.items():
        if name != "migrate":
            assert service["restart"] == "unless-stopped", name


def test_central_processes_get_the_database_the_broker_and_the_operators_secret_key(services):
    for name in ("migrate", *CENTRAL):
        env = environment(services[name])
        assert env["DATABASE_URL"] == "postgres://loopr:the-database-password@postgres:5432/loopr", name
        assert env["REDIS_URL"] == "redis://:the-broker-password@redis:6379/0", name
        assert env["SECRET_KEY"] == "the-operators-secret-key", name
        assert env["DEBUG"] == "false", name


def test_it_will_not_start_without_a_secret_key_a_database_password_or_a_broker_password(services):
    # No production default for either secret: compose stops with the message.
    for missing in ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        given = {name: value for name, value in OPERATOR_ENV.items() if name != missing}
        with pytest.raises(KeyError, match=missing):
            environment(services["web"], given)
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_probes_get_the_broker_and_their_region_but_no_database_credentials(services):
    web = environment(services["web"])
    regions = []
    for name, region in PROBES.items():
        env = environment(services[name])
        assert "DATABASE_URL" not in env, name
        assert not any("the-database-password" in value for value in env.values()), name
        # Nor the key that signs the web's sessions.
        assert env["SECRET_KEY"] and env["SECRET_KEY"] != web["SECRET_KEY"], name
        # Its region's broker user, with its token as the password; never the default user's.
        token = env["LOOPR_NODE_TOKEN"]
        assert env["REDIS_URL"] == f"redis://loopr-node-{region}:{token}@redis:6379/0", name
        assert "the-broker-password" not in " ".join(env.values()), name
        assert env["LOOPR_REGION"] == region
        # Enrolled with a token of its own region, given by the operator.
        assert "LOOPR_NODE_TOKEN" in env, name
        regions.append(region)
        # Probes need only the broker to start.
        assert set(services[name]["depends_on"]) == {"redis"}, name
    assert len(set(regions)) == len(PROBES)


def test_each_probe_consumes_its_own_regions_queue(services, procfile):
    for name, region in PROBES.items():
        args = expand(procfile["probe"], environment(services[name]))
        assert args[args.index("--queues") + 1] == f"probe.{region}"


def test_the_web_listens_where_its_health_check_and_published_port_look(services, procfile):
    web = services["web"]
    env = {**dockerfile_env(), **environment(web)}
    args = expand(procfile["web"], env)
    assert args[:2] == ["gunicorn", "loopr.wsgi"]
    # gunicorn binds every interface of the container, on the port that is
    # published and that the health check asks.
    assert args[args.index("--bind") + 1] == "0.0.0.0:8000"
    assert web["ports"][0].endswith(":8000")
    assert "http://127.0.0.1:8000/healthz" in " ".join(web["healthcheck"]["test"])
    # ... and Django answers the health check's Host header.
    assert "127.0.0.1" in env["ALLOWED_HOSTS"].split(",")


@pytest.mark.parametrize("name", ["migrate", *CENTRAL, *PROBES])
def test_the_settings_accept_each_services_environment(services, name, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        **dockerfile_env(),
        **environment(services[name]),
        "LOOPR_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "loopr.settings",
    }
    show = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'host': s.DATABASES['default'].get('HOST'),"
        " 'broker': s.CELERY_BROKER_URL, 'region': s.LOOPR_REGION, 'debug': s.DEBUG}))"
    )
    result = subprocess.run([sys.executable, "-c", show], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)
    assert settings["broker"].endswith("@redis:6379/0")
    assert settings["debug"] is False
    if name in PROBES:
        # No database is configured, so the probe cannot reach one.
        assert settings["engine"] == "django.db.backends.sqlite3"
        assert settings["region"] == PROBES[name]
    else:
        assert (settings["engine"], settings["host"]) == ("django.db.backends.postgresql", "postgres")


def test_the_dockerfile_installs_the_requirements_and_collects_static_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"pip install -r \S*requirements\.txt", dockerfile)
    # The build-time key is for collectstatic alone, never in the image's ENV.
    assert re.search(r"SECRET_KEY=build-only .*python manage\.py collectstatic --no-input", dockerfile)
    assert "SECRET_KEY" not in dockerfile_env()
    # The processes run as a user other than root.
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user not in {"root", "0"}


def test_the_image_leaves_out_local_state_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var", "staticfiles"} <= set(ignored)


def test_every_procfile_entry_runs_an_installed_program(procfile):
    bin_dir = Path(sys.executable).parent
    for name, command in procfile.items():
        program = command.split()[0]
        assert (bin_dir / program).exists(), f"{name}: {program} is not in {bin_dir}"


def test_every_procfile_entry_is_one_command_so_exec_can_replace_the_shell(procfile):
    for name, command in procfile.items():
        assert not re.search(r"[;&|]|\$\(|`", command), name


def test_the_entry_script_runs_the_procfile_command_in_its_own_process(tmp_path):
    (tmp_path / "docker").mkdir()
    shutil.copy(ROOT / "docker" / "start", tmp_path / "docker" / "start")
    shutil.copy(ROOT / "dev.py", tmp_path / "dev.py")
    (tmp_path / "Procfile").write_text("hello: echo hello ${LOOPR_REGION:-local} $$\nother: false\n")
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "docker" / "start"), "hello"],
        env={"PATH": "/usr/bin:/bin", "LOOPR_REGION": "eu-west"}, stdout=subprocess.PIPE, text=True,
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # The shell expanded the variable, and the command ran as the very process
    # started (so docker's signals reach it): $$ is the shell's pid.
    assert out.split() == ["hello", "eu-west", str(proc.pid)]


def test_the_entry_script_refuses_a_process_the_procfile_does_not_have():
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "start"), "nonesuch"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "one of: web, beat, dispatcher, worker, probe" in result.stderr


def _deploy_check(services, operator_env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        **dockerfile_env(),
        **environment(services["web"], {**OPERATOR_ENV, **operator_env}),
        "LOOPR_VAR_DIR": str(tmp_path),
    }
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_deployment_checks_pass_in_the_compose_configuration_behind_tls(services, tmp_path):
    # What the compose file's comments tell an operator publishing Loopr behind a TLS proxy to set.
    tls = {"LOOPR_HTTPS": "true", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
           "ALLOWED_HOSTS": "loopr.example.com", "SECRET_KEY": "a" * 20 + "-operators-long-random-secret-key-0123"}
    result = _deploy_check(services, tls, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_tls_the_deployment_checks_name_only_what_https_would_turn_on(services, tmp_path):
    result = _deploy_check(services, {"SECRET_KEY": "b" * 20 + "-operators-long-random-secret-key-0123"}, tmp_path)
    found = set(re.findall(r"security\.W\d+", result.stdout + result.stderr))
    # HSTS, the HTTPS redirect and secure cookies: nothing else is left to fix.
    assert found == {"security.W004", "security.W008", "security.W012", "security.W016"}, result.stdout
