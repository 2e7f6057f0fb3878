//! GitHub's JSON objects rendered from the simulator's state: users, repositories, pull requests,
//! issues, comments, labels, check runs and suites, deployments and their statuses,
//! installations and the App. The REST answers and the webhook payloads use the same renderers,
//! as GitHub does, so a field is right (or wrong) in both places.
//!
//! Field names and types follow GitHub's REST description; the shapes parse with octocrab's
//! models (the simulator's own tests check that). API URLs point at the simulator; `html_url`s
//! point at `https://github.com`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::{
    encoding::{node_id, timestamp, user_id},
    state::{
        APP_SLUG, BOT_LOGIN, CheckRunRec, CommentRec, DeploymentRec, EVENTS, InstallationRec,
        PERMISSIONS, PrRec, RepoRec, Shared, State, StatusRec,
    },
};

pub(crate) const HTML: &str = "https://github.com";

fn ts(t: DateTime<Utc>) -> Value {
    Value::String(timestamp(t))
}

fn opt_ts(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, ts)
}

/// A user or organization account (`simple-user`). Logins ending in `[bot]` are bots.
pub(crate) fn account(api: &str, login: &str, kind: &str) -> Value {
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        kind
    };
    let id = user_id(login);
    let u = format!("{api}/users/{login}");
    json!({
        "login": login,
        "id": id,
        "node_id": node_id(if kind == "Organization" { "O" } else { "U" }, id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "",
        "url": u,
        "html_url": format!("{HTML}/{login}"),
        "followers_url": format!("{u}/followers"),
        "following_url": format!("{u}/following{{/other_user}}"),
        "gists_url": format!("{u}/gists{{/gist_id}}"),
        "starred_url": format!("{u}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{u}/subscriptions"),
        "organizations_url": format!("{u}/orgs"),
        "repos_url": format!("{u}/repos"),
        "events_url": format!("{u}/events{{/privacy}}"),
        "received_events_url": format!("{u}/received_events"),
        "type": kind,
        "user_view_type": "public",
        "site_admin": false,
    })
}

pub(crate) fn user(api: &str, login: &str) -> Value {
    account(api, login, "User")
}

/// The App's permissions object.
pub(crate) fn permissions() -> Value {
    Value::Object(
        PERMISSIONS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect(),
    )
}

/// The App (`GET /app`, `check_run.app`).
pub(crate) fn app(shared: &Shared, installations: usize) -> Value {
    let api = &shared.base_url;
    let id = i64::try_from(shared.opts.app_id).unwrap_or_default();
    json!({
        "id": shared.opts.app_id,
        "slug": APP_SLUG,
        "client_id": format!("Iv1.{:016x}", shared.opts.app_id),
        "node_id": node_id("A", id),
        "owner": account(api, "previewd-org", "Organization"),
        "name": "previewd",
        "description": "A live preview environment on Kubernetes for every pull request.",
        "external_url": "https://previewd.example.com",
        "html_url": format!("{HTML}/apps/{APP_SLUG}"),
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": permissions(),
        "events": EVENTS,
        "installations_count": installations,
    })
}

/// A full installation object (`GET /app/installations`, installation webhooks).
pub(crate) fn installation(shared: &Shared, inst: &InstallationRec) -> Value {
    let api = &shared.base_url;
    let owner = account(api, &inst.account, "Organization");
    json!({
        "id": inst.id,
        "client_id": format!("Iv1.{:016x}", shared.opts.app_id),
        "account": owner,
        "repository_selection": "selected",
        "access_tokens_url": format!("{api}/app/installations/{}/access_tokens", inst.id),
        "repositories_url": format!("{api}/installation/repositories"),
        "html_url": format!("{HTML}/organizations/{}/settings/installations/{}", inst.account, inst.id),
        "app_id": shared.opts.app_id,
        "app_slug": APP_SLUG,
        "target_id": owner["id"],
        "target_type": "Organization",
        "permissions": permissions(),
        "events": EVENTS,
        "created_at": ts(inst.created_at),
        "updated_at": ts(inst.created_at),
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": if inst.suspended { account(api, &inst.account, "User") } else { Value::Null },
        "suspended_at": if inst.suspended { ts(inst.suspended_at) } else { Value::Null },
    })
}

