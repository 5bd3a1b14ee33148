//! The HTTP pages (`serve --http`): the officer's dashboard, staff self-service
//! with appeals, exports and a small JSON API, rendered on the server from the
//! templates in `collector/templates/` (embedded in the binary; no CDN, fonts or
//! scripts from elsewhere).
//!
//! What must stay true:
//! - every handler that shows or changes a record asks [`crate::users::can`]
//!   before it reads anything, and answers 403 otherwise, whatever the URL or
//!   parameter (a person's id in the path is checked, never trusted);
//! - a view of someone else's record, every export, appeal decision and
//!   correction is written to the audit log ([`audit::record`]);
//! - the session cookie is HttpOnly and SameSite=Strict, and only its hash is
//!   stored; a one-time password must be changed before any other page opens.

mod admin_pages;
pub mod audit;
mod category_pages;
mod health;
mod today_page;
pub use crate::i18n;
mod pages;
pub mod params;
mod request_pages;
pub mod svg;

use crate::store::concerns::*;
use crate::users::User;
use crate::verdicts::{LiveRules, Rules};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use i18n::Lang;
use std::future::Future;
use std::sync::Arc;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kq_session";
/// The session cookie over HTTPS: `__Host-` makes browsers take it only when it is
/// `Secure`, for this host, on path `/` (no subdomain or plain-HTTP page can set it).
pub const SECURE_SESSION_COOKIE: &str = "__Host-kq_session";
/// The language cookie's name.
pub const LANG_COOKIE: &str = "kq_lang";
/// An agent without a heartbeat for this long is listed as silent.
pub const SILENT_AFTER_MS: i64 = 30 * 60_000;

/// What the handlers share.
pub struct App {
    pub store: Arc<dyn Stores>,
    rules: Arc<LiveRules>,
    env: minijinja::Environment<'static>,
    /// Failed login attempts per username (lower case): [`LOGIN_BURST`] at once,
    /// then one a minute, so a password cannot be guessed at speed; successful
    /// logins are not counted.
    pub(crate) logins: crate::ratelimit::RateLimit<String>,
    /// Failed login attempts per source address: [`LOGIN_BURST_PER_ADDRESS`] at
    /// once, then one every 10 s, so one machine cannot try many usernames.
    pub(crate) logins_by_address: crate::ratelimit::RateLimit<std::net::IpAddr>,
    /// What staff may appeal (`[appeals]`).
    pub(crate) appeal_limits: crate::config::AppealsConfig,
    /// Leave types, limits and approvals of requests (`[requests]`).
    pub(crate) requests: crate::config::RequestsConfig,
    /// Sign-in with the office directory (`[auth.ldap]`).
    pub(crate) ldap: Option<crate::config::LdapConfig>,
    /// What agents are told, with the category rules saved in the console.
    pub(crate) policy: Arc<crate::policy::LivePolicy>,
    /// Served over HTTPS: cookies are `Secure` and the session cookie `__Host-`.
    secure: std::sync::atomic::AtomicBool,
    /// Who may read `/metrics` besides loopback (`[metrics]`).
    pub(crate) metrics: crate::config::MetricsConfig,
}

/// Failed login attempts one username may make at once; after that one a minute.
pub const LOGIN_BURST: u32 = 5;
/// Failed login attempts one source address may make at once (an office behind one
/// NAT address mistypes too); after that one every 10 s.
pub const LOGIN_BURST_PER_ADDRESS: u32 = 30;
/// Usernames longer than this are refused before any work.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Keys each login limiter holds at most.
const LOGIN_LIMIT_KEYS: usize = 10_000;

