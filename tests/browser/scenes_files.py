"""Browser scenes for files, notification levels with mention badges, and Web Push
(alice owns the room, bob is a member; both pages open).

files: attached by the keyboard-reachable button (a PNG, uploaded under a throttled
network so that the progress bar shows between 0 and 100), by a drop onto the
conversation (a file whose name is HTML: shown as text) and by a paste (a clipboard
image); each sent and seen live on the other page, images inline (loaded), other files as
download links with name and size whose URL gives the bytes back; an image that cannot be
decoded turns into a download link. Notification levels: chosen from the room options
with the keyboard, stored by the server, shown after a reload; a mention counts in the
sidebar's mention badge until read. Push: the service worker's handlers loaded into a page
(a push payload gives the notification's title and body, a click posts the room to an open
tab); the app registers /sw.js at scope / and gives the server its subscription once
notifications are allowed (the browser's push service replaced by a stand-in: headless
Chromium cannot reach one), and takes it back on sign-out."""
import base64
import json
import os
import struct
import subprocess
import time
import zlib

from selenium.webdriver.common.keys import Keys

from harness import (api, axe, check, el, has, js, log, open_room, room_item, room_menu, sign_in, type_and_send,
                     visible, wait)


def png(width, height, rgb=(200, 40, 40)):
    """A real PNG of one colour."""
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _file_rows(d, name):
    """The attachment items of the newest message holding a file called `name`."""
    return js(d, """
        const items = [...document.querySelectorAll('#messages li.attachment.file')];
        const hit = items.reverse().find(li => li.querySelector('.file-name')?.textContent === arguments[0]);
        if (!hit) return null;
        const img = hit.querySelector('img');
        const a = hit.querySelector('a.file-link');
        return { kind: hit.dataset.kind, loaded: hit.dataset.loaded === 'true', failed: hit.dataset.failed === 'true',
                 natural: img ? img.naturalWidth : 0, download: a ? a.getAttribute('download') : null,
                 text: hit.textContent, imgs: hit.querySelectorAll('img').length,
                 width: img ? img.getAttribute('width') : null,
                 src: img ? img.getAttribute('src') || '' : '' };""", name)


def _tray(d):
    return js(d, "return [...document.querySelectorAll('#upload-tray [data-testid=upload]')].map(li => [li.querySelector('.upload-name').textContent, li.dataset.state])")


def _drop(d, name, text):
    js(d, """
        const dt = new DataTransfer();
        dt.items.add(new File([arguments[1]], arguments[0], { type: 'text/plain' }));
        const zone = document.querySelector('#room-pane .conversation');
        zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        window.__dropping = zone.classList.contains('dropping');
        zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));""", name, text)


def _sent(c, who, text):
    """A message of these scenes in the shared room (the outage scene counts them all)."""
    if hasattr(c, "expected"):
        c.expected.append((who, text))


