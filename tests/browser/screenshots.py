#!/usr/bin/env python3
"""The README's pictures: a chatd node on a database of its own, a small team seeded
through the REST API (rooms, a conversation with replies, reactions, a thread, Markdown
and an attachment, unread messages elsewhere, a direct message), and headless Chromium
pages of three of its members (one typing), photographed at desktop and phone sizes.

    tests/browser/screenshots.sh [DIR]     (DIR: docs/screenshots by default)

Run it by hand when the app's look changes; the test suite never writes these files.
"""
import os
import shutil
import sys
import tempfile
import time

from selenium.webdriver.common.by import By

from harness import (ROOT, Database, Node, api, browser, click, el, free_port, has, js, log, message_li,
                     room_item, sign_in, size, visible, wait)

TEAM = [("Maya Chen", "maya@example.com"), ("Jonas Weber", "jonas@example.com"),
        ("Priya Raman", "priya@example.com"), ("Tom Okafor", "tom@example.com"), ("Lea Martin", "lea@example.com")]


def seed(base):
    """The team, its rooms and what they said; returns tokens and ids."""
    t, ids = {}, {}
    for name, email in TEAM:
        res = api(base, "POST", "/auth/register", {"username": name, "email": email, "password": "password-123"})
        first = name.split()[0].lower()
        t[first], ids[first] = res["tokens"]["accessToken"], res["user"]["id"]

    def room(owner, name, members, description=None, visibility="public"):
        r = api(base, "POST", "/rooms", {"name": name, "description": description, "visibility": visibility}, t[owner])
        for m in members:
            api(base, "POST", f"/rooms/{r['id']}/join", token=t[m])
        return r["id"]

    def say(who, room_id, content, **extra):
        return api(base, "POST", f"/rooms/{room_id}/messages", {"content": content, **extra}, t[who])

    def react(who, room_id, msg, emoji):
        from urllib.parse import quote
        api(base, "PUT", f"/rooms/{room_id}/messages/{msg['id']}/reactions/{quote(emoji)}", token=t[who])

    design = room("maya", "design-review", ["jonas", "priya", "tom", "lea"], "Screens before they ship")
    release = room("tom", "release-2.4", ["maya", "lea", "jonas"], "Shipping 2.4 on Thursday")
    random = room("priya", "random", ["maya", "tom", "lea", "jonas"], "Everything else")

    m1 = say("tom", design, "Morning! The new onboarding flow is on staging: https://staging.example.com/onboarding")
    m2 = say("priya", design, "Looks great on desktop. On a phone the **Continue** button sits under the keyboard.")
    say("tom", design, "Which phone and browser?", reply_to=m2["id"])
    say("priya", design, "Pixel 8, Chrome 124. iOS looks fine.", reply_to=m2["id"])
    say("priya", design, "Here is what I see:", attachments=[{
        "url": "https://files.example.com/onboarding-pixel.png", "name": "onboarding-pixel.png",
        "mime": "image/png", "size": 284311}])
    m4 = say("maya", design, "Good catch. We could keep it above the keyboard with `position: sticky`, "
                             "and check _100dvh_ on Safari while we are at it.")
    say("jonas", design, "On it: I'll push to staging within the hour.", reply_to=m4["id"])
    say("lea", design, "> keep it above the keyboard\nYes please, and let's keep the step counter visible too.")
    say("tom", design, "Release notes draft: [2.4 notes](https://docs.example.com/release-2-4)")
    for who, msg, emoji in [("priya", m1, "🎉"), ("maya", m1, "🎉"), ("lea", m1, "🎉"), ("jonas", m1, "👀"),
                            ("maya", m2, "🙏"), ("lea", m2, "💯"), ("jonas", m4, "👍"), ("priya", m4, "👍"),
                            ("tom", m4, "👍")]:
        react(who, design, msg, emoji)
    api(base, "POST", f"/rooms/{design}/read", {"seq": 10_000}, t["maya"])
    say("jonas", design, "Pushed the fix to staging: the button stays above the keyboard now.")
    last = say("lea", design, "Confirmed on iOS 17 and on the Pixel ✅")
    react("priya", design, last, "🚀")

    say("tom", release, "Code freeze tomorrow at 14:00.")
    say("lea", release, "QA sign-off list is in the doc, two items left.")
    say("priya", random, "Who's in for pizza on Friday? 🍕")
    say("tom", random, "Me!")
    dm = api(base, "POST", "/dm", {"user_id": ids["maya"]}, t["jonas"])
    say("jonas", dm["id"], "Do you have ten minutes after lunch for the settings page?")
    return t, {"design": design, "thread_root": m2["id"]}


