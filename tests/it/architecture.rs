//! The layers of docs/ARCHITECTURE.md, checked on the source as a Rust parser reads it:
//! every path that names a module of the crate (`use` trees with their groups and
//! nesting, `crate::`, `super::` and `self::` paths in expressions, types and macro
//! arguments) must name its own top-level module or a layer below it, and the "never"
//! rules hold. A failure names the file, the line and the rule.

use proc_macro2::{TokenStream, TokenTree};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Layer of a top-level module, bottom (0) to top.
fn rank(module: &str) -> Option<u8> {
    Some(match module {
        "base" => 0,
        "pg" => 1,
        "auth" | "chat" | "hooks" => 2,
        "http" | "ws" => 3,
        "net" => 4,
        "node" | "fuzzing" | "lib" | "main" => 5,
        _ => return None,
    })
}

/// The module path of a source file below src/: `ws/join.rs` is `[ws, join]`,
/// `ws/mod.rs` is `[ws]`, `lib.rs` is `[]`; `main.rs` is a crate of its own.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Walks one file's syntax tree and records every path that leaves its layer.
struct Checker<'a> {
    file: &'a str,
    /// The file's top-level module (`lib` for the crate root, `main` for the binary).
    own: String,
    /// The module the walk is in: the file's module plus inline `mod`s entered.
    at: Vec<String>,
    out: Vec<String>,
}

impl Checker<'_> {
    /// The top-level module a path's leading segments resolve to, if it names one of the
    /// crate's modules (`crate::x`, `super::..::x`, `self::x`, or at the crate root `x`).
    fn target(&self, segs: &[String]) -> Option<String> {
        let first = segs.first()?;
        match first.as_str() {
            "crate" => segs.get(1).cloned(),
            "self" => self.at.first().cloned().or_else(|| segs.get(1).cloned()),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let base = &self.at[..self.at.len().saturating_sub(ups)];
                base.first().cloned().or_else(|| segs.get(ups).cloned())
            }
            // At the crate root a module's name alone is a path into the crate.
            name if self.at.is_empty() && self.own == "lib" && rank(name).is_some() => {
                Some(name.to_string())
            }
            _ => None,
        }
    }

    fn check(&mut self, segs: &[String], line: usize) {
        // The crate roots wire everything together.
        if self.at.is_empty() && matches!(self.own.as_str(), "main" | "lib") {
            return;
        }
        let Some(target) = self.target(segs) else {
            return;
        };
        let own = self.at.first().cloned().unwrap_or_else(|| self.own.clone());
        if target == own || target.is_empty() {
            return;
        }
        let file = self.file;
        // Messages are stored by the send use case only: the transports hold its handle
        // (`chat::send::Sender`), never the writers behind it.
        let names_writer = segs.windows(2).any(|w| w[0] == "pg" && w[1] == "writer");
        if names_writer && matches!(own.as_str(), "http" | "ws") {
            self.out.push(format!(
                "{file}:{line}: `{own}` uses `pg::writer`: messages are stored through \
                 `chat::send::Sender`"
            ));
            return;
        }
        let (Some(mine), Some(theirs)) = (rank(&own), rank(&target)) else {
            self.out.push(format!(
                "{file}:{line}: unknown module `{target}` (or `{own}` has no layer in tests/it/architecture.rs)"
            ));
            return;
        };
        if theirs > mine {
            self.out.push(format!(
                "{file}:{line}: `{own}` uses `{target}`, a layer above it"
            ));
        } else if theirs == mine {
            self.out.push(format!(
                "{file}:{line}: `{own}` uses `{target}`, a module of its own layer \
                 (auth/chat/hooks and http/ws never use each other)"
            ));
        }
    }

    /// Every full path a `use` tree names, with the line of its last segment.
    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, Some(&n.ident)),
            syn::UseTree::Rename(r) => self.leaf(prefix, Some(&r.ident)),
            syn::UseTree::Glob(g) => {
                let line = g.star_token.spans[0].start().line;
                self.check(&prefix.clone(), line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix);
                }
            }
        }
    }

    fn leaf(&mut self, prefix: &[String], ident: Option<&syn::Ident>) {
        let mut segs = prefix.to_vec();
        let mut line = 0;
        if let Some(i) = ident {
            segs.push(i.to_string());
            line = i.span().start().line;
        }
        self.check(&segs, line);
    }

    /// `crate::x`, `super::x` and `self::x` inside a macro's arguments, which the parser
    /// leaves as tokens.
    fn tokens(&mut self, ts: TokenStream) {
        let trees: Vec<TokenTree> = ts.into_iter().collect();
        for (i, t) in trees.iter().enumerate() {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) => {
                    let word = id.to_string();
                    if !matches!(word.as_str(), "crate" | "super" | "self") {
                        continue;
                    }
                    // Only the start of a path: `ident :: ident ...`.
                    if i > 0 && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == ':') {
                        continue;
                    }
                    let mut segs = vec![word];
                    let mut j = i + 1;
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) =
                        (trees.get(j), trees.get(j + 1))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        match trees.get(j + 2) {
                            Some(TokenTree::Ident(next)) => segs.push(next.to_string()),
                            _ => break,
                        }
                        j += 3;
                    }
                    if segs.len() > 1 {
                        self.check(&segs, id.span().start().line);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Checker<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&u.tree, &mut Vec::new());
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = p
            .segments
            .first()
            .map_or(0, |s| s.ident.span().start().line);
        self.check(&segs, line);
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        self.at.push(m.ident.to_string());
        syn::visit::visit_item_mod(self, m);
        self.at.pop();
    }
}

