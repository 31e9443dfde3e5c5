"""Browser scenes for pinned messages, reports, blocking and slow mode (alice owns the
room, bob is a plain member, dave a third member seeded over REST). Blocking and slow
mode are skipped, with a SKIP line, only when the server lacks them: GET /me/blocks
answers 404, or the Room object has no slow_mode_secs after a PATCH."""
import time
import urllib.error

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from harness import (act_on, api, axe, check, click, el, els, js, log, member_action, member_attr,
                     message_li, messages, open_room, register, room_menu, type_and_send, visible, wait)

SKIPPED = []


def skip(what, why):
    SKIPPED.append(what)
    log(f"SKIP {what}: {why}")


def _marked(d, text):
    li = message_li(d, text)
    return li is not None and bool(li.find_elements(By.CSS_SELECTOR, ".pin-marker"))


def _pins(d):
    return [e.text for e in els(d, "#pins-list li .result-text")]


def _stored(c, text):
    page = api(c.url, "GET", f"/rooms/{c.room_id}/messages?limit=100", token=c.a_token)
    return [m for m in page["messages"] if m.get("content") == text and m.get("kind", "message") == "message"]


def _reload(d, c):
    d.refresh()
    wait(d, lambda d: visible(d, "#chat-view") and el(d, "#room-title").text == f"# {c.room}",
         f"{d.who}: the reloaded page is back in the room")


def _settings(d):
    room_menu(d, "room-settings")
    wait(d, lambda d: visible(d, "#room-settings-dialog"), f"{d.who}: the room settings dialog opens")


def pins(c):
    """Pin and unpin from a message's actions, the marker, the panel (newest first, live, a jump)."""
    a, b = c.a, c.b
    open_room(a, c.room)
    open_room(b, c.room)
    type_and_send(a, "pin me please")
    type_and_send(a, "pin me too")
    wait(b, lambda d: message_li(d, "pin me too") is not None, "bob: alice's two messages arrive")
    check(not message_li(b, "pin me please").find_elements(By.CSS_SELECTOR, '.actions [data-action="pin"]'),
          "bob (a member, members_can_pin off) is offered no Pin")
    act_on(a, "pin me please", "pin")
    wait(b, lambda d: _marked(d, "pin me please") and el(d, "#pin-count").text == "1",
         "bob: the pin shows live (a marker on the message, 1 in the header)")
    act_on(a, "pin me too", "pin")
    wait(b, lambda d: _marked(d, "pin me too") and el(d, "#pin-count").text == "2", "bob: the second pin shows live")
    check(len(api(c.url, "GET", f"/rooms/{c.room_id}/pins", token=c.b_token)["pins"]) == 2, "the server has both pins")

    el(b, "#open-pins").click()
    wait(b, lambda d: visible(d, "#pins-panel") and _pins(d) == ["pin me too", "pin me please"],
         "bob: the pinned messages panel lists them, newest pin first")
    check(el(b, "#open-pins").get_attribute("aria-expanded") == "true", "bob: the header button says the panel is open")
    axe(b, "chat with the pinned messages panel")
    # Unpinned live while the panel is open.
    act_on(a, "pin me too", "unpin")
    wait(b, lambda d: _pins(d) == ["pin me please"] and not _marked(d, "pin me too") and el(d, "#pin-count").text == "1",
         "bob: the unpin updates the panel, the marker and the count live")
    # A click on a pin shows the message in the conversation.
    js(b, "document.getElementById('scroller').scrollTop = 0")
    click(b, "#pins-list li button.pin-jump")
    wait(b, lambda d: "highlight" in (message_li(d, "pin me please").get_attribute("class") or ""),
         "bob: a click on the pin jumps to the message")
    el(b, "#close-pins").click()
    wait(b, lambda d: not visible(d, "#pins-panel"), "bob: the panel closes")

    # The owner lets members pin: bob (after a reload) unpins from the message's actions.
    _settings(a)
    axe(a, "the room settings dialog")
    el(a, "#setting-members-pin").click()
    el(a, "#room-settings-save").click()
    wait(a, lambda d: not visible(d, "#room-settings-dialog"), "alice: the settings are saved")
    check(api(c.url, "GET", f"/rooms/{c.room_id}", token=c.a_token).get("members_can_pin") is True,
          "the server has members_can_pin")
    _reload(b, c)
    act_on(b, "pin me please", "unpin")
    wait(a, lambda d: not _marked(d, "pin me please") and el(d, "#pin-count").text == "",
         "alice: bob's unpin shows live, nothing pinned")


