"""Headless Chromium driven over the DevTools protocol: open a page, wait on a DOM condition, take a screenshot.

One browser serves a whole test module (a start costs seconds on a loaded machine). Waits poll a JavaScript
condition against a generous deadline instead of sleeping, and every uncaught page exception is collected so a
test can assert the pages ran without script errors.
"""

import base64
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

WINDOW = (1280, 900)


class Browser:
    def __init__(self, chromium: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a reused profile's is stale
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-extensions", "--lang=en-US", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        try:
            port = self._devtools_port(profile / "DevToolsActivePort")
            target = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                          if t["type"] == "page")
            self._socket = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
            self.call("Runtime.enable")
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with status {self.process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                return int(port_file.read_text().split()[0])
            time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port within 60 s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=120))
            if message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 90) -> Any:
        """The first truthy value of `expression`, polled until the deadline (a condition, not a timing)."""
        deadline = time.monotonic() + timeout
        while True:
            # a found element counts as true; an expression that throws (the page is still loading) as false
            value = self.evaluate(f"(() => {{ try {{ const v = ({expression}); return v instanceof Node || v; }} "
                                  "catch (e) { return false; } })()")
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText.slice(0, 600) : ''")
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; page errors: {self.errors}; "
                                     f"page text: {text!r}")
            time.sleep(0.25)

    def screenshot(self, path: Path) -> Path:
        """The whole page (up to 2400 px high) as PNG."""
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=min(int(height), 2400),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        self.call("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        socket = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