/// The `installation` field of repository webhooks.
pub(crate) fn installation_ref(id: i64) -> Value {
    json!({"id": id, "node_id": node_id("IN", id)})
}

/// The short repository form of installation webhooks.
pub(crate) fn repo_short(repo: &RepoRec) -> Value {
    json!({
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "private": repo.private,
    })
}

/// What distinguishes one repository object from another.
struct RepoView<'a> {
    id: i64,
    owner: &'a str,
    name: &'a str,
    private: bool,
    fork: bool,
    default_branch: &'a str,
    created: DateTime<Utc>,
}

fn repository(api: &str, v: &RepoView<'_>) -> Value {
    let full = format!("{}/{}", v.owner, v.name);
    let u = format!("{api}/repos/{full}");
    let mut out = json!({
        "id": v.id,
        "node_id": node_id("R", v.id),
        "name": v.name,
        "full_name": full,
        "private": v.private,
        "owner": account(api, v.owner, if v.fork { "User" } else { "Organization" }),
        "html_url": format!("{HTML}/{full}"),
        "description": null,
        "fork": v.fork,
        "url": u,
        "archive_url": format!("{u}/{{archive_format}}{{/ref}}"),
        "branches_url": format!("{u}/branches{{/branch}}"),
        "collaborators_url": format!("{u}/collaborators{{/collaborator}}"),
        "comments_url": format!("{u}/comments{{/number}}"),
        "commits_url": format!("{u}/commits{{/sha}}"),
        "contents_url": format!("{u}/contents/{{+path}}"),
        "deployments_url": format!("{u}/deployments"),
        "hooks_url": format!("{u}/hooks"),
        "issue_comment_url": format!("{u}/issues/comments{{/number}}"),
        "issues_url": format!("{u}/issues{{/number}}"),
        "labels_url": format!("{u}/labels{{/name}}"),
        "pulls_url": format!("{u}/pulls{{/number}}"),
        "statuses_url": format!("{u}/statuses/{{sha}}"),
        "git_url": format!("git://github.com/{full}.git"),
        "ssh_url": format!("git@github.com:{full}.git"),
        "clone_url": format!("{HTML}/{full}.git"),
    });
    let urls = json!({
        "assignees_url": format!("{u}/assignees{{/user}}"),
        "blobs_url": format!("{u}/git/blobs{{/sha}}"),
        "compare_url": format!("{u}/compare/{{base}}...{{head}}"),
        "contributors_url": format!("{u}/contributors"),
        "downloads_url": format!("{u}/downloads"),
        "events_url": format!("{u}/events"),
        "forks_url": format!("{u}/forks"),
        "git_commits_url": format!("{u}/git/commits{{/sha}}"),
        "git_refs_url": format!("{u}/git/refs{{/sha}}"),
        "git_tags_url": format!("{u}/git/tags{{/sha}}"),
        "issue_events_url": format!("{u}/issues/events{{/number}}"),
        "keys_url": format!("{u}/keys{{/key_id}}"),
        "languages_url": format!("{u}/languages"),
        "merges_url": format!("{u}/merges"),
        "milestones_url": format!("{u}/milestones{{/number}}"),
        "notifications_url": format!("{u}/notifications{{?since,all,participating}}"),
        "releases_url": format!("{u}/releases{{/id}}"),
        "stargazers_url": format!("{u}/stargazers"),
        "subscribers_url": format!("{u}/subscribers"),
        "subscription_url": format!("{u}/subscription"),
        "tags_url": format!("{u}/tags"),
        "teams_url": format!("{u}/teams"),
        "trees_url": format!("{u}/git/trees{{/sha}}"),
        "mirror_url": null,
        "svn_url": format!("{HTML}/{full}"),
    });
    merge(&mut out, urls);
    let rest = json!({
        "created_at": ts(v.created),
        "updated_at": ts(v.created),
        // Stable, as on GitHub between pushes: answers that do not change keep their ETag.
        "pushed_at": ts(v.created),
        "homepage": null,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": true,
        "has_projects": true,
        "has_downloads": true,
        "has_wiki": false,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "archived": false,
        "disabled": false,
        "open_issues_count": 0,
        "license": null,
        "allow_forking": true,
        "is_template": false,
        "topics": [],
        "visibility": if v.private { "private" } else { "public" },
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": v.default_branch,
    });
    merge(&mut out, rest);
    out
}

