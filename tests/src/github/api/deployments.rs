//! Deployments and their statuses.
//!
//! As on GitHub: `ref` is required and must resolve to a commit; omitting `required_contexts`
//! makes GitHub check every check run on the commit first, and a pending or failed one refuses the
//! deployment with 409 (send `[]` to skip the check); a `success` status marks earlier
//! non-transient, non-production deployments of the same environment `inactive` unless
//! `auto_inactive` is false. Statuses are listed newest first.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};

use super::super::{
    auth,
    model::{Deployment, DeploymentStatus},
    payloads,
    reply::{ApiError, ApiResult, Fields, Problem, Reply, Req, paginate},
    state::{DeploymentRec, Shared, State, StatusRec},
};

const STATES: &[&str] = &[
    "error",
    "failure",
    "inactive",
    "in_progress",
    "queued",
    "pending",
    "success",
];
const PASSING: &[&str] = &["success", "neutral", "skipped"];

/// `POST /repos/{owner}/{repo}/deployments`
pub(crate) fn create(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let body = req.json()?;
    let mut f = Fields::new(&body);
    let git_ref = f.required("ref");
    let task = f.string("task").unwrap_or_else(|| "deploy".to_owned());
    let auto_merge = f.boolean("auto_merge").unwrap_or(true);
    let environment = f
        .string("environment")
        .unwrap_or_else(|| "production".to_owned());
    let description = f.bounded("description", 140);
    let transient = f.boolean("transient_environment").unwrap_or(false);
    let production = f
        .boolean("production_environment")
        .unwrap_or(environment == "production");
    let required_contexts: Option<Vec<String>> = match body.get("required_contexts") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => match a.iter().map(|v| v.as_str().map(str::to_owned)).collect() {
            Some(list) => Some(list),
            None => {
                f.problems.push(Problem::invalid("required_contexts", None));
                None
            }
        },
        Some(_) => {
            f.problems.push(Problem::invalid("required_contexts", None));
            None
        }
    };
    let payload = match body.get("payload") {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            f.problems.push(Problem::invalid("payload", None));
            Value::Null
        }
    };
    f.finish("Deployment")?;
    let git_ref = git_ref.unwrap_or_default();

    let mut st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let Some(sha) = st.repos[&key].resolve_sha(&git_ref) else {
        return Err(ApiError::new(422, format!("No ref found for: {git_ref}")));
    };
    // Commit-status verification, as GitHub does before creating a deployment.
    let runs: Vec<(String, Option<String>)> = {
        let mut latest: std::collections::BTreeMap<String, Option<String>> = Default::default();
        for c in st
            .check_runs
            .values()
            .filter(|c| c.repo == key && c.run.head_sha == sha)
        {
            latest.insert(c.run.name.clone(), c.run.conclusion.clone());
        }
        latest.into_iter().collect()
    };
    let failing: Vec<&String> = match &required_contexts {
        None => runs
            .iter()
            .filter(|(_, c)| !c.as_deref().is_some_and(|c| PASSING.contains(&c)))
            .map(|(n, _)| n)
            .collect(),
        Some(required) => required
            .iter()
            .filter(|name| {
                !runs
                    .iter()
                    .any(|(n, c)| n == *name && c.as_deref().is_some_and(|c| PASSING.contains(&c)))
            })
            .collect(),
    };
    if !failing.is_empty() {
        let mut e = ApiError::new(
            409,
            format!("Conflict: Commit status checks failed for {git_ref}."),
        );
        e.errors = Some(json!([{
            "contexts": failing.iter().map(|n| json!({"context": n, "state": "pending"})).collect::<Vec<_>>(),
            "resource": "Deployment",
            "field": "required_contexts",
        }]));
        return Err(e);
    }
    let id = st.ids.deployment();
    st.deployments.insert(
        id,
        DeploymentRec {
            repo: key.clone(),
            task,
            original_environment: environment.clone(),
            created_at: Utc::now(),
            deployment: Deployment {
                id,
                sha,
                git_ref,
                environment,
                description,
                transient_environment: transient,
                production_environment: production,
                auto_merge,
                required_contexts: required_contexts.unwrap_or_default(),
                payload,
            },
        },
    );
    Ok(Reply::created(&payloads::deployment(
        &shared.base_url,
        &st.repos[&key],
        &st.deployments[&id],
    )))
}

