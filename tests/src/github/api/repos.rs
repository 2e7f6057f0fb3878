//! Repository endpoints: the installation's repositories, a repository, its pull requests, a
//! collaborator's permission, and file contents.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::{
    auth::{self, Caller},
    encoding::base64_lines,
    payloads,
    reply::{ApiError, ApiResult, Reply, Req, paginate},
    state::{RepoRec, Shared},
};

/// `GET /installation/repositories`
pub(crate) fn installation_repositories(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let Caller::Installation(id) = req.caller else {
        return Err(ApiError::bad_credentials());
    };
    let all: Vec<Value> = {
        let st = shared.lock();
        st.repos
            .iter()
            .filter(|(_, r)| r.installation_id == Some(id))
            .filter(|(k, _)| {
                req.scope
                    .as_ref()
                    .and_then(|s| s.repositories.as_ref())
                    .is_none_or(|only| only.contains(*k))
            })
            .map(|(_, r)| payloads::repo(&shared.base_url, r))
            .collect()
    };
    let (page, link) = paginate(&all, req, &shared.base_url, "/installation/repositories");
    Ok(Reply::ok(&json!({
        "total_count": all.len(),
        "repository_selection": "selected",
        "repositories": page,
    }))
    .with_header("link", link))
}

/// `GET /repos/{owner}/{repo}`
pub(crate) fn get_repo(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let mut v = payloads::repo(&shared.base_url, &st.repos[&key]);
    v["permissions"] =
        json!({"admin": false, "maintain": false, "push": false, "triage": false, "pull": true});
    Ok(Reply::ok(&v))
}

/// `GET /repos/{owner}/{repo}/pulls?state=&head=&base=&per_page=&page=` — newest first.
pub(crate) fn list_pulls(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let state_filter = req.query.get("state").map_or("open", String::as_str);
    if !["open", "closed", "all"].contains(&state_filter) {
        return Err(ApiError::validation(
            "PullRequest",
            vec![super::super::reply::Problem::invalid("state", None)],
        ));
    }
    let all: Vec<Value> = {
        let st = shared.lock();
        let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
        let r = &st.repos[&key];
        r.prs
            .values()
            .rev()
            .filter(|p| state_filter == "all" || p.state == state_filter)
            .filter(|p| req.query.get("base").is_none_or(|b| &p.base_ref == b))
            .filter(|p| {
                req.query.get("head").is_none_or(|h| {
                    let owner = if p.from_fork { &p.author } else { &r.owner };
                    h.eq_ignore_ascii_case(&format!("{owner}:{}", p.head_ref))
                })
            })
            .map(|p| payloads::pull_request_simple(&shared.base_url, &st, r, p))
            .collect()
    };
    let path = format!("/repos/{}/pulls", req.repo_name());
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

/// `GET /repos/{owner}/{repo}/pulls/{id}`
pub(crate) fn get_pull(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let number = u64::try_from(req.id("id")?).map_err(|_| ApiError::not_found())?;
    let st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let r = &st.repos[&key];
    let pr = r.prs.get(&number).ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(&payloads::pull_request(
        &shared.base_url,
        &st,
        r,
        pr,
    )))
}

/// `GET /repos/{owner}/{repo}/pulls/{id}/files` — files on the head that differ from the default
/// branch (see `GitHubSim::put_file`), paged.
pub(crate) fn pull_files(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let number = u64::try_from(req.id("id")?).map_err(|_| ApiError::not_found())?;
    let all: Vec<Value> = {
        let st = shared.lock();
        let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
        let r = &st.repos[&key];
        let pr = r.prs.get(&number).ok_or_else(ApiError::not_found)?;
        let api = &shared.base_url;
        let full = r.full_name();
        r.changed_files(pr)
            .into_iter()
            .map(|(path, content, status)| {
                let content = String::from_utf8_lossy(&content);
                let lines = content.lines().count();
                json!({
                    "sha": blob_sha(content.as_bytes()),
                    "filename": path,
                    "status": status,
                    "additions": lines,
                    "deletions": 0,
                    "changes": lines,
                    "blob_url": format!("{}/{full}/blob/{}/{path}", payloads::HTML, pr.head_sha),
                    "raw_url": format!("{}/{full}/raw/{}/{path}", payloads::HTML, pr.head_sha),
                    "contents_url": format!("{api}/repos/{full}/contents/{path}?ref={}", pr.head_sha),
                    "patch": content.lines().map(|l| format!("+{l}")).collect::<Vec<_>>().join("\n"),
                })
            })
            .collect()
    };
    let path = format!("/repos/{}/pulls/{number}/files", req.repo_name());
    let (page, link) = paginate(&all, req, &shared.base_url, &path);
    Ok(Reply::ok(&Value::Array(page)).with_header("link", link))
}

