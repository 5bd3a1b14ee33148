//! Which modules may name what: the layering the design relies on, kept by tests.
//!
//! - Nothing above `store/` names a database driver or runs SQL: a second store
//!   needs no change there.
//! - Command-line types (clap's parsers, subcommands and arguments) live in `cli/`
//!   and `main.rs`; nothing below reaches back up for them.
//! - The time of day is read from `clock.rs` alone (which `KAOQIN_NOW` can set),
//!   and from the system only where certificates are made.

/// Every `.rs` file under `dir`.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of the crate's sources outside `allowed` that contain one of `words`.
fn found(words: &[&str], allowed: &[&str]) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("benches"), &mut files);
    assert!(files.len() > 20, "found only {files:?}");
    let allowed: Vec<std::path::PathBuf> =
        allowed.iter().map(|a| root.join("src").join(a)).collect();
    let mut out = Vec::new();
    for file in files
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(a)))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in words.iter().filter(|w| line.contains(*w)) {
                out.push(format!("{}:{}: {word}", file.display(), n + 1));
            }
        }
    }
    out
}

#[test]
fn nothing_above_the_store_names_a_driver_or_runs_sql() {
    let found = found(
        &[
            "rusqlite",
            "tokio_postgres",
            "deadpool",
            "sql_err",
            ".reader()",
            "\"SELECT ",
            "INSERT INTO",
            "DELETE FROM",
        ],
        &["store", "layering.rs"],
    );
    assert!(found.is_empty(), "outside store/:\n{}", found.join("\n"));
}

#[test]
fn command_line_types_stay_in_cli() {
    let found = found(
        &[
            "crate::cli",
            "clap::Subcommand",
            "clap::Args",
            "clap::Parser",
            "clap::ValueEnum",
            "#[command(",
            "#[arg(",
        ],
        &["cli", "main.rs", "layering.rs"],
    );
    assert!(found.is_empty(), "outside cli/:\n{}", found.join("\n"));
}

#[test]
fn the_time_is_read_from_the_collectors_clock() {
    let found = found(
        &["Timestamp::now", "Zoned::now", "SystemTime::now"],
        &["clock.rs", "tls.rs", "layering.rs"],
    );
    assert!(
        found.is_empty(),
        "read the time through crate::clock::now: {found:#?}"
    );
}