/// Adds `more`'s fields to `into` (json! objects are split where they would exceed the macro's
/// recursion limit).
fn merge(into: &mut Value, more: Value) {
    if let (Some(into), Value::Object(more)) = (into.as_object_mut(), more) {
        into.extend(more);
    }
}

/// A repository (`GET /repos/{owner}/{repo}`, `repository` of webhooks).
pub(crate) fn repo(api: &str, r: &RepoRec) -> Value {
    repository(
        api,
        &RepoView {
            id: r.id,
            owner: &r.owner,
            name: &r.name,
            private: r.private,
            fork: false,
            default_branch: &r.default_branch,
            created: r.created_at,
        },
    )
}

/// The fork a fork pull request's head lives in (public, owned by the author).
fn fork_repo(api: &str, r: &RepoRec, pr: &PrRec) -> Value {
    repository(
        api,
        &RepoView {
            id: pr.fork_repo_id,
            owner: &pr.author,
            name: &r.name,
            private: false,
            fork: true,
            default_branch: &r.default_branch,
            created: pr.created_at,
        },
    )
}

pub(crate) fn label(api: &str, r: &RepoRec, name: &str, id: i64) -> Value {
    json!({
        "id": id,
        "node_id": node_id("LA", id),
        "url": format!("{api}/repos/{}/labels/{}", r.full_name(), url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()),
        "name": name,
        "color": "ededed",
        "default": false,
        "description": null,
    })
}

fn labels(api: &str, r: &RepoRec, names: &[String]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| label(api, r, n, r.labels.get(n).copied().unwrap_or_default()))
            .collect(),
    )
}

/// `author_association` of a login on a repository.
pub(crate) fn association(r: &RepoRec, login: &str) -> &'static str {
    if login.eq_ignore_ascii_case(&r.owner) {
        "OWNER"
    } else if login == BOT_LOGIN {
        "NONE"
    } else if r.role(login) != "none" {
        "COLLABORATOR"
    } else {
        "CONTRIBUTOR"
    }
}

