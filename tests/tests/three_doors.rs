//! One service, three doors: every verb — list, view, logs, retry, redeploy, extend, delete —
//! through the dashboard (a signed-in browser's requests), the REST API and MCP (rmcp's
//! client), as a writer, a reader, an operator and a stranger. Each door's answer is brought to
//! one outcome (done, forbidden, not found, conflict), and the three must agree with each other
//! and with the table. Between calls that change a preview, the test waits for it to settle, so
//! every door meets the same state.

use previewd::previews::{records, tokens};
use previewd_entity::PreviewStatus;
use previewd_tests::{
    agent::{self, Agent},
    db::Engine,
    github::user_id,
    kube::Behaviour,
    scenario::{self, MAINTAINER, OUTSIDER, Options, Scenario},
    visitor::Visitor,
    wait,
};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\n";
const FLAKY_IMAGE: &str = "image: ghcr.io/acme/flaky:{sha}\nport: 8080\n";
const OPERATOR: &str = "olga";
const STRANGER: &str = "sam";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Forbidden,
    NotFound,
    Conflict,
}
use Outcome::{Conflict, Done, Forbidden, NotFound};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Dashboard,
    Rest,
    Mcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    List,
    View,
    Logs,
    Retry,
    Redeploy,
    Extend,
    Delete,
}

/// One person at the three doors.
struct Person {
    login: &'static str,
    visitor: Visitor,
    token: String,
    mcp: Agent,
}

async fn person(s: &Scenario, login: &'static str) -> anyhow::Result<Person> {
    let mut visitor = Visitor::new(&s.app_url, login)?;
    visitor.sign_in("/previews").await?;
    let made = tokens::create(&s.db, user_id(login), "three doors", None).await?;
    let token = made.secret.expose_secret().to_owned();
    let mcp = agent::connect(&s.app_url, &token, true).await?;
    Ok(Person {
        login,
        visitor,
        token,
        mcp,
    })
}

fn from_status(status: StatusCode) -> Outcome {
    match status.as_u16() {
        200..=299 => Done,
        403 => Forbidden,
        404 => NotFound,
        409 => Conflict,
        other => panic!("no outcome for {other}"),
    }
}

fn from_code(code: &str) -> Outcome {
    match code {
        "FORBIDDEN" => Forbidden,
        "NOT_FOUND" => NotFound,
        "CONFLICT" => Conflict,
        other => panic!("no outcome for {other}"),
    }
}

