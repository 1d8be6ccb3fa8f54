//! Project tasks written in Rust, run as `cargo xtask <task>`.
//!
//! This is the [cargo-xtask](https://github.com/matklad/cargo-xtask) pattern:
//! one binary, plain argv parsing, no dependencies beyond `serde_json`.
//!
//! - `cargo xtask ci`: everything CI checks (fmt, clippy, tests, docs, examples);
//! - `cargo xtask tidy`: source rules (`//!` headers, `SAFETY:` comments, no
//!   trailing whitespace, `unsafe` only where allowed); also a `#[test]`;
//! - `cargo xtask bench [--quick] [--only PREFIX,...]`: mp against CPython's
//!   `multiprocessing`, see `crates/mp-bench/README.md`.

mod bench;
mod ci;
mod goals;
mod mpi;
mod proc;
mod report;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci                                  fmt, clippy, tests, doc tests, docs, examples
  tidy                                check source rules (also run by `cargo test`)
  bench [--quick] [--only P1,P2,...]  mp against CPython multiprocessing
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    if let Err(err) = std::env::set_current_dir(&root) {
        eprintln!("xtask: cannot enter {}: {err}", root.display());
        return ExitCode::FAILURE;
    }
    let result = match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => ci::run(&root),
        Some("tidy") if args.len() == 1 => tidy::run(&root),
        Some("bench") => bench::Flags::parse(&args[1..]).and_then(|f| bench::run(&root, &f)),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown arguments {args:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("xtask: {err}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this package's directory.
pub(crate) fn project_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}
