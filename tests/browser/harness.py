"""What the browser test and the screenshot command share: a chatd process on its own
database and a free port (restartable, with other secrets if asked), REST calls to seed
data, headless Chromium sessions, waiting and checking, page helpers, the accessibility
check (axe-core, fetched by run.sh at test time) and layout checks.

Environment: CHATD_BIN (default target/release/chatd), TEST_PG_URL (default
postgres://postgres@127.0.0.1:5432), CHROME_BIN (/usr/bin/chromium), CHROMEDRIVER
(/usr/bin/chromedriver), AXE_JS (axe.min.js; the accessibility check needs it).
"""
import base64
import http.client
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHATD_BIN = os.environ.get("CHATD_BIN", os.path.join(ROOT, "target", "release", "chatd"))
PG_URL = os.environ.get("TEST_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
CHROME_BIN = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
AXE_JS = os.environ.get("AXE_JS", "")
PASSWORD = "password-123"
SECRETS = {
    "JWT_ACCESS_SECRET": "browser-test-access-secret-0123456789abcdef",
    "JWT_REFRESH_SECRET": "browser-test-refresh-secret-0123456789abcde",
}

STARTED = time.monotonic()
PASSED = []


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
    def attempt(d):
        try:
            return fn(d)
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    try:
        result = WebDriverWait(driver, timeout, poll_frequency=0.1).until(attempt)
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


class Database:
    """A database of its own, dropped at the end."""

    def __init__(self, prefix="chatd_browser"):
        self.name = f"{prefix}_{secrets.token_hex(6)}"
        psql(f"CREATE DATABASE {self.name}")
        self.url = f"{PG_URL}/{self.name}"

    def drop(self):
        try:
            psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        except subprocess.CalledProcessError as e:
            log(f"could not drop {self.name}: {e.stderr}")


class Node:
    """One chatd process, restartable on the same port and database."""

    def __init__(self, database_url, port, workdir):
        self.database_url = database_url
        self.port = port
        self.log_path = os.path.join(workdir, "chatd.log")
        # Defaults but for the per-user rates: the tests seed rooms of thousands of
        # messages over REST faster than one user may post.
        self.config_path = os.path.join(workdir, "chatd.toml")
        with open(self.config_path, "w") as f:
            # Web Push on (a key of the test's own), subscriptions to a local stand-in allowed.
            vapid = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            f.write("[websocket]\nmax_events_per_sec = 0\n\n[limits]\nrooms_per_user_per_hour = 0\n\n"
                    f"[push]\nvapid_private_key = \"{vapid}\"\nallow_private_endpoints = true\n")
        self.proc = None
        self.secrets = dict(SECRETS)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30, secrets_=None):
        """Start (with other JWT secrets when given: every earlier token is then refused)."""
        if secrets_ is not None:
            self.secrets = secrets_
        env = dict(os.environ, DATABASE_URL=self.database_url, PORT=str(self.port),
                   CHATD_CONFIG=self.config_path,
                   RUST_LOG=os.environ.get("CHATD_LOG", "warn"), **self.secrets)
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


def register(base, username, email=None):
    """A new account: (user, access token)."""
    email = email or f"{''.join(c for c in username.lower() if c.isalnum()) or 'user'}@example.com"
    res = api(base, "POST", "/auth/register", {"username": username, "email": email, "password": PASSWORD})
    return res["user"], res["tokens"]["accessToken"]


