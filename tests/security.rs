//! Security promises that are not about one route: no SQL built from strings, no
//! secrets in logs.

mod support;

use serde_json::json;
use std::path::Path;
use support::*;

/// Every `format!` whose text looks like SQL must be one of these: values that come
/// from the configuration or constants, never from a request.
const ALLOWED: &[(&str, &str)] = &[
    ("src/pg/migrate.rs", "CREATE DATABASE {quoted}"),
    (
        "src/pg/listener.rs",
        "LISTEN {MESSAGES_CHANNEL}; LISTEN {EVENTS_CHANNEL};",
    ),
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

#[test]
fn no_sql_is_built_by_string_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let keywords = [
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "LISTEN", "WITH",
        "TRUNCATE", "GRANT",
    ];
    let mut offenders = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
        // Look at the first string literal after each format!( (possibly on the next line).
        for (i, _) in text.match_indices("format!(") {
            let rest = &text[i + 8..];
            let Some(q) = rest.find('"') else { continue };
            if !rest[..q].trim().is_empty() {
                continue; // first argument is not a literal
            }
            let lit = &rest[q + 1..];
            let lit = &lit[..lit.find('"').unwrap_or(lit.len())];
            let upper = lit.trim_start().to_uppercase();
            if keywords.iter().any(|k| upper.starts_with(k))
                && !ALLOWED.iter().any(|(file, l)| *file == rel && *l == lit)
            {
                offenders.push(format!("{rel}: format!(\"{lit}\")"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL built with format!: {offenders:#?}"
    );
}

#[test]
fn tokens_and_passwords_never_reach_the_log() {
    let db = TestDb::new();
    let log = std::env::temp_dir().join(format!("chatd-log-{}.txt", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).unwrap();
    // No refresh grace: the reuse below must count as theft at once.
    let cfg =
        std::env::temp_dir().join(format!("chatd-log-{}.toml", uuid::Uuid::new_v4().simple()));
    let loadtest = std::fs::read_to_string(loadtest_config()).unwrap();
    std::fs::write(
        &cfg,
        loadtest.replace("[limits]", "[auth]\nrefresh_grace_secs = 0\n\n[limits]"),
    )
    .unwrap();
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
        &access,
        &refresh,
        &refresh2,
        "acceptance-access-secret",
        "acceptance-refresh-secret",
    ] {
        assert!(
            !text.contains(secret),
            "log contains a secret ({} chars)",
            secret.len()
        );
    }
}
