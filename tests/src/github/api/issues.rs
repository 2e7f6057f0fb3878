//! The issue side of pull requests: comments (create, list, get, update by PATCH or POST as
//! octocrab sends it, delete) and labels (add, list, remove). Only pull requests exist in the
//! simulator, so an issue number that is not a pull request is 404.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::super::{
    auth,
    model::Comment,
    payloads,
    reply::{ApiError, ApiResult, Fields, Problem, Reply, Req, paginate},
    state::{BOT_LOGIN, CommentRec, Shared, State},
};

const MAX_BODY: usize = 65536;

/// The repository key and pull request number of an `issues/{id}` path, checked.
fn issue(st: &State, req: &Req<'_>) -> Result<(String, u64), ApiError> {
    let key = auth::repo_access(st, req.caller, &req.repo_name())?;
    let number = u64::try_from(req.id("id")?).map_err(|_| ApiError::not_found())?;
    if !st.repos[&key].prs.contains_key(&number) {
        return Err(ApiError::not_found());
    }
    Ok((key, number))
}

fn comment_body(req: &Req<'_>) -> Result<String, ApiError> {
    let body = req.json()?;
    let mut f = Fields::new(&body);
    let text = f.required("body");
    if let Some(t) = &text
        && t.chars().count() > MAX_BODY
    {
        f.problems.push(Problem::invalid(
            "body",
            Some(format!(
                "Body is too long (maximum is {MAX_BODY} characters)"
            )),
        ));
    }
    f.finish("IssueComment")?;
    Ok(text.unwrap_or_default())
}

/// `POST /repos/{owner}/{repo}/issues/{id}/comments`
pub(crate) fn create_comment(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let text = comment_body(req)?;
    let mut st = shared.lock();
    let (key, number) = issue(&st, req)?;
    let id = st.ids.comment();
    let now = Utc::now();
    st.comments.insert(
        id,
        CommentRec {
            repo: key.clone(),
            number,
            comment: Comment {
                id,
                body: text,
                user_login: BOT_LOGIN.to_owned(),
                created_at: now,
                updated_at: now,
            },
        },
    );
    Ok(Reply::created(&payloads::comment(
        &shared.base_url,
        &st.repos[&key],
        &st.comments[&id],
    )))
}

/// `GET /repos/{owner}/{repo}/issues/{id}/comments` — oldest first, paged.
pub(crate) fn list_comments(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let all: Vec<Value> = {
        let st = shared.lock();
        let (key, number) = issue(&st, req)?;
        st.comments
            .values()
            .filter(|c| c.repo == key && c.number == number)
            .map(|c| payloads::comment(&shared.base_url, &st.repos[&key], c))
            .collect()
    };
    let path = format!(
        "/repos/{}/issues/{}/comments",
        req.repo_name(),
        req.param("id")
    );
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

/// The key of the comment's repository, checked to hold comment `id`.
fn comment_in_repo(st: &State, req: &Req<'_>) -> Result<(String, i64), ApiError> {
    let key = auth::repo_access(st, req.caller, &req.repo_name())?;
    let id = req.id("id")?;
    match st.comments.get(&id) {
        Some(c) if c.repo == key => Ok((key, id)),
        _ => Err(ApiError::not_found()),
    }
}

/// `GET /repos/{owner}/{repo}/issues/comments/{id}`
pub(crate) fn get_comment(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let (key, id) = comment_in_repo(&st, req)?;
    Ok(Reply::ok(&payloads::comment(
        &shared.base_url,
        &st.repos[&key],
        &st.comments[&id],
    )))
}

/// `PATCH` (and `POST`, as octocrab sends it) `/repos/{owner}/{repo}/issues/comments/{id}`
pub(crate) fn update_comment(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let text = comment_body(req)?;
    let mut st = shared.lock();
    let (key, id) = comment_in_repo(&st, req)?;
    if let Some(c) = st.comments.get_mut(&id) {
        c.comment.body = text;
        c.comment.updated_at = Utc::now();
    }
    Ok(Reply::ok(&payloads::comment(
        &shared.base_url,
        &st.repos[&key],
        &st.comments[&id],
    )))
}

/// `DELETE /repos/{owner}/{repo}/issues/comments/{id}`
pub(crate) fn delete_comment(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let mut st = shared.lock();
    let (_, id) = comment_in_repo(&st, req)?;
    st.comments.remove(&id);
    Ok(Reply::no_content())
}

fn labels_reply(shared: &Shared, st: &State, key: &str, number: u64) -> Reply {
    let r = &st.repos[key];
    let labels = r.prs[&number]
        .labels
        .iter()
        .map(|n| {
            payloads::label(
                &shared.base_url,
                r,
                n,
                r.labels.get(n).copied().unwrap_or_default(),
            )
        })
        .collect();
    Reply::ok(&Value::Array(labels))
}

/// `GET /repos/{owner}/{repo}/issues/{id}/labels`
pub(crate) fn list_labels(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let (key, number) = issue(&st, req)?;
    Ok(labels_reply(shared, &st, &key, number))
}

/// `POST /repos/{owner}/{repo}/issues/{id}/labels` with `{"labels": [..]}` or a bare array.
pub(crate) fn add_labels(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let parsed: Value = serde_json::from_slice(req.body)
        .map_err(|_| ApiError::new(400, "Problems parsing JSON"))?;
    let list = match &parsed {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match o.get("labels") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                return Err(ApiError::validation(
                    "Label",
                    vec![Problem::missing("labels")],
                ));
            }
        },
        _ => {
            return Err(ApiError::validation(
                "Label",
                vec![Problem::invalid("labels", None)],
            ));
        }
    };
    let names: Vec<String> = list
        .iter()
        .map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::validation("Label", vec![Problem::invalid("labels", None)]))?;
    let mut st = shared.lock();
    let (key, number) = issue(&st, req)?;
    for name in names {
        st.label_id(&key, &name);
        let pr = st.repos.get_mut(&key).and_then(|r| r.prs.get_mut(&number));
        if let Some(pr) = pr
            && !pr.labels.contains(&name)
        {
            pr.labels.push(name);
            pr.updated_at = Utc::now();
        }
    }
    Ok(labels_reply(shared, &st, &key, number))
}

/// `DELETE /repos/{owner}/{repo}/issues/{id}/labels/{name}`
pub(crate) fn remove_label(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let mut st = shared.lock();
    let (key, number) = issue(&st, req)?;
    let name = req.param("name");
    let pr = st.repos.get_mut(&key).and_then(|r| r.prs.get_mut(&number));
    let Some(pr) = pr.filter(|p| p.labels.iter().any(|l| l == name)) else {
        return Err(ApiError::new(404, "Label does not exist"));
    };
    pr.labels.retain(|l| l != name);
    pr.updated_at = Utc::now();
    Ok(labels_reply(shared, &st, &key, number))
}
