//! Embeds the files the binary serves (the web app and the client library under
//! `src/web/`) so that one executable still deploys everything.

use std::path::{Path, PathBuf};

/// File kinds that are served; anything else under src/web (tests, notes) is not.
const SERVED: &[&str] = &[
    "html", "js", "mjs", "css", "json", "ts", "svg", "png", "ico",
];

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out);
        } else if SERVED.iter().any(|x| name.ends_with(&format!(".{x}")))
            && !name.contains(".test.")
        {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = rel.to_string_lossy().replace('\\', "/");
            out.push((format!("/{rel}"), path));
        }
    }
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest).join("src/web");
    println!("cargo:rerun-if-changed=src/web");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    let mut code = String::from("&[\n");
    for (url, path) in files {
        code.push_str(&format!(
            "    ({url:?}, include_bytes!({:?}) as &[u8]),\n",
            path.display().to_string()
        ));
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("web.rs");
    std::fs::write(out, code).unwrap_or_else(|e| panic!("cannot write the web file list: {e}"));
}
