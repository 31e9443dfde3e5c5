"""Profiles in the web app (PROTOCOL.md section 12): alice edits hers in the account
dialog (a refused avatar URL first), bob sees her display name, status and picture live
in the member list and on her messages; bob finds alice in the user directory and opens
their direct room with the keyboard alone; alice invites bob through the directory. At
the end alice clears her profile (bob's page follows), so that later scenes see usernames."""
import os

from selenium.webdriver.common.keys import Keys

from harness import api, axe, check, click, create_room, el, has, js, messages, open_room, type_and_send, visible, wait

NAME = "Alice Liddell"
STATUS = ("🌴", "On holiday")


def _shot(d, name):
    if os.environ.get("SHOTS_DIR"):
        d.save_screenshot(os.path.join(os.environ["SHOTS_DIR"], f"{name}.png"))


def _member_name(d, username):
    return js(d, """const li = [...document.querySelectorAll('#member-list li[data-username]')]
        .find(li => li.dataset.username === arguments[0]);
        return li ? li.querySelector('[data-testid=member-name]').firstChild.textContent : null;""", username)


def _member_status(d, username):
    return js(d, """const li = [...document.querySelectorAll('#member-list li[data-username]')]
        .find(li => li.dataset.username === arguments[0]);
        return li ? (li.querySelector('[data-testid=member-status]')?.textContent ?? '') : null;""", username)


def _avatar_loaded(d, username):
    return js(d, """const li = [...document.querySelectorAll('#member-list li[data-username]')]
        .find(li => li.dataset.username === arguments[0]);
        const img = li && li.querySelector('.avatar img');
        return !!(img && img.complete && img.naturalWidth > 0);""", username)


def _set(d, field_id, value):
    # ChromeDriver types no characters outside the BMP (emoji): set the value as typing would.
    js(d, """const i = document.getElementById(arguments[0]); i.value = arguments[1];
        i.dispatchEvent(new Event('input', { bubbles: true }));""", field_id, value)


def _options(d, list_id):
    return js(d, f"""return [...document.querySelectorAll('#{list_id} [role=option]')]
        .map(o => [o.dataset.username, o.getAttribute('aria-selected')]);""")


