//! Sign-in with the office directory and `staff sync-ldap`, against a real
//! OpenLDAP server (Debian's slapd) started here on loopback with a small
//! directory: a person in the staff group, a department head, someone in no
//! mapped group, and a disabled account.

use base64::Engine;
use kaoqin_collector::config::LdapConfig;
use kaoqin_collector::ldap::{Refused, authenticate};
use kaoqin_collector::users::Role;
use kaoqin_tests::{Collector, fixture, run_ok};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const SUFFIX: &str = "dc=office,dc=test";

/// A slapd in a temp dir, stopped by its pid when dropped.
struct Slapd {
    _dir: tempfile::TempDir,
    pid: u32,
    url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// An LDIF value: plain when ASCII, else base64 (`attr:: ...`).
fn attr(name: &str, value: &str) -> String {
    if value.is_ascii() {
        format!("{name}: {value}\n")
    } else {
        let b = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        format!("{name}:: {b}\n")
    }
}

fn person(uid: &str, cn: &str, employee: &str, ou: &str, extra: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\n{}sn: {uid}\nemployeeNumber: {employee}\nmail: {uid}@office.test\n{}userPassword: {uid}-pw\n{extra}\n",
        attr("cn", cn),
        attr("ou", ou),
    )
}

fn group(cn: &str, members: &[&str]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        s.push_str(&format!("member: uid={m},ou=people,{SUFFIX}\n"));
    }
    s.push('\n');
    s
}

