//! Half-open intervals of instants and the set operations the rules are made of.
//!
//! What must stay true: every list returned here is *normalized* — sorted, each
//! interval non-empty (`start < end`), none overlapping or touching another — so every
//! length computed from it is positive and nothing is counted twice.

use jiff::{SignedDuration, Timestamp};

/// `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Iv {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

impl Iv {
    pub(crate) fn new(start: Timestamp, end: Timestamp) -> Iv {
        Iv { start, end }
    }

    /// Length in milliseconds, never negative.
    pub(crate) fn millis(self) -> i64 {
        (self.end.as_millisecond() - self.start.as_millisecond()).max(0)
    }

    pub(crate) fn contains(self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// Sort, drop empty intervals, merge overlapping or touching ones.
pub(crate) fn normalize(mut ivs: Vec<Iv>) -> Vec<Iv> {
    ivs.retain(|iv| iv.start < iv.end);
    ivs.sort();
    let mut out: Vec<Iv> = Vec::with_capacity(ivs.len());
    for iv in ivs {
        match out.last_mut() {
            Some(last) if iv.start <= last.end => {
                if iv.end > last.end {
                    last.end = iv.end;
                }
            }
            _ => out.push(iv),
        }
    }
    out
}

/// `a ∩ b` for normalized lists.
pub(crate) fn intersect(a: &[Iv], b: &[Iv]) -> Vec<Iv> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let start = a[i].start.max(b[j].start);
        let end = a[i].end.min(b[j].end);
        if start < end {
            out.push(Iv { start, end });
        }
        if a[i].end < b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a − b` for normalized lists.
pub(crate) fn subtract(a: &[Iv], b: &[Iv]) -> Vec<Iv> {
    let mut out = Vec::new();
    for &iv in a {
        let mut cur = iv.start;
        for cut in b.iter().filter(|c| c.end > iv.start && c.start < iv.end) {
            if cut.start > cur {
                out.push(Iv {
                    start: cur,
                    end: cut.start,
                });
            }
            cur = cur.max(cut.end);
        }
        if cur < iv.end {
            out.push(Iv {
                start: cur,
                end: iv.end,
            });
        }
    }
    out
}

/// Everything of `a` before `t`.
pub(crate) fn before(a: &[Iv], t: Timestamp) -> Vec<Iv> {
    intersect(
        a,
        &[Iv {
            start: Timestamp::MIN,
            end: t,
        }],
    )
}

/// Total length in whole seconds (floor), never negative.
pub(crate) fn total_seconds(a: &[Iv]) -> u64 {
    let ms: i64 = a.iter().map(|iv| iv.millis()).sum();
    u64::try_from(ms / 1000).unwrap_or(0)
}

/// Whether `t` lies inside `a` or on one of its edges.
pub(crate) fn covers_instant(a: &[Iv], t: Timestamp) -> Option<Iv> {
    a.iter().copied().find(|iv| iv.start <= t && t <= iv.end)
}

/// `t + secs`, saturating at the ends of time.
pub(crate) fn add_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs))
        .unwrap_or(if secs < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }
    fn iv(a: i64, b: i64) -> Iv {
        Iv::new(t(a), t(b))
    }

    #[test]
    fn set_operations() {
        let a = normalize(vec![iv(5, 10), iv(0, 3), iv(3, 4), iv(8, 12), iv(20, 20)]);
        assert_eq!(a, vec![iv(0, 4), iv(5, 12)]);
        assert_eq!(intersect(&a, &[iv(2, 6)]), vec![iv(2, 4), iv(5, 6)]);
        assert_eq!(
            subtract(&a, &[iv(1, 2), iv(6, 7)]),
            vec![iv(0, 1), iv(2, 4), iv(5, 6), iv(7, 12)]
        );
        assert_eq!(subtract(&a, &[iv(-5, 50)]), vec![]);
        assert_eq!(total_seconds(&a), 11);
        assert_eq!(before(&a, t(6)), vec![iv(0, 4), iv(5, 6)]);
        assert_eq!(normalize(vec![iv(1, 2), iv(0, 1)]), vec![iv(0, 2)]);
        assert_eq!(covers_instant(&a, t(12)), Some(iv(5, 12)));
        assert_eq!(covers_instant(&a, t(4)), Some(iv(0, 4)));
        assert_eq!(covers_instant(&a, t(13)), None);
    }
}
