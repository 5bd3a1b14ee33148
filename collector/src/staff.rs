//! The staff directory file: `employee_id,name,department,os_accounts[,own_pcs][,email]`
//! (the optional columns in either order), one person a line, OS accounts and own
//! PCs separated by `;` or `|`. An account may
//! carry its Windows domain (`OFFICE\zhangsan` matches only in that domain) or not
//! (`zhangsan` matches in any domain, and on Linux). Own PCs are hostnames or
//! machine ids; presence on other PCs counts and is marked in the evidence.
//!
//! What must stay true: a file is checked whole before anything is written, and every
//! problem is reported with the file, the line and the field; an OS account (compared
//! in ASCII lower case, a plain name against the same user in any domain) belongs to
//! one person only, and a clash names both lines.

use crate::attendance::Person;
use std::collections::BTreeMap;
use std::path::Path;

/// The header a staff file must have; [`OWN_PCS`] may follow it.
pub const HEADER: [&str; 4] = ["employee_id", "name", "department", "os_accounts"];
/// An optional column: the person's own PCs.
pub const OWN_PCS: &str = "own_pcs";
/// An optional column: the person's e-mail address, for notifications.
pub const EMAIL: &str = "email";

/// Every problem of a file, one a line.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s), nothing was imported:\n  {}", .0.len(), .0.join("\n  "))]
pub struct FileErrors(pub Vec<String>);

/// Opens a CSV reader over `path` that keeps every field as written.
pub fn csv_reader(path: &Path) -> anyhow::Result<csv::Reader<std::fs::File>> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(file))
}

/// Every record of a CSV file with its line number, and a problem naming the line
/// of each record that does not parse.
pub fn numbered_records<R: std::io::Read>(
    file: &str,
    rdr: &mut csv::Reader<R>,
) -> (Vec<(u64, csv::StringRecord)>, Vec<String>) {
    let (mut records, mut problems) = (Vec::new(), Vec::new());
    for rec in rdr.records() {
        match rec {
            Ok(r) => records.push((r.position().map_or(0, |p| p.line()), r)),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("{file}: line {line}: {e}"));
            }
        }
    }
    (records, problems)
}

/// Checks that the header names `expected` (case-insensitive), in that order.
pub fn check_header(
    path: &Path,
    rdr: &mut csv::Reader<std::fs::File>,
    expected: &[&str],
) -> anyhow::Result<()> {
    let headers = rdr
        .headers()
        .map_err(|e| anyhow::anyhow!("{}: line 1: {e}", path.display()))?;
    let got: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    let got = got.iter().map(String::as_str).collect::<Vec<_>>();
    anyhow::ensure!(
        got == expected,
        "{}: line 1: the header must be {:?}, found {:?}",
        path.display(),
        expected.join(","),
        got.join(",")
    );
    Ok(())
}

/// Reads and checks a staff file.
pub fn read_staff_csv(path: &Path) -> anyhow::Result<Vec<Person>> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    read_staff(&path.display().to_string(), file)
}