def post_many(base, room_id, token, contents, threads=4):
    """Post many messages quickly (keep-alive connections, a few at a time); returns them in order."""
    parsed = urllib.parse.urlparse(base)
    out = [None] * len(contents)

    def worker(k):
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        for i in range(k, len(contents), threads):
            body = json.dumps({"content": contents[i]})
            conn.request("POST", f"/rooms/{room_id}/messages", body,
                         {"content-type": "application/json", "authorization": f"Bearer {token}"})
            r = conn.getresponse()
            out[i] = json.loads(r.read())
            if r.status != 201:
                raise CheckFailed(f"seeding failed: {r.status} {out[i]}")
        conn.close()

    import threading
    errors = []
    pool = [threading.Thread(target=lambda k=k: _catch(errors, worker, k)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return out


def _catch(errors, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - reported by the caller
        errors.append(e)


def browser(profile_dir, width=1280, height=800):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROME_BIN
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb",
                "--lang=en-US", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    size(driver, width, height)
    return driver


def size(d, width, height, mobile=False):
    """The page's viewport, exactly (phone sizes: touch and a mobile viewport)."""
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    d.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})


# --- page helpers -------------------------------------------------------------------


def el(d, css):
    return d.find_element(By.CSS_SELECTOR, css)


def els(d, css):
    return d.find_elements(By.CSS_SELECTOR, css)


def visible(d, css):
    found = d.find_elements(By.CSS_SELECTOR, css)
    return bool(found) and found[0].is_displayed()


def has(d, css):
    return bool(d.find_elements(By.CSS_SELECTOR, css))


def js(d, script, *args):
    return d.execute_script(script, *args)


def entries(d, list_css="#messages"):
    """(seq, kind, author, content, state) of every entry in the DOM of a list, top to
    bottom: messages (our own pending ones without a seq) and system entries."""
    return [tuple(x) for x in d.execute_script("""
        return [...document.querySelectorAll(arguments[0] + ' > li')].map(li => {
            const system = li.classList.contains('system-entry');
            return [li.dataset.seq ? Number(li.dataset.seq) : null,
                    system ? 'system' : 'message',
                    system ? null : li.querySelector('.author').textContent,
                    system ? li.querySelector('.system-text').textContent : li.querySelector('.content').textContent,
                    li.dataset.state || null];
        });""", list_css)]


def messages(d, list_css="#messages"):
    """(seq, author, content, state) of every message in the DOM (system entries left out)."""
    return [(e[0], e[2], e[3], e[4]) for e in entries(d, list_css) if e[1] == "message"]


def system_entries(d):
    return [(e[0], e[3]) for e in entries(d) if e[1] == "system"]


def message_li(d, text, list_css="#messages"):
    """The list item of the message whose content is `text` (exactly), or None."""
    for li in els(d, f"{list_css} > li.message"):
        if li.find_element(By.CSS_SELECTOR, ".content").text == text:
            return li
    return None


def message_attr(d, text, attr, list_css="#messages"):
    return d.execute_script("""
        const li = [...document.querySelectorAll(arguments[0] + ' > li.message')]
            .find(li => li.querySelector('.content').textContent === arguments[1]);
        return li ? li.getAttribute(arguments[2]) : null;""", list_css, text, attr)


def reactions_of(d, text, list_css="#messages"):
    """{emoji: (count, pressed, title)} of the message whose content is `text`."""
    found = d.execute_script("""
        const li = [...document.querySelectorAll(arguments[0] + ' > li.message')]
            .find(li => li.querySelector('.content').textContent === arguments[1]);
        if (!li) return null;
        return [...li.querySelectorAll('.reaction')].map(b =>
            [b.dataset.emoji, Number(b.dataset.count), b.getAttribute('aria-pressed') === 'true', b.title]);""",
                             list_css, text)
    return None if found is None else {e: (n, p, t) for e, n, p, t in found}


def act_on(d, text, action, list_css="#messages"):
    """Hover a message and click one of its toolbar buttons (data-action); a row drawn
    again meanwhile is found again."""
    from selenium.webdriver.common.action_chains import ActionChains

    def attempt(d):
        try:
            li = message_li(d, text, list_css)
            if li is None:
                return False
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", li)
            ActionChains(d).move_to_element(li).perform()
            li.find_element(By.CSS_SELECTOR, f'.actions [data-action="{action}"]').click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    try:
        WebDriverWait(d, 10, poll_frequency=0.05).until(attempt)
    except TimeoutException:
        raise CheckFailed(f"could not {action} {text!r}") from None


def room_item(name):
    return f'#room-list button[data-room-name="{name}"]'


def unread_badge(d, css):
    """The unread badge's text of a room in the list, '' when it has none, None when unlisted."""
    return d.execute_script("""
        const b = document.querySelector(arguments[0]);
        if (!b) return null;
        const badge = b.querySelector('[data-testid=unread]');
        return badge ? badge.textContent : '';""", css)


def listed_rooms(d):
    return d.execute_script("""
        return [...document.querySelectorAll('#room-list button.room-item')].map(b =>
            b.dataset.visibility === 'direct' ? '@' + b.dataset.peer : b.dataset.roomName);""")


def member_action(d, username, action):
    """Open a member's Manage disclosure and click one of its buttons."""
    def attempt(d):
        li = el(d, f'#member-list li[data-username="{username}"]')
        details = li.find_element(By.CSS_SELECTOR, "details.manage")
        if not details.get_attribute("open"):
            details.find_element(By.CSS_SELECTOR, "summary").click()
        button = li.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')
        if not button.is_displayed() or not button.is_enabled():
            return False
        button.click()
        return True
    wait(d, attempt, f"clicked {action} for {username}", timeout=10)


def member_attr(d, username, attr):
    return d.execute_script(
        "const li = [...document.querySelectorAll('#member-list li[data-username]')]"
        ".find(li => li.dataset.username === arguments[0]); return li ? li.dataset[arguments[1]] : null;",
        username, attr)


def sign_up(d, base, name, email=None):
    email = email or f"{name}@example.com"
    d.get(base)
    wait(d, lambda d: visible(d, "#auth-view"), f"{name}: the sign-in page shows")
    el(d, "#tab-signup").click()
    el(d, "#signup-username").send_keys(name)
    el(d, "#signup-email").send_keys(email)
    el(d, "#signup-password").send_keys(PASSWORD)
    el(d, "#signup-submit").click()
    wait(d, lambda d: visible(d, "#chat-view") and el(d, "#current-user").text == name,
         f"{name}: signed up and signed in")


def sign_in(d, email):
    el(d, "#signin-email").clear()
    el(d, "#signin-email").send_keys(email)
    el(d, "#signin-password").send_keys(PASSWORD)
    el(d, "#signin-submit").click()


def click(d, css, timeout=10):
    """Click an element that a live list may draw again meanwhile (looked up again when stale)."""
    def attempt(d):
        try:
            el(d, css).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    try:
        WebDriverWait(d, timeout, poll_frequency=0.05).until(attempt)
    except TimeoutException:
        raise CheckFailed(f"could not click {css}") from None


def click_in(d, text, css, list_css="#messages", timeout=10):
    """Click a control inside the message whose content is `text` (found again if the row is redrawn)."""
    def attempt(d):
        try:
            li = message_li(d, text, list_css)
            if li is None:
                if list_css == "#messages":
                    # Only the rows near the view are drawn: walk up the conversation (from
                    # the top, back to the bottom) until the message is among them.
                    d.execute_script("""
                        const s = document.querySelector('#scroller');
                        s.scrollTop = s.scrollTop > 0 ? Math.max(0, s.scrollTop - s.clientHeight * 0.5) : s.scrollHeight;""")
                return False
            li.find_element(By.CSS_SELECTOR, css).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    try:
        WebDriverWait(d, timeout, poll_frequency=0.05).until(attempt)
    except TimeoutException:
        raise CheckFailed(f"could not click {css} in {text!r}") from None


def open_room(d, name):
    click(d, room_item(name))
    wait(d, lambda d: el(d, "#room-title").text.endswith(name), f"{d.who}: in {name}")


def create_room(d, name, private=False):
    el(d, "#new-room").click()
    wait(d, lambda d: visible(d, "#new-room-dialog"), f"{d.who}: the new room dialog opens")
    el(d, "#new-room-name").send_keys(name)
    if private:
        from selenium.webdriver.support.ui import Select
        Select(el(d, "#new-room-visibility")).select_by_value("private")
    el(d, "#create-room").click()
    wait(d, lambda d: not visible(d, "#new-room-dialog") and el(d, "#room-title").text == f"# {name}",
         f"{d.who}: {name} created and opened")


def type_and_send(d, text, field="#message-input"):
    box = el(d, field)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def member_online(d, username):
    return member_attr(d, username, "online") == "true"


def connection_state(d):
    return el(d, "#connection-status").get_attribute("data-state")


def csp_violations(d):
    return [e["message"] for e in d.get_log("browser") if "Content Security Policy" in e["message"]]


def room_menu(d, button):
    """Open the room's options and click one (by id)."""
    if not el(d, "#room-menu").get_attribute("open"):
        el(d, "#room-menu summary").click()
    wait(d, lambda d: visible(d, f"#{button}"), f"{d.who}: the room options show {button}", timeout=5)
    el(d, f"#{button}").click()


# --- accessibility and layout -------------------------------------------------------


def axe(d, what, context="document"):
    """Run axe-core in the page; a serious or critical violation fails the test."""
    if not AXE_JS or not os.path.exists(AXE_JS):
        raise CheckFailed(f"axe-core is missing (AXE_JS={AXE_JS!r}): run the test through tests/browser/run.sh")
    if not d.execute_script("return !!window.axe"):
        with open(AXE_JS, encoding="utf-8") as f:
            d.execute_script(f.read() + "\n;window.axe = axe;")
    result = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const ctx = arguments[0] === 'document' ? document : document.querySelector(arguments[0]);
        axe.run(ctx, { resultTypes: ['violations'] }).then(r => done(r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ')) }))), e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));
    """, context)
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    check(not bad, f"{what}: no serious or critical accessibility violation (axe-core)"
          + (f": {json.dumps(bad, ensure_ascii=False)}" if bad else ""))
    return result


def boxes(d, selectors):
    """{selector: (left, top, right, bottom)} of the first visible match of each selector."""
    return d.execute_script("""
        const out = {};
        for (const s of arguments[0]) {
            const e = [...document.querySelectorAll(s)].find(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden');
            if (e) { const r = e.getBoundingClientRect(); out[s] = [r.left, r.top, r.right, r.bottom]; }
        }
        return out;""", selectors)


def layout_ok(d, what, inside, apart=(), margin=0):
    """Every `inside` element is shown within the viewport (`margin` px from its edges),
    with its content not cut (no horizontal overflow), and no two elements of a pair in
    `apart` overlap; the page itself does not scroll sideways."""
    vw, vh = d.execute_script("return [window.innerWidth, window.innerHeight]")
    found = boxes(d, list(inside) + [s for pair in apart for s in pair])
    problems = []
    for s in inside:
        b = found.get(s)
        if not b:
            problems.append(f"{s} not shown")
            continue
        if b[0] < margin - 0.5 or b[1] < -0.5 or b[2] > vw - margin + 0.5 or b[3] > vh + 0.5 or b[2] - b[0] < 1:
            problems.append(f"{s} at {[round(x) for x in b]} outside {vw}x{vh} (margin {margin})")
    for a, b in apart:
        ra, rb = found.get(a), found.get(b)
        if ra and rb and ra[0] < rb[2] - 0.5 and rb[0] < ra[2] - 0.5 and ra[1] < rb[3] - 0.5 and rb[1] < ra[3] - 0.5:
            problems.append(f"{a} overlaps {b}")
    if d.execute_script("return document.documentElement.scrollWidth > window.innerWidth"):
        problems.append("the page scrolls sideways")
    check(not problems, f"{what}: layout holds ({vw}x{vh})" + (f": {problems}" if problems else ""))
