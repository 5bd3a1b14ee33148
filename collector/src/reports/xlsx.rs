//! A minimal XLSX writer over `rust_xlsxwriter` for report exports: one sheet, a
//! bold header row, frozen panes below it, an autofilter, and typed cells (dates
//! as Excel dates, times as Excel date-times, minutes as numbers), so the file
//! sorts and sums correctly in Excel and WPS.

use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    /// A civil date.
    Date(jiff::civil::Date),
    /// A local date and time.
    DateTime(jiff::civil::DateTime),
}

/// A sheet being filled.
#[derive(Debug)]
pub struct Sheet {
    name: String,
    header: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl Sheet {
    /// A sheet named `name` (at most 31 characters) with a header row.
    pub fn new(name: &str, header: &[String]) -> Sheet {
        Sheet {
            name: name.chars().take(31).collect(),
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// The workbook's bytes.
    pub fn into_bytes(self) -> anyhow::Result<Vec<u8>> {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name(&self.name)?;
        let bold = Format::new().set_bold();
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm");
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for (c, h) in self.header.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, h, &bold)?;
        }
        for (r, cells) in self.rows.iter().enumerate() {
            let row = r as u32 + 1;
            for (c, cell) in cells.iter().enumerate() {
                let col = c as u16;
                let width = match cell {
                    Cell::Empty => 0,
                    Cell::Text(t) => {
                        ws.write_string(row, col, t)?;
                        // CJK characters are about two columns wide.
                        t.chars().map(|ch| if ch.is_ascii() { 1 } else { 2 }).sum()
                    }
                    Cell::Number(n) => {
                        ws.write_number(row, col, *n)?;
                        n.to_string().len()
                    }
                    Cell::Date(d) => {
                        let x = ExcelDateTime::from_ymd(
                            d.year() as u16,
                            d.month() as u8,
                            d.day() as u8,
                        )?;
                        ws.write_datetime_with_format(row, col, &x, &date)?;
                        10
                    }
                    Cell::DateTime(t) => {
                        let x = ExcelDateTime::from_ymd(
                            t.year() as u16,
                            t.month() as u8,
                            t.day() as u8,
                        )?
                        .and_hms(
                            t.hour() as u16,
                            t.minute() as u8,
                            t.second() as u8,
                        )?;
                        ws.write_datetime_with_format(row, col, &x, &datetime)?;
                        16
                    }
                };
                if let Some(w) = widths.get_mut(c) {
                    *w = (*w).max(width);
                }
            }
        }
        for (c, w) in widths.iter().enumerate() {
            ws.set_column_width(c as u16, (*w as f64 + 2.0).min(60.0))?;
        }
        ws.set_freeze_panes(1, 0)?;
        if !self.header.is_empty() {
            ws.autofilter(0, 0, self.rows.len() as u32, self.header.len() as u16 - 1)?;
        }
        Ok(wb.save_to_buffer()?)
    }
}
