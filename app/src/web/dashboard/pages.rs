//! The dashboard's HTML, as maud templates: a value reaches the page only through maud's
//! escaping insertion (`(value)`), so a PR title or log line holding `<script>` shows as text.
//! No page runs a script; filters are a GET form, actions are POST forms with the CSRF token,
//! and every page is readable on a phone (one column below 48rem). Statuses carry words beside
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

use super::session::{Flash, Session};
use crate::previews::{access::Actor, records::PreviewRow, service::status_word};

const STYLESHEET: &str = include_str!("dashboard.css");

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

/// A status's name in URLs (`awaiting_approval`, `running`, …).
pub fn status_key(status: PreviewStatus) -> &'static str {
    match status {
        PreviewStatus::AwaitingApproval => "awaiting_approval",
        PreviewStatus::Pending => "pending",
        PreviewStatus::Building => "building",
        PreviewStatus::Deploying => "deploying",
        PreviewStatus::Running => "running",
        PreviewStatus::Failed => "failed",
        PreviewStatus::Deleting => "deleting",
        PreviewStatus::Deleted => "deleted",
    }
}

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
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
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
    let mut response = STYLESHEET.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
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
                    th { "Last deploy" } th { "Age" }
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
