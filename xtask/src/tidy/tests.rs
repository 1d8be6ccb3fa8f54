//! Tests for the tidy rules and the lexer, on small snippets.

use super::*;

fn problems(src: &str, unsafe_allowed: bool) -> Vec<String> {
    check_file(src, unsafe_allowed)
        .into_iter()
        .map(|(l, m)| format!("{l}: {m}"))
        .collect()
}

#[test]
fn module_doc() {
    assert!(problems("\n//! Doc.\nfn f() {}\n", false).is_empty());
    assert_eq!(
        problems("// Not a doc.\n", false),
        ["1: first line is not a `//!` module doc"]
    );
    assert_eq!(
        problems("", false),
        ["1: empty file: add a `//!` module doc"]
    );
}

#[test]
fn trailing_whitespace() {
    assert_eq!(problems("//! Doc.\nfn f() {} \n\t\n", false).len(), 2);
}

#[test]
fn unsafe_needs_safety_comment() {
    let ok = "//! Doc.\n// SAFETY: fine.\n//\n//\nlet x = unsafe { f() };\n";
    assert!(problems(ok, true).is_empty());
    let same_line = "//! Doc.\nlet x = unsafe { f() }; // SAFETY: fine.\n";
    assert!(problems(same_line, true).is_empty());
    let block = "//! Doc.\n/* SAFETY: fine. */\nunsafe impl Send for X {}\n";
    assert!(problems(block, true).is_empty());
    let far = "//! Doc.\n// SAFETY: too far.\n\n\n\nlet x = unsafe { f() };\n";
    assert_eq!(problems(far, true).len(), 1);
    let bare_impl = "//! Doc.\nunsafe impl Sync for X {}\n";
    assert_eq!(problems(bare_impl, true).len(), 1);
    // An `unsafe fn` documents its contract in `# Safety`, not here.
    assert!(problems("//! Doc.\npub unsafe fn f() {}\n", true).is_empty());
}

#[test]
fn unsafe_only_in_allowed_crates() {
    let src = "//! Doc.\npub unsafe fn f() {}\n";
    assert_eq!(
        problems(src, false),
        ["2: `unsafe` outside mp-process and mp-shm"]
    );
    let not_code = concat!(
        "//! No unsafe here, nor in `unsafe {` docs.\n",
        "#![forbid(unsafe_code)]\n",
        "/// unsafe { }\n",
        "/* unsafe /* nested */ unsafe { */\n",
        "let s = \"unsafe { \\\" unsafe\";\n",
        "let r = r#\"unsafe {\"# ; let b = br\"unsafe\";\n",
        "let c = '\"'; let d = '\\''; fn g<'a>(x: &'a u8) {}\n",
        "let not_unsafe = unsafe_fn;\n",
    );
    assert_eq!(problems(not_code, false), Vec::<String>::new());
}

#[test]
fn file_exceptions_exist() {
    // A renamed or deleted file must not leave a stale exception behind.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in UNSAFE_FILE_EXCEPTIONS {
        assert!(root.join(file).is_file(), "{file} is listed but missing");
    }
}

#[test]
fn lexer_keeps_lines() {
    let lines = lex("a \"x\ny\" b // c\nd /* e\nf */ g");
    let code: Vec<&str> = lines.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(code, ["a \"", "\" b ", "d ", " g"]);
    assert_eq!(lines[1].comment, " c");
    assert_eq!(lines[2].comment, " e");
}

#[test]
fn crate_names() {
    assert_eq!(crate_of(Path::new("crates/mp-shm/src/lib.rs")), "mp-shm");
    assert_eq!(crate_of(Path::new("xtask/src/main.rs")), "xtask");
}
