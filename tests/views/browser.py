"""A headless Chromium (the distribution's package) driven over the DevTools protocol.

No browser library: Chromium starts with ``--remote-debugging-port=0``, writes the port
it chose into its profile's ``DevToolsActivePort``, and its page takes JSON commands
over a WebSocket.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0


def chromium_binary() -> str:
    """The Chromium executable; .ci/run installs the ``chromium`` package."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    raise AssertionError("chromium is not installed: apt-get install chromium (.ci/run does)")


class Browser:
    """One headless Chromium with one page; ``close()`` stops it."""

    def __init__(self, directory: Path) -> None:
        profile = directory / "chromium-profile"
        command = [
            chromium_binary(),
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1400,1200",
            "about:blank",
        ]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses its sandbox as root
        self.log_path = directory / "chromium.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self._ids = itertools.count(1)
        try:
            self._socket = connect(self._page_url(profile), max_size=None, open_timeout=10)
        except BaseException:
            self.close()
            raise

    def _page_url(self, profile: Path) -> str:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            lines = port_file.read_text().split() if port_file.exists() else []
            if lines:
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"chromium did not start: {self.log_path.read_text()}")
            time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{lines[0]}/json/list") as response:
            targets = json.load(response)
        return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events are skipped)."""
        command_id = next(self._ids)
        self._socket.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            message = json.loads(self._socket.recv(timeout=max(deadline - time.monotonic(), 0)))
            if message.get("id") != command_id:
                continue
            if "error" in message:
                raise AssertionError(f"{method}: {message['error']}")
            result: dict[str, Any] = message["result"]
            return result

    def navigate(self, url: str) -> None:
        self.command("Page.enable")
        self.command("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def text(self, element_id: str) -> str | None:
        """The text of the element with this id, or None while there is none."""
        return self.evaluate(  # type: ignore[no-any-return]
            f"document.getElementById({json.dumps(element_id)})?.textContent ?? null"
        )

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        shot = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        socket: ClientConnection | None = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
