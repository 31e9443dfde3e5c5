//! Security promises that are not about one route: no SQL built from strings (with
//! the scanner's own test on crafted samples), no secrets in logs.

use crate::support::*;
use serde_json::json;
use std::path::Path;

/// SQL text that is built by formatting on purpose, as (file, literal): identifiers
/// that cannot be bind parameters, from the configuration or constants, never from a
/// request. An entry that no longer matches anything fails the test too.
const ALLOWED: &[(&str, &str)] = &[
    ("src/pg/migrate.rs", "CREATE DATABASE {quoted}"),
    ("src/pg/listener.rs", "LISTEN {EVENTS_CHANNEL};"),
    ("src/pg/listener.rs", "LISTEN {channel};"),
    ("src/pg/listener.rs", "UNLISTEN {channel};"),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A token of Rust source, as far as the scan needs: string literals (normal, raw,
/// byte; their text unescaped only as far as quotes go), identifiers and single
/// punctuation characters. Comments, char literals and lifetimes are skipped.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Str(String, usize),
    Ident(String),
    Punct(char),
}

fn tokens(src: &str) -> (Vec<Tok>, Vec<usize>) {
    let b: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out, mut lines) = (0, 1, Vec::new(), Vec::new());
    let at = |i: usize| b.get(i).copied().unwrap_or('\0');
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(b[i] == '\n');
                    i += 1;
                }
            }
        } else if c == '"' || ((c == 'r' || c == 'b' || c == 'c') && is_string_start(&b, i)) {
            // Prefix (b, c, r, br, cr), then hashes for a raw string.
            let start_line = line;
            let mut j = i;
            let mut raw = false;
            while b[j] != '"' && b[j] != '#' {
                raw |= b[j] == 'r';
                j += 1;
            }
            let mut hashes = 0;
            while b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1; // the opening quote
            let mut text = String::new();
            loop {
                if j >= b.len() {
                    break;
                }
                let d = b[j];
                if d == '\n' {
                    line += 1;
                }
                if !raw && d == '\\' {
                    // Keep escapes as written, but never end at an escaped quote.
                    text.push(d);
                    if let Some(&e) = b.get(j + 1) {
                        text.push(e);
                        line += usize::from(e == '\n');
                    }
                    j += 2;
                    continue;
                }
                if d == '"' && (0..hashes).all(|h| at(j + 1 + h) == '#') {
                    j += 1 + hashes;
                    break;
                }
                text.push(d);
                j += 1;
            }
            out.push(Tok::Str(text, start_line));
            lines.push(start_line);
            i = j;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\'', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_alphanumeric() || c == '_' {
            let mut j = i;
            while j < b.len() && (b[j].is_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            out.push(Tok::Ident(b[i..j].iter().collect()));
            lines.push(line);
            i = j;
        } else {
            out.push(Tok::Punct(c));
            lines.push(line);
            i += 1;
        }
    }
    (out, lines)
}

/// Whether a string literal with a prefix (`r"`, `r#"`, `b"`, `br"`, `c"`, ...) starts
/// at `i` (and `i` does not continue an identifier).
fn is_string_start(b: &[char], i: usize) -> bool {
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    let mut prefix = String::new();
    while j < b.len() && b[j].is_ascii_alphabetic() && prefix.len() < 2 {
        prefix.push(b[j]);
        j += 1;
    }
    if !matches!(prefix.as_str(), "r" | "b" | "c" | "br" | "cr") {
        return false;
    }
    let raw = prefix.contains('r');
    while raw && j < b.len() && b[j] == '#' {
        j += 1;
    }
    j < b.len() && b[j] == '"'
}

/// Upper-case words that only SQL uses this way in this code base.
const SQL_WORDS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "FROM",
    "WHERE",
    "VALUES",
    "JOIN",
    "RETURNING",
    "CREATE",
    "DROP",
    "ALTER",
    "LISTEN",
    "UNLISTEN",
    "NOTIFY",
    "TRUNCATE",
    "GRANT",
    "UNION",
    "ORDER",
    "GROUP",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "SET",
    "INTO",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "ILIKE",
    "EXISTS",
    "DISTINCT",
    "COALESCE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "ON",
    "AS",
    "BY",
    "ASC",
    "DESC",
    "WITH",
    "TABLE",
    "INDEX",
    "DATABASE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "LOCK",
];

