//! Query strings and forms as the pages take them. A value that does not parse
//! gets the product's own error page (400, in the page's language), or a JSON error
//! on the API, naming the parameter and what it expects ("day: a date such as
//! 2026-11-24"); never the web framework's text.

use super::{App, Ctx, WebError, error_response};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A query string, parsed into `T`.
pub struct Query<T>(pub T);

/// The address's own parameters (`/appeals/{id}/decide`), parsed into `T`.
pub struct Path<T>(pub T);

/// A `application/x-www-form-urlencoded` body, parsed into `T`.
pub struct Form<T>(pub T);

/// An `application/json` body, parsed into `T`; a field that does not parse is
/// named in the error, as a query parameter is.
pub struct Json<T>(pub T);

/// Parses urlencoded `bytes` into `T`, or names the parameter that failed.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WebError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let name = e.path().to_string();
        let problem = e.into_inner().to_string();
        // A missing field names itself in the message, not in the path.
        let name = match problem.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_owned(),
            None => name,
        };
        WebError::BadParam { name, problem }
    })
}

/// The request's body, up to 1 MiB.
async fn body(req: Request, app: &Arc<App>) -> Result<(Parts, axum::body::Bytes), Response> {
    let (mut parts, body) = req.into_parts();
    match axum::body::to_bytes(body, 1 << 20).await {
        Ok(b) => Ok((parts, b)),
        Err(_) => {
            let e = WebError::BadRequest("the body is larger than 1 MiB".into());
            Err(reject(&mut parts, app, e).await)
        }
    }
}

async fn reject(parts: &mut Parts, app: &Arc<App>, e: WebError) -> Response {
    let ctx = match Ctx::from_request_parts(parts, app).await {
        Ok(c) => c,
        Err(never) => match never {},
    };
    error_response(app, &ctx, e)
}

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<App>> for Query<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let query = parts.uri.query().unwrap_or_default().to_owned();
        match parse(query.as_bytes()) {
            Ok(v) => Ok(Query(v)),
            Err(e) => Err(reject(parts, app, e).await),
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<App>> for Path<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, app).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => {
                let (name, problem) = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::DeserializeError { key, .. } => {
                            (key.clone(), e.kind().to_string())
                        }
                        kind => ("id".to_owned(), kind.to_string()),
                    },
                    other => ("id".to_owned(), other.body_text()),
                };
                Err(reject(parts, app, WebError::BadParam { name, problem }).await)
            }
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequest<Arc<App>> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Response> {
        let (mut parts, bytes) = body(req, app).await?;
        match parse(&bytes) {
            Ok(v) => Ok(Form(v)),
            Err(e) => Err(reject(&mut parts, app, e).await),
        }
    }
}

impl<T: DeserializeOwned + Send> FromRequest<Arc<App>> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Response> {
        let (mut parts, bytes) = body(req, app).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        match serde_path_to_error::deserialize(&mut de) {
            Ok(v) => Ok(Json(v)),
            Err(e) => {
                let name = e.path().to_string();
                let problem = e.into_inner().to_string();
                let name = match problem.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or(rest).to_owned(),
                    None if name == "." => "body".to_owned(),
                    None => name,
                };
                Err(reject(&mut parts, app, WebError::BadParam { name, problem }).await)
            }
        }
    }
}

/// A period (`from`..`to`) that runs backwards or is too long, as the parser's
/// problem of the parameter `to`.
pub(super) const PERIOD: &str = "from must not be after to, and the period at most 366 days";

/// A period that runs backwards or is over 366 days: the parameter `to` named.
pub(super) fn check_period(from: jiff::civil::Date, to: jiff::civil::Date) -> Result<(), WebError> {
    let days = from
        .until(to)
        .map(|span| span.get_days())
        .unwrap_or(i32::MAX);
    if from > to || days > 366 {
        return Err(WebError::BadParam {
            name: "to".into(),
            problem: PERIOD.into(),
        });
    }
    Ok(())
}

/// What the parameter `name` expects, in the page's language; `problem` (the
/// parser's words) for parameters without a known shape.
pub(super) fn expects(lang: super::Lang, name: &str, problem: &str) -> String {
    use super::Lang::{En, Zh};
    match (lang, name) {
        (Zh, _) if problem == PERIOD => "起始日期不得晚于结束日期，期间至多 366 天".into(),
        (En, _) if problem == PERIOD => PERIOD.into(),
        (Zh, "day" | "date" | "from" | "to") => "应为日期，例如 2026-11-24".into(),
        (En, "day" | "date" | "from" | "to") => "a date such as 2026-11-24".into(),
        (Zh, "month") => "应为月份，例如 2026-11".into(),
        (En, "month") => "a month such as 2026-11".into(),
        (Zh, "id") => "应为编号（数字），例如 12".into(),
        (En, "id") => "a number such as 12".into(),
        (Zh, _) if problem.starts_with("missing field") => "必填".into(),
        (En, _) if problem.starts_with("missing field") => "required".into(),
        (Zh, _) => format!("无法识别（{problem}）"),
        (En, _) => problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Q {
        day: Option<jiff::civil::Date>,
        name: String,
    }

    fn bad(q: &str) -> (String, String) {
        match parse::<Q>(q.as_bytes()) {
            Err(WebError::BadParam { name, problem }) => (name, problem),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_failing_parameter_is_named() {
        assert!(parse::<Q>(b"day=2026-11-24&name=x").is_ok());
        assert_eq!(bad("day=24&name=x").0, "day");
        assert_eq!(bad("day=2026-11-24").0, "name");
        let (name, problem) = bad("day=2026-11-24");
        assert_eq!(expects(super::super::Lang::En, &name, &problem), "required");
        assert_eq!(
            expects(super::super::Lang::En, "day", "whatever"),
            "a date such as 2026-11-24"
        );
    }
}