def reports(c):
    """A member reports (once; twice is told kindly); the owner resolves from the reports panel."""
    a, b = c.a, c.b
    dave, dave_token = register(c.url, f"dave_{c.tag}")
    c.dave = dave["username"]
    c.dave_token = dave_token
    api(c.url, "POST", f"/rooms/{c.room_id}/join", token=dave_token)
    api(c.url, "POST", f"/rooms/{c.room_id}/messages", {"content": "buy cheap watches"}, dave_token)
    wait(b, lambda d: message_li(d, "buy cheap watches") is not None, "bob: dave's message arrives")
    type_and_send(b, "my own words")
    wait(b, lambda d: any(m[2] == "my own words" and m[0] for m in messages(d)), "bob: his message is sent")
    check(not message_li(b, "my own words").find_elements(By.CSS_SELECTOR, '.actions [data-action="report"]'),
          "bob is offered no Report on his own message")

    act_on(b, "buy cheap watches", "report")
    wait(b, lambda d: visible(d, "#report-dialog") and d.switch_to.active_element.get_attribute("id") == "report-reason",
         "bob: the report dialog opens, on the reason")
    check("buy cheap watches" in el(b, "#report-quote").text, "bob: the dialog quotes the message")
    axe(b, "the report dialog")
    Select(el(b, "#report-reason")).select_by_value("spam")
    el(b, "#report-note").send_keys("obvious spam")
    el(b, "#report-submit").click()
    wait(b, lambda d: "Thank you" in el(d, "#report-status").text and not visible(d, "#report-submit"),
         "bob: the dialog says the report was sent")
    el(b, "#report-cancel").click()
    wait(b, lambda d: not visible(d, "#report-dialog"), "bob: Close closes the dialog")
    act_on(b, "buy cheap watches", "report")
    wait(b, lambda d: visible(d, "#report-dialog"), "bob: reports the same message again")
    el(b, "#report-submit").click()
    wait(b, lambda d: "already reported" in el(d, "#report-status").text and el(d, "#report-error").text == "",
         "bob: a second report is told kindly ('already reported'), not as an error")
    el(b, "#report-cancel").send_keys(Keys.ESCAPE)
    wait(b, lambda d: not visible(d, "#report-dialog"), "bob: Escape closes the dialog")
    if not el(b, "#room-menu").get_attribute("open"):
        el(b, "#room-menu summary").click()
    check(not visible(b, "#open-reports") and not visible(b, "#room-settings"),
          "bob (a member) has no Reports or Room settings in the room's options")
    el(b, "#room-menu summary").click()

    # The owner's panel: the message, why, by whom; resolved by deleting the message.
    room_menu(a, "open-reports")
    item = "#reports-list li[data-testid=report]"
    wait(a, lambda d: visible(d, "#reports-panel") and len(els(d, item)) == 1, "alice: the reports panel lists one open report")
    text = el(a, item).text
    check("buy cheap watches" in text and "Spam" in text and "obvious spam" in text and c.bob in text and c.dave in text,
          f"alice: the report shows the message, its author, the reason, the note and the reporter ({text!r})")
    axe(a, "chat with the reports panel")
    click(a, f'{item} button[data-action="delete_message"]')
    wait(a, lambda d: visible(d, "#confirm-dialog"), "alice: asked before deleting the message")
    el(a, "#confirm-ok").click()
    wait(a, lambda d: len(els(d, item)) == 0 and "message deleted" in el(d, "#reports-status").text,
         "alice: the report is resolved and leaves the list")
    wait(b, lambda d: message_li(d, "buy cheap watches") is None, "bob: the reported message is deleted live")
    # A second report, dismissed: the message stays.
    api(c.url, "POST", f"/rooms/{c.room_id}/messages", {"content": "borderline remark"}, dave_token)
    api(c.url, "POST", f"/rooms/{c.room_id}/messages/{_stored(c, 'borderline remark')[0]['id']}/report",
        {"reason": "abuse"}, c.b_token)
    room_menu(a, "open-reports")
    wait(a, lambda d: len(els(d, item)) == 1 and "borderline remark" in el(d, item).text, "alice: the new report is listed")
    click(a, f'{item} button[data-action="dismiss"]')
    wait(a, lambda d: len(els(d, item)) == 0 and "No open reports" in el(d, "#reports-status").text,
         "alice: dismissed, no open report left")
    check(message_li(a, "borderline remark") is not None, "alice: a dismissed report leaves the message")
    check(api(c.url, "GET", f"/rooms/{c.room_id}/reports?status=open", token=c.a_token)["reports"] == [],
          "the server has no open report left")
    el(a, "#close-reports").click()