/// A pull request (`GET /repos/{owner}/{repo}/pulls/{id}`, `pull_request` webhooks).
pub(crate) fn pull_request(api: &str, st: &State, r: &RepoRec, pr: &PrRec) -> Value {
    let full = r.full_name();
    let u = format!("{api}/repos/{full}/pulls/{}", pr.number);
    let issue = format!("{api}/repos/{full}/issues/{}", pr.number);
    let head_repo = if pr.from_fork {
        fork_repo(api, r, pr)
    } else {
        repo(api, r)
    };
    let head_owner = if pr.from_fork {
        pr.author.clone()
    } else {
        r.owner.clone()
    };
    let comments = st
        .comments
        .values()
        .filter(|c| c.repo == State::key(&full) && c.number == pr.number)
        .count();
    let mut out = json!({
        "url": u,
        "id": pr.id,
        "node_id": node_id("PR", pr.id),
        "html_url": format!("{HTML}/{full}/pull/{}", pr.number),
        "diff_url": format!("{HTML}/{full}/pull/{}.diff", pr.number),
        "patch_url": format!("{HTML}/{full}/pull/{}.patch", pr.number),
        "issue_url": issue,
        "number": pr.number,
        "state": pr.state,
        "locked": false,
        "title": pr.title,
        "user": user(api, &pr.author),
        "body": null,
        "created_at": ts(pr.created_at),
        "updated_at": ts(pr.updated_at),
        "closed_at": opt_ts(pr.closed_at),
        "merged_at": opt_ts(pr.merged_at),
        "merge_commit_sha": pr.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "labels": labels(api, r, &pr.labels),
        "milestone": null,
        "draft": pr.draft,
    });
    let rest = json!({
        "commits_url": format!("{u}/commits"),
        "review_comments_url": format!("{u}/comments"),
        "review_comment_url": format!("{api}/repos/{full}/pulls/comments{{/number}}"),
        "comments_url": format!("{issue}/comments"),
        "statuses_url": format!("{api}/repos/{full}/statuses/{}", pr.head_sha),
        "head": {
            "label": format!("{head_owner}:{}", pr.head_ref),
            "ref": pr.head_ref,
            "sha": pr.head_sha,
            "user": account(api, &head_owner, if pr.from_fork { "User" } else { "Organization" }),
            "repo": head_repo,
        },
        "base": {
            "label": format!("{}:{}", r.owner, pr.base_ref),
            "ref": pr.base_ref,
            "sha": pr.base_sha,
            "user": account(api, &r.owner, "Organization"),
            "repo": repo(api, r),
        },
        "author_association": association(r, &pr.author),
        "auto_merge": null,
        "active_lock_reason": null,
        "merged": pr.merged,
        "mergeable": null,
        "rebaseable": null,
        "mergeable_state": "unknown",
        "merged_by": if pr.merged { user(api, &pr.author) } else { Value::Null },
        "comments": comments,
        "review_comments": 0,
        "maintainer_can_modify": false,
        "commits": 1,
        "additions": 1,
        "deletions": 0,
        "changed_files": 1,
    });
    merge(&mut out, rest);
    let link = |href: String| json!({ "href": href });
    merge(
        &mut out,
        json!({"_links": {
            "self": link(u.clone()),
            "html": link(format!("{HTML}/{full}/pull/{}", pr.number)),
            "issue": link(issue.clone()),
            "comments": link(format!("{issue}/comments")),
            "review_comments": link(format!("{u}/comments")),
            "review_comment": link(format!("{api}/repos/{full}/pulls/comments{{/number}}")),
            "commits": link(format!("{u}/commits")),
            "statuses": link(format!("{api}/repos/{full}/statuses/{}", pr.head_sha)),
        }}),
    );
    out
}

/// A pull request as listings show it (`pull-request-simple`): without the counts and merge
/// state only the single pull request carries — so a new comment does not change the listing.
pub(crate) fn pull_request_simple(api: &str, st: &State, r: &RepoRec, pr: &PrRec) -> Value {
    let mut out = pull_request(api, st, r, pr);
    if let Some(m) = out.as_object_mut() {
        for key in [
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        ] {
            m.remove(key);
        }
    }
    out
}

/// The short pull request form inside check runs and suites.
pub(crate) fn pull_request_min(api: &str, r: &RepoRec, pr: &PrRec) -> Value {
    let repo_ref =
        json!({"id": r.id, "url": format!("{api}/repos/{}", r.full_name()), "name": r.name});
    json!({
        "url": format!("{api}/repos/{}/pulls/{}", r.full_name(), pr.number),
        "id": pr.id,
        "number": pr.number,
        "head": {"ref": pr.head_ref, "sha": pr.head_sha, "repo": repo_ref},
        "base": {"ref": pr.base_ref, "sha": pr.base_sha, "repo": repo_ref},
    })
}

/// Open same-repository pull requests whose head is `sha`. As on GitHub, pull requests from forks
/// are never listed in a check run's or suite's `pull_requests`.
pub(crate) fn prs_for_sha(api: &str, r: &RepoRec, sha: &str) -> Value {
    Value::Array(
        r.prs
            .values()
            .filter(|p| p.state == "open" && !p.from_fork && p.head_sha == sha)
            .map(|p| pull_request_min(api, r, p))
            .collect(),
    )
}

