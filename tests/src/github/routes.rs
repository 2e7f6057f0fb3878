//! The route table: every REST endpoint the simulator implements, with the credential it wants
//! and its handler. One table serves routing, the `by_route` call counters, fault matching and
//! the "not implemented" check, so the keys can never disagree.
//!
//! Route keys follow the product's convention (`app/src/github/client.rs`): numeric path segments
//! are `{id}`, user and label names `{name}`, the contents path `{path}` (which spans slashes).
//! [`keys`] lists them all.

use std::sync::Arc;

use super::{
    api::{app, checks, deployments, issues, new_app, oauth, orgs, repos},
    encoding::percent_decode,
    reply::{ApiResult, Req},
    state::Shared,
};

/// Which credential a route wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthKind {
    /// The App's JWT (`Authorization: Bearer <jwt>`).
    App,
    /// An installation token (`Authorization: token ghs_…` or `Bearer ghs_…`).
    Installation,
    /// A person's user-to-server token (`Authorization: Bearer ghu_…`).
    User,
    /// None: the browser pages and code exchanges of the manifest and OAuth flows.
    Public,
}

pub(crate) type Handler = fn(&Arc<Shared>, &Req<'_>) -> ApiResult;

pub(crate) struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub auth: AuthKind,
    /// The installation permission (and least level) an installation token needs here, as
    /// GitHub's "permissions required for GitHub Apps" lists it; `None` for JWT routes.
    pub permission: Option<(&'static str, &'static str)>,
    pub handler: Handler,
}

impl Route {
    /// `"METHOD /template"`, as counted in `Calls::by_route`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.template)
    }
}

const fn r(
    method: &'static str,
    template: &'static str,
    auth: AuthKind,
    permission: Option<(&'static str, &'static str)>,
    handler: Handler,
) -> Route {
    Route {
        method,
        template,
        auth,
        permission,
        handler,
    }
}

use AuthKind::{App, Installation as Inst, Public, User};

const JWT: Option<(&str, &str)> = None;
/// Routes a person reaches with their own token: no installation permission applies.
const PERSON: Option<(&str, &str)> = None;
const META: Option<(&str, &str)> = Some(("metadata", "read"));
const CONTENTS: Option<(&str, &str)> = Some(("contents", "read"));
const PULLS: Option<(&str, &str)> = Some(("pull_requests", "read"));
const CHECKS_R: Option<(&str, &str)> = Some(("checks", "read"));
const CHECKS_W: Option<(&str, &str)> = Some(("checks", "write"));
const ISSUES_R: Option<(&str, &str)> = Some(("issues", "read"));
const ISSUES_W: Option<(&str, &str)> = Some(("issues", "write"));
const DEPLOY_R: Option<(&str, &str)> = Some(("deployments", "read"));
const DEPLOY_W: Option<(&str, &str)> = Some(("deployments", "write"));
const MEMBERS: Option<(&str, &str)> = Some(("members", "read"));

#[rustfmt::skip]
pub(crate) static ROUTES: &[Route] = &[
    // The App itself (JWT).
    r("GET", "/app", App, JWT, app::get_app),
    r("GET", "/app/installations", App, JWT, app::list_installations),
    r("GET", "/app/installations/{id}", App, JWT, app::get_installation),
    r("POST", "/app/installations/{id}/access_tokens", App, JWT, app::create_token),
    r("GET", "/app/hook/deliveries", App, JWT, app::list_deliveries),
    r("GET", "/app/hook/deliveries/{id}", App, JWT, app::get_delivery),
    r("POST", "/app/hook/deliveries/{id}/attempts", App, JWT, app::redeliver),
    r("GET", "/repos/{owner}/{repo}/installation", App, JWT, app::repo_installation),
    // The manifest flow: the browser's "new App" pages (web), then the code exchange (API).
    r("POST", "/settings/apps/new", Public, JWT, new_app::for_user),
    r("POST", "/organizations/{org}/settings/apps/new", Public, JWT, new_app::for_organization),
    r("POST", "/app-manifests/{code}/conversions", Public, JWT, app::convert_manifest),
    // Signing people in with the App's OAuth client (web), then as that person (user token).
    r("GET", "/login/oauth/authorize", Public, PERSON, oauth::authorize),
    r("POST", "/login/oauth/access_token", Public, PERSON, oauth::access_token),
    r("GET", "/user", User, PERSON, oauth::user),
    r("GET", "/user/installations", User, PERSON, oauth::installations),
    r("GET", "/user/installations/{id}/repositories", User, PERSON, oauth::installation_repositories),
    // Repositories (installation token).
    r("GET", "/installation/repositories", Inst, META, repos::installation_repositories),
    r("GET", "/repos/{owner}/{repo}", Inst, META, repos::get_repo),
    r("GET", "/repos/{owner}/{repo}/pulls", Inst, PULLS, repos::list_pulls),
    r("GET", "/repos/{owner}/{repo}/pulls/{id}", Inst, PULLS, repos::get_pull),
    r("GET", "/repos/{owner}/{repo}/pulls/{id}/files", Inst, PULLS, repos::pull_files),
    r("GET", "/repos/{owner}/{repo}/collaborators/{name}/permission", Inst, META, repos::permission),
    r("GET", "/repos/{owner}/{repo}/contents", Inst, CONTENTS, repos::contents),
    r("GET", "/repos/{owner}/{repo}/contents/{path}", Inst, CONTENTS, repos::contents),
    // Organization teams (installation token of the organization's installation).
    r("GET", "/orgs/{org}/teams/{team}/memberships/{name}", Inst, MEMBERS, orgs::team_membership),
    // Check runs.
    r("POST", "/repos/{owner}/{repo}/check-runs", Inst, CHECKS_W, checks::create),
    r("GET", "/repos/{owner}/{repo}/check-runs/{id}", Inst, CHECKS_R, checks::get),
    r("PATCH", "/repos/{owner}/{repo}/check-runs/{id}", Inst, CHECKS_W, checks::update),
    r("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", Inst, CHECKS_R, checks::list_for_ref),
    // Issue comments and labels.
    r("GET", "/repos/{owner}/{repo}/issues/{id}/comments", Inst, ISSUES_R, issues::list_comments),
    r("POST", "/repos/{owner}/{repo}/issues/{id}/comments", Inst, ISSUES_W, issues::create_comment),
    r("GET", "/repos/{owner}/{repo}/issues/comments/{id}", Inst, ISSUES_R, issues::get_comment),
    r("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", Inst, ISSUES_W, issues::update_comment),
    r("POST", "/repos/{owner}/{repo}/issues/comments/{id}", Inst, ISSUES_W, issues::update_comment),
    r("DELETE", "/repos/{owner}/{repo}/issues/comments/{id}", Inst, ISSUES_W, issues::delete_comment),
    r("GET", "/repos/{owner}/{repo}/issues/{id}/labels", Inst, ISSUES_R, issues::list_labels),
    r("POST", "/repos/{owner}/{repo}/issues/{id}/labels", Inst, ISSUES_W, issues::add_labels),
    r("DELETE", "/repos/{owner}/{repo}/issues/{id}/labels/{name}", Inst, ISSUES_W, issues::remove_label),
    // Deployments.
    r("GET", "/repos/{owner}/{repo}/deployments", Inst, DEPLOY_R, deployments::list),
    r("POST", "/repos/{owner}/{repo}/deployments", Inst, DEPLOY_W, deployments::create),
    r("GET", "/repos/{owner}/{repo}/deployments/{id}", Inst, DEPLOY_R, deployments::get),
    r("GET", "/repos/{owner}/{repo}/deployments/{id}/statuses", Inst, DEPLOY_R, deployments::list_statuses),
    r("POST", "/repos/{owner}/{repo}/deployments/{id}/statuses", Inst, DEPLOY_W, deployments::create_status),
];