/// Words that start a statement.
const STATEMENTS: &[&str] = &[
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "LISTEN", "UNLISTEN",
    "NOTIFY", "TRUNCATE", "GRANT", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "LOCK",
];

/// Whether a literal's text looks like SQL or a piece of it: a statement's first word,
/// two upper-case SQL words, a clause word with a comparison, or lower-case SQL.
fn looks_like_sql(text: &str) -> bool {
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let upper: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| SQL_WORDS.contains(w))
        .collect();
    if words.first().is_some_and(|w| STATEMENTS.contains(w)) || upper.len() >= 2 {
        return true;
    }
    let compares = ['=', '<', '>', '$'].iter().any(|c| text.contains(*c));
    if !upper.is_empty() && compares {
        return true;
    }
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let has = |w: &str| lower.iter().any(|x| x == w);
    let starts = |w: &str| lower.first().is_some_and(|x| x == w);
    (has("select") && has("from"))
        || (has("insert") && has("into"))
        || (has("delete") && has("from"))
        || (has("update") && has("set"))
        || ((has("create") || has("drop") || has("alter")) && (has("table") || has("database")))
        || (has("where") && compares)
        || starts("listen")
        || starts("unlisten")
        || has("pg_notify")
}

/// Macros whose arguments become a `String` at run time.
const FORMATTING: &[&str] = &["format", "format_args", "write", "writeln"];
/// Calls that glue text onto a string.
const GLUE: &[&str] = &["push_str", "insert_str", "join", "concat", "extend"];