def profiles(c):
    a, b = c.a, c.b
    # A room of its own: the other scenes' rooms keep the messages they count on.
    people = f"people-{c.tag}"
    create_room(a, people)
    el(b, "#browse-rooms").click()
    join = f'#public-list button.join-room[data-room-name="{people}"]'
    wait(b, lambda d: has(d, join), "bob: alice's new room is among the public rooms")
    click(b, join)
    wait(b, lambda d: el(d, "#room-title").text == f"# {people}", "bob: joined and opened it")
    type_and_send(a, "a message before my new name")
    wait(b, lambda d: any(m[2] == "a message before my new name" and m[1] == c.alice for m in messages(d)),
         "bob: alice's message shows under her username")

    # The editor: in the account dialog, every control labelled.
    el(a, "#current-user").click()
    wait(a, lambda d: visible(d, "#profile-form") and el(d, "#profile-display-name").get_attribute("value") == "",
         "alice: the account dialog shows her (empty) profile")
    check(visible(a, "#profile-avatar-field"), "alice: the server has avatar URLs: the field shows")
    axe(a, "the account dialog with the profile editor", "#account-dialog")
    _set(a, "profile-avatar-url", "ftp://example.org/me.png")
    el(a, "#profile-save").click()
    wait(a, lambda d: "not saved" in el(d, "#profile-error").text and el(d, "#profile-saved").text == "",
         "alice: a refused avatar URL says why, nothing saved")
    _shot(a, "profile-error")
    _set(a, "profile-avatar-url", f"{c.url}/favicon.svg")  # same origin: the page's CSP lets it load
    el(a, "#profile-display-name").send_keys(NAME)
    _set(a, "profile-status-emoji", STATUS[0])
    el(a, "#profile-status-text").send_keys(STATUS[1])
    el(a, "#profile-status-text").send_keys(Keys.ENTER)  # Enter in a field submits the form
    wait(a, lambda d: el(d, "#profile-saved").text == "Profile saved." and el(d, "#profile-error").text == "",
         "alice: her profile is saved")
    me = api(c.url, "GET", "/me", token=c.a_token)
    check((me["display_name"], me["status_emoji"], me["status_text"], me["avatar_url"])
          == (NAME, *STATUS, f"{c.url}/favicon.svg"), f"the server holds alice's profile ({me})")
    el(a, "#profile-display-name").send_keys(Keys.ESCAPE)
    wait(a, lambda d: not visible(d, "#account-dialog") and el(d, "#current-user").text == NAME,
         "alice: the top bar shows her display name")

    # Bob's page follows at once (user_updated), without a reload.
    wait(b, lambda d: _member_name(d, c.alice) == NAME and _member_status(d, c.alice) == " ".join(STATUS),
         "bob: alice's display name and status show live in the member list")
    wait(b, lambda d: all(m[1] == NAME for m in messages(d) if m[2] == "a message before my new name"),
         "bob: alice's message shows her display name")
    wait(b, lambda d: _avatar_loaded(d, c.alice), "bob: alice's avatar picture loads in the member list")
    _shot(b, "profile-live")
    type_and_send(a, "a message after my new name")
    wait(b, lambda d: any(m[2] == "a message after my new name" and m[1] == NAME for m in messages(d)),
         "bob: alice's new message carries her display name")

    # The directory: bob finds alice by her display name and opens their direct room.
    click(b, "#new-direct")
    wait(b, lambda d: visible(d, "#direct-dialog") and d.switch_to.active_element.get_attribute("id") == "direct-user",
         "bob: the new direct message dialog opens on its search field")
    field = el(b, "#direct-user")
    field.send_keys("alice lid")
    wait(b, lambda d: _options(d, "direct-results") == [[c.alice, "true"]],
         "bob: the directory finds alice by her display name, whatever the case")
    check(field.get_attribute("role") == "combobox" and field.get_attribute("aria-expanded") == "true"
          and el(b, "#direct-results").get_attribute("role") == "listbox"
          and field.get_attribute("aria-activedescendant") == el(b, "#direct-results [role=option]").get_attribute("id"),
          "bob: a combobox with its listbox, the active option named")
    axe(b, "the new direct message dialog with results", "#direct-dialog")
    _shot(b, "directory-direct")
    field.send_keys(Keys.ARROW_DOWN)
    field.send_keys(Keys.ENTER)
    wait(b, lambda d: not visible(d, "#direct-dialog") and el(d, "#room-title").text == f"@{NAME}"
         and el(d, "#room-kind").text == "direct", "bob: Enter opens the direct room, named by alice's display name")
    dm = f'#room-list button[data-visibility="direct"][data-peer="{c.alice}"]'
    wait(b, lambda d: has(d, dm) and f"@{NAME}" in el(d, dm).text, "bob: the room list names it by her display name")

    # The invite field searches the directory too: a result chosen invites.
    secret = f"profiles-{c.tag}"
    create_room(a, secret, private=True)
    wait(a, lambda d: visible(d, "#invite-form"), "alice: the invite form shows in her private room")
    el(a, "#invite-user").send_keys(c.bob[:5])
    wait(a, lambda d: [c.bob, "true"] in _options(d, "invite-results") or
         any(u == c.bob for u, _ in _options(d, "invite-results")), "alice: bob is among the results")
    for _ in range(10):  # walk to bob with the arrow keys
        if js(a, "return document.querySelector('#invite-results [aria-selected=true]')?.dataset.username") == c.bob:
            break
        el(a, "#invite-user").send_keys(Keys.ARROW_DOWN)
    axe(a, "the member panel with directory results", "#members-panel")
    _shot(a, "directory-invite")
    el(a, "#invite-user").send_keys(Keys.ENTER)
    wait(a, lambda d: el(d, "#invite-status").text == f"Invited {c.bob}." and el(d, "#invite-user").get_attribute("value") == "",
         "alice: choosing bob invites him")
    accept = f'#invite-list li[data-room-name="{secret}"] button.accept-invite'
    wait(b, lambda d: visible(d, accept), "bob: the invitation shows")

    # Cleared profile: bob's page goes back to the username.
    api(c.url, "PATCH", "/me", {"display_name": None, "status_text": None, "status_emoji": None, "avatar_url": None},
        token=c.a_token)
    open_room(b, people)
    wait(b, lambda d: _member_name(d, c.alice) == c.alice and _member_status(d, c.alice) == ""
         and not _avatar_loaded(d, c.alice), "bob: alice's cleared profile shows live (username, no status, initials)")
    wait(a, lambda d: el(d, "#current-user").text == c.alice, "alice: the top bar shows her username again")
    click(b, accept)
    wait(b, lambda d: el(d, "#room-title").text == f"# {secret}", "bob: accepting opens the room")
    open_room(a, c.room)
    open_room(b, c.room)


SCENES = (profiles,)
