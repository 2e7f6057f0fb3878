//! Organization teams: `GET /orgs/{org}/teams/{team}/memberships/{name}`, which previewd asks
//! (with the organization's installation token, `members: read`) when `OPERATORS` names a team.
//! As on GitHub, a token of another account's installation finds no such organization, and a
//! person who is not a member — or a team that does not exist — is a 404.

use std::sync::Arc;

use serde_json::json;

use super::super::{
    auth::Caller,
    reply::{ApiError, ApiResult, Reply, Req},
    state::Shared,
};

pub(crate) fn team_membership(shared: &Arc<Shared>, req: &Req<'_>) -> ApiResult {
    let Caller::Installation(id) = req.caller else {
        return Err(ApiError::bad_credentials());
    };
    let org = req.param("org").to_ascii_lowercase();
    let team = req.param("team").to_ascii_lowercase();
    let login = req.param("name");
    let st = shared.lock();
    let ours = st
        .installations
        .get(&id)
        .is_some_and(|i| i.account.eq_ignore_ascii_case(&org));
    if !ours {
        return Err(ApiError::not_found());
    }
    let member = st
        .teams
        .get(&(org.clone(), team.clone()))
        .is_some_and(|m| m.contains(&login.to_ascii_lowercase()));
    if !member {
        return Err(ApiError::not_found());
    }
    let api = &shared.base_url;
    Ok(Reply::ok(&json!({
        "url": format!("{api}/organizations/{id}/team/{team}/memberships/{login}"),
        "role": "member",
        "state": "active",
    })))
}
