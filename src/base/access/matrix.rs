//! The whole access matrix, written out: every action (with each kind of target) in every
//! visibility, for every standing. A change to any rule fails the row that names it;
//! changing a rule on purpose means changing its row here.

use super::*;

/// The standings, in the order of a row's columns.
const STATES: [(&str, Membership); 9] = [
    ("none", Membership::None),
    ("invited", Membership::Invited),
    ("banned", Membership::Banned),
    ("member", member(Role::Member, false)),
    ("muted member", member(Role::Member, true)),
    ("admin", member(Role::Admin, false)),
    ("muted admin", member(Role::Admin, true)),
    ("owner", member(Role::Owner, false)),
    ("muted owner", member(Role::Owner, true)),
];

const fn member(role: Role, muted: bool) -> Membership {
    Membership::Member { role, muted }
}

const VISIBILITIES: [Visibility; 3] = [Visibility::Public, Visibility::Private, Visibility::Direct];

/// One character per outcome.
fn mark(r: &Result<(), ApiError>) -> char {
    match r {
        Ok(()) => '.',
        Err(e) => match e.code() {
            "room_not_found" => 'N',
            "not_member" => 'M',
            "forbidden" => 'F',
            "banned" => 'B',
            "muted" => 'U',
            "invalid_payload" => 'I',
            "blocked" => 'K',
            _ => '?',
        },
    }
}

