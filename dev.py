#!/usr/bin/env python3
"""Loopr's two commands, for a machine that has nothing but Python 3.11:

    python3 dev.py run     # web + beat + central worker + one probe worker
    python3 dev.py test    # the test suite (extra arguments go to pytest)
    python3 dev.py bench   # the benchmark harness (see bench/README.md)

Each makes `.venv/` and installs the pinned requirements when they changed.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def ensure_venv(requirements: str) -> None:
    if not PYTHON.exists():
        print(f"creating {VENV.relative_to(ROOT)}/ ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    files = [ROOT / "requirements.txt", ROOT / requirements]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    stamp = VENV / f".installed-{requirements}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"installing {requirements} ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-r", str(ROOT / requirements)], check=True)
    stamp.write_text(digest)


def manage(*args: str, env: dict) -> None:
    subprocess.run([str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, check=True)


def run_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    var = Path(env.setdefault("LOOPR_VAR_DIR", str(ROOT / "var")))
    var.mkdir(parents=True, exist_ok=True)
    key_file = var / "secret_key"
    if not env.get("SECRET_KEY") and not key_file.exists():
        # A key made once per checkout (settings read it from there): sessions
        # survive restarts, and no shared default key reaches a deployment.
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return env


def node_token(env: dict) -> str:
    """The local probe worker's enrolment token, made once per checkout."""
    token_file = Path(env["LOOPR_VAR_DIR"]) / f"node_token.{env.get('LOOPR_REGION', 'local')}"
    if not token_file.exists():
        out = subprocess.run([str(PYTHON), "manage.py", "create_node_token", env.get("LOOPR_REGION", "local"),
                              "--label", "dev.py run"], cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True).stdout
        token_file.write_text(out.strip().splitlines()[-1])
        token_file.chmod(0o600)
    return token_file.read_text().strip()


def run(args: list[str]) -> int:
    ensure_venv("requirements.txt")
    env = run_env()
    port = env.setdefault("PORT", "8000")
    manage("migrate", "--no-input", env=env)
    manage("collectstatic", "--no-input", "--verbosity", "0", env=env)
    manage("ensure_admin", env=env)
    env.setdefault("LOOPR_NODE_TOKEN", node_token(env))
    print(
        f"\nLoopr is starting:\n"
        f"  admin     http://127.0.0.1:{port}/admin/\n"
        f"  API       http://127.0.0.1:{port}/api/v1/  (docs: /api/docs/)\n"
        f"  database  {env.get('DATABASE_URL') or 'SQLite in ' + env['LOOPR_VAR_DIR']}\n"
        f"  broker    {env.get('REDIS_URL') or 'filesystem queue in ' + env['LOOPR_VAR_DIR']}\n",
        flush=True,
    )
    # honcho gives each process its own PORT; pin the web's to ours.
    return subprocess.call([str(BIN / "honcho"), "start", "--port", port, *args], cwd=ROOT, env=env)


def test(args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT, env=env)


def bench(args: list[str]) -> int:
    ensure_venv("requirements-dev.txt")
    env = run_env()
    return subprocess.call([str(PYTHON), "bench/run.py", *args], cwd=ROOT, env=env)


COMMANDS = {"run": run, "test": test, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