/// `GET /repos/{owner}/{repo}/collaborators/{name}/permission`: `permission` is the legacy
/// value (maintain reads as write, triage as read, a custom role as its base role's legacy
/// value), `role_name` the real role, a custom role's own name included.
pub(crate) fn permission(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let login = req.param("name");
    let r = &st.repos[&key];
    let (role_name, base) = match r.custom_roles.get(&login.to_ascii_lowercase()) {
        Some((name, base)) => (name.clone(), base.clone()),
        None => {
            let role = r.role(login);
            (role.clone(), role)
        }
    };
    let legacy = match base.as_str() {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    };
    let rank = ["read", "triage", "write", "maintain", "admin"]
        .iter()
        .position(|r| *r == base);
    let at_least = |r: usize| rank.is_some_and(|have| have >= r);
    let mut user = payloads::user(&shared.base_url, login);
    user["permissions"] = json!({
        "admin": at_least(4), "maintain": at_least(3), "push": at_least(2),
        "triage": at_least(1), "pull": at_least(0),
    });
    user["role_name"] = Value::String(role_name.clone());
    Ok(Reply::ok(
        &json!({"permission": legacy, "role_name": role_name, "user": user}),
    ))
}

fn blob_sha(content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())[..40].to_owned()
}

fn entry(api: &str, r: &RepoRec, git_ref: &str, path: &str, content: Option<&[u8]>) -> Value {
    let full = r.full_name();
    let name = path.rsplit('/').next().unwrap_or(path);
    let url = format!("{api}/repos/{full}/contents/{path}?ref={git_ref}");
    let html = format!("{}/{full}/blob/{git_ref}/{path}", payloads::HTML);
    let sha = blob_sha(content.unwrap_or(path.as_bytes()));
    let git = format!("{api}/repos/{full}/git/blobs/{sha}");
    let mut v = json!({
        "type": if content.is_some() { "file" } else { "dir" },
        "size": content.map_or(0, <[u8]>::len),
        "name": name,
        "path": path,
        "sha": sha,
        "url": url,
        "git_url": git,
        "html_url": html,
        "download_url": content.map(|_| format!("https://raw.githubusercontent.com/{full}/{git_ref}/{path}")),
        "_links": {"self": url, "git": git, "html": html},
    });
    if let Some(content) = content {
        v["encoding"] = json!("base64");
        v["content"] = Value::String(base64_lines(content));
    }
    v
}

/// `GET /repos/{owner}/{repo}/contents/{path}?ref=` — a file (base64, in 60-character lines), a
/// directory listing, or 404. `Accept: application/vnd.github.raw` gets the bytes.
pub(crate) fn contents(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let st = shared.lock();
    let key = auth::repo_access(&st, req.caller, &req.repo_name())?;
    let r = &st.repos[&key];
    let path = req.param("path").trim_matches('/').to_owned();
    let git_ref = req
        .query
        .get("ref")
        .cloned()
        .unwrap_or_else(|| r.default_branch.clone());
    let Ok(file) = r.file(&git_ref, &path) else {
        return Err(ApiError::new(
            404,
            format!("No commit found for the ref {git_ref}"),
        ));
    };
    let raw = req
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("vnd.github.raw") || a.contains("vnd.github.v3.raw"));
    if let Some(content) = file {
        if raw {
            return Ok(Reply {
                status: 200,
                body: content.clone(),
                content_type: "application/vnd.github.raw; charset=utf-8",
                headers: Vec::new(),
            });
        }
        return Ok(Reply::ok(&entry(
            &shared.base_url,
            r,
            &git_ref,
            &path,
            Some(content),
        )));
    }
    let listing = r.dir_entries(&git_ref, &path);
    if listing.is_empty() {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = listing
        .iter()
        .map(|(p, c)| {
            let mut v = entry(&shared.base_url, r, &git_ref, p, c.as_deref());
            if let Some(m) = v.as_object_mut() {
                m.remove("content");
                m.remove("encoding");
            }
            v
        })
        .collect();
    Ok(Reply::ok(&Value::Array(items)))
}