/// Reads and checks a staff file read from `input`, naming it `file` in the
/// problems (an upload is named by its file name).
pub fn read_staff(file: &str, input: impl std::io::Read) -> anyhow::Result<Vec<Person>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .flexible(true)
        .from_reader(input);
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| anyhow::anyhow!("{file}: line 1: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let columns = headers.len();
    let extra = headers.get(HEADER.len()..).unwrap_or_default();
    anyhow::ensure!(
        headers.get(..HEADER.len()).is_some_and(|h| h == HEADER)
            && extra.iter().all(|h| h == OWN_PCS || h == EMAIL)
            && !(extra.len() == 2 && extra[0] == extra[1])
            && extra.len() <= 2,
        "{file}: line 1: the header must be {:?}, optionally followed by \",{OWN_PCS}\" and \",{EMAIL}\"; found {:?}",
        HEADER.join(","),
        headers.join(",")
    );
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (pcs_col, email_col) = (column(OWN_PCS), column(EMAIL));
    // Plain user names of accounts listed with a domain: (line, owner).
    let mut in_domain: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let (records, mut problems) = numbered_records(file, &mut rdr);
    let mut people: Vec<(u64, Person)> = Vec::new();
    let mut ids: BTreeMap<String, u64> = BTreeMap::new();
    let mut owners: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for (line, rec) in records {
        let at = |field: &str, what: String| format!("{file}: line {line}: {field}: {what}");
        if rec.len() != columns {
            problems.push(format!(
                "{file}: line {line}: expected {columns} fields, found {}",
                rec.len()
            ));
            continue;
        }
        let id = rec[0].to_owned();
        let name = rec[1].to_owned();
        let department = rec[2].to_owned();
        if id.is_empty() || id.len() > 64 || id.chars().any(char::is_whitespace) {
            problems.push(at(
                "employee_id",
                format!("{id:?} must be 1 to 64 characters without spaces"),
            ));
        } else if let Some(first) = ids.insert(id.clone(), line) {
            problems.push(at("employee_id", format!("{id} is also on line {first}")));
        }
        if name.is_empty() {
            problems.push(at("name", "is empty".into()));
        }
        let mut accounts: Vec<String> = Vec::new();
        for a in rec[3]
            .split([';', '|'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let lower = a.to_ascii_lowercase();
            if lower.len() > 256 || lower.chars().any(|c| c.is_control() || c == ',') {
                problems.push(at("os_accounts", format!("{a:?} is not an account name")));
                continue;
            }
            if accounts.contains(&lower) {
                continue;
            }
            // The same account, or the same user once plain and once in a domain.
            let user = lower.split_once('\\').map(|(_, u)| u.to_owned());
            let clash = match &user {
                Some(u) => owners.get(&lower).or_else(|| owners.get(u)),
                None => owners.get(&lower).or_else(|| in_domain.get(&lower)),
            };
            match clash {
                Some((l, owner)) if owner != &id => problems.push(at(
                    "os_accounts",
                    format!("{a:?} is also given to {owner} on line {l}; an account belongs to one person"),
                )),
                _ => {
                    owners.insert(lower.clone(), (line, id.clone()));
                    if let Some(u) = user {
                        in_domain.entry(u).or_insert((line, id.clone()));
                    }
                }
            }
            accounts.push(lower);
        }
        let mut own_pcs: Vec<String> = Vec::new();
        for pc in pcs_col
            .and_then(|c| rec.get(c))
            .unwrap_or_default()
            .split([';', '|'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let lower = pc.to_ascii_lowercase();
            if lower.len() > 255 || lower.chars().any(|c| c.is_control() || c == ',') {
                problems.push(at(
                    OWN_PCS,
                    format!("{pc:?} is not a hostname or machine id"),
                ));
            } else if !own_pcs.contains(&lower) {
                own_pcs.push(lower);
            }
        }
        let email = email_col
            .and_then(|c| rec.get(c))
            .unwrap_or_default()
            .to_owned();
        let plausible = |e: &str| {
            e.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !host.starts_with('.')
            }) && e.len() <= 254
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        };
        if !email.is_empty() && !plausible(&email) {
            problems.push(at(EMAIL, format!("{email:?} is not an e-mail address")));
        }
        people.push((
            line,
            Person {
                employee_id: id,
                name,
                department,
                accounts,
                own_pcs,
                email,
                left_on: None,
            },
        ));
    }
    if !problems.is_empty() {
        return Err(FileErrors(problems).into());
    }
    Ok(people.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> anyhow::Result<Vec<Person>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("staff.csv");
        std::fs::write(&path, text).unwrap();
        read_staff_csv(&path)
    }

    #[test]
    fn accounts_split_on_semicolons_and_bars_in_lower_case() {
        let p = read("employee_id,name,department,os_accounts\nE001,张三,办公室,ZhangSan; zs2|ZS3\nE002,李四,信息中心,\n")
            .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].accounts, ["zhangsan", "zs2", "zs3"]);
        assert_eq!(p[0].name, "张三");
        assert!(p[1].accounts.is_empty());
    }

    #[test]
    fn every_problem_names_file_line_and_field() {
        let err = read("employee_id,name,department,os_accounts\nE001,,办公室,zhangsan\nE002,李四,x,ZHANGSAN\nE001,王五,x,ww\nE003,x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("staff.csv: line 2: name: is empty"), "{err}");
        assert!(
            err.contains("line 3: os_accounts: \"ZHANGSAN\" is also given to E001 on line 2"),
            "{err}"
        );
        assert!(
            err.contains("line 4: employee_id: E001 is also on line 2"),
            "{err}"
        );
        assert!(err.contains("line 5: expected 4 fields"), "{err}");
        assert!(err.contains("nothing was imported"), "{err}");
    }

    #[test]
    fn email_is_an_optional_column_in_either_order_and_checked() {
        let p = read("employee_id,name,department,os_accounts,email,own_pcs\nE001,张三,办公室,zs,zhangsan@office.gov.cn,pc-1\nE002,李四,办公室,lisi,,\n")
            .unwrap();
        assert_eq!(
            (p[0].email.as_str(), p[0].own_pcs.as_slice()),
            ("zhangsan@office.gov.cn", &["pc-1".to_owned()][..])
        );
        assert_eq!(p[1].email, "");
        let err =
            read("employee_id,name,department,os_accounts,email\nE001,a,x,zs,not-an-address\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("line 2: email: \"not-an-address\" is not an e-mail address"),
            "{err}"
        );
        assert!(read("employee_id,name,department,os_accounts,email,email\n").is_err());
    }

    #[test]
    fn own_pcs_are_an_optional_column_and_a_domain_account_clashes_with_its_plain_name() {
        let p = read("employee_id,name,department,os_accounts,own_pcs\nE001,张三,办公室,OFFICE\\ZhangSan,PC-0231; 4c4c4544\nE002,李四,办公室,lisi,\n")
            .unwrap();
        assert_eq!(p[0].accounts, ["office\\zhangsan"]);
        assert_eq!(p[0].own_pcs, ["pc-0231", "4c4c4544"]);
        assert!(p[1].own_pcs.is_empty());
        // Two domains may each have a zhangsan; the plain name would be both.
        let err = read("employee_id,name,department,os_accounts\nE001,a,x,office\\zs\nE002,b,x,other\\zs\nE003,c,x,ZS\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 4: os_accounts: \"ZS\" is also given to E001 on line 2"),
            "{err}"
        );
        assert!(!err.contains("line 3"), "{err}");
        let err =
            read("employee_id,name,department,os_accounts\nE001,a,x,zs\nE002,b,x,office\\zs\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("line 3: os_accounts"), "{err}");
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let err = read("id,name,dept,accounts\n").unwrap_err().to_string();
        assert!(err.contains("line 1: the header must be"), "{err}");
    }
}
