//! Reports built from stored verdicts (never from raw events), with corrections
//! applied: the daily and period reports, their renderers (table, CSV, JSON, XLSX),
//! and the appeals and corrections that change what they show.

pub mod corrections;
pub mod daily;
pub mod monthly;
pub mod summary;
pub mod xlsx;

use crate::store::concerns::*;
use std::io::Write;
use std::path::Path;

/// A CSV cell as spreadsheet programs may open it: a text beginning with `=`, `+`,
/// `-`, `@` (or a tab or carriage return) would be taken for a formula, so it gets
/// a leading apostrophe, which they show as text. Numbers are left alone.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && cell.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// Writes one CSV record with every cell [`spreadsheet_safe`].
pub fn write_csv_record<W: Write, S: AsRef<str>>(
    w: &mut csv::Writer<W>,
    cells: impl IntoIterator<Item = S>,
) -> csv::Result<()> {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| spreadsheet_safe(c.as_ref()).into_owned())
        .collect();
    w.write_record(&cells)
}

/// What a report of `from..=to` says when part of it lies in a year without a
/// State Council notice: its verdicts are provisional.
pub fn provisional_note(
    rules: &crate::verdicts::Rules,
    from: jiff::civil::Date,
    to: jiff::civil::Date,
) -> Option<String> {
    rules.provisional_years(from, to).map(|years| {
        format!(
            "Provisional (暂定): the State Council holiday notice for {years} is not imported, so these days are judged on the statutory holidays alone and may change when it is."
        )
    })
}

/// Writes through `f` to `out_file`, or to stdout; a binary format needs a file
/// unless stdout is not a terminal.
pub fn write_output(
    out_file: Option<&Path>,
    binary: bool,
    f: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    match out_file {
        Some(path) => {
            let mut buf = Vec::new();
            f(&mut buf)?;
            std::fs::write(path, buf)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            anyhow::ensure!(
                !binary || !stdout.is_terminal(),
                "xlsx is binary: give --out FILE"
            );
            let mut out = std::io::BufWriter::new(stdout.lock());
            f(&mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Aligned columns for a terminal. Widths are display columns, so names in
/// Chinese (two columns a character) line up.
pub fn write_table(
    header: &[String],
    rows: &[Vec<String>],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    use unicode_width::UnicodeWidthStr;
    let mut widths: Vec<usize> = header.iter().map(|c| c.width()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.width());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.width()))))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for r in rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

/// Records a CLI export in the audit log (the OS user is the actor); a failure
/// is logged, not fatal, since the report was already written.
pub fn audit_export(store: &dyn Stores, what: &str) {
    let actor = format!(
        "cli:{}",
        std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into())
    );
    if let Err(e) = crate::web::audit::record(store, &actor, "report.export", "", what) {
        eprintln!("warning: the export was not recorded in the audit log: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::store::concerns::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_shown_as_text() {
        for (cell, shown) in [
            (
                "=HYPERLINK(\"http://x\",\"张三\")",
                "'=HYPERLINK(\"http://x\",\"张三\")",
            ),
            ("+cmd", "'+cmd"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("-5", "-5"),
            ("12", "12"),
            ("张三", "张三"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), shown, "{cell:?}");
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        write_csv_record(&mut w, ["E001", "=1+1", "办公室"]).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text, "E001,'=1+1,办公室\n");
    }
}
