//! `cargo xtask tidy`: source rules that rustfmt and clippy do not check.
//! The `#[test]` at the bottom runs them under `cargo test` too.
//!
//! For every `.rs` file under `crates/` and `xtask/` (not `target/`):
//!
//! - the first non-empty line is a `//!` module doc;
//! - every `unsafe {` block and `unsafe impl` has a comment containing
//!   `SAFETY:` on its line or on one of the 3 lines above;
//! - no line ends in whitespace;
//! - `unsafe` appears in code only in `crates/mp-process` and `crates/mp-shm`
//!   (and in the documented exceptions: the crate `crates/mp-mpi`, see
//!   `UNSAFE_EXCEPTIONS`, and the bench programs of `UNSAFE_FILE_EXCEPTIONS`).
//!
//! The `unsafe` rules look at code only: a small lexer first separates
//! comments from code and blanks out string and char literals.

use std::path::{Path, PathBuf};

/// Crates that may contain `unsafe` code (house style: "Unsafe discipline").
const UNSAFE_CRATES: &[&str] = &["mp-process", "mp-shm"];

/// Documented exceptions to that rule: mp-mpi calls MPI's raw bindings
/// (one-sided windows) and turns function offsets sent by rank 0 into
/// function pointers; its crate docs ("Unsafe code") say why.
const UNSAFE_EXCEPTIONS: &[&str] = &["mp-mpi"];

/// Documented exceptions by file, for benchmark programs that must not go
/// through mp: the floors (`NAME:limit`) measure the same work without mp,
/// and `fork` has no safe form (rustix has none); the shared_memory and
/// raw_sync peer is written as those crates' users write it, with raw
/// pointers. Each file's module docs say why.
const UNSAFE_FILE_EXCEPTIONS: &[&str] = &[
    "crates/mp-bench/src/workloads/floors.rs",
    "crates/mp-bench/peers/src/bin/shared_memory.rs",
];

/// How many lines above an `unsafe` block its `SAFETY:` comment may start.
const SAFETY_REACH: usize = 3;

pub(crate) fn run(root: &Path) -> Result<(), String> {
    let problems = check_tree(root)?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("tidy: ok");
        Ok(())
    } else {
        Err(format!("tidy: {} problem(s) found", problems.len()))
    }
}

