//! The command line's names for the choices the domain makes (`--role`,
//! `--format`, `--by`): clap's value enums stay here, and each converts into the
//! domain's own type.

use crate::reports::{daily, summary};
use crate::users::Role;

/// A value enum for the command line and its conversion into the domain's enum
/// with the same variants.
macro_rules! choice {
    ($(#[$m:meta])* $name:ident => $target:ty { $($(#[$vm:meta])* $v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
        pub enum $name {
            $($(#[$vm])* $v),*
        }

        impl From<$name> for $target {
            fn from(c: $name) -> $target {
                type T = $target;
                match c {
                    $($name::$v => T::$v),*
                }
            }
        }
    };
}

choice!(
    /// `--role`.
    RoleArg => Role {
        /// Everything, including accounts and the audit log.
        Admin,
        /// Reports of all departments, or of the assigned ones; decides appeals.
        Officer,
        /// Reports of their own department(s).
        DeptHead,
        /// Their own record only.
        Staff,
    }
);

choice!(
    /// `report daily --format`.
    DailyFormat => daily::Format {
        /// A JSON array of day records.
        Json,
        /// CSV with a header line.
        Csv,
        /// Aligned columns for a terminal.
        Table,
        /// An Excel workbook (needs --out unless stdout is redirected).
        Xlsx,
    }
);

choice!(
    /// `report summary --format`.
    SummaryFormat => summary::Format {
        /// Aligned columns for a terminal.
        Table,
        /// CSV with a header line.
        Csv,
        /// A JSON array of rows.
        Json,
        /// An Excel workbook (needs --out).
        Xlsx,
    }
);

choice!(
    /// `report summary --by`.
    ByArg => summary::By {
        /// One row per staff member.
        Staff,
        /// One row per department.
        Department,
    }
);