/// Every page template, embedded in the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    (
        "password.html",
        include_str!("../../templates/password.html"),
    ),
    ("summary.html", include_str!("../../templates/summary.html")),
    ("today.html", include_str!("../../templates/today.html")),
    ("person.html", include_str!("../../templates/person.html")),
    ("pc.html", include_str!("../../templates/pc.html")),
    ("appeals.html", include_str!("../../templates/appeals.html")),
    (
        "requests.html",
        include_str!("../../templates/requests.html"),
    ),
    ("monthly.html", include_str!("../../templates/monthly.html")),
    (
        "admin_nav.html",
        include_str!("../../templates/admin_nav.html"),
    ),
    (
        "admin_staff.html",
        include_str!("../../templates/admin_staff.html"),
    ),
    (
        "admin_agents.html",
        include_str!("../../templates/admin_agents.html"),
    ),
    (
        "admin_users.html",
        include_str!("../../templates/admin_users.html"),
    ),
    (
        "admin_calendar.html",
        include_str!("../../templates/admin_calendar.html"),
    ),
    (
        "admin_categories.html",
        include_str!("../../templates/admin_categories.html"),
    ),
    (
        "admin_schedules.html",
        include_str!("../../templates/admin_schedules.html"),
    ),
    ("system.html", include_str!("../../templates/system.html")),
    ("audit.html", include_str!("../../templates/audit.html")),
    ("error.html", include_str!("../../templates/error.html")),
];

fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    for (name, text) in TEMPLATES {
        // The templates are part of the binary; a broken one fails the unit tests.
        if let Err(e) = env.add_template(name, text) {
            tracing::error!(template = name, error = %e, "A page template does not parse.");
        }
    }
    env
}

/// The stylesheet, served at `/static/style.css`.
pub const STYLE_CSS: &str = include_str!("../../templates/style.css");

impl App {
    /// The shared state of the pages, with the default `[appeals]` and
    /// `[requests]` settings.
    pub fn new(store: Arc<dyn Stores>, rules: Arc<LiveRules>) -> Arc<App> {
        App::configured(store, rules, &crate::config::Config::default())
    }

    /// The shared state of the pages, with the settings of `config`.
    pub fn configured(
        store: Arc<dyn Stores>,
        rules: Arc<LiveRules>,
        config: &crate::config::Config,
    ) -> Arc<App> {
        let policy =
            crate::policy::LivePolicy::stored(&config.agents, crate::policy::loader(store.clone()));
        App::sharing(store, rules, config, Arc::new(policy))
    }

    /// The shared state of the pages, with the settings of `config` and the
    /// agents' policy that gRPC serves.
    pub fn sharing(
        store: Arc<dyn Stores>,
        rules: Arc<LiveRules>,
        config: &crate::config::Config,
        policy: Arc<crate::policy::LivePolicy>,
    ) -> Arc<App> {
        Arc::new(App {
            policy,
            appeal_limits: config.appeals,
            requests: config.requests.clone(),
            ldap: config.auth.ldap.clone(),
            metrics: config.metrics.clone(),
            secure: std::sync::atomic::AtomicBool::new(false),
            store,
            rules,
            env: templates(),
            logins: crate::ratelimit::RateLimit::bounded(1.0 / 60.0, LOGIN_BURST, LOGIN_LIMIT_KEYS),
            logins_by_address: crate::ratelimit::RateLimit::bounded(
                0.1,
                LOGIN_BURST_PER_ADDRESS,
                LOGIN_LIMIT_KEYS,
            ),
        })
    }

    /// The session cookie's name: `__Host-` over HTTPS.
    pub fn session_cookie(&self) -> &'static str {
        if self.secure.load(std::sync::atomic::Ordering::Relaxed) {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// A `Set-Cookie` value for the session cookie (`Secure` over HTTPS).
    pub fn session_set_cookie(&self, value: &str, max_age_s: i64) -> String {
        let secure = if self.secure.load(std::sync::atomic::Ordering::Relaxed) {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}",
            self.session_cookie()
        )
    }

    /// The rules now, with any calendar notice imported since the last request.
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.current()
    }

    /// The time zone and day boundary (no store read).
    pub fn settings(&self) -> &crate::attendance::Settings {
        self.rules.settings()
    }

    fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, WebError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| WebError::Internal(anyhow::anyhow!("template {name}: {e:#}")))
    }
}

