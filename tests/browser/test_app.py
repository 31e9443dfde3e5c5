#!/usr/bin/env python3
"""The web app in a real browser: two headless Chromium sessions against a chatd node
this test starts itself (own database, free port).

Two users sign up; one creates a room, the other finds it among the public rooms and
joins it (a system entry, shown as text on both pages); they see each other online, with
roles, and typing, and talk; the node is restarted mid-conversation (SIGTERM, then
started again on the same port) while both pages show "Reconnecting…" and hold queued
messages; afterwards both pages show the same complete stream in seq order. An XSS
attempt renders as inert text, older history loads on scroll-up. A direct conversation
is opened from the member list; unread counts show live in the room list, in order of
last activity, agree with the server's and clear when the room is viewed; a private
room's invitation is accepted; roles and mutes change from the member list; a reload
keeps the session; a kick closes the room on the kicked user's page with a notice.
Screenshots go to docs/screenshots/. Exit status 0 only when every check passed.

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
from selenium.common.exceptions import (NoAlertPresentException, NoSuchElementException,
                                        StaleElementReferenceException, TimeoutException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

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


def entries(d):
    """(seq, kind, author, content, state) of every entry of the open room, top to bottom:
    messages (kind "message", our own pending ones without a seq) and system entries
    (kind "system", no author)."""
    return [tuple(x) for x in d.execute_script("""
        return [...document.querySelectorAll('#messages > li')].map(li => {
            const system = li.classList.contains('system-entry');
            return [li.dataset.seq ? Number(li.dataset.seq) : null,
                    system ? 'system' : 'message',
                    system ? null : li.querySelector('.author').textContent,
                    system ? li.querySelector('.system-text').textContent : li.querySelector('.content').textContent,
                    li.dataset.state || null];
        });""")]


def messages(d):
    """(seq, author, content, state) of every message on the page (system entries left out)."""
    return [(e[0], e[2], e[3], e[4]) for e in entries(d) if e[1] == "message"]


def system_entries(d):
    """(seq, text) of the system entries shown."""
    return [(e[0], e[3]) for e in entries(d) if e[1] == "system"]


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
    """The names of the rooms in the list, top to bottom (direct rooms as @user)."""
    return d.execute_script("""
        return [...document.querySelectorAll('#room-list button.room-item')].map(b =>
            b.dataset.visibility === 'direct' ? '@' + b.dataset.peer : b.dataset.roomName);""")


def member_action(d, username, action):
    """Open a member's Manage disclosure and click one of its buttons (the list re-renders
    on presence news: a stale element is looked up again)."""
    def attempt(d):
        try:
            li = el(d, f'#member-list li[data-username="{username}"]')
            details = li.find_element(By.CSS_SELECTOR, "details.manage")
            if not details.get_attribute("open"):
                details.find_element(By.CSS_SELECTOR, "summary").click()
            button = li.find_element(By.CSS_SELECTOR, f'button[data-action="{action}"]')
            if not button.is_displayed() or not button.is_enabled():
                return False
            button.click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    wait(d, attempt, f"clicked {action} for {username}", timeout=10)


def member_attr(d, username, attr):
    return d.execute_script(
        "const li = [...document.querySelectorAll('#member-list > li')]"
        ".find(li => li.dataset.username === arguments[0]); return li ? li.dataset[arguments[1]] : null;",
        username, attr)


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

        # alice creates a room; bob finds it among the public rooms and joins it.
        room = f"general-{tag}"
        el(a, "#new-room-name").send_keys(room)
        el(a, "#create-room").click()
        wait(a, lambda d: visible(d, "#room-pane") and el(d, "#room-title").text == f"# {room}",
             "alice: the new room opens")
        wait(a, lambda d: d_has(d, room_item(room)), "alice: the room is in her list")
        el(b, "#browse-rooms").click()
        join = f'#public-list button.join-room[data-room-name="{room}"]'
        wait(b, lambda d: d_has(d, join), "bob: the room is among the public rooms")
        el(b, join).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {room}" and d_has(d, room_item(room)),
             "bob: joined and opened the room, listed as his")

        wait(a, lambda d: member_online(d, bob), "alice sees bob online")
        wait(b, lambda d: member_online(d, alice), "bob sees alice online")
        check(member_attr(a, alice, "role") == "owner" and member_attr(a, bob, "role") == "member",
              "alice: the member list shows the roles")
        check(a.execute_script(
            "return [...document.querySelectorAll('#member-list [data-testid=member-role]')].map(e => e.textContent)")
            == ["owner"], "alice: 'owner' is shown beside her name")

        # bob's join is the room's first entry: a system entry, shown as text on both pages.
        for page, who in ((a, "alice"), (b, "bob")):
            wait(page, lambda d: system_entries(d)[:1] == [(1, f"{bob} joined")],
                 f"{who}: the system entry 'bob joined' shows at seq 1")
        check(a.execute_script("return document.querySelector('#messages .system-entry .system-text').children.length")
              == 0, "the system entry is plain text")

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

        # Both pages: the same complete stream, in seq order, each entry once.
        conv_a = [e[:4] for e in entries(a)]
        conv_b = [e[:4] for e in entries(b)]
        check(conv_a == conv_b, "both pages show the same conversation")
        check([e[0] for e in conv_a] == list(range(1, len(expected) + 2)),
              f"seqs are 1..{len(expected) + 1} in order, no gap, no duplicate (the join entry first)")
        conv_msgs = [(e[2], e[3]) for e in conv_a if e[1] == "message"]
        check(sorted(conv_msgs) == sorted(expected), "every message exactly once")
        # Only the two sent during the outage may be in either order (both were queued).
        check(conv_msgs[:6] == expected[:6] and conv_msgs[8:] == expected[8:], "the conversation is in the order it was sent")

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

        # Older history loads on scroll-up: a room with 60 messages (and bob's join, its
        # 61st entry) shows the newest 50 entries.
        token = api(node.url, "POST", "/auth/register", {
            "username": f"carol_{tag}", "email": f"carol_{tag}@example.com", "password": PASSWORD,
        })["tokens"]["accessToken"]
        archive = f"archive-{tag}"
        archive_room = api(node.url, "POST", "/rooms", {"name": archive}, token)
        archived = [api(node.url, "POST", f"/rooms/{archive_room['id']}/messages", {"content": f"archived {i}"}, token)
                    for i in range(1, 61)]
        el(b, "#browse-rooms").click()
        join = f'#public-list button.join-room[data-room-name="{archive}"]'
        wait(b, lambda d: d_has(d, join), "bob: the archive room is among the public rooms")
        el(b, join).click()
        wait(b, lambda d: [e[0] for e in entries(d)] == list(range(12, 62)), "bob: the newest 50 entries show")
        check(system_entries(b) == [(61, f"{bob} joined")], "bob: his join is the newest entry")
        check(el(b, "#load-older").is_displayed(), "bob: 'Load older messages' is offered")
        b.execute_script("document.getElementById('scroller').scrollTop = 0;")
        wait(b, lambda d: [e[0] for e in entries(d)] == list(range(1, 62)), "bob: scrolling up loads the older ones")
        wait(b, lambda d: el(d, "#history-start").is_displayed(), "bob: the start of the room is marked")

        # A direct conversation, opened by alice from the member list.
        el(a, f'#member-list li[data-username="{bob}"] button.dm-button').click()
        wait(a, lambda d: el(d, "#room-title").text == f"@{bob}" and el(d, "#room-kind").text == "direct",
             "alice: the direct conversation with bob opens")
        type_and_send(a, "hi bob, just us")
        wait(a, lambda d: any(m[2] == "hi bob, just us" and m[3] == "acked" for m in messages(d)),
             "alice: her direct message is stored")
        el(b, "#refresh-rooms").click()
        dm_item = f'#room-list button[data-visibility="direct"][data-peer="{alice}"]'
        wait(b, lambda d: unread_badge(d, dm_item) == "1", "bob: the direct conversation is listed, 1 unread")

        # Unread counts: alice writes in the room bob is not looking at.
        el(a, room_item(room)).click()
        wait(a, lambda d: el(d, "#room-title").text == f"# {room}", "alice: back in the room")
        for i in range(1, 4):
            type_and_send(a, f"unread {i}")
        wait(b, lambda d: unread_badge(d, room_item(room)) == "3", "bob: 3 unread in the room, live")
        wait(b, lambda d: listed_rooms(d)[:2] == [room, f"@{alice}"],
             "bob: rooms ordered by last activity")
        check(unread_badge(b, room_item(archive)) == "", "bob: nothing unread in the room he is reading")
        b_token = api(node.url, "POST", "/auth/login", {"email": f"{bob}@example.com", "password": PASSWORD})["tokens"]["accessToken"]

        def server_unread(name):
            rooms = api(node.url, "GET", "/me/rooms", token=b_token)["rooms"]
            return next(r["unread"] for r in rooms if r["name"] == name)

        wait(b, lambda d: server_unread(room) == 3, "the server counts the same 3 unread for bob")
        b.execute_script("const s = document.getElementById('scroller'); s.scrollTop = s.scrollHeight;")
        time.sleep(0.3)
        b.save_screenshot(os.path.join(SHOTS, "rooms-unread.png"))

        # Edits and deletions are entries of the stream too: they change the message shown.
        shown_before = len(entries(b))
        api(node.url, "PATCH", f"/rooms/{archive_room['id']}/messages/{archived[-1]['id']}",
            {"content": "archived 60, edited"}, token)
        api(node.url, "DELETE", f"/rooms/{archive_room['id']}/messages/{archived[-2]['id']}", None, token)
        wait(b, lambda d: [m[2] for m in messages(d)][-2:] == ["This message was deleted.", "archived 60, edited"],
             "bob: an edit and a deletion change the messages in place")
        check(len(entries(b)) == shown_before, "bob: no entry is added for them")
        check(el(b, f'#messages li[data-message-id="{archived[-1]["id"]}"] .edited').text == "(edited)",
              "bob: the edited message says so")
        el(b, room_item(room)).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {room}" and unread_badge(d, room_item(room)) == "",
             "bob: viewing the room clears its unread count")
        wait(b, lambda d: server_unread(room) == 0, "bob's read mark reached the server (unread 0)")
        el(b, dm_item).click()
        wait(b, lambda d: el(d, "#room-title").text == f"@{alice}"
             and any(m[2] == "hi bob, just us" for m in messages(d)) and unread_badge(d, dm_item) == "",
             "bob: the direct conversation shows alice's message, read")

        # Leaving a room takes it out of the list.
        el(b, room_item(archive)).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {archive}", "bob: back in the archive room")
        el(b, "#leave-room").click()
        wait(b, lambda d: not visible(d, "#room-pane") and not d_has(d, room_item(archive)),
             "bob: left the archive room, gone from his list")

        # A private room, and its invitation accepted by bob.
        secret = f"secret-{tag}"
        el(a, "#new-room-name").send_keys(secret)
        Select(el(a, "#new-room-visibility")).select_by_value("private")
        el(a, "#create-room").click()
        wait(a, lambda d: el(d, "#room-title").text == f"# {secret}" and el(d, "#room-kind").text == "private",
             "alice: the private room opens")
        wait(a, lambda d: visible(d, "#invite-form"), "alice: the owner is offered the invite form")
        el(a, "#invite-user").send_keys(bob)
        el(a, "#invite-submit").click()
        wait(a, lambda d: el(d, "#invite-status").text == f"Invited {bob}.", "alice: bob is invited")
        el(b, "#refresh-rooms").click()
        accept = f'#invite-list li[data-room-name="{secret}"] button.accept-invite'
        wait(b, lambda d: visible(d, accept), "bob: the invitation shows")
        el(b, accept).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {secret}" and not visible(d, "#invites-section"),
             "bob: accepting opens the private room")
        wait(a, lambda d: (1, f"{bob} joined") in system_entries(d), "alice: bob's join shows in the private room")
        type_and_send(a, "welcome to the private room")
        wait(b, lambda d: any(m[2] == "welcome to the private room" for m in messages(d)), "bob: alice's welcome arrives")
        type_and_send(b, "thanks for the invitation")
        wait(a, lambda d: any(m[2] == "thanks for the invitation" for m in messages(d)), "alice: bob's answer arrives")

        # Roles and mutes from the member list.
        wait(a, lambda d: member_attr(d, bob, "role") == "member", "alice: bob is listed in the private room")
        member_action(a, bob, "make-admin")
        wait(a, lambda d: member_attr(d, bob, "role") == "admin", "alice: bob promoted to admin")
        member_action(a, bob, "remove-admin")
        wait(a, lambda d: member_attr(d, bob, "role") == "member", "alice: bob demoted")
        member_action(a, bob, "mute")
        wait(a, lambda d: member_attr(d, bob, "muted") == "true", "alice: bob is shown muted")
        member_action(a, bob, "unmute")
        wait(a, lambda d: member_attr(d, bob, "muted") == "false", "alice: bob unmuted")

        # A reload keeps the session and reopens the room.
        el(b, room_item(room)).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {room}", "bob: back in the first room")
        before = [e[:4] for e in entries(b)]
        b.refresh()
        wait(b, lambda d: visible(d, "#chat-view") and el(d, "#room-title").text == f"# {room}",
             "bob: after a reload, still signed in and in the room")
        check(len(before) < 50, "the first room fits one page")
        wait(b, lambda d: [e[:4] for e in entries(d)] == before, "bob: the reloaded page shows the same conversation")

        # alice kicks bob while he is looking at the room.
        el(a, room_item(room)).click()
        wait(a, lambda d: el(d, "#room-title").text == f"# {room}" and member_attr(d, bob, "role") == "member",
             "alice: back in the room, bob listed")
        member_action(a, bob, "kick")
        wait(b, lambda d: not visible(d, "#room-pane") and el(d, "#notice").text == f"You were removed from # {room}.",
             "bob: the kick closes the room with a notice")
        check(not d_has(b, room_item(room)), "bob: the room is gone from his list")
        wait(a, lambda d: any(t == f"{bob} was removed by {alice}" for _, t in system_entries(d)),
             "alice: the kick shows as a system entry")
        wait(a, lambda d: member_attr(d, bob, "role") is None, "alice: bob is off the member list")

        # Phone-sized screen.
        el(b, room_item(secret)).click()
        wait(b, lambda d: el(d, "#room-title").text == f"# {secret}", "bob: in the private room")
        b.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(0.5)
        check(b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
              "bob: no horizontal scrolling on a 390 px wide screen")
        b.save_screenshot(os.path.join(SHOTS, "chat-mobile.png"))
        el(b, "#back-to-rooms").click()
        wait(b, lambda d: visible(d, "#room-list") and not visible(d, "#room-pane"), "bob: phone: back to the room list")
        check(b.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"),
              "bob: the room list fits a 390 px wide screen")
        b.save_screenshot(os.path.join(SHOTS, "rooms-mobile.png"))

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
