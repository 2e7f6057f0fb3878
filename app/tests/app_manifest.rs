//! `app.yml`, the GitHub App manifest, asks for exactly the permissions and events previewd needs.

use std::collections::BTreeSet;

use serde_yaml::Value;

fn manifest() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../app.yml"))
        .expect("app.yml at the workspace root");
    serde_yaml::from_str(&text).expect("app.yml is YAML")
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string"))
}

#[test]
fn identity_and_urls() {
    let m = manifest();
    assert_eq!(text(&m, "name"), "previewd");
    assert!(text(&m, "url").starts_with("https://"));
    assert_eq!(
        m["public"],
        Value::Bool(false),
        "installable only by its owner"
    );
    let hook = &m["hook_attributes"];
    assert!(
        text(hook, "url").ends_with("/webhooks/github"),
        "webhooks reach the intake route"
    );
    assert_eq!(hook["active"], Value::Bool(true));
    assert!(text(&m, "redirect_url").starts_with("https://"));
}

#[test]
fn least_privilege_permissions() {
    let m = manifest();
    let permissions = m["default_permissions"].as_mapping().expect("a mapping");
    let got: BTreeSet<(String, String)> = permissions
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("key").to_owned(),
                v.as_str().expect("level").to_owned(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("checks", "write"),
        ("pull_requests", "read"),
        ("issues", "write"),
        ("contents", "read"),
        ("deployments", "write"),
        ("metadata", "read"),
        // OPERATORS may name an organization's team: its members are asked of GitHub.
        ("members", "read"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(got, want, "no permission more, none less");
}

#[test]
fn events_cover_the_design() {
    let m = manifest();
    let subscribed: BTreeSet<&str> = m["default_events"]
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("event name"))
        .collect();
    // GitHub delivers these to every App and rejects them in `default_events`.
    let always = ["installation", "installation_repositories", "ping"];
    for event in always {
        assert!(!subscribed.contains(event), "{event} must not be listed");
    }
    let received: BTreeSet<&str> = subscribed.iter().copied().chain(always).collect();
    let design: BTreeSet<&str> = [
        "pull_request",
        "check_run",
        "check_suite",
        "installation",
        "installation_repositories",
        "issue_comment",
        "ping",
    ]
    .into_iter()
    .collect();
    assert_eq!(
        received, design,
        "DESIGN.md §5 lists the events previewd acts on"
    );
}

#[test]
fn every_event_received_has_a_parser_arm() {
    use previewd::github::webhook::{Event, HANDLED_EVENTS, parse};
    let m = manifest();
    let subscribed = m["default_events"]
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned());
    let always = ["installation", "installation_repositories", "ping"].map(str::to_owned);
    for event in subscribed.chain(always) {
        assert!(
            HANDLED_EVENTS.contains(&event.as_str()),
            "{event} is received but not handled"
        );
        // An arm exists: an empty object is either understood (ping) or rejected for the fields
        // the arm needs — never waved through as an unknown event.
        if let Ok(Event::Ignored { reason }) = parse(&event, b"{}") {
            panic!("{event} falls through to the unknown-event arm: {reason}");
        }
    }
    assert!(
        matches!(parse("star", b"{}"), Ok(Event::Ignored { .. })),
        "unknown events are ignored explicitly"
    );
}
