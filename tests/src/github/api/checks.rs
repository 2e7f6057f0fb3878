//! Check runs: create, update, get, and list for a ref, with GitHub's validation (status and
//! conclusion vocabularies, conclusion required to complete, at most 3 actions with bounded
//! label/identifier/description, output with title and summary, bounded summary and text).
//!
//! Listing for a ref follows GitHub's default `filter=latest`: only the newest run of each name.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::super::{
    auth,
    model::{CheckRun, CheckRunAction},
    payloads,
    reply::{ApiError, ApiResult, Fields, Problem, Reply, Req, paginate},
    state::{CheckRunRec, Shared, action_from_json},
};

const STATUSES: &[&str] = &[
    "queued",
    "in_progress",
    "completed",
    "waiting",
    "requested",
    "pending",
];
const CONCLUSIONS: &[&str] = &[
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
];
const DOCS: &str = "https://docs.github.com/rest/checks/runs";

/// `output`: title, summary, text, and how many annotations came with it.
struct Output {
    title: Option<String>,
    summary: Option<String>,
    text: Option<String>,
    annotations: u64,
}

/// The fields of a create or update body, validated.
struct Patch {
    name: Option<String>,
    head_sha: Option<String>,
    details_url: Option<String>,
    external_id: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    started_at: Option<chrono::DateTime<Utc>>,
    completed_at: Option<chrono::DateTime<Utc>>,
    output: Option<Output>,
    actions: Option<Vec<CheckRunAction>>,
}

fn validate(body: &Map<String, Value>, creating: bool) -> Result<Patch, ApiError> {
    let mut f = Fields::new(body);
    let name = if creating {
        f.required("name")
    } else {
        f.string("name")
    };
    let head_sha = if creating {
        f.required("head_sha")
    } else {
        None
    };
    let details_url = f.string("details_url");
    let external_id = f.string("external_id");
    let mut status = f.one_of("status", STATUSES);
    let conclusion = f.one_of("conclusion", CONCLUSIONS);
    let started_at = f.time("started_at");
    let completed_at = f.time("completed_at");
    if conclusion.is_some() {
        // A conclusion completes the run, whatever status was sent.
        status = Some("completed".to_owned());
    } else if status.as_deref() == Some("completed") || completed_at.is_some() {
        f.problems.push(Problem::missing("conclusion"));
    }
    let output = match body.get("output") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let mut of = Fields::new(o);
            let title = of.required("title");
            let summary = of.required("summary");
            let text = of.string("text");
            for (field, value) in [("summary", &summary), ("text", &text)] {
                if value.as_ref().is_some_and(|v| v.chars().count() > 65535) {
                    of.problems.push(Problem::invalid(
                        field,
                        Some(format!(
                            "Only 65535 characters are allowed; {} were supplied.",
                            value.as_ref().map_or(0, |v| v.chars().count())
                        )),
                    ));
                }
            }
            let annotations = match o.get("annotations") {
                None | Some(Value::Null) => 0,
                Some(Value::Array(a)) if a.len() <= 50 => a.len() as u64,
                Some(_) => {
                    of.problems.push(Problem::invalid(
                        "annotations",
                        Some("At most 50 annotations per request".into()),
                    ));
                    0
                }
            };
            for p in of.problems {
                f.problems.push(Problem {
                    field: format!("output.{}", p.field),
                    ..p
                });
            }
            Some(Output {
                title,
                summary,
                text,
                annotations,
            })
        }
        Some(_) => {
            f.problems.push(Problem::invalid("output", None));
            None
        }
    };
    let actions = match body.get("actions") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            if list.len() > 3 {
                f.problems.push(Problem::invalid(
                    "actions",
                    Some(format!(
                        "Only 3 actions are allowed; {} were supplied.",
                        list.len()
                    )),
                ));
            }
            for (i, a) in list.iter().enumerate() {
                let Some(o) = a.as_object() else {
                    f.problems
                        .push(Problem::invalid(&format!("actions[{i}]"), None));
                    continue;
                };
                let mut af = Fields::new(o);
                for (field, max) in [("label", 20), ("identifier", 20), ("description", 40)] {
                    match af.required(field) {
                        Some(v) if v.chars().count() > max => af.problems.push(Problem::invalid(
                            field,
                            Some(format!("{field} is too long (maximum is {max} characters)")),
                        )),
                        _ => {}
                    }
                }
                for p in af.problems {
                    f.problems.push(Problem {
                        field: format!("actions[{i}].{}", p.field),
                        ..p
                    });
                }
            }
            Some(list.iter().map(action_from_json).collect())
        }
        Some(_) => {
            f.problems.push(Problem::invalid("actions", None));
            None
        }
    };
    let problems = std::mem::take(&mut f.problems);
    if !problems.is_empty() {
        let mut e = ApiError::validation("CheckRun", problems);
        e.documentation_url = DOCS.to_owned();
        return Err(e);
    }
    Ok(Patch {
        name,
        head_sha,
        details_url,
        external_id,
        status,
        conclusion,
        started_at,
        completed_at,
        output,
        actions,
    })
}

