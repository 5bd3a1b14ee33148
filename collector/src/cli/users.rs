//! `kaoqin-collector user ...`: accounts of the people who read reports, and
//! their API tokens. Who may do what is in [`crate::users`].

use crate::store::concerns::*;
use crate::users::*;

/// `kaoqin-collector user ...`.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account and print its one-time password alone on stdout.
    Add {
        #[command(flatten)]
        dirs: super::DataDirArg,
        /// The login name.
        #[arg(long)]
        username: String,
        /// admin, officer, dept-head or staff.
        #[arg(long, value_enum)]
        role: super::choices::RoleArg,
        /// The staff member this account is (required for staff).
        #[arg(long)]
        employee: Option<String>,
        /// A department in scope (repeat; officer: none means all).
        #[arg(long = "department")]
        departments: Vec<String>,
    },
    /// Create a staff account (username = employee id) for every staff member who
    /// has none; prints CSV `username,employee_id,password` with one-time passwords.
    CreateForStaff {
        #[command(flatten)]
        dirs: super::DataDirArg,
    },
    /// List accounts as CSV: username,role,employee_id,departments,must_change_password.
    List {
        #[command(flatten)]
        dirs: super::DataDirArg,
    },
    /// API tokens for scripts.
    Token {
        #[command(subcommand)]
        command: UserTokenCommand,
    },
}

/// `kaoqin-collector user token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum UserTokenCommand {
    /// Create an API token acting as `--username`; prints it alone on stdout.
    Create {
        #[command(flatten)]
        dirs: super::DataDirArg,
        #[arg(long)]
        username: String,
        /// How long it is valid: 30m, 12h, 90d, ...
        #[arg(long, default_value = "90d")]
        ttl: String,
        /// A note for the record.
        #[arg(long, default_value = "")]
        note: String,
    },
}

fn open(dirs: &super::DataDirArg) -> anyhow::Result<std::sync::Arc<dyn Stores>> {
    Ok(dirs.open_store()?.0)
}

/// Runs `kaoqin-collector user ...`.
pub fn run_cli(command: UserCommand) -> anyhow::Result<()> {
    let now_ms = crate::clock::now_ms();
    match command {
        UserCommand::Add {
            dirs,
            username,
            role,
            employee,
            departments,
        } => {
            let store = open(&dirs)?;
            let password = store.add_user(
                &NewUser {
                    username: username.clone(),
                    role: role.into(),
                    employee_id: employee,
                    departments,
                },
                now_ms,
            )?;
            eprintln!(
                "Created {} account {username}; the password below must be changed at first login.",
                Role::from(role).as_str()
            );
            println!("{password}");
        }
        UserCommand::CreateForStaff { dirs } => {
            let store = open(&dirs)?;
            let taken: std::collections::BTreeSet<String> = store
                .users()?
                .into_iter()
                .flat_map(|u| [Some(u.username), u.employee_id])
                .flatten()
                .collect();
            let stdout = std::io::stdout();
            let mut w = csv::Writer::from_writer(stdout.lock());
            w.write_record(["username", "employee_id", "password"])?;
            let mut n = 0;
            for p in store.staff()? {
                if taken.contains(&p.employee_id) {
                    continue;
                }
                let password = store.add_user(
                    &NewUser {
                        username: p.employee_id.clone(),
                        role: Role::Staff,
                        employee_id: Some(p.employee_id.clone()),
                        departments: Vec::new(),
                    },
                    now_ms,
                )?;
                w.write_record([&p.employee_id, &p.employee_id, &password])?;
                n += 1;
            }
            w.flush()?;
            eprintln!("Created {n} staff accounts; hand each person their one-time password.");
        }
        UserCommand::List { dirs } => {
            let store = open(&dirs)?;
            let stdout = std::io::stdout();
            let mut w = csv::Writer::from_writer(stdout.lock());
            w.write_record([
                "username",
                "role",
                "employee_id",
                "departments",
                "must_change_password",
            ])?;
            for u in store.users()? {
                w.write_record([
                    u.username,
                    u.role.as_str().to_owned(),
                    u.employee_id.unwrap_or_default(),
                    u.departments.join(";"),
                    u.must_change_password.to_string(),
                ])?;
            }
            w.flush()?;
        }
        UserCommand::Token {
            command:
                UserTokenCommand::Create {
                    dirs,
                    username,
                    ttl,
                    note,
                },
        } => {
            let ttl_ms = crate::cli::parse_ttl_ms(&ttl)?;
            let store = open(&dirs)?;
            println!(
                "{}",
                store.create_api_token(&username, ttl_ms, &note, now_ms)?
            );
        }
    }
    Ok(())
}
