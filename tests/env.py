# A pytest plugin (-p tests.env in pytest.ini), loaded before pytest-django
# sets Django up: the defaults the whole test run needs.
import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
os.environ.setdefault("LOOPR_MIN_INTERVAL", "1")
# Tests keep their SQLite file and filesystem broker apart from `dev.py run`'s.
os.environ.setdefault("LOOPR_VAR_DIR", str(Path(__file__).resolve().parents[1] / "var" / "test"))
