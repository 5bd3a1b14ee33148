//! Sending a message: e-mail over SMTP (lettre), chat-group robots over HTTP
//! (DingTalk and WeCom message formats, DingTalk's signed URLs, plain JSON).

use super::Outgoing;
use crate::config::{EmailConfig, NotifyConfig, WebhookConfig};
use std::time::Duration;

/// How long one send may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends messages over the channels of `[notify]`.
pub struct Transports {
    mailer: Option<(lettre::SmtpTransport, lettre::message::Mailbox)>,
    hooks: Vec<WebhookConfig>,
    http: reqwest::blocking::Client,
}

impl Transports {
    /// The transports of `config` (nothing is contacted yet).
    pub fn new(config: &NotifyConfig) -> anyhow::Result<Transports> {
        let mailer = match &config.email {
            Some(e) => Some(mailer(e)?),
            None => None,
        };
        Ok(Transports {
            mailer,
            hooks: config.webhook.clone(),
            http: reqwest::blocking::Client::builder()
                .timeout(TIMEOUT)
                .build()?,
        })
    }

    /// Sends one message; the error in words.
    pub fn send(&self, o: &Outgoing, now_ms: i64) -> Result<(), String> {
        if o.channel == "email" {
            let (smtp, from) = self
                .mailer
                .as_ref()
                .ok_or("no [notify.email] is configured")?;
            let to: lettre::message::Mailbox = o
                .recipient
                .parse()
                .map_err(|e| format!("to {:?}: {e}", o.recipient))?;
            let msg = lettre::Message::builder()
                .from(from.clone())
                .to(to)
                .subject(&o.subject)
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(o.body.clone())
                .map_err(|e| format!("message: {e}"))?;
            use lettre::Transport;
            smtp.send(&msg).map_err(|e| format!("SMTP: {e}"))?;
            return Ok(());
        }
        let i: usize = o
            .channel
            .strip_prefix("webhook:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("unknown channel {:?}", o.channel))?;
        let hook = self
            .hooks
            .get(i)
            .ok_or_else(|| format!("{}: no such [[notify.webhook]] any more", o.channel))?;
        let url = signed_url(hook, now_ms);
        let r = self
            .http
            .post(&url)
            .json(&webhook_body(hook, o))
            .send()
            .map_err(|e| format!("{}: {e}", o.recipient))?;
        let status = r.status();
        let text = r.text().unwrap_or_default();
        if !status.is_success() {
            return Err(format!("{}: HTTP {status}: {text}", o.recipient));
        }
        // DingTalk and WeCom answer 200 with {"errcode": N, "errmsg": ...}.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(code) = v.get("errcode").and_then(|c| c.as_i64())
            && code != 0
        {
            return Err(format!("{}: errcode {code}: {}", o.recipient, v["errmsg"]));
        }
        Ok(())
    }
}

fn mailer(e: &EmailConfig) -> anyhow::Result<(lettre::SmtpTransport, lettre::message::Mailbox)> {
    let (host, port) = e
        .smtp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("notify.email.smtp = {:?}: host:port", e.smtp))?;
    let mut b = if e.starttls {
        lettre::SmtpTransport::starttls_relay(host)?
    } else {
        lettre::SmtpTransport::builder_dangerous(host)
    }
    .port(port)
    .timeout(Some(TIMEOUT));
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
            u.clone(),
            p.clone(),
        ));
    }
    let from = e
        .from
        .parse()
        .map_err(|err| anyhow::anyhow!("notify.email.from = {:?}: {err}", e.from))?;
    Ok((b.build(), from))
}

/// DingTalk's signature of `timestamp` (ms) with `secret`: base64 of
/// HMAC-SHA256 over "timestamp\nsecret".
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The robot's URL, with DingTalk's `timestamp` and `sign` when it has a secret.
pub fn signed_url(hook: &WebhookConfig, now_ms: i64) -> String {
    match (&hook.secret, hook.format.as_str()) {
        (Some(secret), "dingtalk") => {
            let sign: String =
                form_urlencoded::byte_serialize(dingtalk_sign(now_ms, secret).as_bytes()).collect();
            let sep = if hook.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}timestamp={now_ms}&sign={sign}", hook.url)
        }
        _ => hook.url.clone(),
    }
}

/// The JSON a robot takes.
pub fn webhook_body(hook: &WebhookConfig, o: &Outgoing) -> serde_json::Value {
    let text = format!("{}\n{}", o.subject, o.body);
    let markdown = format!("### {}\n{}", o.subject, o.body.replace('\n', "\n\n"));
    match (hook.format.as_str(), hook.msgtype.as_str()) {
        ("dingtalk", "markdown") => serde_json::json!({
            "msgtype": "markdown",
            "markdown": { "title": o.subject, "text": markdown },
        }),
        ("wecom", "markdown") => serde_json::json!({
            "msgtype": "markdown",
            "markdown": { "content": markdown },
        }),
        ("dingtalk" | "wecom", _) => serde_json::json!({
            "msgtype": "text",
            "text": { "content": text },
        }),
        _ => serde_json::json!({
            "key": o.key,
            "date": o.date.to_string(),
            "subject": o.subject,
            "text": o.body,
        }),
    }
}