fn apply(run: &mut CheckRun, annotations: &mut u64, p: Patch) {
    let now = Utc::now();
    if let Some(v) = p.name {
        run.name = v;
    }
    if let Some(v) = p.details_url {
        run.details_url = Some(v);
    }
    if let Some(v) = p.external_id {
        run.external_id = Some(v);
    }
    if let Some(v) = p.started_at {
        run.started_at = Some(v);
    }
    if let Some(v) = p.status {
        run.status = v;
    }
    if run.status == "completed" {
        run.conclusion = p.conclusion.or(run.conclusion.take());
        run.completed_at = p.completed_at.or(run.completed_at).or(Some(now));
    } else {
        run.conclusion = None;
        run.completed_at = None;
    }
    if let Some(o) = p.output {
        run.title = o.title;
        run.summary = o.summary;
        run.text = o.text;
        *annotations += o.annotations;
    }
    if let Some(actions) = p.actions {
        run.actions = actions;
    }
}

/// `POST /repos/{owner}/{repo}/check-runs`
pub(crate) fn create(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let body = req.json()?;
    let mut st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let mut patch = validate(&body, true)?;
    let head_sha = patch.head_sha.take().unwrap_or_default();
    let id = st.ids.check_run();
    let suite_id = st.suite_id(&key, &head_sha);
    if let Some(r) = st.repos.get_mut(&key) {
        r.known_refs.insert(head_sha.clone());
    }
    let mut run = CheckRun {
        id,
        name: String::new(),
        head_sha,
        status: "queued".to_owned(),
        conclusion: None,
        external_id: None,
        details_url: None,
        title: None,
        summary: None,
        text: None,
        actions: Vec::new(),
        started_at: Some(Utc::now()),
        completed_at: None,
    };
    let mut annotations = 0;
    apply(&mut run, &mut annotations, patch);
    st.check_runs.insert(
        id,
        CheckRunRec {
            repo: key.clone(),
            suite_id,
            run,
            annotations_count: annotations,
        },
    );
    let v = payloads::check_run(shared, &st, &st.repos[&key], &st.check_runs[&id]);
    Ok(Reply::created(&v))
}

/// `PATCH /repos/{owner}/{repo}/check-runs/{id}`
pub(crate) fn update(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let body = req.json()?;
    let mut st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    if st.check_runs.get(&id).is_none_or(|c| c.repo != key) {
        return Err(ApiError::not_found());
    }
    let patch = validate(&body, false)?;
    if let Some(c) = st.check_runs.get_mut(&id) {
        apply(&mut c.run, &mut c.annotations_count, patch);
    }
    let v = payloads::check_run(shared, &st, &st.repos[&key], &st.check_runs[&id]);
    Ok(Reply::ok(&v))
}

/// `GET /repos/{owner}/{repo}/check-runs/{id}`
pub(crate) fn get(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let id = req.id("id")?;
    let st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    match st.check_runs.get(&id) {
        Some(c) if c.repo == key => Ok(Reply::ok(&payloads::check_run(
            shared,
            &st,
            &st.repos[&key],
            c,
        ))),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/check-runs?check_name=&status=&filter=latest|all`
pub(crate) fn list_for_ref(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let filter = req.query.get("filter").map_or("latest", String::as_str);
    let all: Vec<Value> = {
        let st = shared.lock();
        let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
        let r = &st.repos[&key];
        let git_ref = req.param("ref");
        let sha = r.resolve_sha(git_ref).ok_or_else(|| {
            ApiError::validation(
                "Commit",
                vec![Problem::invalid(
                    "ref",
                    Some(format!("No commit found for SHA: {git_ref}")),
                )],
            )
        })?;
        let mut runs: Vec<&CheckRunRec> = st
            .check_runs
            .values()
            .rev()
            .filter(|c| c.repo == key && c.run.head_sha == sha)
            .filter(|c| req.query.get("check_name").is_none_or(|n| &c.run.name == n))
            .filter(|c| req.query.get("status").is_none_or(|s| &c.run.status == s))
            // Every run here is this simulator's one App's.
            .filter(|_| {
                req.query
                    .get("app_id")
                    .is_none_or(|a| a.parse::<u64>().ok() == Some(shared.opts.app_id))
            })
            .collect();
        if filter == "latest" {
            let mut seen = std::collections::BTreeSet::new();
            runs.retain(|c| seen.insert(c.run.name.clone()));
        }
        runs.iter()
            .map(|c| payloads::check_run(shared, &st, r, c))
            .collect()
    };
    let path = format!(
        "/repos/{}/commits/{}/check-runs",
        req.repo_name(),
        req.param("ref")
    );
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&json!({"total_count": all.len(), "check_runs": page})).with_header("link", link))
}