def blocking(c):
    """bob blocks dave from the member list: dave's messages fold away on bob's page only."""
    a, b = c.a, c.b
    try:
        api(c.url, "GET", "/me/blocks", token=c.b_token)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            skip("blocking", "GET /me/blocks answers 404 (the server has no blocking yet)")
            return
        raise
    open_room(b, c.room)
    wait(b, lambda d: member_attr(d, c.dave, "blocked") == "false", "bob: dave is in the member list, not blocked")
    member_action(b, c.dave, "block")
    wait(b, lambda d: member_attr(d, c.dave, "blocked") == "true", "bob: dave is marked blocked in the member list")
    axe(b, "the member list with a blocked member")
    api(c.url, "POST", f"/rooms/{c.room_id}/messages", {"content": "can you see me"}, c.dave_token)
    wait(a, lambda d: message_li(d, "can you see me") is not None, "alice: dave's message shows as usual")
    wait(b, lambda d: message_li(d, "Message from a blocked user") is not None and message_li(d, "can you see me") is None,
         "bob: dave's message is folded behind 'Message from a blocked user'")
    check(c.dave not in message_li(b, "Message from a blocked user").text, "bob: the folded message does not name dave")
    # dave's earlier message folds too: the newest fold is this one.
    check(len(els(b, "#messages li.folded")) == 2, "bob: both of dave's messages are folded")
    els(b, "#messages li.folded button.folded-toggle")[-1].click()
    wait(b, lambda d: message_li(d, "can you see me") is not None, "bob: a click shows the folded message")
    _reload(b, c)
    wait(b, lambda d: message_li(d, "Message from a blocked user") is not None and message_li(d, "can you see me") is None,
         "bob: after a reload the block holds (from the server)")
    member_action(b, c.dave, "unblock")
    wait(b, lambda d: member_attr(d, c.dave, "blocked") == "false" and message_li(d, "can you see me") is not None,
         "bob: unblocked, dave's message shows again")
    left = api(c.url, "GET", "/me/blocks", token=c.b_token)
    check(not (left if isinstance(left, list) else left.get("items")), "the server has no block left for bob")