def shoot(d, path):
    time.sleep(0.4)  # fonts and the last frame
    d.save_screenshot(path)
    log(f"wrote {os.path.relpath(path, ROOT)}")


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "screenshots"))
    os.makedirs(out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="chatd-shots-")
    db = Database("chatd_shots")
    node = Node(db.url, free_port(), workdir)
    drivers = []
    try:
        node.start()
        _, ids = seed(node.url)
        pages = {}
        for who, email in (("maya", "maya@example.com"), ("jonas", "jonas@example.com"), ("priya", "priya@example.com")):
            d = browser(os.path.join(workdir, who))
            d.who = who
            drivers.append(d)
            d.get(node.url)
            wait(d, lambda d: visible(d, "#signin-form"), f"{who}: sign-in page")
            if who == "maya":
                size(d, 1000, 640)
                shoot(d, os.path.join(out, "signin.png"))
                size(d, 1280, 800)
            sign_in(d, email)
            wait(d, lambda d: visible(d, "#chat-view") and has(d, room_item("design-review")), f"{who}: signed in")
            if visible(d, "#notify-offer"):
                el(d, "#notify-later").click()
            pages[who] = d
        for who in ("jonas", "priya"):
            click(pages[who], room_item("design-review"))
        maya = pages["maya"]
        click(maya, room_item("design-review"))
        wait(maya, lambda d: js(d, "return document.querySelectorAll('#member-list li[data-online=true]').length") == 3,
             "maya: three members online")
        pages["jonas"].find_element(By.ID, "message-input").send_keys("Also fixed the")
        wait(maya, lambda d: "Jonas Weber is typing" in el(d, "#typing").text, "maya: Jonas is typing")
        js(maya, "document.getElementById('scroller').scrollTop = 1e6")
        maya.find_element(By.ID, "message-input").click()
        shoot(maya, os.path.join(out, "chat.png"))

        # A thread, beside the conversation.
        root = message_li(maya, "Looks great on desktop. On a phone the Continue button sits under the keyboard.")
        js(maya, "arguments[0].click()", root.find_element(By.CSS_SELECTOR, ".thread-summary"))
        wait(maya, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#thread-list > li")) == 2, "maya: the thread")
        maya.find_element(By.ID, "thread-input").send_keys("Thanks both, closing this once Lea confirms.")
        shoot(maya, os.path.join(out, "thread.png"))
        el(maya, "#close-thread").click()

        # Search across rooms.
        el(maya, "#open-search").click()
        el(maya, "#search-scope").send_keys("All my rooms")
        for _ in range(40):
            box = el(maya, "#search-input")
            box.clear()
            box.send_keys("keyboard\n")
            time.sleep(0.5)
            if len(maya.find_elements(By.CSS_SELECTOR, "#search-results li")) >= 2:
                break
        shoot(maya, os.path.join(out, "search.png"))
        el(maya, "#close-search").click()

        # Dark, as the system asks.
        maya.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        shoot(maya, os.path.join(out, "chat-dark.png"))
        maya.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

        # A phone: the room, then the list of rooms.
        size(maya, 390, 844, mobile=True)
        wait(maya, lambda d: visible(d, "#room-pane"), "maya: phone")
        js(maya, "document.getElementById('scroller').scrollTop = 1e6")
        shoot(maya, os.path.join(out, "chat-mobile.png"))
        el(maya, "#back-to-rooms").click()
        wait(maya, lambda d: visible(d, "#room-list"), "maya: the rooms on a phone")
        shoot(maya, os.path.join(out, "rooms-mobile.png"))
    finally:
        for d in drivers:
            try:
                d.quit()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        node.stop()
        node.kill()
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