/// A place where SQL is built by string formatting: (line, what).
fn sql_building(src: &str) -> Vec<(usize, String)> {
    let (toks, lines) = tokens(src);
    // Names bound to SQL text: constants, statics and lets whose value is a literal or a
    // concat! that looks like SQL, and macro_rules! whose body has such a literal.
    let mut sql_names: Vec<String> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Ident(kw) = t else { continue };
        if !matches!(kw.as_str(), "const" | "static" | "let" | "macro_rules") {
            continue;
        }
        let mut j = i + 1;
        if toks.get(j) == Some(&Tok::Punct('!')) {
            j += 1;
        }
        if toks.get(j) == Some(&Tok::Ident("mut".into())) {
            j += 1;
        }
        let Some(Tok::Ident(name)) = toks.get(j) else {
            continue;
        };
        // The value: up to the end of the item (`;` at depth 0, or the macro's body),
        // when it is text itself: a literal (`&`-borrowed or not), a `concat!` or a
        // macro's body; `let n = c.query_one("SELECT ...")` holds no SQL.
        let mut k = j + 1;
        if kw != "macro_rules" {
            while let Some(t) = toks.get(k) {
                k += 1;
                if *t == Tok::Punct('=') {
                    break;
                }
            }
            while toks.get(k) == Some(&Tok::Punct('&')) {
                k += 1;
            }
            let text_value = matches!(toks.get(k), Some(Tok::Str(..)))
                || (toks.get(k) == Some(&Tok::Ident("concat".into()))
                    && toks.get(k + 1) == Some(&Tok::Punct('!')));
            if !text_value {
                continue;
            }
        }
        let mut depth = 0i32;
        let mut sql = false;
        while let Some(t) = toks.get(k) {
            match t {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth <= 0 && kw == "macro_rules" {
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => break,
                Tok::Str(text, _) => sql |= looks_like_sql(text),
                _ => {}
            }
            k += 1;
        }
        if sql {
            sql_names.push(name.clone());
        }
    }
    // Arrays (or vec!s) whose parts are glued by `.join(..)` or `.concat()`.
    let mut glued: Vec<(usize, usize)> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(' | '[' | '{') => open.push(i),
            Tok::Punct(')' | ']' | '}') => {
                if let Some(start) = open.pop()
                    && toks.get(i + 1) == Some(&Tok::Punct('.'))
                    && matches!(toks.get(i + 2), Some(Tok::Ident(m)) if m == "join" || m == "concat")
                {
                    glued.push((start, i));
                }
            }
            _ => {}
        }
    }
    // Walk the tokens with a stack of the groups we are in: each named by the macro
    // (`name!(`) or the call (`name(`) that opened it.
    let mut found = Vec::new();
    let mut stack: Vec<(String, bool)> = Vec::new(); // (name, is macro)
    for (i, t) in toks.iter().enumerate() {
        let line = lines[i];
        let prev = |n: usize| i.checked_sub(n).and_then(|p| toks.get(p));
        let in_formatting = stack
            .iter()
            .any(|(n, m)| *m && FORMATTING.contains(&n.as_str()));
        let in_glue = stack
            .last()
            .is_some_and(|(n, m)| !*m && GLUE.contains(&n.as_str()))
            || glued.iter().any(|(a, b)| *a < i && i < *b);
        let next_is_plus = matches!(toks.get(i + 1), Some(Tok::Punct('+')));
        let prev_is_plus = matches!(prev(1), Some(Tok::Punct('+')))
            || (matches!(prev(1), Some(Tok::Punct('&')))
                && matches!(prev(2), Some(Tok::Punct('+'))));
        let owned = matches!(
            (toks.get(i + 1), toks.get(i + 2)),
            (Some(Tok::Punct('.')), Some(Tok::Ident(m))) if m == "to_string" || m == "to_owned" || m == "into"
        ) || stack.last().is_some_and(|(n, m)| !*m && n == "from")
            && matches!(prev(3), Some(Tok::Punct(':')))
            && matches!(prev(5), Some(Tok::Ident(s)) if s == "String");
        match t {
            Tok::Punct('(' | '[' | '{') => {
                let entry = match (prev(1), prev(2)) {
                    (Some(Tok::Punct('!')), Some(Tok::Ident(n))) => (n.clone(), true),
                    (Some(Tok::Ident(n)), _) => (n.clone(), false),
                    _ => (String::new(), false),
                };
                stack.push(entry);
            }
            Tok::Punct(')' | ']' | '}') => {
                stack.pop();
            }
            Tok::Str(text, _) => {
                // In a format string, a single SQL word with a placeholder is a piece of
                // SQL too (" LIMIT {n}").
                let piece = in_formatting
                    && text.contains('{')
                    && text
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .any(|w| SQL_WORDS.contains(&w));
                if looks_like_sql(text) || piece {
                    let how = if in_formatting {
                        Some("formatted")
                    } else if in_glue {
                        Some("glued onto a string")
                    } else if next_is_plus || prev_is_plus {
                        Some("concatenated with +")
                    } else if owned {
                        Some("made an owned String (to be extended)")
                    } else {
                        None
                    };
                    if let Some(how) = how {
                        found.push((line, format!("{how}: \"{text}\"")));
                    }
                } else if in_formatting {
                    // A format string naming SQL held elsewhere: "{BASE} ..." or "{}".
                    for name in &sql_names {
                        if text.contains(&format!("{{{name}}}"))
                            || text.contains(&format!("{{{name}:"))
                        {
                            found.push((line, format!("formatted: {name} in \"{text}\"")));
                        }
                    }
                }
            }
            Tok::Ident(name) if sql_names.contains(name) => {
                let is_macro = matches!(toks.get(i + 1), Some(Tok::Punct('!')));
                // Its own definition does not count.
                let defining = matches!(prev(1), Some(Tok::Ident(k)) if k == "const" || k == "static" || k == "let" || k == "mut" || k == "macro_rules")
                    || matches!((prev(1), prev(2)), (Some(Tok::Punct('!')), Some(Tok::Ident(k))) if k == "macro_rules");
                if !defining && (in_formatting || in_glue || next_is_plus || prev_is_plus) {
                    let what = if is_macro {
                        format!("{name}!()")
                    } else {
                        name.clone()
                    };
                    found.push((line, format!("SQL held in {what} built into a string")));
                }
            }
            _ => {}
        }
    }
    found
}

/// The scanner on crafted samples: each bad one is caught, no good one is.
#[test]
fn the_sql_scanner_catches_crafted_samples() {
    let bad = [
        r#"let q = format!("SELECT * FROM users WHERE id = {id}");"#,
        r##"let q = format!(r#"SELECT * FROM users WHERE name = '{name}'"#);"##,
        r#"let q = format!(r"DELETE FROM messages WHERE id = {}", id);"#,
        r#"let q = format!("select * from users where id = {}", id);"#,
        r#"let q = format!("{} WHERE id = {}", BASE, id);"#,
        "let q = format!(\n    \"UPDATE rooms SET name = '{}'\",\n    n\n);",
        r#"write!(sql, " AND user_id = {}", user).unwrap();"#,
        r#"writeln!(&mut sql, "INSERT INTO t VALUES ({v})")?;"#,
        r#"sql.push_str(" WHERE id = $1");"#,
        r#"sql.push_str(&format!(" LIMIT {n}"));"#,
        r#"let q = "SELECT * FROM users WHERE id = ".to_string() + &id;"#,
        r#"let q = String::from("SELECT * FROM t WHERE a = "); q.push_str(&a);"#,
        r#"let q = format!(concat!("SELECT ", "id FROM t WHERE id = {}"), id);"#,
        "const BASE: &str = \"SELECT id FROM t\";\nlet q = format!(\"{BASE} WHERE x = {x}\");",
        "const BASE: &str = r#\"SELECT id FROM t\"#;\nlet q = format!(\"{} {}\", BASE, cond);",
        "let base = concat!(\"SELECT \", \"id FROM t\");\nlet mut q = String::new();\nq.push_str(base);",
        "macro_rules! cols { () => { \"SELECT a, b FROM t\" }; }\nlet q = format!(\"{} {w}\", cols!());",
        r#"let q = ["SELECT * FROM t WHERE id =", &id].join(" ");"#,
        r#"c.batch_execute(&format!("LISTEN {name};"))?;"#,
    ];
    for sample in bad {
        assert!(!sql_building(sample).is_empty(), "not caught:\n{sample}");
    }
    let good = [
        r#"const Q: &str = "SELECT * FROM users WHERE id = $1";"#,
        r##"const Q: &str = r#"SELECT "quoted" FROM t WHERE a = $1"#;"##,
        r#"const Q: &str = concat!("SELECT ", cols!(), " FROM t WHERE id = $1");"#,
        r#"c.query("SELECT 1 FROM t WHERE a = $1", &[&a])?;"#,
        r#"let msg = format!("room {id} not found");"#,
        r#"log::warn!("a {name} job panicked");"#,
        r#"// format!("SELECT * FROM t WHERE id = {id}") in a comment"#,
        "/* format!(\"DELETE FROM t WHERE id = {id}\") */ let a = 1;",
        r#"let c = '"'; let q = "SELECT 1 FROM t WHERE a = $1";"#,
        r#"assert_eq!(sql, "SELECT 1 FROM t WHERE a = $1");"#,
        r#"out.push_str("Content-Type: application/json\r\n");"#,
        r#"let s = format!("{} rows", n); let t = "where to go";"#,
    ];
    for sample in good {
        let found = sql_building(sample);
        assert!(found.is_empty(), "false alarm on:\n{sample}\n{found:?}");
    }
}

/// Every string literal of src/ (normal, raw or byte) that looks like SQL is checked
/// where it stands: inside `format!`, `format_args!`, `write!` or `writeln!` (a
/// `concat!` inside them too), glued with `push_str`/`insert_str`/`join`, joined with
/// `+`, or made an owned `String`; so is a constant, static, `let` or `macro_rules!`
/// holding SQL when it is used in such a place or named in a format string. `concat!`
/// of literals alone is fine (it is one literal at compile time). Only `ALLOWED` may
/// remain, and every entry of it must still be found.
/// Fails on SQL built by formatting: shown by `the_sql_scanner_catches_crafted_samples`
/// (each bad sample is caught, including raw strings, `write!`, `push_str`, `+` and SQL
/// constants), and by adding to `chat/rooms.rs` a query built with
/// `format!("SELECT id FROM rooms WHERE name = '{name}'")` and one with
/// `format!(r#"SELECT ... = '{}'"#, name)`: both reported with their lines (the scan
/// this replaced saw only the first literal after `format!(`, and missed the raw one).
#[test]
fn no_sql_is_built_by_string_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut offenders = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    let mut sql_literals = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
        sql_literals += tokens(&text)
            .0
            .iter()
            .filter(|t| matches!(t, Tok::Str(s, _) if looks_like_sql(s)))
            .count();
        for (line, what) in sql_building(&text) {
            let allowed = ALLOWED
                .iter()
                .position(|(file, lit)| *file == rel && what.ends_with(&format!("\"{lit}\"")));
            match allowed {
                Some(i) => used[i] = true,
                None => offenders.push(format!("{rel}:{line}: {what}")),
            }
        }
    }
    // The scan saw the code base's SQL (a tokenizer that lost its way would see none).
    assert!(
        sql_literals > 100,
        "only {sql_literals} SQL literals seen in src/"
    );
    assert!(
        offenders.is_empty(),
        "SQL built by string formatting: {offenders:#?}"
    );
    let stale: Vec<_> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| a)
        .collect();
    assert!(
        stale.is_empty(),
        "allowed entries no longer found: {stale:?}"
    );
}