def slow_mode(c):
    """The owner turns slow mode on; bob waits between messages, a refused send keeps its text."""
    a, b = c.a, c.b
    try:
        api(c.url, "PATCH", f"/rooms/{c.room_id}", {"slow_mode_secs": 0}, c.a_token)
    except urllib.error.HTTPError as e:
        log(f"PATCH slow_mode_secs answered {e.code}")
    if "slow_mode_secs" not in api(c.url, "GET", f"/rooms/{c.room_id}", token=c.a_token):
        skip("slow mode", "the Room object has no slow_mode_secs after PATCH (the server has no slow mode yet)")
        return
    open_room(a, c.room)
    _settings(a)
    check(visible(a, "#setting-slow-mode"), "alice: the settings offer slow mode")
    axe(a, "the room settings dialog with slow mode")
    Select(el(a, "#setting-slow-mode")).select_by_value("5")
    el(a, "#room-settings-save").click()
    wait(a, lambda d: not visible(d, "#room-settings-dialog"), "alice: saved")
    check(api(c.url, "GET", f"/rooms/{c.room_id}", token=c.a_token)["slow_mode_secs"] == 5, "the server has slow mode at 5 s")
    _reload(b, c)
    wait(b, lambda d: "one message every 5 s" in el(d, "#slow-mode").text, "bob: the composer says slow mode is on")
    count = lambda d: el(d, "#slow-mode").get_attribute("data-waiting") == "true"  # noqa: E731

    def send_until_stored(text):
        type_and_send(b, text)

        def stored(d):
            if _stored(c, text):
                return True
            # Refused (bob wrote less than 5 s ago): the text is back; send again once allowed.
            if el(d, "#message-input").get_attribute("value") == text and el(d, "#send-button").is_enabled():
                el(d, "#message-input").send_keys(Keys.ENTER)
            return False
        wait(b, stored, f"bob: {text!r} is stored", timeout=20)

    send_until_stored("slow and steady")
    wait(b, lambda d: count(d) and "wait" in el(d, "#slow-mode").text and not el(d, "#send-button").is_enabled(),
         "bob: after his send, a countdown shows and Send waits")
    axe(b, "the composer during a slow mode countdown", "#composer")
    type_and_send(b, "too soon")
    time.sleep(0.3)
    check(el(b, "#message-input").get_attribute("value") == "too soon" and not _stored(c, "too soon"),
          "bob: Enter during the countdown sends nothing and keeps the text")
    wait(b, lambda d: not count(d) and el(d, "#send-button").is_enabled(), "bob: the countdown ends, Send is back", timeout=10)

    # Sent from elsewhere meanwhile: the server refuses the page's send; its text stays.
    def from_phone(d):
        try:
            api(c.url, "POST", f"/rooms/{c.room_id}/messages", {"content": "from bob's phone"}, c.b_token)
            return True
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            return False
    wait(b, from_phone, "bob: a message sent from elsewhere (REST)", timeout=10)
    try:
        api(c.url, "POST", f"/rooms/{c.room_id}/messages", {"content": "again at once"}, c.b_token)
        refused = None
    except urllib.error.HTTPError as e:
        refused = (e.code, e.headers.get("Retry-After"))
    check(refused is not None and refused[0] == 429 and refused[1], f"REST: a too-early send is 429 with Retry-After ({refused})")
    el(b, "#message-input").send_keys(Keys.ENTER)
    wait(b, lambda d: count(d) and el(d, "#message-input").get_attribute("value") == "too soon",
         "bob: the server's slow_mode refusal shows the wait, the text is back in the field")
    check(not _stored(c, "too soon") and not any(m[2] == "too soon" for m in messages(b)),
          "bob: the refused message is neither stored nor left as a failed row")
    wait(b, lambda d: not count(d), "bob: the countdown of the refusal ends", timeout=10)
    el(b, "#message-input").send_keys(Keys.ENTER)
    wait(b, lambda d: len(_stored(c, "too soon")) == 1, "bob: sent once allowed, stored once")

    # The owner is exempt.
    type_and_send(a, "owners are exempt 1")
    type_and_send(a, "owners are exempt 2")
    wait(a, lambda d: _stored(c, "owners are exempt 2") and _stored(c, "owners are exempt 1"), "alice: two sends in a row")
    check(el(a, "#slow-mode").get_attribute("data-waiting") == "false", "alice (the owner): no countdown")
    _settings(a)
    Select(el(a, "#setting-slow-mode")).select_by_value("0")
    el(a, "#room-settings-save").click()
    wait(a, lambda d: not visible(d, "#room-settings-dialog")
         and api(c.url, "GET", f"/rooms/{c.room_id}", token=c.a_token)["slow_mode_secs"] == 0, "alice: slow mode off again")


SCENES = (pins, reports, blocking, slow_mode)
