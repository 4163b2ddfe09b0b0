# A pytest plugin (-p tests.env in pytest.ini), loaded before pytest-django
# sets Django up: the defaults the whole test run needs.
import os

if os.environ.get("LOOPR_TESTS_ON_GEVENT"):
    # A probe node runs on Celery's gevent pool, which patches the standard
    # library before anything else is imported; tests of the probe engine run
    # the same way (tests/workers/test_probe_engine_on_gevent.py starts them).
    from gevent import monkey

    monkey.patch_all()

import atexit
import subprocess
from pathlib import Path

import dev
from tests.support import offline_dns

# Names meant not to resolve fail here, with no query sent off the machine.
offline_dns.install()

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("LOOPR_MIN_INTERVAL", "1")
# Tests keep their SQLite file and broker apart from `dev.py run`'s.
os.environ.setdefault("LOOPR_VAR_DIR", str(Path(__file__).resolve().parents[1] / "var" / "test"))

# Under pytest-xdist (`dev.py test` runs several workers) each worker is a
# test run of its own: pytest-django gives it its own database
# (test_<name>_gw<N>); here it gets its own Redis database and its own var
# dir (and with it its own embedded broker), because tests flush the broker
# and start Celery processes that would otherwise take each other's messages.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Django's cache shares the broker's Redis database (loopr/cache.py): each
# test run, and each worker of one, keeps its cache keys under a prefix of its
# own (the processes a test starts inherit it, and share its cache).
os.environ.setdefault("LOOPR_CACHE_PREFIX", f"loopr-test-{os.getpid()}")
if WORKER:
    os.environ["LOOPR_CACHE_PREFIX"] += f"-{WORKER}"
    if os.environ.pop("LOOPR_TESTS_EMBEDDED_BROKER", None):
        # The controller's own embedded broker, inherited: start one per worker.
        os.environ.pop("REDIS_URL", None)
    index = int(WORKER.removeprefix("gw"))
    os.environ["LOOPR_VAR_DIR"] = str(Path(os.environ["LOOPR_VAR_DIR"]) / WORKER)
    if os.environ.get("REDIS_URL", "").startswith("redis"):
        from urllib.parse import urlsplit, urlunsplit

        url = urlsplit(os.environ["REDIS_URL"])
        base = int(url.path.strip("/") or 0)
        # Redis has databases 0-15: worker N takes the Nth after the one given.
        os.environ["REDIS_URL"] = urlunsplit(url._replace(path=f"/{(base + index) % 16}"))


def _start_embedded_broker() -> None:
    """Without REDIS_URL the tests run on the quick start's embedded broker,
    started here for the whole run, as `dev.py run` would."""
    var = Path(os.environ["LOOPR_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)  # a fresh checkout has none yet
    sock = dev.embedded_broker_socket(var)
    sock.unlink(missing_ok=True)
    log = open(var / "broker.log", "ab")
    proc = subprocess.Popen(dev.embedded_broker_command(var), stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=dev.die_with_parent)
    atexit.register(lambda: (proc.terminate(), proc.wait(10)))
    if not dev.wait_for_broker(sock, proc):
        raise RuntimeError(f"the embedded broker did not start (exit status {proc.poll()}); see {var / 'broker.log'}")
    os.environ["REDIS_URL"] = f"unix://{sock}"
    os.environ["LOOPR_TESTS_EMBEDDED_BROKER"] = "1"


if not os.environ.get("REDIS_URL"):
    _start_embedded_broker()


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from tests.support.scheduling import SuiteScheduling

    return SuiteScheduling(config, log)