def files(c):
    a, b = c.a, c.b
    open_room(a, c.room)
    open_room(b, c.room)
    work = os.path.dirname(c.node.log_path)

    # The Attach button is one Tab after the field (Shift+Tab still goes to the messages).
    el(a, "#message-input").click()
    el(a, "#message-input").send_keys(Keys.TAB)
    check(js(a, "return document.activeElement.id") == "attach-button", "alice: Attach is reachable by the keyboard")
    check(el(a, "#attach-button").get_attribute("aria-label") == "Attach files", "the button has a name")

    # A picture through the picker, under a slow upload: the progress bar moves.
    big = os.path.join(work, "harbour.png")
    with open(big, "wb") as f:
        f.write(png(640, 480, (30, 90, 160)) + os.urandom(300_000))  # bytes after IEND: the size of a photo
    a.execute_cdp_cmd("Network.enable", {})
    a.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 20,
                                                           "downloadThroughput": -1, "uploadThroughput": 150_000})
    js(a, """window.__progress = [];
        new MutationObserver(() => { const p = document.querySelector('#upload-tray progress');
            if (p) window.__progress.push(Number(p.value)); })
          .observe(document.querySelector('#upload-tray'), { subtree: true, childList: true, attributes: true });
        setInterval(() => { const p = document.querySelector('#upload-tray progress'); if (p) window.__progress.push(Number(p.value)); }, 50);""")
    el(a, "#file-input").send_keys(big)
    wait(a, lambda d: _tray(d) == [["harbour.png", "uploading"]], "alice: the file is in the tray, uploading")
    check(has(a, "#upload-tray progress[aria-label='Uploading harbour.png']"), "alice: a named progress bar shows")
    axe(a, "the composer with an upload under way", "#composer")
    # Enter during the upload sends nothing yet and says why; the text stays.
    el(a, "#message-input").send_keys("the harbour at noon", Keys.ENTER)
    check("Wait for the upload" in el(a, "#room-error").text
          and el(a, "#message-input").get_attribute("value") == "the harbour at noon",
          "alice: a send during the upload waits, the text kept")
    wait(a, lambda d: _tray(d) == [["harbour.png", "done"]], "alice: the upload finishes", timeout=30)
    wait(a, lambda d: el(d, "#room-error").text == "", "alice: the note goes once the file is ready")
    a.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                           "downloadThroughput": -1, "uploadThroughput": -1})
    seen = js(a, "return window.__progress")
    check(any(0 < v < 100 for v in seen), f"alice: the progress bar showed partial progress ({sorted(set(seen))[:8]}...)")
    el(a, "#message-input").send_keys(Keys.ENTER)
    _sent(c, c.alice, "the harbour at noon")
    for page, who in ((a, "alice"), (b, "bob")):
        wait(page, lambda d: (_file_rows(d, "harbour.png") or {}).get("loaded"),
             f"{who}: the picture shows inline, loaded", timeout=20)
        row = _file_rows(page, "harbour.png")
        # The server made a 320 px thumbnail of the 640 px picture: the page loads that,
        # by a signed URL (no token in an <img>), not the 300 KB original.
        check(row["kind"] == "image" and row["natural"] == 320 and row["width"] == "320",
              f"{who}: drawn at 320 px wide from its 320 px thumbnail ({row})")
        check("/thumbnail?" in row["src"] and "sig=" in row["src"],
              f"{who}: the picture is the thumbnail's signed URL ({row['src'][:80]})")
    check(_tray(a) == [] and not visible(a, "#upload-tray"), "alice: the tray emptied on send")
    mine = api(c.url, "GET", f"/rooms/{c.room_id}/messages?limit=5", token=c.a_token)["messages"]
    sent = next(m for m in mine if m["content"] == "the harbour at noon")
    check(len(sent["attachments"]) == 1 and sent["attachments"][0]["file"]["name"] == "harbour.png"
          and sent["attachments"][0]["file"]["mime"] == "image/png", "the server stored the message with the file")

    # A file dropped onto the conversation, its name HTML: text, never markup. Sent alone.
    evil = "<img src=x onerror=alert(1)>.txt"
    _drop(b, evil, "quarterly numbers\n")
    check(js(b, "return window.__dropping"), "bob: dragging files over the conversation shows the drop zone")
    wait(b, lambda d: _tray(d) == [[evil, "done"]], "bob: the dropped file uploads")
    el(b, "#message-input").send_keys(Keys.ENTER)
    _sent(c, c.bob, evil)  # a message of files only carries their names
    for page, who in ((a, "alice"), (b, "bob")):
        wait(page, lambda d: (_file_rows(d, evil) or {}).get("kind") == "file", f"{who}: the dropped file is listed")
        row = _file_rows(page, evil)
        check(row["imgs"] == 0 and row["download"] == evil and "18 B" in row["text"],
              f"{who}: a download link named as text, with its size ({row})")
    check(not has(a, "#messages img[src='x']"), "no element came out of the file's name")
    # The link saves the bytes under the file's name (its URL is resolved on the first click).
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads, exist_ok=True)
    a.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    js(a, """const items = [...document.querySelectorAll('#messages li.attachment.file')];
        items.reverse().find(li => li.querySelector('.file-name')?.textContent === arguments[0]).querySelector('a').click();""", evil)

    def saved():
        for name in os.listdir(downloads):
            if not name.endswith(".crdownload"):
                with open(os.path.join(downloads, name), encoding="utf-8", errors="replace") as f:
                    return name, f.read()
        return None
    wait(a, lambda d: saved(), "alice: the download link saves the file")
    name, body = saved()
    check(body == "quarterly numbers\n" and name.endswith(".txt") and "onerror" in name,
          f"alice: the saved file has the bytes, under its name ({name!r})")

    # A pasted clipboard image.
    js(b, """
        const c = document.createElement('canvas'); c.width = 40; c.height = 30;
        const g = c.getContext('2d'); g.fillStyle = '#2a7'; g.fillRect(0, 0, 40, 30);
        c.toBlob((blob) => {
            const dt = new DataTransfer();
            dt.items.add(new File([blob], 'image.png', { type: 'image/png' }));
            document.querySelector('#message-input').dispatchEvent(
                new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
        }, 'image/png');""")
    wait(b, lambda d: len(_tray(d)) == 1 and _tray(d)[0][1] == "done" and _tray(d)[0][0].startswith("pasted-"),
         "bob: the pasted image uploads under a name of its own")
    pasted = _tray(b)[0][0]
    type_and_send(b, "pasted this")
    _sent(c, c.bob, "pasted this")
    wait(a, lambda d: (_file_rows(d, pasted) or {}).get("loaded"), "alice: the pasted image shows inline")
    check(_file_rows(a, pasted)["natural"] == 40, "alice: at its own size (40 px)")

    # A picture that cannot be decoded becomes a download link.
    broken = os.path.join(work, "broken.png")
    with open(broken, "wb") as f:
        f.write(png(20, 20)[:40])
    el(a, "#file-input").send_keys(broken)
    wait(a, lambda d: _tray(d) == [["broken.png", "done"]], "alice: the broken picture uploads")
    type_and_send(a, "this one is broken")
    _sent(c, c.alice, "this one is broken")
    wait(b, lambda d: (_file_rows(d, "broken.png") or {}).get("failed"), "bob: a picture that fails shows as a link")
    check(_file_rows(b, "broken.png")["download"] == "broken.png", "bob: the link downloads it under its name")

    # Removing a file before sending; the tray keeps the keyboard.
    el(a, "#file-input").send_keys(broken)
    wait(a, lambda d: len(_tray(d)) == 1, "alice: a file attached")
    el(a, "#upload-tray [data-testid=remove-upload]").click()
    wait(a, lambda d: _tray(d) == [] and js(d, "return document.activeElement.id") == "message-input",
         "alice: removed, focus back in the field")
    axe(a, "a conversation with pictures and files")
    axe(b, "a conversation with pictures and files (bob)")