/// Every route key the simulator implements, e.g. `"POST /repos/{owner}/{repo}/check-runs"`.
pub fn keys() -> Vec<String> {
    ROUTES.iter().map(Route::key).collect()
}

/// Whether `key` names an implemented route.
pub(crate) fn is_key(key: &str) -> bool {
    ROUTES.iter().any(|r| r.key() == key)
}

/// The route for `method` and `path`, with its decoded path parameters.
pub(crate) fn find(
    method: &str,
    path: &str,
) -> Option<(&'static Route, Vec<(&'static str, String)>)> {
    ROUTES
        .iter()
        .filter(|r| r.method == method)
        .find_map(|r| matches(r.template, path).map(|params| (r, params)))
}

fn matches(template: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let want: Vec<&'static str> = template.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    let mut params = Vec::new();
    for (i, w) in want.iter().enumerate() {
        let Some(name) = w.strip_prefix('{').and_then(|w| w.strip_suffix('}')) else {
            if got.get(i) != Some(w) {
                return None;
            }
            continue;
        };
        if name == "path" && i + 1 == want.len() {
            // The contents path spans the rest of the URL (empty: the root directory).
            let rest = got.get(i..)?.join("/");
            params.push((name, percent_decode(&rest)));
            return Some(params);
        }
        match got.get(i) {
            Some(seg) if !seg.is_empty() => params.push((name, percent_decode(seg))),
            _ => return None,
        }
    }
    (got.len() == want.len()).then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_routes() {
        let (r, p) = find("POST", "/repos/acme/web/issues/comments/42").expect("route");
        assert_eq!(r.template, "/repos/{owner}/{repo}/issues/comments/{id}");
        assert_eq!(
            p,
            vec![
                ("owner", "acme".into()),
                ("repo", "web".into()),
                ("id", "42".into())
            ]
        );
        let (r, _) = find("POST", "/repos/acme/web/issues/42/comments").expect("route");
        assert_eq!(r.template, "/repos/{owner}/{repo}/issues/{id}/comments");
        let (_, p) =
            find("GET", "/repos/acme/web/contents/.github/preview%2Dx.yml").expect("route");
        assert_eq!(p[2], ("path", ".github/preview-x.yml".into()));
        let (_, p) = find(
            "DELETE",
            "/repos/acme/web/issues/3/labels/preview%3Aapproved",
        )
        .expect("route");
        assert_eq!(p[3], ("name", "preview:approved".into()));
        assert!(find("PUT", "/repos/acme/web/check-runs").is_none());
        let (r, p) = find("GET", "/repos/acme/web/contents/").expect("root");
        assert_eq!(
            (r.template, p[2].1.as_str()),
            ("/repos/{owner}/{repo}/contents/{path}", "")
        );
        let (r, _) = find("GET", "/repos/acme/web/contents").expect("root");
        assert_eq!(r.template, "/repos/{owner}/{repo}/contents");
        assert!(find("GET", "/repos/acme/web/foo").is_none());
        assert!(is_key("POST /repos/{owner}/{repo}/check-runs"));
    }
}
