"""A headless Chromium driven over the Chrome DevTools Protocol (CDP), for tests that look at a
page the way a person would: the MLflow UI, a model card in its artifact viewer.

Only what the tests need: start Chromium with ``--remote-debugging-port``, connect to its page
over a websocket (the ``websockets`` package's synchronous client), send commands and read their
answers, wait for a condition with a bounded timeout. Always use it as a context manager, so
Chromium is killed even when a test fails.
"""

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class CdpError(RuntimeError):
    """A CDP command answered with an error."""


class Browser:
    """Headless Chromium with its own profile under ``folder``, one page, and a CDP connection.

    ``send(method, **params)`` runs a command on the page and returns its result;
    ``find_frame`` and ``isolated_world`` give an execution context inside an iframe, in which
    ``evaluate`` runs JavaScript; ``wait_for`` polls a function until it returns something truthy,
    for at most ``timeout`` seconds.
    """

    def __init__(self, folder: Path, width: int = 1400, height: int = 1000, timeout: float = 60):
        self.folder, self.width, self.height, self.timeout = Path(folder), width, height, timeout
        self.process: subprocess.Popen | None = None
        self.socket = None
        self._next_id = 0
        self._sessions: dict[str, str] = {}  # iframe target id -> attached session

    def __enter__(self) -> "Browser":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        if CHROMIUM is None:
            raise RuntimeError("no chromium on PATH")
        profile = self.folder / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)  # a stale one from an earlier run would name a dead port
        self.log = open(self.folder / "chromium.log", "wb")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={self.width},{self.height}",
             "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        # Chromium writes the port it chose into DevToolsActivePort in the profile
        port = self.wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0].strip(),
                             "Chromium's DevToolsActivePort file", check_process=True)

        def page_target():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
                    targets = json.load(answer)
            except OSError:
                return None
            return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

        url = self.wait_for(page_target, "a page target in Chromium's /json/list", check_process=True)
        self.socket = connect(url, max_size=None, open_timeout=self.timeout)

    def close(self) -> None:
        """Close the connection and kill Chromium (idempotent)."""
        if self.socket is not None:
            try:
                self.socket.close()
            except Exception:
                pass
            self.socket = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.process = None
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def send(self, method: str, session: str | None = None, **params):
        """Send one CDP command, to the page or to an attached target's ``session``; returns its
        ``result`` (events arriving in between are dropped)."""
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            answer = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if answer.get("id") == ident:
                if "error" in answer:
                    raise CdpError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def navigate(self, url: str) -> None:
        """Open ``url`` in the page (returns once the navigation has started, not loaded)."""
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")

    def evaluate(self, expression: str, context_id: int | None = None, session: str | None = None):
        """Evaluate JavaScript (awaiting a promise) in the page, or in execution context
        ``context_id`` (of ``session``); returns the JSON value, or raises CdpError on an exception."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if context_id is not None:
            params["contextId"] = context_id
        result = self.send("Runtime.evaluate", session, **params)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def frames(self, session: str | None = None) -> list[dict]:
        """Every frame of the page, or of an attached target's ``session`` (``Page.getFrameTree``,
        flattened): dicts with id, url, name..."""
        found, pending = [], [self.send("Page.getFrameTree", session)["frameTree"]]
        while pending:
            node = pending.pop()
            found.append(node["frame"])
            pending.extend(node.get("childFrames", []))
        return found

    def find_frame(self, match) -> tuple[str | None, str] | None:
        """The first frame whose URL satisfies ``match(url)``, as ``(session, frame_id)``; None if
        there is none yet.

        An iframe rendered in the page's own process is in the page's frame tree (session None).
        Chromium puts a sandboxed iframe (the MLflow UI's HTML artifact viewer is one) in a process
        of its own: it is not in that tree but an ``iframe`` target, which this attaches to
        (``Target.attachToTarget``, flat session) and whose own frame tree it reads.
        """
        for frame in self.frames()[1:]:
            if match(frame["url"]):
                return None, frame["id"]
        for target in self.send("Target.getTargets")["targetInfos"]:
            if target["type"] == "iframe" and match(target["url"]):
                session = self._sessions.get(target["targetId"])
                if session is None:
                    session = self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
                    self._sessions[target["targetId"]] = session
                return session, self.frames(session)[0]["id"]
        return None

    def isolated_world(self, frame_id: str, session: str | None = None, name: str = "test") -> int:
        """A new execution context in ``frame_id`` for the test's own scripts, apart from the
        page's; it works in a sandboxed iframe too. Returns its id for ``evaluate``."""
        return self.send("Page.createIsolatedWorld", session, frameId=frame_id, worldName=name,
                         grantUniveralAccess=True)["executionContextId"]

    def visible_text(self, limit: int = 3000) -> str:
        """The page's visible text (at most ``limit`` characters), for a failure message."""
        try:
            return (self.evaluate("document.body ? document.body.innerText : ''") or "")[:limit]
        except Exception as error:  # the page may be gone; the text is only a help
            return f"(could not read the page's text: {error})"

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page's viewport (iframes included) to ``path``."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def wait_for(self, probe, what: str, timeout: float | None = None, interval: float = 0.5,
                 check_process: bool = False):
        """Call ``probe`` until it returns something truthy, and return that. After ``timeout``
        seconds (the browser's default) fail with an AssertionError saying ``what`` did not appear,
        with the page's visible text once a page is connected."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if check_process and self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"Chromium exited with {self.process.returncode} waiting for {what}")
            if time.monotonic() > deadline:
                shown = f"; the page shows:\n{self.visible_text()}" if self.socket is not None else ""
                raise AssertionError(f"{what} did not appear in {timeout:.0f} s{shown}")
            time.sleep(interval)