def _level(d):
    return js(d, "return document.querySelector('#notify-level input:checked')?.value")


def _mentions(d, name):
    return js(d, """const b = document.querySelector(arguments[0]);
        const m = b && b.querySelector('[data-testid=mentions]'); return m ? m.textContent : '';""", room_item(name))


def notification_levels(c):
    """The level from the room options (keyboard), stored by the server; mention badges."""
    a, b = c.a, c.b
    open_room(b, c.room)
    check(_level(b) == "all", "bob: a small room notifies of all messages by default")
    el(b, "#room-menu summary").click()
    wait(b, lambda d: visible(d, "#notify-level"), "bob: the options show the notification level")
    axe(b, "the room options with the notification level", "#room-menu")
    radio = el(b, "#notify-level input[value=all]")
    radio.send_keys(Keys.ARROW_DOWN)  # radios: the arrow moves the choice
    wait(b, lambda d: _level(d) == "mentions", "bob: Mentions only chosen with the keyboard")

    def server_level():
        mine = api(c.url, "GET", "/me/rooms", token=c.b_token)["rooms"]
        return next(r for r in mine if r["id"] == c.room_id)["notification_level"]
    deadline = time.monotonic() + 10
    while server_level() != "mentions" and time.monotonic() < deadline:
        time.sleep(0.1)
    check(server_level() == "mentions", "the server has bob's level: mentions")
    b.refresh()
    wait(b, lambda d: visible(d, "#chat-view") and has(d, room_item(c.room)), "bob: reloaded")
    open_room(b, c.room)
    check(_level(b) == "mentions", "bob: after a reload the options show the server's level")

    # A mention while bob is elsewhere: the badge counts it, reading clears it.
    open_room(b, c.archive)
    open_room(a, c.room)
    type_and_send(a, f"@{c.bob} can you check the harbour picture?")
    _sent(c, c.alice, f"@{c.bob} can you check the harbour picture?")
    wait(b, lambda d: _mentions(d, c.room) == "1", "bob: the room shows 1 mention, live")
    check("mention" in js(b, f"return document.querySelector('{room_item(c.room)} .mention-badge').textContent"),
          "bob: the badge is named for screen readers")
    open_room(b, c.room)
    wait(b, lambda d: _mentions(d, c.room) == "", "bob: reading the room clears the mention badge")
    mine = api(c.url, "GET", "/me/rooms", token=c.b_token)["rooms"]
    check(next(r for r in mine if r["id"] == c.room_id).get("mentions", 0) == 0, "the server agrees: no mention left")

    # Nothing: the room list says so; then back to all.
    room_menu(b, "notify-level input[value=none]")
    wait(b, lambda d: js(d, f"return !!document.querySelector('{room_item(c.room)} .quiet')") and visible(d, "#room-muted"),
         "bob: Nothing chosen, the room list and the header say notifications are off")
    check(server_level() == "none", "the server has bob's level: none")
    room_menu(b, "notify-level input[value=all]")
    wait(b, lambda d: _level(d) == "all" and not visible(d, "#room-muted"), "bob: back to all messages")
    if el(b, "#room-menu").get_attribute("open"):
        el(b, "#room-menu summary").click()