/// The router of every page, export and API call.
pub fn router(app: Arc<App>) -> axum::Router {
    pages::routes().with_state(app)
}

/// Serves the pages on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// Serves the pages over HTTPS with the server certificate and key (PEM) that
/// gRPC uses (`tls init`), until `shutdown` completes; then lets requests in
/// flight finish for up to 10 s.
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Both rustls users in the process (tonic, this) use ring; a second install
    // is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem, key_pem).await?;
    app.secure.store(true, std::sync::atomic::Ordering::Relaxed);
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)
        .handle(handle)
        .serve(router(app).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await?;
    Ok(())
}

/// Why a request failed.
#[derive(Debug)]
pub enum WebError {
    /// No (live) session: go to the login page (pages) or 401 (API).
    Login,
    /// A one-time password must be changed first.
    ChangePassword,
    /// Not allowed.
    Forbidden,
    /// Not allowed, with the reason in words (nobody decides their own case).
    Denied(String),
    NotFound,
    BadRequest(String),
    /// A query or form parameter that does not parse: its name and the parser's
    /// words (shown as what the parameter expects, see [`params::expects`]).
    BadParam {
        name: String,
        problem: String,
    },
    /// A field whose value parses but is wrong: its name and why, as said.
    BadField {
        name: String,
        problem: String,
    },
    Internal(anyhow::Error),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Invalid(m) | StoreError::Conflict(m) => WebError::BadRequest(m),
            StoreError::Denied(m) => WebError::Denied(m),
            StoreError::NotFound(_) => WebError::NotFound,
            other => WebError::Internal(other.into()),
        }
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> Self {
        WebError::Internal(e)
    }
}

/// Who is asking, in which language.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub user: Option<User>,
    pub lang: Lang,
    /// `?lang=` was given: remember it in the cookie.
    pub set_lang: bool,
    /// The session token of the request (to keep it on a password change).
    pub session: Option<String>,
    /// Asked through the JSON API (errors as JSON).
    pub api: bool,
    pub path: String,
    /// The source address of the connection, when served with it.
    pub peer: Option<std::net::IpAddr>,
}

impl Ctx {
    /// The user, or the reason to stop.
    /// A one-time password gives no access, by page or API, until it is changed.
    pub fn user(&self) -> Result<&User, WebError> {
        let u = self.user.as_ref().ok_or(WebError::Login)?;
        if u.must_change_password {
            return Err(WebError::ChangePassword);
        }
        Ok(u)
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query.and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    })
}

impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Ctx, Self::Rejection> {
        let path = parts.uri.path().to_owned();
        let api = path.starts_with("/api/");
        let from_query = query_param(parts.uri.query(), "lang").and_then(|l| Lang::parse(&l));
        let lang = from_query
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::parse))
            .unwrap_or(Lang::Zh);
        let now = crate::clock::now_ms();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let session = cookie(&parts.headers, app.session_cookie()).map(str::to_owned);
        let store = app.store.clone();
        let (token, sess) = (bearer.clone(), session.clone());
        let user = tokio::task::spawn_blocking(move || {
            let by_token = match &token {
                Some(t) => store.api_token_user(t, now).ok().flatten(),
                None => None,
            };
            by_token.or_else(|| match &sess {
                Some(s) if token.is_none() => store.session_user(s, now).ok().flatten(),
                _ => None,
            })
        })
        .await
        .ok()
        .flatten();
        Ok(Ctx {
            user,
            lang,
            set_lang: from_query.is_some(),
            session,
            api: api || bearer.is_some(),
            path,
            peer: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        })
    }
}

/// A rendered page with the cookies it sets.
pub struct Page {
    status: StatusCode,
    body: String,
    cookies: Vec<String>,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.body,
        )
            .into_response();
        for c in self.cookies {
            if let Ok(v) = c.parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        security_headers(r.headers_mut());
        r
    }
}