/// The issue side of a pull request (`issue` of `issue_comment` webhooks).
pub(crate) fn issue(api: &str, st: &State, r: &RepoRec, pr: &PrRec) -> Value {
    let full = r.full_name();
    let u = format!("{api}/repos/{full}/issues/{}", pr.number);
    let comments = st
        .comments
        .values()
        .filter(|c| c.repo == State::key(&full) && c.number == pr.number)
        .count();
    json!({
        "url": u,
        "repository_url": format!("{api}/repos/{full}"),
        "labels_url": format!("{u}/labels{{/name}}"),
        "comments_url": format!("{u}/comments"),
        "events_url": format!("{u}/events"),
        "html_url": format!("{HTML}/{full}/pull/{}", pr.number),
        "id": pr.issue_id,
        "node_id": node_id("PR", pr.id),
        "number": pr.number,
        "title": pr.title,
        "user": user(api, &pr.author),
        "labels": labels(api, r, &pr.labels),
        "state": pr.state,
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": comments,
        "created_at": ts(pr.created_at),
        "updated_at": ts(pr.updated_at),
        "closed_at": opt_ts(pr.closed_at),
        "author_association": association(r, &pr.author),
        "active_lock_reason": null,
        "draft": pr.draft,
        "pull_request": {
            "url": format!("{api}/repos/{full}/pulls/{}", pr.number),
            "html_url": format!("{HTML}/{full}/pull/{}", pr.number),
            "diff_url": format!("{HTML}/{full}/pull/{}.diff", pr.number),
            "patch_url": format!("{HTML}/{full}/pull/{}.patch", pr.number),
            "merged_at": opt_ts(pr.merged_at),
        },
        "body": null,
        "state_reason": null,
    })
}

/// An issue comment.
pub(crate) fn comment(api: &str, r: &RepoRec, c: &CommentRec) -> Value {
    let full = r.full_name();
    let id = c.comment.id;
    json!({
        "url": format!("{api}/repos/{full}/issues/comments/{id}"),
        "html_url": format!("{HTML}/{full}/pull/{}#issuecomment-{id}", c.number),
        "issue_url": format!("{api}/repos/{full}/issues/{}", c.number),
        "id": id,
        "node_id": node_id("IC", id),
        "user": user(api, &c.comment.user_login),
        "created_at": ts(c.comment.created_at),
        "updated_at": ts(c.comment.updated_at),
        "author_association": association(r, &c.comment.user_login),
        "body": c.comment.body,
        "performed_via_github_app": null,
    })
}

