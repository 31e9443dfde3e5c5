//! Names people pick and recognise by sight (usernames, room names): one place decides
//! what such a name may hold and when two names are one.
//!
//! A name is NFC-normalised and trimmed; it shows what it holds (no control character,
//! no invisible or formatting character, which includes the bidirectional overrides,
//! embeddings, isolates and marks that reorder what follows, no blank-looking letter, no
//! space but U+0020 and never two in a row, something visible in it), and does not mix
//! the look-alike alphabets (Latin, Greek, Cyrillic). Two names are one when their keys
//! are equal: the key folds case and, for names chosen among many (rooms), reduces the
//! name to its confusable skeleton (Unicode TS #39), so `LOBBY`, `l0bby` and a Cyrillic
//! `ӏоЬЬу` are all `lobby`.

use std::ops::RangeInclusive;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Which alphabet a letter belongs to, for the one-script rule (the scripts whose
/// letters look alike).
fn script(c: char) -> Option<u8> {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Some(0),
        0x370..=0x3FF | 0x1F00..=0x1FFF => Some(1),
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Some(2),
        _ => None,
    }
}

/// Letters and symbols that render as nothing (Hangul fillers, the braille blank).
fn blank(c: char) -> bool {
    matches!(
        c,
        '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
    )
}

/// Whether `c` at `i` in `chars` hides, reorders or controls what is shown. The zero
/// width joiner is allowed between two symbols only (emoji sequences such as 👩‍💻).
fn hidden(chars: &[char], i: usize) -> bool {
    let c = chars[i];
    let symbol = |j: Option<&char>| {
        j.is_some_and(|&c| {
            matches!(
                c.general_category(),
                GeneralCategory::OtherSymbol | GeneralCategory::ModifierSymbol
            ) || c == '\u{FE0F}'
        })
    };
    if c == '\u{200D}' {
        return !(symbol(i.checked_sub(1).and_then(|j| chars.get(j))) && symbol(chars.get(i + 1)));
    }
    blank(c)
        || (c != ' '
            && matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::PrivateUse
                    | GeneralCategory::Surrogate
                    | GeneralCategory::Unassigned
                    | GeneralCategory::SpaceSeparator
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            ))
}

/// Checks that `text` shows what it holds: no character that hides, reorders or
/// controls what is shown, and something visible. The error names the field (`what`)
/// and the first offending character as U+XXXX.
pub fn shows(text: &str, what: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    if let Some(i) = (0..chars.len()).find(|&i| hidden(&chars, i)) {
        return Err(format!(
            "{what} must not contain U+{:04X}: no control, invisible, formatting or \
             direction-changing characters",
            chars[i] as u32
        ));
    }
    let visible = |c: &char| {
        !c.is_whitespace()
            && !matches!(
                c.general_category(),
                GeneralCategory::NonspacingMark
                    | GeneralCategory::SpacingMark
                    | GeneralCategory::EnclosingMark
            )
    };
    if !chars.iter().any(visible) {
        return Err(format!("{what} must contain a visible character"));
    }
    Ok(())
}

/// A name as stored, from what a client sent: NFC-normalised and trimmed, of `len`
/// characters, every rule of this module kept. The error names the field (`what`) and
/// the first offending character as U+XXXX.
pub fn normalise(raw: &str, what: &str, len: RangeInclusive<usize>) -> Result<String, String> {
    let name: String = raw.trim().nfc().collect();
    let chars: Vec<char> = name.chars().collect();
    if !len.contains(&chars.len()) {
        return Err(format!(
            "{what} must be {} to {} characters",
            len.start(),
            len.end()
        ));
    }
    shows(&name, what)?;
    if name.contains("  ") {
        return Err(format!("{what} must not contain consecutive spaces"));
    }
    let mut scripts = chars.iter().filter_map(|c| script(*c));
    if let Some(first) = scripts.next()
        && scripts.any(|s| s != first)
    {
        return Err(format!(
            "{what} must not mix Latin, Greek and Cyrillic letters"
        ));
    }
    Ok(name)
}

/// What of a stored name shows: NFC, without the characters [`normalise`] refuses as
/// hidden, single spaces, trimmed (names stored before these rules).
pub fn visible(raw: &str) -> String {
    let chars: Vec<char> = raw.nfc().collect();
    let kept: String = (0..chars.len())
        .filter(|&i| !hidden(&chars, i) || chars[i].is_whitespace())
        .map(|i| {
            if chars[i].is_whitespace() {
                ' '
            } else {
                chars[i]
            }
        })
        .collect();
    kept.split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key under which names differing only by case are one name.
pub fn case_key(name: &str) -> String {
    name.to_lowercase().nfc().collect()
}

/// The key under which names that look alike are one name: reduced to the confusable
/// skeleton of Unicode TS #39 and case folded, twice (a prototype may be a capital, as
/// `0` is `O`, and a folded letter may have a prototype of its own), then NFC. The
/// skeleton comes first: capitals have prototypes their small letters lack (Cyrillic
/// `Ь` is `b`, `ь` is not).
pub fn look_alike_key(name: &str) -> String {
    let once = |s: &str| {
        unicode_security::skeleton(s)
            .collect::<String>()
            .to_lowercase()
    };
    once(&once(name)).nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> Result<String, String> {
        normalise(s, "name", 1..=100)
    }

    #[test]
    fn look_alikes_share_a_key() {
        let k = look_alike_key("lobby");
        for same in [
            "LOBBY",
            "Lobby",
            "l0bby",
            "1obby",
            "lobby\u{200b}",
            "\u{4cf}\u{43e}\u{42c}\u{42c}\u{443}",
        ] {
            assert_eq!(look_alike_key(same), k, "{same:?}");
        }
        assert_ne!(look_alike_key("lobby2"), k);
        assert_eq!(look_alike_key("caf\u{e9}"), look_alike_key("CAFE\u{301}"));
        assert_eq!(case_key("Zo\u{e9}"), case_key("ZOE\u{301}"));
    }

    #[test]
    fn names_show_what_they_hold() {
        assert_eq!(room("  caf\u{65}\u{301} ").unwrap(), "caf\u{e9}");
        for ok in [
            "general",
            "#ops: on-call",
            "東京 tokyo",
            "👩\u{200d}💻 devs",
            "日本語",
        ] {
            assert!(room(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "   ",
            "\u{301}\u{301}",
            "lob\u{200b}by",
            "\u{200b}\u{200c}",
            "a\u{200d}b",
            "\u{202e}ybbol",
            "lob\u{2066}by",
            "lob\u{7}by",
            "lob\u{1b}by",
            "lob\u{85}by",
            "lob\u{a0}by",
            "\u{3164}",
            "lob\u{e000}by",
            "a  b",
            "l\u{43e}bby",
        ] {
            assert!(room(bad).is_err(), "{bad:?}");
        }
        assert!(room(&"x".repeat(101)).is_err());
        assert_eq!(visible(" lob\u{202e}by\u{7}  two\u{a0}x "), "lobby two x");
        assert_eq!(visible("\u{200b}"), "");
    }
}
