//! Rules for short human text shared by several domains: labels people choose (display
//! names, status lines), emoji, links, and the folded form the user directory searches.

use crate::base::names;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A label a person chooses (a display name, a status line), as stored: NFC-normalised
/// and trimmed, 1 to `max` characters, and showing what it holds by the rule names
/// share ([`names::shows`]: no control, invisible, formatting or direction-changing
/// character, something visible). `field` names the field in the error.
pub fn label(field: &str, raw: &str, max: usize) -> Result<String, String> {
    let s: String = raw.trim().nfc().collect();
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(format!("{field} must be 1 to {max} characters"));
    }
    names::shows(&s, field)?;
    Ok(s)
}

/// Checks a search query: 1 to `max` characters with something besides spaces, and no
/// U+0000 (PostgreSQL text cannot hold it: the query would fail as a database error).
pub fn query(q: &str, max: usize) -> Result<(), String> {
    let n = q.chars().count();
    if n == 0 || n > max || q.trim().is_empty() {
        return Err(format!("q must be 1 to {max} characters"));
    }
    if q.contains('\0') {
        return Err("q must not contain the NUL character (\\u0000)".into());
    }
    Ok(())
}

/// Whether `s` is one short emoji: a single grapheme cluster of at most 32 bytes made of
/// emoji code points, modifiers, joiners, variation selectors and keycaps.
pub fn valid_emoji(s: &str) -> bool {
    use unicode_segmentation::UnicodeSegmentation;
    let emoji = |c: char| {
        matches!(c as u32,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF | 0x25A0..=0x25FF | 0x2934..=0x2935 | 0x3030 | 0x303D
            | 0x3297 | 0x3299 | 0xA9 | 0xAE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x24C2)
    };
    let joiner = |c: char| {
        matches!(
            c as u32,
            0x200D | 0xFE0F | 0xFE0E | 0x20E3 | 0xE0020..=0xE007F
        )
    };
    let keycap_base = |c: char| c.is_ascii_digit() || c == '#' || c == '*';
    !s.is_empty()
        && s.len() <= 32
        && s.graphemes(true).count() == 1
        && s.chars().any(|c| emoji(c) || c == '\u{20E3}')
        && s.chars().all(|c| emoji(c) || joiner(c) || keycap_base(c))
}

/// An absolute `http` or `https` URL of at most `max` characters with a host, no
/// credentials (`user:password@`: in `https://bank.example@evil.example/` the host is
/// `evil.example`), no whitespace, control character or backslash (browsers read `\` as
/// `/` in such URLs, so it can hide where the host ends).
pub fn http_url(field: &str, s: &str, max: usize) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{field} must be an http or https URL of at most {max} characters with a host, \
             without user information (`user@` before the host) or a backslash"
        ))
    };
    if s.chars().count() > max
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return bad();
    }
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return bad();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.is_empty() || authority.contains('@') {
        return bad();
    }
    Ok(())
}

/// The form the user directory compares: compatibility-decomposed, without combining
/// marks (accents), lower-cased, trimmed. `Zoë`, `ZOE` and `zoe` fold alike. Computed by
/// the server, never by the database, so its rules do not depend on the database's locale.
pub fn fold(s: &str) -> String {
    s.trim()
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .nfc()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("n", "  Zoe\u{301} ", 10).unwrap(), "Zo\u{e9}");
        assert!(label("n", "Jean-Luc 🚀", 64).is_ok());
        assert!(label("n", "👩\u{200D}💻", 64).is_ok());
        for bad in [
            "",
            "   ",
            "a\nb",
            "a\tb",
            "evil\u{202E}txt",
            "a\u{2066}b",
            "\u{200B}",
            "\u{200D}\u{FE0F}",
            "x\u{200B}y",
            "\u{0301}",
            "\u{3164}",
        ] {
            assert!(label("n", bad, 64).is_err(), "{bad:?}");
        }
        assert!(label("n", &"a".repeat(65), 64).is_err());
        assert!(label("n", &"é".repeat(64), 64).is_ok());
    }

    #[test]
    fn emoji() {
        for ok in ["👍", "❤️", "👩‍💻", "🇫🇷", "1️⃣", "👍🏽"] {
            assert!(valid_emoji(ok), "{ok}");
        }
        for bad in ["", "a", "👍👍", "ok", "👍 ", "\u{200D}"] {
            assert!(!valid_emoji(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls() {
        for ok in [
            "https://cdn.example/a.png",
            "http://example.com",
            "HTTPS://example.com:8443/x?y#z",
            "https://[::1]:8080/a",
        ] {
            assert!(http_url("u", ok, 2048).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com/a",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://bank.example\\@evil.example/",
            "https:///path",
            "https://",
            "https://exa mple.com",
            "//example.com",
            "data:image/png;base64,AAAA",
        ] {
            assert!(http_url("u", bad, 2048).is_err(), "{bad}");
        }
        assert!(http_url("u", &format!("https://e.x/{}", "a".repeat(2048)), 2048).is_err());
    }

    #[test]
    fn queries() {
        assert!(query("fox", 200).is_ok());
        assert!(query("", 200).is_err());
        assert!(query("   ", 200).is_err());
        assert!(query("a\0b", 200).unwrap_err().contains("NUL"));
        assert!(query(&"x".repeat(51), 50).is_err());
    }

    #[test]
    fn folding() {
        assert_eq!(fold("Zoë"), "zoe");
        assert_eq!(fold("ZOE"), "zoe");
        assert_eq!(fold(" Zoe\u{301}"), "zoe");
        assert_eq!(fold("Ångström"), "angstrom");
        assert_eq!(fold("ｆｕｌｌ"), "full");
        assert_eq!(fold("Ελένη"), "ελενη");
        assert_eq!(fold("ユーザー"), fold("ユーザー"));
    }
}