impl Slapd {
    fn start() -> Option<Slapd> {
        if !Path::new("/usr/sbin/slapd").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "slapd (Debian slapd) is missing: .ci/packages installs it"
            );
            eprintln!("skipping the directory test: no slapd");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("db")).unwrap();
        let conf = d.join("slapd.conf");
        std::fs::write(
            &conf,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 pidfile {pid}\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
                 database mdb\nsuffix \"{SUFFIX}\"\nrootdn \"cn=admin,{SUFFIX}\"\nrootpw secret\n\
                 directory {db}\n",
                pid = d.join("slapd.pid").display(),
                db = d.join("db").display()
            ),
        )
        .unwrap();
        let mut ldif = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: office\no: Office\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
        );
        ldif.push_str(&person("zhangsan", "张三", "E001", "办公室", ""));
        ldif.push_str(&person("lisi", "李四", "E002", "办公室", ""));
        ldif.push_str(&person("wangwu", "王五", "E003", "信息中心", ""));
        ldif.push_str(&person(
            "zhaoliu",
            "赵六",
            "E004",
            "信息中心",
            "employeeType: disabled\n",
        ));
        ldif.push_str(&group("kaoqin-staff", &["zhangsan", "zhaoliu"]));
        ldif.push_str(&group("kaoqin-heads", &["lisi"]));
        ldif.push_str(&group("other", &["wangwu"]));
        let ldif_path = d.join("base.ldif");
        std::fs::write(&ldif_path, ldif).unwrap();
        run_ok(
            {
                let mut c = Command::new("/usr/sbin/slapadd");
                c.arg("-f").arg(&conf).arg("-l").arg(&ldif_path);
                c
            },
            LIMIT,
        )
        .unwrap();
        // slapd cannot pick a port itself and say which: offer it one the
        // kernel just handed out, and another if something took it meanwhile
        // (slapd binds before it forks, so a taken port fails this command).
        let (port, url) = (0..5)
            .find_map(|_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .ok()?;
                let url = format!("ldap://127.0.0.1:{port}/");
                let mut c = Command::new("/usr/sbin/slapd");
                c.arg("-f").arg(&conf).args(["-h", &url]);
                run_ok(c, LIMIT).ok().map(|_| (port, url))
            })
            .expect("slapd started on a loopback port");
        let pid = kaoqin_tests::eventually("slapd listening", Duration::from_secs(20), || {
            let p = std::fs::read_to_string(d.join("slapd.pid")).ok()?;
            let p = p.trim().parse().ok()?;
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| p)
        });
        Some(Slapd {
            _dir: dir,
            pid,
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    fn config_toml(&self) -> String {
        format!(
            r#"[auth.ldap]
url = "{url}"
user_base = "ou=people,{SUFFIX}"
group_base = "ou=groups,{SUFFIX}"
disabled_filter = "(employeeType=disabled)"
[auth.ldap.roles]
kaoqin-staff = "staff"
kaoqin-heads = "dept_head"
"#,
            url = self.url
        )
    }
}

#[test]
fn the_directory_decides_who_signs_in_and_with_which_role() {
    let Some(slapd) = Slapd::start() else {
        return;
    };
    let config: kaoqin_collector::config::Config =
        kaoqin_collector::config::Config::parse(&slapd.config_toml()).unwrap();
    let cfg: LdapConfig = config.auth.ldap.unwrap();
    let (person, role) = authenticate(&cfg, "zhangsan", "zhangsan-pw").unwrap();
    assert_eq!(role, Role::Staff);
    assert_eq!(person.dn, format!("uid=zhangsan,ou=people,{SUFFIX}"));
    assert_eq!(person.first("employeeNumber"), Some("E001"));
    assert_eq!(person.first("cn"), Some("张三"));
    assert_eq!(
        authenticate(&cfg, "lisi", "lisi-pw").unwrap().1,
        Role::DeptHead
    );
    assert_eq!(
        authenticate(&cfg, "zhangsan", "wrong").unwrap_err(),
        Refused::WrongPassword
    );
    assert_eq!(
        authenticate(&cfg, "zhangsan", "").unwrap_err(),
        Refused::WrongPassword,
        "an empty password is an anonymous bind to LDAP, never a sign-in"
    );
    assert!(matches!(
        authenticate(&cfg, "wangwu", "wangwu-pw").unwrap_err(),
        Refused::NoRole(groups) if groups.contains("cn=other")
    ));
    assert_eq!(
        authenticate(&cfg, "zhaoliu", "zhaoliu-pw").unwrap_err(),
        Refused::Disabled
    );
    assert_eq!(
        authenticate(&cfg, "nobody", "x").unwrap_err(),
        Refused::NoSuchPerson
    );
    assert_eq!(
        authenticate(&cfg, "*", "x").unwrap_err(),
        Refused::NoSuchPerson,
        "the username is escaped in the filter"
    );
}

/// Posts the login form; the status and the redirect.
async fn login(base: &str, username: &str, password: &str) -> (u16, String, reqwest::Client) {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/login"))
        .form(&[("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    let to = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status().as_u16(), to, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_the_directory_and_staff_sync_from_it() {
    let Some(slapd) = Slapd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_web(&dir.path().join("collector"), &slapd.config_toml()).unwrap();
    let cli = |args: &[&str]| run_ok(c.cmd(args), LIMIT).unwrap();
    cli(&["staff", "import", fixture("staff.csv").to_str().unwrap()]);
    let config = c.data_dir.join("collector.toml");
    let with_config = |args: &[&str]| {
        let mut cmd = c.cmd(args);
        cmd.arg("--config").arg(&config);
        run_ok(cmd, LIMIT).unwrap()
    };

    // The sync: a dry run changes nothing; the real one adds 赵六 and the e-mails.
    let plan = with_config(&["staff", "sync-ldap", "--dry-run"]);
    assert!(
        plan.contains("add E004 赵六 (信息中心) zhaoliu zhaoliu@office.test"),
        "{plan}"
    );
    assert!(
        plan.contains("update E001: email \"\" -> \"zhangsan@office.test\""),
        "{plan}"
    );
    assert!(
        plan.contains("dry run: 1 to add, 3 to update, 0 only in kaoqin"),
        "{plan}"
    );
    assert!(!cli(&["staff", "list"]).contains("E004"));
    let done = with_config(&["staff", "sync-ldap"]);
    assert!(done.contains("1 to add, 3 to update"), "{done}");
    let list = cli(&["staff", "list"]);
    assert!(
        list.contains("E004,赵六,信息中心,zhaoliu,,zhaoliu@office.test"),
        "{list}"
    );
    assert!(
        list.contains("E001,张三,办公室,zhangsan,,zhangsan@office.test"),
        "{list}"
    );
    assert!(with_config(&["staff", "sync-ldap"]).contains("0 to add, 0 to update"));

    // Sign-in: an account is made at the first one, with the directory's role.
    let base = c.web();
    let (status, to, client) = login(&base, "zhangsan", "zhangsan-pw").await;
    assert_eq!((status, to.as_str()), (303, "/"));
    let me = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(me.headers()["location"], "/person/E001");
    let (status, to, head) = login(&base, "lisi", "lisi-pw").await;
    assert_eq!((status, to.as_str()), (303, "/"));
    let summary = head
        .get(format!(
            "{base}/summary?department=%E5%8A%9E%E5%85%AC%E5%AE%A4"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary.status().as_u16(),
        200,
        "a head sees their department"
    );
    let other = head
        .get(format!(
            "{base}/summary?department=%E4%BF%A1%E6%81%AF%E4%B8%AD%E5%BF%83"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 403, "and not another");
    let users = cli(&["user", "list"]);
    assert!(users.contains("zhangsan,staff,E001,,false"), "{users}");
    assert!(
        users.contains("lisi,dept_head,E002,办公室,false"),
        "{users}"
    );
    // The refusals look like any wrong password.
    for (u, p) in [
        ("zhangsan", "wrong"),
        ("zhangsan", ""),
        ("wangwu", "wangwu-pw"),
        ("zhaoliu", "zhaoliu-pw"),
    ] {
        assert_eq!(login(&base, u, p).await.0, 401, "{u}");
    }
    assert!(!cli(&["user", "list"]).contains("wangwu"));
    // Local accounts keep working, and a directory person cannot take one over.
    let once = cli(&["user", "add", "--username", "root", "--role", "admin"]);
    let (status, to, _) = login(&base, "root", once.trim()).await;
    assert_eq!((status, to.as_str()), (303, "/password"));
}
