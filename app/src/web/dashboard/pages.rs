//! The dashboard's HTML, as maud templates: a value reaches the page only through maud's
//! escaping insertion (`(value)`), so a PR title or log line holding `<script>` shows as text.
//! Filters and the log viewer are GET forms, actions are POST forms with the CSRF token; the
//! one script (`dashboard.js`, ours) only adds the live follow of a log, so every page works
//! without it; and every page is readable on a phone (one column below 48rem). Statuses carry words beside
//! their colours.

use std::collections::HashMap;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use previewd_entity::{AttemptStatus, PreviewStatus, deploy_attempt};
use url::Url;

use super::logs::{Choice, ClusterTotals, ClusterView};
use super::session::{Flash, Session};
use crate::cluster::inspect::{EventView, LOG_TAILS, PodInfo, Usage};
pub use crate::previews::service::status_key;
use crate::previews::{access::Actor, records::PreviewRow, service::status_word};

const STYLESHEET: &str = include_str!("dashboard.css");
const SCRIPT: &str = include_str!("dashboard.js");

/// Every status a filter can ask for, in lifecycle order.
pub const STATUSES: [PreviewStatus; 8] = [
    PreviewStatus::AwaitingApproval,
    PreviewStatus::Pending,
    PreviewStatus::Building,
    PreviewStatus::Deploying,
    PreviewStatus::Running,
    PreviewStatus::Failed,
    PreviewStatus::Deleting,
    PreviewStatus::Deleted,
];

/// The status a URL's key names (`awaiting_approval`, `running`, …).
pub fn parse_status(key: &str) -> Option<PreviewStatus> {
    STATUSES.into_iter().find(|s| status_key(*s) == key)
}

/// Keeps only characters that cannot change a path's meaning (for "return here" links).
pub fn path_safe(segment: &str) -> String {
    segment
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect()
}

/// At most `max` characters of `text`.
pub fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Who is looking, as the header shows them.
pub struct Who<'a> {
    pub login: &'a str,
    pub operator: bool,
    pub csrf: &'a str,
}

impl<'a> Who<'a> {
    pub fn of(actor: &'a Actor, session: &'a Session) -> Self {
        Self {
            login: &actor.login,
            operator: actor.operator,
            csrf: &session.data.csrf,
        }
    }
}

fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn layout(title: &str, who: Option<&Who<'_>>, flash: Option<&Flash>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · previewd" }
                link rel="stylesheet" href="/dashboard.css";
            }
            body {
                header.top {
                    a.brand href="/previews" { "previewd" }
                    @if let Some(who) = who {
                        a.nav href="/tokens" { "API tokens" }
                        span.who {
                            "Signed in as " strong { (who.login) }
                            @if who.operator { " " span.tag { "operator" } }
                        }
                        form.inline method="post" action="/auth/logout" {
                            input type="hidden" name="csrf" value=(who.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = flash {
                        p.flash.ok[flash.ok].problem[!flash.ok] role="status" { (flash.text) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page with one message.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/previews" { "Back to the previews" } }
    };
    respond(status, layout(title, None, None, body))
}

/// `GET /dashboard.css`
pub async fn stylesheet() -> Response {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

/// `GET /dashboard.js`
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn badge(status: PreviewStatus) -> Markup {
    html! { span class={ "status s-" (status_key(status)) } { (status_word(status)) } }
}

fn attempt_word(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Queued => "queued",
        AttemptStatus::Running => "running",
        AttemptStatus::Succeeded => "succeeded",
        AttemptStatus::Failed => "failed",
        AttemptStatus::Superseded => "superseded",
        AttemptStatus::Cancelled => "cancelled",
        AttemptStatus::TimedOut => "timed out",
    }
}

/// "5 min ago", "3 h ago", "2 d ago".
pub fn ago(at: DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// "42 s", "3 min 5 s".
pub fn duration(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<String> {
    let secs = (to? - from?).num_seconds().max(0);
    Some(if secs < 60 {
        format!("{secs} s")
    } else {
        format!("{} min {} s", secs / 60, secs % 60)
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

fn pr_link(web_url: &Url, row: &PreviewRow) -> String {
    crate::github::urls::web_path(
        web_url,
        &format!(
            "{}/pull/{}",
            row.repository.full_name, row.pull_request.number
        ),
    )
    .to_string()
}

/// What the list page shows.
pub struct ListView<'a> {
    pub who: Who<'a>,
    pub rows: &'a [PreviewRow],
    /// The current attempt of each row, by attempt id.
    pub current: &'a HashMap<i64, deploy_attempt::Model>,
    pub total: u64,
    pub page: u64,
    pub status: &'a str,
    pub repo: &'a str,
    pub mine: bool,
    pub search: &'a str,
    /// Repositories the filter offers.
    pub repositories: &'a [String],
    /// Operators: previews by status, and how many cleanups failed.
    pub totals: Option<&'a [(String, u64)]>,
    /// Usage by namespace, for the rows that answered.
    pub usage: &'a HashMap<String, Usage>,
    /// Operators: what live previews hold in the cluster.
    pub cluster_totals: Option<ClusterTotals>,
    pub flash: Option<&'a Flash>,
    pub web_url: &'a Url,
}

impl ListView<'_> {
    fn page_link(&self, page: u64) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", self.status),
            ("repo", self.repo),
            ("q", self.search),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if self.mine {
            q.append_pair("mine", "1");
        }
        q.append_pair("page", &page.to_string());
        format!("/previews?{}", q.finish())
    }
}

/// `GET /previews`
pub fn list(v: &ListView<'_>) -> Response {
    let pages = v.total.div_ceil(super::PAGE_SIZE).max(1);
    let body = html! {
        h1 { "Previews" }
        @if let Some(totals) = v.totals {
            section.totals aria-label="Totals" {
                @for (what, n) in totals {
                    span.total { strong { (n) } " " (what) }
                }
            }
        }
        @if let Some(t) = v.cluster_totals {
            section.totals aria-label="Cluster" {
                span.total { "Held by " strong { (t.answered) } " of " (t.previews) " live previews:" }
                (usage_figures(&t.usage))
            }
        }
        form.filters method="get" action="/previews" {
            label { "Status "
                select name="status" {
                    option value="" selected[v.status.is_empty()] { "any" }
                    @for s in STATUSES {
                        option value=(status_key(s)) selected[v.status == status_key(s)] { (status_word(s)) }
                    }
                }
            }
            label { "Repository "
                select name="repo" {
                    option value="" selected[v.repo.is_empty()] { "any" }
                    @for r in v.repositories {
                        option value=(r) selected[v.repo.eq_ignore_ascii_case(r)] { (r) }
                    }
                }
            }
            label.check { input type="checkbox" name="mine" value="1" checked[v.mine]; " Mine" }
            label { "Search " input type="search" name="q" value=(v.search) maxlength="100" placeholder="title or namespace"; }
            button type="submit" { "Filter" }
        }
        @if v.rows.is_empty() {
            p.empty { "No previews match." }
        } @else {
            table.previews {
                thead { tr {
                    th { "Pull request" } th { "Status" } th { "Preview" } th { "Commit" }
                    th { "CPU / memory" } th { "Last deploy" } th { "Age" }
                } }
                tbody {
                    @for row in v.rows {
                        @let attempt = row.preview.current_attempt_id.and_then(|id| v.current.get(&id));
                        tr {
                            td data-label="Pull request" {
                                a href={ "/previews/" (row.preview.id) } { (row.pull_request.title) }
                                br;
                                span.muted {
                                    (row.repository.full_name) " "
                                    a href=(pr_link(v.web_url, row)) { "#" (row.pull_request.number) }
                                    " by " (row.pull_request.author_login)
                                }
                            }
                            td data-label="Status" { (badge(row.preview.status)) }
                            td data-label="Preview" {
                                @if let Some(url) = &row.preview.url {
                                    a href=(url) rel="noopener noreferrer" { (url) }
                                } @else { span.muted { "—" } }
                            }
                            td data-label="Commit" { code { (short(&row.preview.head_sha)) } }
                            td data-label="CPU / memory" {
                                @if let Some(u) = v.usage.get(&row.preview.namespace) {
                                    (row_usage(u))
                                } @else { span.muted { "—" } }
                            }
                            td data-label="Last deploy" {
                                @if let Some(a) = attempt {
                                    (attempt_word(a.status))
                                    @if let Some(at) = a.finished_at.or(a.started_at) { " " (ago(at)) }
                                    @if let Some(d) = duration(a.started_at, a.finished_at) { " (" (d) ")" }
                                } @else { span.muted { "—" } }
                            }
                            td data-label="Age" { (ago(row.preview.created_at)) }
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Pages" {
            @if v.page > 1 { a href=(v.page_link(v.page - 1)) rel="prev" { "← Newer" } }
            span { "Page " (v.page) " of " (pages) " · " (v.total) " previews" }
            @if v.page < pages { a href=(v.page_link(v.page + 1)) rel="next" { "Older →" } }
        }
    };
    respond(
        StatusCode::OK,
        layout("Previews", Some(&v.who), v.flash, body),
    )
}

/// What the detail page shows.
pub struct DetailView<'a> {
    pub who: Who<'a>,
    pub row: &'a PreviewRow,
    pub attempts: &'a [deploy_attempt::Model],
    /// What the cluster shows (None: nothing to read there, e.g. a deleted preview).
    pub cluster: Option<&'a ClusterView>,
    /// Whether to show the action buttons (the server checks again on every action).
    pub can_act: bool,
    pub flash: Option<&'a Flash>,
    pub web_url: &'a Url,
}

fn action(id: i64, verb: &str, label: &str, csrf: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/previews/" (id) "/" (verb) } {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (label) }
        }
    }
}

/// `GET /previews/{id}`
pub fn detail(v: &DetailView<'_>) -> Response {
    let row = v.row;
    let p = &row.preview;
    let removed = matches!(p.status, PreviewStatus::Deleting | PreviewStatus::Deleted);
    let body = html! {
        p.crumbs { a href="/previews" { "Previews" } " / " (row.repository.full_name) }
        h1 { (row.pull_request.title) " " (badge(p.status)) }
        dl.facts {
            dt { "Pull request" }
            dd { a href=(pr_link(v.web_url, row)) { (row.repository.full_name) " #" (row.pull_request.number) } " by " (row.pull_request.author_login) }
            dt { "Preview" }
            dd { @if let Some(url) = &p.url { a href=(url) rel="noopener noreferrer" { (url) } } @else { "not serving" } }
            dt { "Namespace" } dd { code { (p.namespace) } }
            dt { "Commit" } dd { code { (short(&p.head_sha)) } }
            @if let Some(at) = p.expires_at { dt { "Expires" } dd { (at.format("%Y-%m-%d %H:%M UTC")) } }
            @if let Some(e) = &p.last_error { dt { "Last error" } dd.problem { (crate::sanitize::sanitize(e, 500)) } }
            @if p.cleanup_failed { dt { "Cleanup" } dd.problem { "failed; an operator should look" } }
        }
        @if v.can_act {
            section.actions aria-label="Actions" {
                @if p.status == PreviewStatus::Failed { (action(p.id, "retry", "Retry", v.who.csrf)) }
                (action(p.id, "redeploy", "Redeploy", v.who.csrf))
                @if matches!(p.status, PreviewStatus::Running | PreviewStatus::Failed) {
                    (action(p.id, "extend", "Extend", v.who.csrf))
                }
                @if !removed {
                    form.delete method="post" action={ "/previews/" (p.id) "/delete" } {
                        input type="hidden" name="csrf" value=(v.who.csrf);
                        label { "Type " code { (p.namespace) } " to delete it "
                            input type="text" name="confirm" required autocomplete="off" spellcheck="false";
                        }
                        button.danger type="submit" { "Delete" }
                    }
                }
            }
        }
        @if let Some(c) = v.cluster {
            h2 { "Usage" }
            (usage(&c.usage))
        }
        h2 { "Attempts" }
        @if v.attempts.is_empty() { p.muted { "No deploy attempts yet." } }
        ol.timeline {
            @for a in v.attempts {
                li {
                    strong { (attempt_word(a.status)) }
                    " · " code { (short(&a.sha)) } " #" (a.attempt)
                    " · " (a.trigger)
                    " · " (ago(a.created_at))
                    @if let Some(d) = duration(a.started_at, a.finished_at) { " · " (d) }
                    @if let Some(kind) = &a.error_kind { " · " span.tag { (kind) } }
                    @if let Some(e) = &a.error { p.problem { (crate::sanitize::sanitize(e, 1000)) } }
                    @if let Some(tail) = &a.log_tail {
                        details { summary { "Log tail" } pre { (crate::sanitize::sanitize_tail(tail, 8000)) } }
                    }
                }
            }
        }
        @if let Some(c) = v.cluster {
            h2 id="events" { "Events of the current attempt" }
            (events(&c.events))
            h2 id="logs" { "Logs" }
            (logs(p.id, c))
            script src="/dashboard.js" defer {}
        }
    };
    respond(
        StatusCode::OK,
        layout(
            &clip(&row.pull_request.title, 80),
            Some(&v.who),
            v.flash,
            body,
        ),
    )
}

/// Bytes as MiB (or GiB from 10 GiB), one decimal.
fn human_bytes(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "shown with one decimal")]
    let mib = bytes as f64 / f64::from(1u32 << 20);
    if mib >= 10_240.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

/// One row's usage: used / quota for CPU and memory, flagged at 80 %.
fn row_usage(u: &Usage) -> Markup {
    let one = |used: Option<u64>, quota: Option<u64>, show: fn(u64) -> String| {
        let percent = Usage::percent(used, quota);
        html! {
            span.warn[percent.is_some_and(|p| p >= 80)] {
                (used.map_or_else(|| "?".to_owned(), show))
                @if let Some(q) = quota { " / " (show(q)) }
                @if percent.is_some_and(|p| p >= 80) { " ⚠ near quota" }
            }
        }
    };
    html! {
        (one(u.cpu_used, u.cpu_quota, crate::units::format_cpu)) br;
        (one(u.memory_used, u.memory_quota, human_bytes))
    }
}

fn usage(u: &Result<Usage, String>) -> Markup {
    let u = match u {
        Ok(u) => u,
        Err(why) => return html! { p.muted { "Usage unknown: " (why) "." } },
    };
    html! {
        div.usage { (usage_figures(u)) }
        @if u.cpu_used.is_none() { p.muted { "No metrics yet (is a metrics server installed?)." } }
    }
}

/// CPU and memory, each used of quota (percent), flagged at 80 %.
fn usage_figures(u: &Usage) -> Markup {
    let one = |name: &str, used: Option<u64>, quota: Option<u64>, show: fn(u64) -> String| {
        let percent = Usage::percent(used, quota);
        let warn = percent.is_some_and(|p| p >= 80);
        html! {
            span.total.warn[warn] {
                (name) " "
                strong { (used.map_or_else(|| "unknown".to_owned(), show)) }
                @if let Some(q) = quota { " of " (show(q)) }
                @if let Some(p) = percent { " (" (p) " %)" }
                @if warn { " · near the quota" }
            }
        }
    };
    html! {
        (one("CPU", u.cpu_used, u.cpu_quota, crate::units::format_cpu))
        (one("Memory", u.memory_used, u.memory_quota, human_bytes))
    }
}

fn events(list: &Result<Vec<EventView>, String>) -> Markup {
    match list {
        Err(why) => html! { p.muted { "Events unknown: " (why) "." } },
        Ok(list) if list.is_empty() => html! { p.muted { "No events for this attempt." } },
        Ok(list) => html! {
            table.events {
                thead { tr { th { "Type" } th { "Reason" } th { "Object" } th { "Message" } th { "Seen" } } }
                tbody {
                    @for e in list {
                        tr.warning[e.kind == "Warning"] {
                            td { (e.kind) }
                            td { (e.reason) }
                            td { code { (e.object) } }
                            td { (crate::sanitize::sanitize(&e.message, 500)) @if e.count > 1 { " (×" (e.count) ")" } }
                            td { @if let Some(at) = e.at { (ago(at)) } }
                        }
                    }
                }
            }
        },
    }
}

fn logs(id: i64, c: &ClusterView) -> Markup {
    let pods = match &c.pods {
        Err(why) => return html! { p.muted { "Logs unavailable: " (why) "." } },
        Ok(p) if p.is_empty() => return html! { p.muted { "No pods yet." } },
        Ok(p) => p,
    };
    let Some(choice) = &c.choice else {
        return html! { p.muted { "No containers yet." } };
    };
    html! {
        (log_form(id, pods, choice))
        @match &c.log {
            Some(Ok(text)) => {
                @if choice.follow {
                    p.muted { "Live: " span id="follow-state" { "starting (needs JavaScript; reload for new lines without it)" } }
                    pre.log id="log" data-follow={ "/previews/" (id) "/logs/stream?" (choice.query(false)) } { (text) }
                } @else {
                    pre.log id="log" { (text) }
                }
            }
            Some(Err(why)) => p.problem { "Could not read this log: " (why) "." },
            None => {}
        }
    }
}

fn log_form(id: i64, pods: &[PodInfo], choice: &Choice) -> Markup {
    let r = &choice.request;
    html! {
        form.filters method="get" action={ "/previews/" (id) } {
            label { "Container"
                select name="c" {
                    @for p in pods {
                        optgroup label={ (p.name) " · " (p.phase) @if p.restarts > 0 { " · " (p.restarts) " restarts" } } {
                            @for name in &p.containers {
                                @let value = format!("{}/{}", p.name, name);
                                option value=(value) selected[p.name == r.pod && *name == r.container] { (name) " (" (p.name) ")" }
                            }
                        }
                    }
                }
            }
            label { "Lines"
                select name="tail" {
                    @for t in LOG_TAILS { option value=(t) selected[t == r.tail] { (t) } }
                }
            }
            label.check { input type="checkbox" name="timestamps" value="1" checked[r.timestamps]; "Timestamps" }
            label.check { input type="checkbox" name="previous" value="1" checked[r.previous]; "Previous container" }
            label.check { input type="checkbox" name="follow" value="1" checked[choice.follow]; "Follow live" }
            button type="submit" { "Show" }
        }
    }
}

/// `/tokens`: the person's tokens and the form to make one.
pub fn tokens(
    who: &Who<'_>,
    mine: &[previewd_entity::api_token::Model],
    flash: Option<&Flash>,
) -> Response {
    let now = Utc::now();
    let when = |at: Option<DateTime<Utc>>| at.map_or_else(|| "never".to_owned(), ago);
    let body = html! {
        h1 { "API tokens" }
        p.muted { "A token acts as you, with what you may see and do at the time it is used, for the REST API and MCP tools. It is shown once, when it is made." }
        form.filters method="post" action="/tokens" {
            input type="hidden" name="csrf" value=(who.csrf);
            label { "Name " input type="text" name="name" required maxlength=(crate::previews::tokens::MAX_NAME) placeholder="what it is for"; }
            label { "Expires "
                select name="days" {
                    @for (days, words) in super::tokens::LIFETIMES {
                        option value=(days) selected[days == 30] { (words) }
                    }
                }
            }
            button type="submit" { "Make a token" }
        }
        @if mine.is_empty() {
            p.empty { "No tokens yet." }
        } @else {
            table.previews {
                thead { tr { th { "Name" } th { "Token" } th { "Made" } th { "Last used" } th { "Expires" } th { "State" } th {} } }
                tbody {
                    @for t in mine {
                        @let live = crate::previews::tokens::is_live(t, now);
                        tr {
                            td data-label="Name" { (t.name) }
                            td data-label="Token" { code { (t.token_prefix) "…" } }
                            td data-label="Made" { (ago(t.created_at)) }
                            td data-label="Last used" { (when(t.last_used_at)) }
                            td data-label="Expires" { @if let Some(at) = t.expires_at { (at.format("%Y-%m-%d %H:%M UTC")) } @else { "when revoked" } }
                            td data-label="State" {
                                @if t.revoked_at.is_some() { "revoked" } @else if live { "live" } @else { "expired" }
                            }
                            td {
                                @if live {
                                    form.inline method="post" action={ "/tokens/" (t.id) "/revoke" } {
                                        input type="hidden" name="csrf" value=(who.csrf);
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("API tokens", Some(who), flash, body))
}

/// The answer to making a token: the token, once.
pub fn token_made(
    who: &Who<'_>,
    token: &previewd_entity::api_token::Model,
    secret: &str,
) -> Response {
    let body = html! {
        h1 { "Token made: " (token.name) }
        p { "Copy it now — it is not stored and will not be shown again:" }
        pre.log { (secret) }
        p { a href="/tokens" { "Back to your tokens" } }
    };
    respond(StatusCode::OK, layout("Token made", Some(who), None, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_near_the_quota_is_flagged_in_words() {
        let calm = Usage {
            cpu_used: Some(100),
            cpu_quota: Some(500),
            memory_used: Some(64 << 20),
            memory_quota: Some(512 << 20),
        };
        let text = row_usage(&calm).into_string();
        assert!(text.contains("100m / 500m"), "{text}");
        assert!(text.contains("64.0 MiB / 512.0 MiB"), "{text}");
        assert!(!text.contains("near quota"));
        let busy = Usage {
            memory_used: Some(450 << 20),
            ..calm
        };
        let text = row_usage(&busy).into_string();
        assert!(text.contains("near quota"), "{text}");
        let figures = usage_figures(&busy).into_string();
        assert!(
            figures.contains("(87 %)") && figures.contains("near the quota"),
            "{figures}"
        );
        let unknown = usage(&Ok(Usage {
            cpu_used: None,
            memory_used: None,
            ..calm
        }))
        .into_string();
        assert!(unknown.contains("No metrics yet"), "{unknown}");
        assert!(human_bytes(20 << 30).contains("20.0 GiB"));
    }
}