/// Every problem in the tree, as `path:line: message`, sorted by path.
fn check_tree(root: &Path) -> Result<Vec<String>, String> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut problems = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let shown = rel.display().to_string().replace('\\', "/");
        let krate = crate_of(rel);
        let unsafe_allowed = UNSAFE_CRATES.contains(&krate.as_str())
            || UNSAFE_EXCEPTIONS.contains(&krate.as_str())
            || UNSAFE_FILE_EXCEPTIONS.contains(&shown.as_str());
        for (line, msg) in check_file(&text, unsafe_allowed) {
            problems.push(format!("{shown}:{line}: {msg}"));
        }
    }
    Ok(problems)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if file_type.is_dir() {
            if entry.file_name() != "target" {
                rust_files(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `crates/<name>/...` belongs to `<name>`; anything else (`xtask/...`) to
/// its top directory.
fn crate_of(rel: &Path) -> String {
    let mut parts = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    match parts.next() {
        Some(top) if top == "crates" => parts.next().unwrap_or(top),
        Some(top) => top,
        None => String::new(),
    }
}

/// Problems in one file as `(1-based line, message)`.
fn check_file(text: &str, unsafe_allowed: bool) -> Vec<(usize, String)> {
    let mut problems = Vec::new();

    match text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) {
        Some((_, l)) if l.trim_start().starts_with("//!") => {}
        Some((i, _)) => problems.push((i + 1, "first line is not a `//!` module doc".into())),
        None => problems.push((1, "empty file: add a `//!` module doc".into())),
    }

    for (i, l) in text.lines().enumerate() {
        if l.ends_with([' ', '\t']) {
            problems.push((i + 1, "trailing whitespace".into()));
        }
    }

    let lines = lex(text);
    for (i, line) in lines.iter().enumerate() {
        for at in unsafe_tokens(&line.code) {
            if !unsafe_allowed {
                problems.push((
                    i + 1,
                    format!("`unsafe` outside {}", UNSAFE_CRATES.join(" and ")),
                ));
            }
            let rest = line.code[at + "unsafe".len()..].trim_start();
            let needs_comment = rest.starts_with('{') || starts_with_word(rest, "impl");
            let reach = &lines[i.saturating_sub(SAFETY_REACH)..=i];
            if needs_comment && !reach.iter().any(|l| l.comment.contains("SAFETY:")) {
                problems.push((
                    i + 1,
                    format!(
                        "`unsafe` without a `SAFETY:` comment within {SAFETY_REACH} lines above"
                    ),
                ));
            }
        }
    }

    problems.sort();
    problems
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.strip_prefix(word)
        .is_some_and(|rest| !rest.starts_with(is_ident))
}

/// Byte offsets of the word `unsafe` (not `unsafe_code`) in a line of code.
fn unsafe_tokens(code: &str) -> Vec<usize> {
    code.match_indices("unsafe")
        .filter(|&(at, _)| {
            let before_ok = !code[..at].ends_with(is_ident);
            let after_ok = !code[at + "unsafe".len()..].starts_with(is_ident);
            before_ok && after_ok
        })
        .map(|(at, _)| at)
        .collect()
}

/// One source line split in two: `code` (literal contents blanked, comments
/// removed) and `comment` (the text of the comments on that line).
#[derive(Debug, Default, Clone, PartialEq)]
struct Line {
    code: String,
    comment: String,
}

#[derive(Clone, Copy)]
enum State {
    Code,
    LineComment,
    BlockComment(u32),
    Str,
    RawStr(usize),
    Char,
}

/// Splits Rust source into lines of code and comment text. Knows line and
/// nested block comments, strings with escapes, raw strings (`r#"..."#`, also
/// with `b`/`c` prefixes), char literals and lifetimes; that is all the
/// `unsafe` checks need.
fn lex(text: &str) -> Vec<Line> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = vec![Line::default()];
    let mut state = State::Code;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            lines.push(Line::default());
            if matches!(state, State::LineComment) {
                state = State::Code;
            }
            i += 1;
            continue;
        }
        let line = lines.last_mut().expect("lines is never empty");
        match state {
            State::Code => {
                let at_token_start = i == 0 || !is_ident(chars[i - 1]);
                if c == '/' && next == Some('/') {
                    state = State::LineComment;
                    i += 2;
                    continue;
                }
                if c == '/' && next == Some('*') {
                    state = State::BlockComment(1);
                    i += 2;
                    continue;
                }
                if c == '"' {
                    state = State::Str;
                } else if c == '\'' {
                    if next == Some('\\') {
                        // Skip the quote, the backslash and the escaped char,
                        // which cannot close the literal.
                        state = State::Char;
                        line.code.push(c);
                        i += 3;
                        continue;
                    } else if chars.get(i + 2) == Some(&'\'') && next != Some('\n') {
                        line.code.push_str("' '");
                        i += 3;
                        continue;
                    }
                    // Otherwise a lifetime or a label: plain code.
                } else if at_token_start {
                    if let Some((len, hashes)) = raw_string_start(&chars[i..]) {
                        line.code.push_str("r\"");
                        state = State::RawStr(hashes);
                        i += len;
                        continue;
                    }
                }
                line.code.push(c);
            }
            State::LineComment => line.comment.push(c),
            State::BlockComment(depth) => {
                if c == '*' && next == Some('/') {
                    state = if depth == 1 {
                        State::Code
                    } else {
                        State::BlockComment(depth - 1)
                    };
                    line.comment.push(' ');
                    i += 2;
                    continue;
                }
                if c == '/' && next == Some('*') {
                    state = State::BlockComment(depth + 1);
                    i += 2;
                    continue;
                }
                line.comment.push(c);
            }
            State::Str | State::Char => {
                let close = if matches!(state, State::Str) {
                    '"'
                } else {
                    '\''
                };
                if c == '\\' {
                    // Skip the escaped char, unless it is a newline, which
                    // must still start a new line above.
                    i += if next == Some('\n') { 1 } else { 2 };
                    continue;
                }
                if c == close {
                    line.code.push(close);
                    state = State::Code;
                }
            }
            State::RawStr(hashes) => {
                if c == '"'
                    && chars[i + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == '#')
                        .count()
                        == hashes
                {
                    line.code.push('"');
                    state = State::Code;
                    i += 1 + hashes;
                    continue;
                }
            }
        }
        i += 1;
    }
    lines
}

/// If `s` starts a raw string (`r"`, `r#"`, `br##"`, `cr"`, ...), the length
/// of its opening and its number of `#`.
fn raw_string_start(s: &[char]) -> Option<(usize, usize)> {
    let mut n = 0;
    if matches!(s.first(), Some('b' | 'c')) {
        n += 1;
    }
    if s.get(n) != Some(&'r') {
        return None;
    }
    n += 1;
    let hashes = s[n..].iter().take_while(|&&c| c == '#').count();
    n += hashes;
    (s.get(n) == Some(&'"')).then_some((n + 1, hashes))
}

/// Runs the checks on the real tree, so that `cargo test` enforces them.
#[test]
fn tidy() {
    let root = crate::project_root();
    let problems = check_tree(&root).unwrap();
    assert!(
        problems.is_empty(),
        "`cargo xtask tidy` found {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[cfg(test)]
mod tests;