fn security_headers(h: &mut HeaderMap) {
    for (k, v) in [
        (
            "content-security-policy",
            "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
}

fn redirect(to: &str, cookies: Vec<String>) -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A Set-Cookie value for the language.
fn lang_cookie(lang: Lang) -> String {
    format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.code()
    )
}

/// Renders an error for a page or the API.
fn error_response(app: &App, ctx: &Ctx, e: WebError) -> Response {
    let (status, key, detail) = match e {
        WebError::Login if ctx.api => (StatusCode::UNAUTHORIZED, "login", String::new()),
        WebError::Login => {
            return redirect("/login", Vec::new());
        }
        WebError::ChangePassword if ctx.api => {
            (StatusCode::FORBIDDEN, "one_time_password", String::new())
        }
        WebError::ChangePassword => return redirect("/password", Vec::new()),
        WebError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", String::new()),
        WebError::Denied(why) => (StatusCode::FORBIDDEN, "forbidden", why),
        WebError::NotFound => (StatusCode::NOT_FOUND, "not_found", String::new()),
        WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
        WebError::BadParam { name, problem } => {
            let expects = params::expects(ctx.lang, &name, &problem);
            if ctx.api {
                let body = serde_json::json!({
                    "error": i18n::t(ctx.lang, "bad_request"),
                    "detail": format!("{name}: {expects}"),
                    "parameter": name,
                    "code": "bad_parameter",
                });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            (
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{name}: {expects}"),
            )
        }
        WebError::BadField { name, problem } => {
            if ctx.api {
                let body = serde_json::json!({
                    "error": i18n::t(ctx.lang, "bad_request"),
                    "detail": format!("{name}: {problem}"),
                    "parameter": name,
                    "code": "bad_field",
                });
                return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
            }
            (
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("{name}: {problem}"),
            )
        }
        WebError::Internal(e) => {
            tracing::warn!(path = %ctx.path, error = format!("{e:#}"), "A page failed.");
            (StatusCode::INTERNAL_SERVER_ERROR, "error", String::new())
        }
    };
    let message = i18n::t(ctx.lang, key);
    if ctx.api {
        // The message in the reader's language; the code stays English and stable.
        let body = serde_json::json!({"error": message, "detail": detail, "code": key});
        return (status, axum::Json(body)).into_response();
    }
    let html = app
        .render(
            "error.html",
            pages::base_ctx(
                ctx,
                minijinja::context! { message => message, detail => detail },
            ),
        )
        .unwrap_or_else(|_| message.clone());
    Page {
        status,
        body: html,
        cookies: Vec::new(),
    }
    .into_response()
}

/// Runs a page's blocking work off the async threads and turns its result into
/// a response.
async fn blocking(
    app: Arc<App>,
    ctx: Ctx,
    f: impl FnOnce(&App, &Ctx) -> Result<Response, WebError> + Send + 'static,
) -> Response {
    let (a, c) = (app.clone(), ctx.clone());
    let r = tokio::task::spawn_blocking(move || {
        // A language chosen on the pages is also the one kaoqin writes to them in.
        if c.set_lang
            && let Some(u) = &c.user
            && let Err(e) = a.store.set_user_lang(u.id, c.lang.short())
        {
            tracing::warn!(error = %e, "Could not remember the language of an account.");
        }
        f(&a, &c)
    })
    .await
    .unwrap_or_else(|e| Err(WebError::Internal(anyhow::anyhow!("page task: {e}"))));
    match r {
        Ok(mut resp) => {
            if ctx.set_lang
                && let Ok(v) = lang_cookie(ctx.lang).parse()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => error_response(&app, &ctx, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_a_handler_names_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for name in text.split('"').filter(|s| {
                s.ends_with(".html")
                    && s.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            }) {
                assert!(
                    super::TEMPLATES.iter().any(|(n, _)| *n == name),
                    "{}: template {name} is not registered",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, text) in super::TEMPLATES {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
