"""A real browser for tests: Debian's headless Chromium driven through its
own command line (`--dump-dom`, `--screenshot`), so no driver package and no
browser download. The flags keep it off every network but the page's
(no updates, sync, QUIC or background requests) and runnable as root in a
container (no sandbox, no GPU)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT = 90  # a cold start on a loaded two-core machine


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(url: str, mode: list[str], javascript: bool, window: tuple[int, int]) -> subprocess.CompletedProcess:
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium; .ci/run does)")
    with tempfile.TemporaryDirectory(prefix="loopr-chromium-") as profile:
        if not javascript:
            # The profile's content setting, as a visitor who turned JavaScript
            # off has it (--blink-settings=scriptEnabled=false would also stop
            # the DevTools evaluation --dump-dom relies on: an empty dump).
            (Path(profile) / "Default").mkdir()
            (Path(profile) / "Default" / "Preferences").write_text(
                json.dumps({"profile": {"default_content_setting_values": {"javascript": 2}}}))
        args = [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", *mode]
        return subprocess.run([*args, url], capture_output=True, timeout=TIMEOUT, check=True)


def dom(url: str, javascript: bool = True) -> str:
    """The page's DOM once loaded, as the browser built it."""
    return _run(url, ["--dump-dom"], javascript, (1280, 900)).stdout.decode()


def screenshot(url: str, path: Path, window: tuple[int, int] = (1280, 1600), javascript: bool = True) -> tuple[int, int]:
    """Save a PNG of the page; returns its (width, height) as read from the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, [f"--screenshot={path}", "--hide-scrollbars"], javascript, window)
    header = path.read_bytes()[:24]
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError(f"{path} is not a PNG")
    return struct.unpack(">II", header[16:24])