/// Every violation in one file, as "path:line: rule"; `rel` is the file's path below src/.
fn violations(rel: &str, text: &str) -> Vec<String> {
    let file = format!("src/{rel}");
    let at = module_path(Path::new(rel));
    let own = match at.first() {
        Some(m) => m.clone(),
        None if rel == "main.rs" => "main".into(),
        None => "lib".into(),
    };
    let ast = match syn::parse_file(text) {
        Ok(ast) => ast,
        Err(e) => return vec![format!("{file}: does not parse: {e}")],
    };
    let at = if own == "main" { Vec::new() } else { at };
    let mut c = Checker {
        file: &file,
        own,
        at,
        out: Vec::new(),
    };
    c.visit_file(&ast);
    c.out
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

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 30, "found only {} source files", files.len());
    files
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().display().to_string();
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let mut all = Vec::new();
    for (rel, text) in sources() {
        all.extend(violations(&rel, &text));
    }
    assert!(all.is_empty(), "layer rules broken:\n{}", all.join("\n"));
}

#[test]
fn no_struct_hands_every_part_to_every_other() {
    // The old service locator; role handles replaced it (docs/ARCHITECTURE.md).
    for (rel, text) in sources() {
        assert!(
            !text.contains("struct Shared"),
            "src/{rel}: a struct for every part is back"
        );
        assert!(
            !text.contains("impl EventLoop") || rel == "net/event_loop.rs",
            "src/{rel}: EventLoop is implemented outside net/event_loop.rs"
        );
    }
}

/// The checker itself catches each form a violation can take (so that the test above
/// can fail), and lets through what is allowed.
#[test]
fn the_checker_sees_every_form_of_climb_and_lateral_use() {
    let one = |rel: &str, text: &str| {
        let v = violations(rel, text);
        assert_eq!(v.len(), 1, "{rel}: {text}\n{v:?}");
        v.into_iter().next().unwrap()
    };
    // A plain `use`, with the file and line named.
    let v = one("chat/x.rs", "use crate::net::conn::Conn;");
    assert!(
        v.starts_with("src/chat/x.rs:1:") && v.contains("above"),
        "{v}"
    );
    // A group across lines, as rustfmt writes it: the line of the offending member.
    let v = one(
        "ws/x.rs",
        "use crate::{\n    base::model::Message,\n    net::conn::Conn,\n};",
    );
    assert!(v.starts_with("src/ws/x.rs:3:"), "{v}");
    // Nested groups.
    one(
        "auth/x.rs",
        "use crate::{base::{error::ApiError, model}, chat::{rooms::{Room}}};",
    );
    // A lateral use within one layer, both ways round.
    assert!(one("http/x.rs", "use crate::ws::events;").contains("own layer"));
    one("ws/x.rs", "use crate::http::parse::Head;");
    // `super::` out of a module: from pg/x, `super::super` is the crate root.
    one("pg/x.rs", "use super::super::chat::rooms;");
    // ... and from an inline module of a file.
    one(
        "chat/x.rs",
        "fn f() {}\nmod tests {\n    use super::super::super::net::handle;\n}",
    );
    // Paths in expressions, types, patterns and macro arguments.
    one("pg/x.rs", "fn f() { crate::ws::x() }");
    one("chat/x.rs", "fn f(h: &crate::ws::Hub) {}");
    one(
        "pg/x.rs",
        "fn f() { let _ = format!(\"{}\", crate::http::X); }",
    );
    one("base/x.rs", "fn f() -> crate::pg::pool::Pool { todo!() }");
    // The writers are the send use case's: a transport naming them is refused.
    assert!(one("http/x.rs", "use crate::pg::writer::Writers;").contains("chat::send::Sender"));
    one("ws/x.rs", "fn f(w: &crate::pg::writer::Writers) {}");
    assert!(violations("chat/x.rs", "use crate::pg::writer::Writers;").is_empty());
    // At the crate root a module's name alone is a path (lib.rs sees everything).
    assert!(violations("lib.rs", "pub use node::run; pub use net::x;").is_empty());
    // Allowed: downward, own module, `self::`, `super::` within the layer, other
    // crates, comments and strings.
    let ok = "use crate::base::model::Message;\nuse crate::ws::hub::Hub;\n\
              use super::session::Session;\nuse self::codec::x;\nuse std::sync::Arc;\n\
              // crate::node::run\n/// crate::net::x\nconst S: &str = \"crate::node::x\";";
    assert!(
        violations("ws/x.rs", ok).is_empty(),
        "{:?}",
        violations("ws/x.rs", ok)
    );
    assert!(violations("net/x.rs", "use crate::{ws::Hub, http::parse};").is_empty());
    assert!(violations("node/x.rs", "use crate::net::handle::LoopHandle;").is_empty());
    // Counting: two offending members of one group are two violations.
    assert_eq!(
        violations("ws/x.rs", "use crate::{base::x, net::y, node::z};").len(),
        2
    );
    // A file that does not parse is reported, not skipped.
    assert_eq!(violations("ws/x.rs", "fn (").len(), 1);
}
