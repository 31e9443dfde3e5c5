#!/usr/bin/env python3
"""The web app in a real browser: two headless Chromium sessions against a chatd node
this test starts itself (own database, free port).

Two users sign up, create and join a room, see each other online and typing, and talk;
the node is restarted mid-conversation (SIGTERM, then started again on the same port)
while both pages show "Reconnecting…" and hold queued messages; afterwards both pages
show the same complete conversation in seq order. An XSS attempt renders as inert text,
older history loads on scroll-up, a reload keeps the session. Screenshots go to
docs/screenshots/. Exit status 0 only when every check passed.

Environment: CHATD_BIN (default target/release/chatd), TEST_PG_URL (default
postgres://postgres@127.0.0.1:5432), CHROME_BIN (/usr/bin/chromium), CHROMEDRIVER
(/usr/bin/chromedriver).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHATD_BIN = os.environ.get("CHATD_BIN", os.path.join(ROOT, "target", "release", "chatd"))
PG_URL = os.environ.get("TEST_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
CHROME_BIN = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = os.path.join(ROOT, "docs", "screenshots")
PASSWORD = "password-123"
XSS = "<img src=x onerror=alert(1)>"

STARTED = time.monotonic()
PASSED = []
LOG_TAIL = []


class CheckFailed(Exception):
    """A check of the test failed."""


def log(msg):
    print(f"[{time.monotonic() - STARTED:6.1f}s] {msg}", flush=True)


def check(cond, what):
    """Record a passed check, or stop the test."""
    if not cond:
        raise CheckFailed(what)
    PASSED.append(what)
    log(f"ok   {what}")


def wait(driver, fn, what, timeout=15):
    """Wait until fn(driver) is truthy; a timeout is a failed check named `what`."""
    try:
        result = WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: fn(d))
    except TimeoutException:
        raise CheckFailed(f"timed out after {timeout}s: {what}") from None
    PASSED.append(what)
    log(f"ok   {what}")
    return result


# --- infrastructure -----------------------------------------------------------------


def psql(sql):
    subprocess.run(["psql", f"{PG_URL}/postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                   check=True, capture_output=True, text=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One chatd process, restartable on the same port and database."""

    def __init__(self, database_url, port, workdir):
        self.database_url = database_url
        self.port = port
        self.log_path = os.path.join(workdir, "chatd.log")
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30):
        env = dict(os.environ,
                   DATABASE_URL=self.database_url,
                   PORT=str(self.port),
                   JWT_ACCESS_SECRET="browser-test-access-secret-0123456789abcdef",
                   JWT_REFRESH_SECRET="browser-test-refresh-secret-0123456789abcde",
                   RUST_LOG=os.environ.get("CHATD_LOG", "warn"))
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen([CHATD_BIN, "serve"], env=env, stdout=logf, stderr=logf,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"chatd exited at start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise CheckFailed(f"chatd not ready within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def api(base, method, path, body=None, token=None):
    """A REST call from the test itself (seeding data)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def browser(profile_dir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROME_BIN
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}", "--window-size=1200,800"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    return driver


# --- page helpers -------------------------------------------------------------------


def el(d, css):
    return d.find_element(By.CSS_SELECTOR, css)


def visible(d, css):
    found = d.find_elements(By.CSS_SELECTOR, css)
    return bool(found) and found[0].is_displayed()


def d_has(d, css):
    return bool(d.find_elements(By.CSS_SELECTOR, css))


def messages(d):
    """(seq, author, content, state) of every message on the page, top to bottom."""
    return [tuple(x) for x in d.execute_script("""
        return [...document.querySelectorAll('#messages > li')].map(li => [
            li.dataset.seq ? Number(li.dataset.seq) : null,
            li.querySelector('.author').textContent,
            li.querySelector('.content').textContent,
            li.dataset.state]);""")]


def sign_up(d, base, name):
    d.get(base)
    wait(d, lambda d: visible(d, "#auth-view"), f"{name}: the sign-in page shows")
    el(d, "#tab-signup").click()
    el(d, "#signup-username").send_keys(name)
    el(d, "#signup-email").send_keys(f"{name}@example.com")
    el(d, "#signup-password").send_keys(PASSWORD)
    el(d, "#signup-submit").click()
    wait(d, lambda d: visible(d, "#chat-view") and el(d, "#current-user").text == name,
         f"{name}: signed up and signed in")


def type_and_send(d, text):
    box = el(d, "#message-input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def member_online(d, username):
    return d.execute_script(
        "const li = [...document.querySelectorAll('#member-list > li')]"
        ".find(li => li.dataset.username === arguments[0]); return li ? li.dataset.online : null;",
        username) == "true"


def connection_state(d):
    return el(d, "#connection-status").get_attribute("data-state")


def csp_violations(d):
    return [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]]


# --- the test -----------------------------------------------------------------------


def run(workdir):
    tag = secrets.token_hex(3)
    alice, bob = f"alice_{tag}", f"bob_{tag}"
    db = f"chatd_browser_{secrets.token_hex(6)}"
    psql(f"CREATE DATABASE {db}")
    node = Node(f"{PG_URL}/{db}", free_port(), workdir)
    drivers = []
    try:
        node.start()
        log(f"chatd on {node.url}, database {db}")
        a = browser(os.path.join(workdir, "profile-a"))
        drivers.append(a)
        b = browser(os.path.join(workdir, "profile-b"))
        drivers.append(b)

        a.get(node.url)
        wait(a, lambda d: visible(d, "#signin-form"), "the sign-in form shows")
        a.save_screenshot(os.path.join(SHOTS, "signin.png"))
        sign_up(a, node.url, alice)
        sign_up(b, node.url, bob)

        # alice creates a room; bob finds it in the list and joins it.
        room = f"general-{tag}"
        el(a, "#new-room-name").send_keys(room)
        el(a, "#create-room").click()
        wait(a, lambda d: visible(d, "#room-pane") and el(d, "#room-title").text == f"# {room}",
             "alice: the new room opens")
        el(b, "#refresh-rooms").click()
        item = f'#room-list button[data-room-name="{room}"]'
        wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, item), "bob: the room is listed")
        el(b, item).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {room}", "bob: joined and opened the room")

        wait(a, lambda d: member_online(d, bob), "alice sees bob online")
        wait(b, lambda d: member_online(d, alice), "bob sees alice online")

        # Typing, both ways.
        el(a, "#message-input").send_keys("hel")
        wait(b, lambda d: el(d, "#typing").text == f"{alice} is typing…", "bob sees alice typing")
        el(a, "#message-input").send_keys(Keys.BACKSPACE * 3)
        el(b, "#message-input").send_keys("yo")
        wait(a, lambda d: el(d, "#typing").text == f"{bob} is typing…", "alice sees bob typing")
        el(b, "#message-input").send_keys(Keys.BACKSPACE * 2)

        # A conversation, one message at a time so that its order is known.
        expected = []
        for i, (d, who) in enumerate([(a, alice), (b, bob), (a, alice), (b, bob), (a, alice), (b, bob)]):
            text = f"{who.split('_')[0]} says {i}"
            type_and_send(d, text)
            expected.append((who, text))
            n = len(expected)
            for page in (a, b):
                wait(page, lambda p: len([m for m in messages(p) if m[0]]) >= n,
                     f"message {n} on {'alice' if page is a else 'bob'}'s page")
        wait(b, lambda d: el(d, "#typing").text == "", "bob: alice's typing cleared by her message")
        own_states = [m[3] for m in messages(a) if m[1] == alice]
        check(own_states and all(s == "acked" for s in own_states), "alice's own messages show as acknowledged")

        # The node restarts mid-conversation.
        log("stopping the node (SIGTERM)")
        check(node.stop() == 0, "chatd exits 0 on SIGTERM")
        for page, who in ((a, "alice"), (b, "bob")):
            wait(page, lambda d: connection_state(d) == "reconnecting"
                 and el(d, "#connection-text").text == "Reconnecting…"
                 and el(d, "#connection-status").is_displayed(),
                 f"{who}'s page shows Reconnecting…")
        for d, who in ((a, alice), (b, bob)):
            text = f"{who.split('_')[0]} while the node is down"
            type_and_send(d, text)
            expected.append((who, text))
        for page, who in ((a, "alice"), (b, "bob")):
            wait(page, lambda d: any(m[3] == "pending" for m in messages(d)),
                 f"{who}'s queued message shows as pending")
        a.save_screenshot(os.path.join(SHOTS, "reconnecting.png"))
        time.sleep(0.5)
        log("starting the node again on the same port")
        node.start()
        for page, who in ((a, "alice"), (b, "bob")):
            wait(page, lambda d: connection_state(d) == "open" and not el(d, "#connection-status").is_displayed(),
                 f"{who}'s page clears Reconnecting… by itself", timeout=30)
        for d, who in ((a, alice), (b, bob)):
            text = f"{who.split('_')[0]} after the restart"
            type_and_send(d, text)
            expected.append((who, text))
            n = len(expected)
            for page in (a, b):
                wait(page, lambda p: len([m for m in messages(p) if m[0]]) >= n and
                     not any(m[3] in ("pending", "failed") for m in messages(p)),
                     f"message {n} on {'alice' if page is a else 'bob'}'s page, nothing pending")

        # Both pages: the same complete conversation, in seq order, each message once.
        conv_a = [m[:3] for m in messages(a)]
        conv_b = [m[:3] for m in messages(b)]
        check(conv_a == conv_b, "both pages show the same conversation")
        check([m[0] for m in conv_a] == list(range(1, len(expected) + 1)),
              f"seqs are 1..{len(expected)} in order, no gap, no duplicate")
        check(sorted((m[1], m[2]) for m in conv_a) == sorted(expected), "every message exactly once")
        # Only the two sent during the outage may be in either order (both were queued).
        fixed = [(m[1], m[2]) for m in conv_a]
        check(fixed[:6] == expected[:6] and fixed[8:] == expected[8:], "the conversation is in the order it was sent")

        # XSS: shown as text, inert.
        type_and_send(a, XSS)
        for page, who in ((a, "alice"), (b, "bob")):
            wait(page, lambda d: any(m[2] == XSS and m[0] for m in messages(d)), f"{who} sees the XSS attempt as text")
            check(page.execute_script("return document.querySelectorAll('#messages img, #messages script').length") == 0,
                  f"{who}: no element was created from the message")
            shown = [e.text for e in page.find_elements(By.CSS_SELECTOR, "#messages .content") if e.text == XSS]
            check(shown == [XSS], f"{who}: its characters are visible")
        time.sleep(0.5)
        for page, who in ((a, "alice"), (b, "bob")):
            try:
                page.switch_to.alert
                alerted = True
            except NoAlertPresentException:
                alerted = False
            check(not alerted, f"{who}: no alert ran")
        a.save_screenshot(os.path.join(SHOTS, "chat.png"))

        # Older history loads on scroll-up: a room with 60 messages shows the newest 50.
        token = api(node.url, "POST", "/auth/register", {
            "username": f"carol_{tag}", "email": f"carol_{tag}@example.com", "password": PASSWORD,
        })["tokens"]["accessToken"]
        archive = api(node.url, "POST", "/rooms", {"name": f"archive-{tag}"}, token)
        for i in range(1, 61):
            api(node.url, "POST", f"/rooms/{archive['id']}/messages", {"content": f"archived {i}"}, token)
        el(b, "#refresh-rooms").click()
        item = f'#room-list button[data-room-name="archive-{tag}"]'
        wait(b, lambda d: d.find_elements(By.CSS_SELECTOR, item), "bob: the archive room is listed")
        el(b, item).click()
        wait(b, lambda d: [m[0] for m in messages(d)] == list(range(11, 61)), "bob: the newest 50 messages show")
        check(el(b, "#load-older").is_displayed(), "bob: 'Load older messages' is offered")
        b.execute_script("document.getElementById('scroller').scrollTop = 0;")
        wait(b, lambda d: [m[0] for m in messages(d)] == list(range(1, 61)), "bob: scrolling up loads the older ones")
        wait(b, lambda d: el(d, "#history-start").is_displayed(), "bob: the start of the room is marked")
        check(d_has(b, f"{item} .member-mark"), "bob: the archive room is marked as joined")
        el(b, "#leave-room").click()
        wait(b, lambda d: not visible(d, "#room-pane") and not d_has(d, f"{item} .member-mark"),
             "bob: left the archive room")

        # A reload keeps the session and reopens the room.
        el(b, f'#room-list button[data-room-name="{room}"]').click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {room}", "bob: back in the first room")
        b.refresh()
        wait(b, lambda d: visible(d, "#chat-view") and el(d, "#room-title").text == f"# {room}",
             "bob: after a reload, still signed in and in the room")
        wait(b, lambda d: [m[:3] for m in messages(d)] == [m[:3] for m in messages(a)],
             "bob: the reloaded page shows the same conversation")

        # Phone-sized screen.
        b.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(0.5)
        check(b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
              "bob: no horizontal scrolling on a 390 px wide screen")
        b.save_screenshot(os.path.join(SHOTS, "chat-mobile.png"))

        for page, who in ((a, "alice"), (b, "bob")):
            bad = csp_violations(page)
            check(not bad, f"{who}: no Content-Security-Policy violation" + (f": {bad}" if bad else ""))

        # Signing out returns to the sign-in form.
        el(b, "#sign-out").click()
        wait(b, lambda d: visible(d, "#auth-view") and not visible(d, "#chat-view"), "bob: signed out")
    finally:
        for d in drivers:
            try:
                d.quit()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        if node.proc and node.proc.poll() is None:
            node.stop()
        node.kill()
        try:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        except subprocess.CalledProcessError as e:
            log(f"could not drop {db}: {e.stderr}")
        LOG_TAIL.append(node.log_tail())


def main():
    for path, what in ((CHATD_BIN, "chatd binary (cargo build --release --bin chatd, or set CHATD_BIN)"),
                       (CHROME_BIN, "Chromium (apt-get install chromium)"),
                       (CHROMEDRIVER, "chromedriver (apt-get install chromium-driver)")):
        if not os.access(path, os.X_OK):
            print(f"FAIL: missing {what}: {path}", file=sys.stderr)
            return 1
    if not shutil.which("psql"):
        print("FAIL: missing psql (apt-get install postgresql-client)", file=sys.stderr)
        return 1
    os.makedirs(SHOTS, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="chatd-browser-")
    try:
        run(workdir)
    except Exception as e:  # noqa: BLE001 - any error fails the test, loudly
        what = str(e) if isinstance(e, CheckFailed) else f"{type(e).__name__}: {e}"
        print(f"\nFAIL: {what}", file=sys.stderr)
        if LOG_TAIL and LOG_TAIL[0].strip():
            print(f"--- chatd log (last lines) ---\n{LOG_TAIL[0]}", file=sys.stderr)
        print(f"browser: {len(PASSED)} passed, 1 failed", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nbrowser: {len(PASSED)} passed, 0 failed in {time.monotonic() - STARTED:.1f}s")
    print(f"screenshots in {SHOTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