/// A check suite (`check_suite` webhooks, `check_run.check_suite`).
pub(crate) fn check_suite(
    shared: &Shared,
    st: &State,
    r: &RepoRec,
    suite_id: i64,
    sha: &str,
) -> Value {
    let api = &shared.base_url;
    let runs: Vec<&CheckRunRec> = st
        .check_runs
        .values()
        .filter(|c| c.suite_id == suite_id)
        .collect();
    let status = if runs.is_empty() {
        "queued"
    } else if runs.iter().all(|c| c.run.status == "completed") {
        "completed"
    } else {
        "in_progress"
    };
    let conclusion = (status == "completed").then(|| {
        let order = [
            "action_required",
            "cancelled",
            "timed_out",
            "failure",
            "neutral",
            "skipped",
            "stale",
            "success",
        ];
        runs.iter()
            .filter_map(|c| c.run.conclusion.as_deref())
            .min_by_key(|c| order.iter().position(|o| o == c).unwrap_or(order.len()))
            .unwrap_or("success")
            .to_owned()
    });
    let created = runs
        .first()
        .and_then(|c| c.run.started_at)
        .unwrap_or_else(Utc::now);
    json!({
        "id": suite_id,
        "node_id": node_id("CS", suite_id),
        "head_branch": r.sha_branch(sha),
        "head_sha": sha,
        "status": status,
        "conclusion": conclusion,
        "url": format!("{api}/repos/{}/check-suites/{suite_id}", r.full_name()),
        "before": r.default_sha,
        "after": sha,
        "pull_requests": prs_for_sha(api, r, sha),
        "app": app(shared, st.installations.len()),
        "created_at": ts(created),
        "updated_at": ts(runs
            .iter()
            .filter_map(|c| c.run.completed_at.or(c.run.started_at))
            .max()
            .unwrap_or(created)),
        "rerequestable": true,
        "runs_rerequestable": true,
        "latest_check_runs_count": runs.len(),
        "check_runs_url": format!("{api}/repos/{}/check-suites/{suite_id}/check-runs", r.full_name()),
        "head_commit": {
            "id": sha,
            "tree_id": super::encoding::random_hex(40),
            "message": "A change",
            "timestamp": ts(created),
            "author": {"name": "Octo Cat", "email": "octocat@example.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        },
    })
}

/// A check run (REST and `check_run` webhooks).
pub(crate) fn check_run(shared: &Shared, st: &State, r: &RepoRec, c: &CheckRunRec) -> Value {
    let api = &shared.base_url;
    let run = &c.run;
    let full = r.full_name();
    let mut suite = check_suite(shared, st, r, c.suite_id, &run.head_sha);
    if let Some(m) = suite.as_object_mut() {
        m.remove("head_commit");
    }
    json!({
        "id": run.id,
        "name": run.name,
        "node_id": node_id("CR", run.id),
        "head_sha": run.head_sha,
        "external_id": run.external_id.clone().unwrap_or_default(),
        "url": format!("{api}/repos/{full}/check-runs/{}", run.id),
        "html_url": format!("{HTML}/{full}/runs/{}", run.id),
        "details_url": run.details_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": opt_ts(run.started_at),
        "completed_at": opt_ts(run.completed_at),
        "output": {
            "title": run.title,
            "summary": run.summary,
            "text": run.text,
            "annotations_count": c.annotations_count,
            "annotations_url": format!("{api}/repos/{full}/check-runs/{}/annotations", run.id),
        },
        "check_suite": suite,
        "app": app(shared, st.installations.len()),
        "pull_requests": prs_for_sha(api, r, &run.head_sha),
    })
}

/// A deployment.
pub(crate) fn deployment(api: &str, r: &RepoRec, d: &DeploymentRec) -> Value {
    let dep = &d.deployment;
    let u = format!("{api}/repos/{}/deployments/{}", r.full_name(), dep.id);
    json!({
        "url": u,
        "id": dep.id,
        "node_id": node_id("DE", dep.id),
        "sha": dep.sha,
        "ref": dep.git_ref,
        "task": d.task,
        "payload": dep.payload,
        "original_environment": d.original_environment,
        "environment": dep.environment,
        "description": dep.description,
        "creator": user(api, BOT_LOGIN),
        "created_at": ts(d.created_at),
        "updated_at": ts(d.created_at),
        "statuses_url": format!("{u}/statuses"),
        "repository_url": format!("{api}/repos/{}", r.full_name()),
        "transient_environment": dep.transient_environment,
        "production_environment": dep.production_environment,
        "performed_via_github_app": null,
    })
}

/// A deployment status.
pub(crate) fn deployment_status(api: &str, r: &RepoRec, s: &StatusRec) -> Value {
    let st = &s.status;
    let dep = format!(
        "{api}/repos/{}/deployments/{}",
        r.full_name(),
        s.deployment_id
    );
    json!({
        "url": format!("{dep}/statuses/{}", st.id),
        "id": st.id,
        "node_id": node_id("DES", st.id),
        "state": st.state,
        "creator": user(api, BOT_LOGIN),
        "description": st.description.clone().unwrap_or_default(),
        "environment": s.environment,
        "target_url": st.log_url.clone().unwrap_or_default(),
        "log_url": st.log_url.clone().unwrap_or_default(),
        "environment_url": st.environment_url.clone().unwrap_or_default(),
        "created_at": ts(s.created_at),
        "updated_at": ts(s.created_at),
        "deployment_url": dep,
        "repository_url": format!("{api}/repos/{}", r.full_name()),
        "performed_via_github_app": null,
    })
}

/// Adds `repository`, `installation` and `sender` to a repository webhook payload.
pub(crate) fn envelope(
    api: &str,
    r: &RepoRec,
    sender: &str,
    mut payload: Map<String, Value>,
) -> Value {
    payload.insert("repository".into(), repo(api, r));
    if let Some(id) = r.installation_id {
        payload.insert("installation".into(), installation_ref(id));
    }
    payload.insert("sender".into(), user(api, sender));
    Value::Object(payload)
}