SW_PAYLOAD = {"room_id": None, "count": 3, "message_ids": [7, 8, 9], "preview": "see you at the harbour"}


def push(c):
    """The service worker's handlers, then the app's subscription and its removal."""
    b = c.b
    # 1. The handlers, loaded into a page of the app's origin, with the worker's globals stood in.
    payload = dict(SW_PAYLOAD, room_id=c.room_id)
    result = b.execute_async_script("""
        const [payload, roomId, label] = arguments;
        const done = arguments[arguments.length - 1];
        window.__shown = []; window.__posted = []; window.__focused = 0; window.__opened = [];
        window.registration = { scope: location.origin + '/', showNotification: async (t, o) => { window.__shown.push([t, o]); } };
        window.clients = {
          matchAll: async () => window.__tabs,
          openWindow: async (u) => { window.__opened.push(u); },
        };
        window.__tabs = [{ url: location.origin + '/', postMessage: (m) => window.__posted.push(m), focus: async () => { window.__focused++; } }];
        const s = document.createElement('script');
        s.src = '/sw.js';
        s.onerror = () => done({ error: 'sw.js did not load' });
        s.onload = async () => {
          const sw = window.chatdServiceWorker;
          const cache = await caches.open(sw.NAMES_CACHE);
          await cache.delete(sw.NAMES_KEY);
          // A push event as the browser dispatches it, before the app left any names.
          const waits = [];
          const e = new Event('push');
          e.data = { json: () => payload };
          e.waitUntil = (p) => waits.push(p);
          window.dispatchEvent(e);
          await Promise.all(waits);
          // With the room names the app leaves for the worker.
          await cache.put(sw.NAMES_KEY, new Response(JSON.stringify({ [roomId]: label })));
          await sw.onPush({ data: { json: () => ({ ...payload, count: 1, preview: 'one more thing' }) } });
          await sw.onPush({ data: { json: () => { throw new Error('not JSON'); } } });
          // A click: the open tab is told which room, and focused; with no tab one opens.
          const note = { data: window.__shown[0][1].data, close: () => { window.__closed = true; } };
          const c = new Event('notificationclick');
          c.notification = note; const cw = []; c.waitUntil = (p) => cw.push(p);
          window.dispatchEvent(c);
          await Promise.all(cw);
          window.__tabs = [];
          await sw.onClick({ notification: note });
          await cache.delete(sw.NAMES_KEY);
          done({ shown: window.__shown.map(([t, o]) => [t, o.body, o.tag, o.data.room_id]), posted: window.__posted,
                 focused: window.__focused, opened: window.__opened, closed: !!window.__closed });
        };
        document.head.append(s);""", payload, c.room_id, f"# {c.room}")
    check("error" not in result, f"sw.js loads into a page ({result.get('error', 'ok')})")
    check(result["shown"][0] == ["3 new messages", "see you at the harbour (+2 more)", f"chatd-{c.room_id}", c.room_id],
          f"a push shows its count and preview, one notification per room ({result['shown'][0]})")
    check(result["shown"][1][:2] == [f"New message in # {c.room}", "one more thing"],
          f"with the names the app leaves, the title says where ({result['shown'][1]})")
    check(len(result["shown"]) == 2, "a push that is not chatd's shows nothing")
    check(result["posted"] == [{"type": "chatd.open-room", "room_id": c.room_id}] and result["focused"] == 1
          and result["closed"], f"a click tells the open tab which room and focuses it ({result})")
    check(result["opened"] == [f"{c.url}/?room={c.room_id}"], f"with no tab open, a click opens the room ({result['opened']})")

    # 2. The app subscribes once notifications are allowed. Headless Chromium has no push
    # service: PushManager is stood in for by a subscription with a real P-256 key.
    endpoint = f"http://127.0.0.1:9/push/{c.tag}"
    stub = """
      (() => {
        const endpoint = %s;
        let current = null;
        const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
        PushManager.prototype.getSubscription = async function () { return current; };
        PushManager.prototype.subscribe = async function (opts) {
          const pair = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
          const p256dh = b64(await crypto.subtle.exportKey('raw', pair.publicKey));
          const auth = b64(crypto.getRandomValues(new Uint8Array(16)));
          localStorage.setItem('test.subscribed', JSON.stringify({ userVisibleOnly: opts.userVisibleOnly, key: opts.applicationServerKey.byteLength }));
          current = { endpoint, options: opts, toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }),
                      unsubscribe: async () => { localStorage.setItem('test.unsubscribed', endpoint); current = null; return true; } };
          return current;
        };
      })();""" % json.dumps(endpoint)
    b.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": stub})
    b.execute_cdp_cmd("Browser.grantPermissions", {"origin": c.url, "permissions": ["notifications"]})
    key = api(c.url, "GET", "/push/vapid-public-key")["key"]
    check(len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) == 65, "the server offers its VAPID key")
    js(b, "localStorage.removeItem('test.subscribed'); localStorage.removeItem('test.unsubscribed');")
    b.refresh()  # signed in with the permission granted: the app subscribes
    wait(b, lambda d: visible(d, "#chat-view"), "bob: reloaded, signed in")

    def stored_endpoints():
        out = subprocess.run(["psql", c.node.database_url, "-qAtc",
                              f"SELECT endpoint FROM push_subscriptions WHERE endpoint LIKE '%/push/{c.tag}'"],
                             check=True, capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line.strip()]
    deadline = time.monotonic() + 15
    while not stored_endpoints() and time.monotonic() < deadline:
        time.sleep(0.2)
    check(stored_endpoints() == [endpoint], f"the server holds bob's subscription ({stored_endpoints()})")
    sub = json.loads(js(b, "return localStorage.getItem('test.subscribed')") or "{}")
    check(sub == {"userVisibleOnly": True, "key": 65}, f"subscribed user-visible with the server's key ({sub})")
    reg = b.execute_async_script("""const done = arguments[arguments.length - 1];
        navigator.serviceWorker.ready.then(r => done([r.scope, r.active && r.active.scriptURL]), e => done(String(e)));""")
    check(reg == [f"{c.url}/", f"{c.url}/sw.js"], f"the service worker runs at the app's scope ({reg})")
    names = b.execute_async_script("""const done = arguments[arguments.length - 1];
        caches.open('chatd-push').then(c => c.match('/__chatd/room-names')).then(r => r ? r.json() : {}).then(done, e => done(String(e)));""")
    check(names.get(c.room_id) == f"# {c.room}", "the app left the room names for the worker")

    # 3. Signing out takes it back, from the server and the browser.
    el(b, "#sign-out").click()
    wait(b, lambda d: visible(d, "#auth-view"), "bob: signed out")
    check(stored_endpoints() == [], "the server no longer holds bob's subscription")
    check(js(b, "return localStorage.getItem('test.unsubscribed')") == endpoint, "the browser's subscription is gone")
    sign_in(b, f"{c.bob}@example.com")
    wait(b, lambda d: visible(d, "#chat-view") and el(d, "#current-user").text == c.bob, "bob: signed in again")
    # What a click on a notification opens when no tab is: the app at /?room=<id>.
    b.get(f"{c.url}/?room={c.room_id}")
    wait(b, lambda d: visible(d, "#chat-view") and el(d, "#room-title").text == f"# {c.room}"
         and js(d, "return location.search") == "", "bob: /?room= opens that room, and the address is cleaned")
    log("push: handlers, subscription and its removal checked")


SCENES = (files, notification_levels, push)
