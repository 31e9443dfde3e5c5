//! The layers of docs/ARCHITECTURE.md, checked on the source: every `crate::` path in a
//! module's code must name its own module or a layer below it, and the "never" rules
//! hold. A failure names the file, the line and the rule.

use std::path::{Path, PathBuf};

/// Layer of a top-level module, bottom (0) to top.
fn rank(module: &str) -> Option<u8> {
    Some(match module {
        "base" => 0,
        "pg" => 1,
        "auth" | "chat" => 2,
        "http" | "ws" => 3,
        "net" => 4,
        "node" | "fuzzing" | "lib" | "main" => 5,
        _ => return None,
    })
}

/// The top-level module a source file belongs to.
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .unwrap_or_default();
    first.trim_end_matches(".rs").to_string()
}

/// Every violation in one file's text, as "path:line: rule".
fn violations(file: &str, module: &str, text: &str) -> Vec<String> {
    let Some(own) = rank(module) else {
        return vec![format!(
            "{file}: module `{module}` has no layer in tests/architecture.rs"
        )];
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Comments (doc comments included) may name any module.
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        let mut targets = Vec::new();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let ident = |s: &str| -> String {
                s.trim_start()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            };
            match rest.strip_prefix('{') {
                // `use crate::{a::x, b::y}`: every group member on this line.
                Some(group) => {
                    let group = group.split('}').next().unwrap_or("");
                    targets.extend(group.split(',').map(ident));
                }
                None => targets.push(ident(rest)),
            }
        }
        for target in targets {
            if target == module || target.is_empty() {
                continue;
            }
            let Some(r) = rank(&target) else {
                out.push(format!("{file}:{}: unknown module `{target}`", i + 1));
                continue;
            };
            if r > own {
                out.push(format!(
                    "{file}:{}: `{module}` imports `{target}`, a layer above it",
                    i + 1
                ));
            } else if r == own {
                out.push(format!(
                    "{file}:{}: `{module}` imports `{target}`, a module of its own layer \
                     (auth/chat and http/ws never import each other)",
                    i + 1
                ));
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 30, "found only {} source files", files.len());
    let mut all = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(f).unwrap();
        all.extend(violations(
            &format!("src/{}", rel.display()),
            &module_of(rel),
            &text,
        ));
    }
    assert!(all.is_empty(), "layer rules broken:\n{}", all.join("\n"));
}

#[test]
fn no_struct_hands_every_part_to_every_other() {
    // The old service locator; role handles replaced it (docs/ARCHITECTURE.md).
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains("struct Shared"),
            "{}: a struct for every part is back",
            f.display()
        );
        assert!(
            !text.contains("impl EventLoop") || f.ends_with("net/event_loop.rs"),
            "{}: EventLoop is implemented outside net/event_loop.rs",
            f.display()
        );
    }
}

/// The checker itself catches what it must (so that the test above can fail).
#[test]
fn the_checker_sees_climbs_and_lateral_imports() {
    let climbs = violations("src/chat/x.rs", "chat", "use crate::net::conn::Conn;");
    assert_eq!(climbs.len(), 1, "{climbs:?}");
    assert!(climbs[0].contains("src/chat/x.rs:1"));
    assert_eq!(
        violations("src/auth/x.rs", "auth", "let c = crate::chat::rooms::list;").len(),
        1
    );
    assert_eq!(
        violations("src/http/x.rs", "http", "use crate::ws::events;").len(),
        1
    );
    assert_eq!(
        violations("src/pg/x.rs", "pg", "fn f() { crate::ws::x() }").len(),
        1
    );
    // Allowed: downward, own module, comments.
    let ok = "use crate::base::model::Message;\nuse crate::ws::hub::Hub;\n// crate::node::run";
    assert!(violations("src/ws/x.rs", "ws", ok).is_empty());
    assert!(
        violations(
            "src/net/x.rs",
            "net",
            "use crate::ws::Hub; use crate::http::parse;"
        )
        .is_empty()
    );
    assert_eq!(
        violations("src/ws/x.rs", "ws", "use crate::{base::x, net::y};").len(),
        1
    );
}