/// `verb` on the preview `(id, namespace)` by `who` through `door`.
async fn knock(
    s: &Scenario,
    who: &mut Person,
    door: Door,
    verb: Verb,
    (id, namespace): (i64, &str),
) -> anyhow::Result<Outcome> {
    match door {
        Door::Dashboard => {
            let page = format!("/previews/{id}");
            match verb {
                Verb::List => {
                    let list = who.visitor.get("/previews").await?;
                    assert_eq!(list.status, StatusCode::OK);
                    Ok(if list.body.contains(namespace) {
                        Done
                    } else {
                        NotFound
                    })
                }
                Verb::View | Verb::Logs => {
                    let path = if verb == Verb::Logs {
                        format!("{page}?tail=50")
                    } else {
                        page
                    };
                    Ok(from_status(who.visitor.get(&path).await?.status))
                }
                _ => {
                    let name = match verb {
                        Verb::Retry => "retry",
                        Verb::Redeploy => "redeploy",
                        Verb::Extend => "extend",
                        _ => "delete",
                    };
                    // The page's own token (a reader's and a stranger's pages have one too:
                    // the list's).
                    let seen = who.visitor.get(&page).await?;
                    if seen.status != StatusCode::OK {
                        who.visitor.get("/previews").await?;
                    }
                    let acted = who
                        .visitor
                        .act(&format!("{page}/{name}"), &[("confirm", namespace)])
                        .await?;
                    if acted.status != StatusCode::SEE_OTHER {
                        return Ok(from_status(acted.status));
                    }
                    let shown = who.visitor.get(&page).await?;
                    Ok(if shown.body.contains("class=\"flash problem\"") {
                        Conflict
                    } else {
                        assert!(shown.body.contains("class=\"flash ok\""), "{}", shown.body);
                        Done
                    })
                }
            }
        }
        Door::Rest => {
            let base = format!("/api/v1/previews/{id}");
            let (method, path) = match verb {
                Verb::List => (Method::GET, "/api/v1/previews?per_page=100".to_owned()),
                Verb::View => (Method::GET, base),
                Verb::Logs => (Method::GET, format!("{base}/logs?tail=50")),
                Verb::Retry => (Method::POST, format!("{base}/retry")),
                Verb::Redeploy => (Method::POST, format!("{base}/redeploy")),
                Verb::Extend => (Method::POST, format!("{base}/extend")),
                Verb::Delete => (Method::DELETE, base),
            };
            let response = reqwest::Client::new()
                .request(method, format!("{}{path}", s.app_url))
                .bearer_auth(&who.token)
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await?;
            if verb == Verb::List {
                let seen = body["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["id"] == id));
                return Ok(if seen { Done } else { NotFound });
            }
            Ok(from_status(status))
        }
        Door::Mcp => {
            let preview = id.to_string();
            let (tool, args) = match verb {
                Verb::List => ("list_preview_environments", json!({"per_page": 100})),
                Verb::View => ("get_preview_environment", json!({"preview": preview})),
                Verb::Logs => ("get_preview_logs", json!({"preview": preview, "tail": 50})),
                Verb::Retry => ("retry_preview_deployment", json!({"preview": preview})),
                Verb::Redeploy => ("redeploy_preview_environment", json!({"preview": preview})),
                Verb::Extend => ("extend_preview_environment", json!({"preview": preview})),
                Verb::Delete => (
                    "delete_preview_environment",
                    json!({"preview": preview, "confirm_namespace": namespace}),
                ),
            };
            let result = agent::call(&who.mcp, tool, args).await?;
            let structured = result.structured_content.clone().unwrap_or_default();
            if result.is_error == Some(true) {
                return Ok(from_code(structured["code"].as_str().unwrap_or_default()));
            }
            if verb == Verb::List {
                let seen = structured["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["id"] == id));
                return Ok(if seen { Done } else { NotFound });
            }
            Ok(Done)
        }
    }
}

/// Waits until preview `id` is `status` with more than `attempts` attempts.
async fn settle(
    s: &Scenario,
    id: i64,
    status: PreviewStatus,
    attempts: usize,
) -> anyhow::Result<()> {
    let db = s.db.clone();
    wait::until("the preview to settle", scenario::DEADLINE, || {
        let db = db.clone();
        async move {
            let p = records::preview_by_id(&db, id).await.ok().flatten()?;
            let n = records::attempts_of(&db, id, 100).await.ok()?.len();
            (p.status == status && n > attempts).then_some(())
        }
    })
    .await
}

async fn attempts(s: &Scenario, id: i64) -> usize {
    records::attempts_of(&s.db, id, 100)
        .await
        .map(|a| a.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_agrees_at_every_door_for_every_role() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    options.settings.push(format!("--operators={OPERATOR}"));
    scenario::run(options, async |s| {
        s.kube.set_behaviour_for_image(
            "ghcr.io/acme/flaky",
            Behaviour::CrashLoopBackOff {
                logs: vec!["panic: cache unavailable".into()],
            },
        );
        let running_pr = s.open_pr_with_config("feature/doors", READY_IMAGE).await;
        let flaky_pr = s.open_pr_with_config("feature/flaky", FLAKY_IMAGE).await;
        let running = s
            .wait_status(running_pr.number, PreviewStatus::Running)
            .await;
        let failed = s.wait_status(flaky_pr.number, PreviewStatus::Failed).await;
        // One preview to delete at each door.
        let mut doomed = Vec::new();
        for door in ["dashboard", "rest", "mcp"] {
            let pr = s
                .open_pr_with_config(&format!("feature/delete-{door}"), READY_IMAGE)
                .await;
            doomed.push(s.wait_status(pr.number, PreviewStatus::Running).await);
        }

        let mut people = vec![
            (person(s, MAINTAINER).await?, "writer"),
            (person(s, OUTSIDER).await?, "reader"),
            (person(s, OPERATOR).await?, "operator"),
            (person(s, STRANGER).await?, "stranger"),
        ];
        // verb, which preview, then the outcome for writer, reader, operator, stranger.
        type Row = (Verb, &'static str, [Outcome; 4]);
        let table: [Row; 8] = [
            (Verb::List, "running", [Done, Done, Done, NotFound]),
            (Verb::View, "running", [Done, Done, Done, NotFound]),
            (Verb::Logs, "running", [Done, Done, Done, NotFound]),
            (
                Verb::Retry,
                "running",
                [Conflict, Forbidden, Conflict, NotFound],
            ),
            (Verb::Retry, "failed", [Done, Forbidden, Done, NotFound]),
            (Verb::Redeploy, "running", [Done, Forbidden, Done, NotFound]),
            (Verb::Extend, "running", [Done, Forbidden, Done, NotFound]),
            // The writer deletes it; the operator then finds it already going.
            (
                Verb::Delete,
                "doomed",
                [Done, Forbidden, Conflict, NotFound],
            ),
        ];
        let mut seen = Vec::new();
        for (d, door) in [Door::Dashboard, Door::Rest, Door::Mcp]
            .into_iter()
            .enumerate()
        {
            for (verb, which, expected) in &table {
                for (i, (who, role)) in people.iter_mut().enumerate() {
                    let target = match *which {
                        "running" => &running,
                        "failed" => &failed,
                        _ => &doomed[d],
                    };
                    let before = attempts(s, target.id).await;
                    let got = knock(s, who, door, *verb, (target.id, &target.namespace)).await?;
                    seen.push((door, *verb, *which, *role, got));
                    assert_eq!(
                        got, expected[i],
                        "{door:?} {verb:?} {which} as {role} ({})",
                        who.login
                    );
                    // Let a change settle before the next knock meets the preview.
                    if got == Done {
                        match verb {
                            Verb::Retry => {
                                settle(s, target.id, PreviewStatus::Failed, before).await?
                            }
                            Verb::Redeploy => {
                                settle(s, target.id, PreviewStatus::Running, before).await?;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // The doors agree with each other, row by row.
        for (door, verb, which, role, got) in &seen {
            let at_dashboard = seen
                .iter()
                .find(|(d, v, w, r, _)| {
                    *d == Door::Dashboard && v == verb && w == which && r == role
                })
                .map(|e| e.4);
            assert_eq!(Some(*got), at_dashboard, "{door:?} {verb:?} {which} {role}");
        }
        for doomed in &doomed {
            let p = records::preview_by_id(&s.db, doomed.id)
                .await?
                .expect("row");
            assert!(
                matches!(p.status, PreviewStatus::Deleting | PreviewStatus::Deleted),
                "each door's delete took: {:?}",
                p.status
            );
        }
        for (who, _) in people {
            who.mcp.cancel().await?;
        }
        Ok(())
    })
    .await
}
