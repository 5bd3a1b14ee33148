//! The console's category rules: the rules agents apply, edited as a rules file,
//! tried in a test box (a process name and a window title in, the category and
//! the deciding rule out) and saved as a new policy version that agents pick up
//! at their next policy refresh. Officers see the rules and the test box.

use super::admin_pages::{admin, console, when};
use super::i18n::{self, Lang};
use super::pages::{St, now, page_with_status};
use super::params::{Form, Query};
use super::{App, Ctx, WebError, blocking, redirect};
use crate::policy::{self, RulesSource};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use kaoqin_proto::classify::{Rule, rules_to_toml};
use minijinja::{Value, context};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn routes() -> axum::Router<Arc<App>> {
    axum::Router::new()
        .route("/admin/categories", get(categories_page))
        .route("/admin/categories/check", post(categories_check))
        .route("/admin/categories/save", post(categories_save))
}

/// An application to try the rules on.
#[derive(Debug, Default, Deserialize)]
struct TryQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
    saved: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct RulesForm {
    text: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
}

/// Where the rules in force come from, in words.
fn source_words(app: &App, lang: Lang, source: &RulesSource) -> String {
    match source {
        RulesSource::Console {
            revision,
            actor,
            updated_ms,
        } => format!(
            "{} ({revision}, {actor}, {})",
            i18n::t(lang, "rules_from_console"),
            when(app, Some(*updated_ms))
        ),
        RulesSource::ConfigFile => i18n::t(lang, "rules_from_config"),
        RulesSource::BuiltIn => i18n::t(lang, "rules_built_in"),
    }
}

/// The test box's answer for `name` and `title` under `rules`, if anything was typed.
fn tried(lang: Lang, rules: &[Rule], name: &str, title: &str) -> Value {
    if name.trim().is_empty() && title.trim().is_empty() {
        return Value::from(());
    }
    let (category, rule) = policy::try_rules(rules, name.trim(), Some(title.trim()));
    context! {
        category => category, label => i18n::category(lang, &category), rule => rule,
    }
}

/// The page: the rules in force (or `text` being edited), with `extra` on top.
fn view(
    app: &App,
    ctx: &Ctx,
    text: Option<String>,
    status: StatusCode,
    extra: Value,
) -> Result<Response, WebError> {
    let editable = console(ctx.user()?)?;
    let now = app.policy.now();
    let text = text.unwrap_or_else(|| match now.source {
        // The saved text, comments and all.
        RulesSource::Console { .. } => app
            .store
            .office_setting(policy::CATEGORY_RULES_KEY)
            .ok()
            .flatten()
            .map_or_else(|| rules_to_toml(&now.rules), |s| s.value),
        _ => rules_to_toml(&now.rules),
    });
    let rules: Vec<Value> = now
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            context! {
                n => i + 1, category => r.category, label => i18n::category(ctx.lang, &r.category),
                process => r.process_patterns.join(", "), title => r.title_patterns.join(", "),
            }
        })
        .collect();
    page_with_status(
        app,
        ctx,
        status,
        "admin_categories.html",
        context! {
            editable => editable, text => text,
            source => source_words(app, ctx.lang, &now.source),
            version => now.proto.version, rules => rules,
            ..extra
        },
    )
}

async fn categories_page(State(app): St, ctx: Ctx, Query(q): Query<TryQuery>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let now = app.policy.refresh();
        view(
            app,
            ctx,
            None,
            StatusCode::OK,
            context! {
                saved => q.saved, name => q.name, title => q.title,
                tried => tried(ctx.lang, &now.rules, &q.name, &q.title),
            },
        )
    })
    .await
}

/// Checks the edited rules and tries them on the test box's application.
async fn categories_check(State(app): St, ctx: Ctx, Form(f): Form<RulesForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        console(ctx.user()?)?;
        match policy::checked_rules(&f.text) {
            Err(problems) => view(
                app,
                ctx,
                Some(f.text),
                StatusCode::BAD_REQUEST,
                context! { problems => problems, name => f.name, title => f.title },
            ),
            Ok(rules) => {
                let tried = tried(ctx.lang, &rules, &f.name, &f.title);
                view(
                    app,
                    ctx,
                    Some(f.text),
                    StatusCode::OK,
                    context! {
                        checked => rules.len(), tried => tried, name => f.name, title => f.title,
                    },
                )
            }
        }
    })
    .await
}

async fn categories_save(State(app): St, ctx: Ctx, Form(f): Form<RulesForm>) -> Response {
    blocking(app, ctx, move |app, ctx| {
        let u = ctx.user()?;
        admin(u)?;
        let rules = match policy::checked_rules(&f.text) {
            Ok(rules) => rules,
            Err(problems) => {
                return view(
                    app,
                    ctx,
                    Some(f.text),
                    StatusCode::BAD_REQUEST,
                    context! { problems => problems, name => f.name, title => f.title },
                );
            }
        };
        let revision = policy::save(
            &*app.store,
            &rules,
            &f.text,
            &format!("web:{}", u.username),
            now().as_millisecond(),
        )?;
        app.policy.refresh();
        Ok(redirect(
            &format!("/admin/categories?saved={revision}"),
            Vec::new(),
        ))
    })
    .await
}