/// Expected outcomes: per action, one string per visibility (public, private, direct),
/// one character per standing in [`STATES`] order:
///
/// `.` allowed, `N` room_not_found, `M` not_member, `F` forbidden, `B` banned,
/// `U` muted, `I` invalid_payload.
///
/// Columns: none, invited, banned, member, muted member, admin, muted admin, owner,
/// muted owner.
const TABLE: &[(&str, [&str; 3])] = &[
    // The room itself.
    ("see", [".........", "N.N......", "N.N......"]),
    ("leave", [".........", "N.N......", "N.N......"]),
    ("join", ["..B......", "N.N......", "NNN......"]),
    ("set notifications", ["MMM......", "NMN......", "NMN......"]),
    // The stream: an invitation shows no message, a ban reads as an outsider.
    ("read history", ["MMM......", "NNN......", "NNN......"]),
    ("subscribe", ["MMM......", "NNN......", "NNN......"]),
    ("members", ["MMM......", "NNN......", "NNN......"]),
    ("search", ["MMM......", "NNN......", "NNN......"]),
    ("thread", ["MMM......", "NNN......", "NNN......"]),
    ("mark read", ["MMM......", "NNN......", "NNN......"]),
    ("typing", ["MMM.U.U.U", "NNN.U.U.U", "NNN.U.U.U"]),
    ("send", ["MMM.U.U.U", "NNN.U.U.U", "NNN.U.U.U"]),
    // Files: uploading is sending, downloading is reading the stream.
    ("upload", ["MMM.U.U.U", "NNN.U.U.U", "NNN.U.U.U"]),
    ("download", ["MMM......", "NNN......", "NNN......"]),
    // Messages after send.
    ("edit history", ["MMM......", "NMN......", "NMN......"]),
    ("edit ?", ["MMM......", "NMN......", "NMN......"]),
    ("edit own", ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"]),
    (
        "edit other's (left)",
        ["MMMFFFFFF", "NMNFFFFFF", "NMNFFFFFF"],
    ),
    (
        "edit other's (member)",
        ["MMMFFFFFF", "NMNFFFFFF", "NMNFFFFFF"],
    ),
    (
        "edit other's (admin)",
        ["MMMFFFFFF", "NMNFFFFFF", "NMNFFFFFF"],
    ),
    (
        "edit other's (owner)",
        ["MMMFFFFFF", "NMNFFFFFF", "NMNFFFFFF"],
    ),
    ("delete ?", ["MMM......", "NMN......", "NMN......"]),
    ("delete own", ["MMM......", "NMN......", "NMN......"]),
    (
        "delete other's (left)",
        ["MMMFF....", "NMNFF....", "NMNFF...."],
    ),
    (
        "delete other's (member)",
        ["MMMFF....", "NMNFF....", "NMNFF...."],
    ),
    // An admin acts on members only; nobody on the owner.
    (
        "delete other's (admin)",
        ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."],
    ),
    (
        "delete other's (owner)",
        ["MMMFFFFFF", "NMNFFFFFF", "NMNFFFFFF"],
    ),
    ("react ?", ["MMM......", "NMN......", "NMN......"]),
    ("react own", ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"]),
    (
        "react other's (left)",
        ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"],
    ),
    (
        "react other's (member)",
        ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"],
    ),
    (
        "react other's (admin)",
        ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"],
    ),
    (
        "react other's (owner)",
        ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"],
    ),
    ("unreact ?", ["MMM......", "NMN......", "NMN......"]),
    ("unreact own", ["MMM......", "NMN......", "NMN......"]),
    (
        "unreact other's (left)",
        ["MMM......", "NMN......", "NMN......"],
    ),
    (
        "unreact other's (member)",
        ["MMM......", "NMN......", "NMN......"],
    ),
    (
        "unreact other's (admin)",
        ["MMM......", "NMN......", "NMN......"],
    ),
    (
        "unreact other's (owner)",
        ["MMM......", "NMN......", "NMN......"],
    ),
    // Invitations: a banned user cannot be invited; a direct room takes nobody else.
    ("invite ?", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    ("invite none", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    ("invite invited", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    ("invite banned", ["MMMFFBBBB", "NMNFFBBBB", "NINIIIIII"]),
    ("invite member", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    ("invite admin", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    ("invite owner", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    // Sanctions: admins on members, the owner on admins too, nobody on the owner;
    // kick and mute need a member, ban and unban do not.
    ("kick ?", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("kick none", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("kick invited", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("kick banned", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("kick member", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("kick admin", ["MMMFFFF..", "NMNFFFF..", "NFNFFFFFF"]),
    ("kick owner", ["MMMFFFFFF", "NMNFFFFFF", "NFNFFFFFF"]),
    ("ban ?", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("ban none", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("ban invited", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("ban banned", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("ban member", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("ban admin", ["MMMFFFF..", "NMNFFFF..", "NFNFFFFFF"]),
    ("ban owner", ["MMMFFFFFF", "NMNFFFFFF", "NFNFFFFFF"]),
    ("unban ?", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unban none", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unban invited", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unban banned", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unban member", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unban admin", ["MMMFFFF..", "NMNFFFF..", "NFNFFFFFF"]),
    ("unban owner", ["MMMFFFFFF", "NMNFFFFFF", "NFNFFFFFF"]),
    ("mute ?", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("mute none", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("mute invited", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("mute banned", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("mute member", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("mute admin", ["MMMFFFF..", "NMNFFFF..", "NFNFFFFFF"]),
    ("mute owner", ["MMMFFFFFF", "NMNFFFFFF", "NFNFFFFFF"]),
    ("unmute ?", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unmute none", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("unmute invited", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("unmute banned", ["MMMFFMMMM", "NMNFFMMMM", "NFNFFFFFF"]),
    ("unmute member", ["MMMFF....", "NMNFF....", "NFNFFFFFF"]),
    ("unmute admin", ["MMMFFFF..", "NMNFFFF..", "NFNFFFFFF"]),
    ("unmute owner", ["MMMFFFFFF", "NMNFFFFFF", "NFNFFFFFF"]),
    // Roles: the owner's alone, on members only (direct rooms have no owner).
    ("set role ?", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    ("set role none", ["MMMFFFFMM", "NMNFFFFMM", "NMNFFFFMM"]),
    ("set role invited", ["MMMFFFFMM", "NMNFFFFMM", "NMNFFFFMM"]),
    ("set role banned", ["MMMFFFFMM", "NMNFFFFMM", "NMNFFFFMM"]),
    ("set role member", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    ("set role admin", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    ("set role owner", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    // Lifting a ban or a mute someone set: an admin lifts no restriction the owner set.
    ("lift ?", ["MMMFF....", "NMNFF....", "NMNFF...."]),
    ("lift by left", ["MMMFF....", "NMNFF....", "NMNFF...."]),
    ("lift by member", ["MMMFF....", "NMNFF....", "NMNFF...."]),
    ("lift by admin", ["MMMFF....", "NMNFF....", "NMNFF...."]),
    ("lift by owner", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    // The room's settings and its end: what exposes or destroys history is the owner's.
    ("update settings ?", ["MMMFF....", "NMNFF....", "NINIIIIII"]),
    (
        "update settings plain",
        ["MMMFF....", "NMNFF....", "NINIIIIII"],
    ),
    (
        "update settings history",
        ["MMMFFFF..", "NMNFFFF..", "NINIIIIII"],
    ),
    ("delete room", ["MMMFFFF..", "NMNFFFF..", "NMNFFFF.."]),
    // Pins: the owner and admins (any member with `members_can_pin`, below, and in a
    // direct room), never while muted; listing them is reading history.
    ("pin", ["MMMFF.U.U", "NMNFF.U.U", "NMN.U.U.U"]),
    ("pins", ["MMM......", "NNN......", "NNN......"]),
    // Reports: any member reports (a muted one too); the owner and admins review.
    ("report", ["MMM......", "NNN......", "NNN......"]),
    ("review reports", ["MMMFF....", "NMNFF....", "NMNFF...."]),
];

/// The pin row when the room lets any member pin.
const PIN_BY_MEMBERS: [&str; 3] = ["MMM.U.U.U", "NMN.U.U.U", "NMN.U.U.U"];

/// The targets a row may name, after the action: `?` (not read yet) then each kind.
const AUTHORS: [(&str, Option<Author>); 6] = [
    ("?", None),
    ("own", Some(Author::Own)),
    ("other's (left)", Some(Author::Other(None))),
    ("other's (member)", Some(Author::Other(Some(Role::Member)))),
    ("other's (admin)", Some(Author::Other(Some(Role::Admin)))),
    ("other's (owner)", Some(Author::Other(Some(Role::Owner)))),
];

const TARGETS: [(&str, Option<Membership>); 7] = [
    ("?", None),
    ("none", Some(Membership::None)),
    ("invited", Some(Membership::Invited)),
    ("banned", Some(Membership::Banned)),
    ("member", Some(member(Role::Member, false))),
    ("admin", Some(member(Role::Admin, false))),
    ("owner", Some(member(Role::Owner, false))),
];

/// Who set a restriction being lifted, with their role now.
const SETTERS: [(&str, Option<Role>); 5] = [
    ("?", None),
    ("by left", None),
    ("by member", Some(Role::Member)),
    ("by admin", Some(Role::Admin)),
    ("by owner", Some(Role::Owner)),
];

const SANCTIONS: [Sanction; 5] = [
    Sanction::Kick,
    Sanction::Ban,
    Sanction::Unban,
    Sanction::Mute,
    Sanction::Unmute,
];

/// Every action with every kind of target, each with its row's name. (A new action
/// fails to compile in `plain` until it is named there or given targets below.)
fn actions() -> Vec<(String, Action)> {
    fn plain(a: Action) -> Option<&'static str> {
        Some(match a {
            Action::See => "see",
            Action::ReadHistory => "read history",
            Action::Subscribe => "subscribe",
            Action::Members => "members",
            Action::Search => "search",
            Action::Thread => "thread",
            Action::EditHistory => "edit history",
            Action::Send => "send",
            Action::Typing => "typing",
            Action::MarkRead => "mark read",
            Action::Join => "join",
            Action::Leave => "leave",
            Action::DeleteRoom => "delete room",
            Action::SetNotifications => "set notifications",
            Action::Pin => "pin",
            Action::Pins => "pins",
            Action::Report => "report",
            Action::ReviewReports => "review reports",
            Action::Upload => "upload",
            Action::Download => "download",
            Action::Edit(_)
            | Action::Delete(_)
            | Action::React(_)
            | Action::Unreact(_)
            | Action::Invite(_)
            | Action::Moderate(..)
            | Action::SetRole(_)
            | Action::Lift(_)
            | Action::UpdateSettings(_) => return None,
        })
    }
    let mut out = Vec::new();
    for a in [
        Action::See,
        Action::ReadHistory,
        Action::Subscribe,
        Action::Members,
        Action::Search,
        Action::Thread,
        Action::EditHistory,
        Action::Send,
        Action::Typing,
        Action::MarkRead,
        Action::Join,
        Action::Leave,
        Action::DeleteRoom,
        Action::SetNotifications,
        Action::Pin,
        Action::Pins,
        Action::Report,
        Action::ReviewReports,
        Action::Upload,
        Action::Download,
    ] {
        out.push((plain(a).unwrap().to_string(), a));
    }
    type OnMessage = fn(Option<Author>) -> Action;
    let on_message: [(&str, OnMessage); 4] = [
        ("edit", Action::Edit),
        ("delete", Action::Delete),
        ("react", Action::React),
        ("unreact", Action::Unreact),
    ];
    for (name, make) in on_message {
        for (t, author) in AUTHORS {
            out.push((format!("{name} {t}"), make(author)));
        }
    }
    for (t, reach) in [
        ("?", None),
        ("plain", Some(Reach::Plain)),
        ("history", Some(Reach::History)),
    ] {
        out.push((
            format!("update settings {t}"),
            Action::UpdateSettings(reach),
        ));
    }
    for (t, setter) in SETTERS {
        out.push((format!("lift {t}"), Action::Lift(setter)));
    }
    for (t, target) in TARGETS {
        out.push((format!("invite {t}"), Action::Invite(target)));
        out.push((format!("set role {t}"), Action::SetRole(target)));
        for s in SANCTIONS {
            out.push((format!("{} {t}", s.verb()), Action::Moderate(s, target)));
        }
    }
    out
}

#[test]
fn every_rule_matches_its_row() {
    let actions = actions();
    let mut wrong = Vec::new();
    for (name, action) in &actions {
        let Some((_, row)) = TABLE.iter().find(|(n, _)| n == name) else {
            wrong.push(format!("no row for `{name}`"));
            continue;
        };
        for (v, want) in VISIBILITIES.iter().zip(row) {
            assert_eq!(want.len(), STATES.len(), "row `{name}` {v:?}");
            for ((state, m), want) in STATES.iter().zip(want.chars()) {
                let got = mark(&check(*m, settings(*v), *action));
                if got != want {
                    wrong.push(format!(
                        "`{name}` in a {} room as {state}: expected {want}, got {got}",
                        v.as_str()
                    ));
                }
            }
        }
    }
    for (name, _) in TABLE {
        let named = actions.iter().filter(|(n, _)| n == name).count();
        if named != 1 {
            wrong.push(format!("row `{name}` names {named} actions"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A room of visibility `v` with the default settings.
fn settings(v: Visibility) -> RoomSettings {
    RoomSettings::from_row(v.as_str())
}

/// The answer for `m` in a room of visibility `v`, as a code.
fn code(m: Membership, v: Visibility, a: Action) -> char {
    mark(&check(m, settings(v), a))
}

#[test]
fn members_pin_when_the_room_lets_them() {
    for (v, want) in VISIBILITIES.iter().zip(PIN_BY_MEMBERS) {
        let room = settings(*v).with_members_can_pin(true);
        let got: String = STATES
            .iter()
            .map(|(_, m)| mark(&check(*m, room, Action::Pin)))
            .collect();
        assert_eq!(got, want, "{v:?}");
        // The setting changes nothing else.
        for (name, a) in actions().iter().filter(|(_, a)| *a != Action::Pin) {
            for (state, m) in STATES {
                let with = mark(&check(m, room, *a));
                assert_eq!(with, code(m, *v, *a), "{name} {state} {v:?}");
            }
        }
    }
}

/// A use case asks before it reads the target, then with it: the second answer may
/// refuse where the first did not, never the other way round, and never differently.
#[test]
fn knowing_the_target_never_lifts_a_refusal() {
    let unknown = actions();
    for (name, a) in &unknown {
        let known: Vec<Action> = match a {
            Action::Edit(None)
            | Action::Delete(None)
            | Action::React(None)
            | Action::Unreact(None) => AUTHORS[1..]
                .iter()
                .map(|(_, t)| with_author(*a, *t))
                .collect(),
            Action::Invite(None) | Action::Moderate(_, None) | Action::SetRole(None) => TARGETS
                [1..]
                .iter()
                .map(|(_, t)| with_target(*a, *t))
                .collect(),
            Action::UpdateSettings(None) => vec![
                Action::UpdateSettings(Some(Reach::Plain)),
                Action::UpdateSettings(Some(Reach::History)),
            ],
            Action::Lift(None) => SETTERS[2..].iter().map(|(_, r)| Action::Lift(*r)).collect(),
            _ => continue,
        };
        for v in VISIBILITIES {
            for (state, m) in STATES {
                let first = code(m, v, *a);
                if first == '.' {
                    continue;
                }
                for k in &known {
                    assert_eq!(code(m, v, *k), first, "{name} then {k:?}, {state}, {v:?}");
                }
            }
        }
    }
}

fn with_author(a: Action, t: Option<Author>) -> Action {
    match a {
        Action::Edit(_) => Action::Edit(t),
        Action::Delete(_) => Action::Delete(t),
        Action::React(_) => Action::React(t),
        Action::Unreact(_) => Action::Unreact(t),
        other => other,
    }
}

fn with_target(a: Action, t: Option<Membership>) -> Action {
    match a {
        Action::Invite(_) => Action::Invite(t),
        Action::Moderate(s, _) => Action::Moderate(s, t),
        Action::SetRole(_) => Action::SetRole(t),
        other => other,
    }
}

/// Why the writer's batch lock, the batched head checks, the read marks and
/// `rooms::require` read neither invitations nor bans: for the actions they decide, an
/// invited or a banned user is answered like one with no standing at all.
#[test]
fn the_stream_answers_invited_and_banned_users_like_outsiders() {
    for a in [
        Action::Send,
        Action::ReadHistory,
        Action::Subscribe,
        Action::Members,
        Action::Search,
        Action::Thread,
        Action::MarkRead,
        Action::Typing,
        Action::Pins,
    ] {
        for v in VISIBILITIES {
            let outsider = code(Membership::None, v, a);
            assert_eq!(code(Membership::Invited, v, a), outsider, "{a:?} {v:?}");
            assert_eq!(code(Membership::Banned, v, a), outsider, "{a:?} {v:?}");
        }
    }
}

/// Typing shows what is about to be sent: it is allowed exactly where sending is (a
/// muted member's typing is not relayed).
#[test]
fn typing_is_allowed_where_sending_is() {
    for v in VISIBILITIES {
        for (state, m) in STATES {
            assert_eq!(
                code(m, v, Action::Typing),
                code(m, v, Action::Send),
                "{state} {v:?}"
            );
        }
    }
}

#[test]
fn standings_read_from_rows() {
    assert_eq!(
        Membership::from_row(Some("admin"), Some(true), false, false),
        member(Role::Admin, true)
    );
    assert_eq!(
        Membership::from_row(None, None, true, true),
        Membership::Banned
    );
    assert_eq!(
        Membership::from_row(None, None, true, false),
        Membership::Invited
    );
    assert_eq!(
        Membership::from_row(None, None, false, false),
        Membership::None
    );
    assert_eq!(Sanction::parse("ban").map(Sanction::verb), Some("ban"));
    assert_eq!(Sanction::parse("dance"), None);
}

/// Slow mode holds plain members only, muted or not (a muted one is refused `muted`
/// first); everyone else is either exempt or not allowed to send at all.
#[test]
fn slow_mode_holds_plain_members_only() {
    let held: Vec<&str> = STATES
        .iter()
        .filter(|(_, m)| slowed(*m))
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(held, ["member", "muted member"]);
}

/// A block in a direct room refuses sending to its members (after the refusals about
/// the room: an outsider still learns nothing) and changes nothing else.
#[test]
fn a_block_stops_sending_only() {
    let room = settings(Visibility::Direct).with_blocked(true);
    let got: String = STATES
        .iter()
        .map(|(_, m)| mark(&check(*m, room, Action::Send)))
        .collect();
    let plain: String = STATES
        .iter()
        .map(|(_, m)| code(*m, Visibility::Direct, Action::Send))
        .collect();
    for ((g, p), (state, _)) in got.chars().zip(plain.chars()).zip(STATES) {
        match p {
            '.' => assert_eq!(g, 'K', "{state}"),
            _ => assert_eq!(g, p, "{state}"),
        }
    }
    for (name, a) in actions().iter().filter(|(_, a)| *a != Action::Send) {
        for (state, m) in STATES {
            assert_eq!(
                mark(&check(m, room, *a)),
                code(m, Visibility::Direct, *a),
                "{name} {state}"
            );
        }
    }
}
