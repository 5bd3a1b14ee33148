//! The collector's clock: the system's, unless `KAOQIN_NOW` names an instant
//! (`2026-11-24T18:00:00+08:00`). Then the clock starts at that instant when the
//! process starts and runs at the system clock's pace: what "today" is for the
//! pages, the instant an event is received at, the appeal window, the trust
//! rules. It is for demonstrations and tests of a known day, never for an
//! office; `serve` says so in its log. Certificates (`tls init`) keep the system
//! clock, because the PCs check them against theirs.

use jiff::Timestamp;
use std::sync::OnceLock;

/// The variable that sets the clock.
pub const VARIABLE: &str = "KAOQIN_NOW";

/// How far the clock is from the system's, in milliseconds, once [`init`] has run.
static SHIFT_MS: OnceLock<i64> = OnceLock::new();

/// Reads [`VARIABLE`] once, at start; returns the instant it names, if any. A
/// value that is not an instant is an error naming the variable.
pub fn init() -> anyhow::Result<Option<Timestamp>> {
    let at = match std::env::var(VARIABLE) {
        Err(std::env::VarError::NotPresent) => None,
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => Some(parse(&v)?),
        Err(e) => anyhow::bail!("{VARIABLE}: {e}"),
    };
    let shift = at.map_or(0, |at| {
        at.as_millisecond() - Timestamp::now().as_millisecond()
    });
    let _ = SHIFT_MS.set(shift);
    Ok(at)
}

/// The instant a value of [`VARIABLE`] names.
fn parse(v: &str) -> anyhow::Result<Timestamp> {
    v.trim().parse::<Timestamp>().map_err(|e| {
        anyhow::anyhow!(
            "{VARIABLE}={v:?}: expected an instant such as 2026-11-24T18:00:00+08:00 ({e})"
        )
    })
}

/// The collector's current instant.
pub fn now() -> Timestamp {
    let real = Timestamp::now();
    match SHIFT_MS.get() {
        Some(&shift) if shift != 0 => {
            Timestamp::from_millisecond(real.as_millisecond() + shift).unwrap_or(real)
        }
        _ => real,
    }
}

/// [`now`] in epoch milliseconds.
pub fn now_ms() -> i64 {
    now().as_millisecond()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_variable_takes_an_instant_with_its_offset_and_names_itself_otherwise() {
        let at = super::parse("2026-11-24T18:00:00+08:00").unwrap();
        assert_eq!(at.as_millisecond(), 1_795_514_400_000);
        let e = super::parse("2026-11-24").unwrap_err().to_string();
        assert!(
            e.starts_with("KAOQIN_NOW=\"2026-11-24\": expected an instant such as"),
            "{e}"
        );
    }
}