/// No password, secret, token or 16-character fragment of a token is in a trace-level
/// log of registration, a failed login, a refresh, a reuse, a socket and a forged token.
/// Fails if a fragment is logged: shown by logging the last 20 characters of each token
/// at trace level in `Auth::authenticate` ("log contains 16 characters of the access
/// token (at 238 of 258)").
#[test]
fn tokens_and_passwords_never_reach_the_log() {
    let db = TestDb::new();
    let log = std::env::temp_dir().join(format!("chatd-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).unwrap();
    // No refresh grace: the reuse below must count as theft at once.
    let cfg =
        std::env::temp_dir().join(format!("chatd-log-{}.toml", uuid::Uuid::new_v4().simple()));
    let loadtest = std::fs::read_to_string(loadtest_config()).unwrap();
    // Into the file's [auth] table if it has one (a TOML table may appear only once).
    let no_grace = if loadtest.contains("\n[auth]\n") {
        loadtest.replace("\n[auth]\n", "\n[auth]\nrefresh_grace_secs = 0\n")
    } else {
        format!("[auth]\nrefresh_grace_secs = 0\n\n{loadtest}")
    };
    std::fs::write(&cfg, no_grace).unwrap();
    let mut p = Process::start_with(&db, "log-1", "trace", file.into(), Some(&cfg));
    let a = p.addr.clone();
    let password = "correct-horse-battery-staple";
    let (s, r) = request(
        &a,
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "logger", "email": "log@example.com", "password": password})),
    );
    assert_eq!(s, 201);
    let access = r["tokens"]["accessToken"].as_str().unwrap().to_string();
    let refresh = r["tokens"]["refreshToken"].as_str().unwrap().to_string();
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/login",
            None,
            Some(&json!({"email": "log@example.com", "password": "wrong-horse-battery"}))
        )
        .0,
        401
    );
    let (_, r2) = request(
        &a,
        "POST",
        "/auth/refresh",
        None,
        Some(&json!({"refreshToken": refresh})),
    );
    let refresh2 = r2["tokens"]["refreshToken"].as_str().unwrap().to_string();
    let room = create_room(&a, &access);
    let mut w = Ws::connect(&a, &access);
    w.join(&room, None);
    w.send_text("{not json");
    w.expect("error");
    drop(w);
    // Reuse of the old refresh token is logged as an event, without the token.
    assert_eq!(
        request(
            &a,
            "POST",
            "/auth/refresh",
            None,
            Some(&json!({"refreshToken": refresh}))
        )
        .0,
        401
    );
    assert_eq!(
        request(&a, "GET", "/rooms", Some("forged.token.value"), None).0,
        401
    );
    assert_eq!(p.terminate(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&cfg);
    assert!(
        text.contains("refresh token reuse"),
        "the log should say what happened:\n{text}"
    );
    for secret in [
        password,
        "wrong-horse-battery",
        "acceptance-access-secret",
        "acceptance-refresh-secret",
    ] {
        assert!(
            !text.contains(secret),
            "log contains a secret ({} chars)",
            secret.len()
        );
    }
    // Not a whole token, nor any 16 characters of one: a log line that prints a prefix,
    // a suffix or the signature alone is caught too. (The JWT header, the same for every
    // token, is left out of the access token's fragments.)
    assert!(text.len() > 1000, "the trace log is nearly empty:\n{text}");
    let body = access
        .split_once('.')
        .map_or(access.as_str(), |(_, rest)| rest);
    for (what, token) in [
        ("access token", body),
        ("refresh token", refresh.as_str()),
        ("rotated refresh token", refresh2.as_str()),
    ] {
        assert!(token.len() >= 16, "{what} too short: {}", token.len());
        for at in 0..=token.len() - 16 {
            let fragment = &token[at..at + 16];
            assert!(
                !text.contains(fragment),
                "log contains 16 characters of the {what} (at {at} of {})",
                token.len()
            );
        }
    }
}