/// `GET /repos/{owner}/{repo}/deployments?sha=&ref=&task=&environment=` — newest first.
pub(crate) fn list(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let all: Vec<Value> = {
        let st = shared.lock();
        let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
        let q = |k: &str| req.query.get(k);
        st.deployments
            .values()
            .rev()
            .filter(|d| d.repo == key)
            .filter(|d| q("sha").is_none_or(|v| &d.deployment.sha == v))
            .filter(|d| q("ref").is_none_or(|v| &d.deployment.git_ref == v))
            .filter(|d| q("task").is_none_or(|v| &d.task == v))
            .filter(|d| q("environment").is_none_or(|v| &d.deployment.environment == v))
            .map(|d| payloads::deployment(&shared.base_url, &st.repos[&key], d))
            .collect()
    };
    let path = format!("/repos/{}/deployments", req.repo_name());
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

fn deployment_in_repo(st: &State, req: &Req<'_>) -> Result<(String, i64), ApiError> {
    let key = auth::repo_access(st, req.caller, &req.repo_name())?;
    let id = req.id("id")?;
    match st.deployments.get(&id) {
        Some(d) if d.repo == key => Ok((key, id)),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET /repos/{owner}/{repo}/deployments/{id}`
pub(crate) fn get(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let (key, id) = deployment_in_repo(&st, req)?;
    Ok(Reply::ok(&payloads::deployment(
        &shared.base_url,
        &st.repos[&key],
        &st.deployments[&id],
    )))
}

/// `GET /repos/{owner}/{repo}/deployments/{id}/statuses` — newest first.
pub(crate) fn list_statuses(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let all: Vec<Value> = {
        let st = shared.lock();
        let (key, id) = deployment_in_repo(&st, req)?;
        st.statuses_of(id)
            .into_iter()
            .rev()
            .map(|s| payloads::deployment_status(&shared.base_url, &st.repos[&key], s))
            .collect()
    };
    let path = format!(
        "/repos/{}/deployments/{}/statuses",
        req.repo_name(),
        req.param("id")
    );
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

fn add_status(
    st: &mut State,
    deployment_id: i64,
    environment: String,
    status: DeploymentStatus,
) -> i64 {
    let id = st.ids.status();
    st.statuses.insert(
        id,
        StatusRec {
            deployment_id,
            environment,
            created_at: Utc::now(),
            status: DeploymentStatus { id, ..status },
        },
    );
    id
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`
pub(crate) fn create_status(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let body = req.json()?;
    let mut f = Fields::new(&body);
    let state = if f.has("state") && !body["state"].is_null() {
        f.one_of("state", STATES)
    } else {
        f.required("state")
    };
    let target_url = f.string("target_url");
    let log_url = f.string("log_url");
    let description = f.bounded("description", 140);
    let environment = f.string("environment");
    let environment_url = f.string("environment_url");
    let auto_inactive = f.boolean("auto_inactive").unwrap_or(true);
    f.finish("DeploymentStatus")?;

    let mut st = shared.lock();
    let (key, deployment_id) = deployment_in_repo(&st, req)?;
    let state = state.unwrap_or_default();
    let environment = match environment {
        Some(e) => {
            if let Some(d) = st.deployments.get_mut(&deployment_id) {
                d.deployment.environment = e.clone();
            }
            e
        }
        None => st.deployments[&deployment_id]
            .deployment
            .environment
            .clone(),
    };
    let id = add_status(
        &mut st,
        deployment_id,
        environment.clone(),
        DeploymentStatus {
            id: 0,
            state: state.clone(),
            environment_url,
            log_url: log_url.or(target_url),
            description,
        },
    );
    if state == "success" && auto_inactive {
        // Earlier successful non-transient, non-production deployments of this environment.
        let earlier: Vec<i64> = st
            .deployments
            .values()
            .filter(|d| {
                d.repo == key
                    && d.deployment.id < deployment_id
                    && d.deployment.environment == environment
                    && !d.deployment.transient_environment
                    && !d.deployment.production_environment
            })
            .map(|d| d.deployment.id)
            .filter(|d| {
                st.statuses_of(*d)
                    .last()
                    .is_some_and(|s| s.status.state == "success")
            })
            .collect();
        for d in earlier {
            add_status(
                &mut st,
                d,
                environment.clone(),
                DeploymentStatus {
                    id: 0,
                    state: "inactive".to_owned(),
                    environment_url: None,
                    log_url: None,
                    description: None,
                },
            );
        }
    }
    Ok(Reply::created(&payloads::deployment_status(
        &shared.base_url,
        &st.repos[&key],
        &st.statuses[&id],
    )))
}
