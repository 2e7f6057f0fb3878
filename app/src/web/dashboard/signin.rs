//! "Sign in with GitHub" with the App's own OAuth client, and signing out.
//!
//! `GET /auth/login` starts a short session holding a random `state`, a PKCE verifier and where
//! to return, and sends the browser to GitHub's authorize page with the state and the S256
//! challenge. `GET /auth/callback` checks the state against that session (constant time),
//! exchanges the code with the verifier, asks GitHub who signed in, records the user, and
//! replaces the round trip's session with a new signed-in one (new cookie). `POST /auth/logout`
//! (CSRF-checked) ends the session. Anything off — no such round trip, a state that does not
//! match, GitHub refusing — ends on a page that says so and offers to start again.

use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use super::{
    Stop, pages,
    session::{self, PendingSignIn, SessionData, StoredToken},
};
use crate::{
    github::person::{self, UserTokens},
    web::AppState,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
}

/// How tokens are kept in a session.
pub(super) fn stored(tokens: &UserTokens) -> StoredToken {
    use secrecy::ExposeSecret as _;
    StoredToken {
        access: tokens.access.expose_secret().to_owned(),
        refresh: tokens
            .refresh
            .as_ref()
            .map(|r| r.expose_secret().to_owned()),
        expires_at: tokens.expires_at,
    }
}

/// Only a path of this site: never `//host` or a full URL (no open redirect).
fn safe_return(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.len() <= 512
                && p.chars().all(|c| !c.is_control()) =>
        {
            p.to_owned()
        }
        _ => "/previews".to_owned(),
    }
}

fn with_cookie(mut response: Response, value: Option<&str>) -> Response {
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(value));
    response
}

#[derive(Debug, Deserialize, Default)]
struct LoginQuery {
    return_to: Option<String>,
}

/// `GET /auth/login`
async fn login(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Stop> {
    let Some(client) = state.dashboard.oauth.as_ref() else {
        return Err(Stop::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in is not set up".into(),
            "This previewd has no OAuth client for its GitHub App. An administrator sets \
GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (from the App's settings page), or registers the App \
from this previewd, which stores them."
                .into(),
        ));
    };
    let public_url = &state.server.public_url;
    if !super::cookies_work(public_url) {
        return Err(Stop::Page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in needs HTTPS".into(),
            format!(
                "PUBLIC_URL is {public_url}: browsers keep the session cookie only over HTTPS \
(or plain HTTP on a loopback address). An administrator puts previewd behind HTTPS."
            ),
        ));
    }
    let return_to = safe_return(query.as_ref().ok().and_then(|q| q.return_to.as_deref()));
    let (verifier, challenge) = person::pkce_pair();
    let oauth_state = session::random_token();
    let data = SessionData {
        sign_in: Some(PendingSignIn {
            state: oauth_state.clone(),
            verifier,
            return_to,
        }),
        ..SessionData::default()
    };
    let (cookie, _) = session::create(&state.stores.db, None, data, session::SIGN_IN_LIFETIME)
        .await
        .map_err(|e| super::store_error(&e))?;
    let target = person::authorize_url(
        &state.dashboard.web_url,
        client,
        &callback_url(&state),
        &oauth_state,
        &challenge,
    );
    Ok(with_cookie(
        Redirect::to(target.as_str()).into_response(),
        Some(&cookie),
    ))
}

fn callback_url(state: &AppState) -> String {
    crate::github::manifest::callback_url(&state.server.public_url).to_string()
}

#[derive(Debug, Deserialize, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn start_again(text: &str) -> Stop {
    Stop::Page(
        StatusCode::BAD_REQUEST,
        "Sign-in did not finish".into(),
        format!("{text} Start again from the sign-in link."),
    )
}

/// `GET /auth/callback`
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Stop> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let db = &state.stores.db;
    let Some(round_trip) = session::load(db, &headers)
        .await
        .map_err(|e| super::store_error(&e))?
    else {
        return Err(start_again(
            "This browser has no sign-in under way (or it took over ten minutes).",
        ));
    };
    let Some(pending) = round_trip.data.sign_in.clone() else {
        return Err(start_again("This browser has no sign-in under way."));
    };
    // The round trip's session is used once, whatever happens next.
    session::destroy(db, &round_trip.id)
        .await
        .map_err(|e| super::store_error(&e))?;
    if !session::same_secret(query.state.as_deref().unwrap_or_default(), &pending.state) {
        return Err(start_again(
            "The answer from GitHub does not belong to this sign-in.",
        ));
    }
    if let Some(error) = query.error {
        let text = if error == "access_denied" {
            "You declined to authorize the App on GitHub.".to_owned()
        } else {
            format!("GitHub answered {}.", pages::clip(&error, 60))
        };
        return Err(start_again(&text));
    }
    let (Some(code), Some(client)) = (query.code, state.dashboard.oauth.as_ref()) else {
        return Err(start_again("GitHub sent no code."));
    };
    let github = &state.reporter.github;
    let tokens = github
        .exchange_oauth_code(
            &state.dashboard.web_url,
            client,
            &code,
            &callback_url(&state),
            &pending.verifier,
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "dashboard: GitHub refused the sign-in code");
            start_again("GitHub did not accept the sign-in.")
        })?;
    let who = github.person(&tokens.access).await.map_err(|e| {
        tracing::warn!(error = %e, "dashboard: GitHub could not say who signed in");
        start_again("GitHub could not say who you are.")
    })?;
    let operator = state
        .server
        .operators
        .contains(&who.login.to_ascii_lowercase());
    session::upsert_user(db, &who, operator)
        .await
        .map_err(|e| super::store_error(&e))?;
    let data = SessionData {
        csrf: session::random_token(),
        token: Some(stored(&tokens)),
        ..SessionData::default()
    };
    let (cookie, _) = session::create(db, Some(who.id), data, session::SESSION_LIFETIME)
        .await
        .map_err(|e| super::store_error(&e))?;
    // What was cached about this person predates this sign-in.
    state.dashboard.access.forget(who.id, &who.login);
    tracing::info!(user = %who.login, operator, "dashboard: signed in");
    Ok(with_cookie(
        Redirect::to(&pending.return_to).into_response(),
        Some(&cookie),
    ))
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /auth/logout`
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Stop> {
    let db = &state.stores.db;
    let Some(current) = session::load(db, &headers)
        .await
        .map_err(|e| super::store_error(&e))?
    else {
        return Ok(with_cookie(
            Redirect::to("/auth/login").into_response(),
            None,
        ));
    };
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    super::check_same_origin(&headers, &state.server.public_url, &current, &csrf)?;
    session::destroy(db, &current.id)
        .await
        .map_err(|e| super::store_error(&e))?;
    if let Some(user) = &current.user {
        state.dashboard.access.forget(user.id, &user.login);
    }
    Ok(with_cookie(
        pages::message(
            StatusCode::OK,
            "Signed out",
            "You are signed out of previewd. GitHub still knows you; sign out there too on a shared computer.",
        ),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_return(Some("/previews/3")), "/previews/3");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "previews",
            "/a\nb",
        ] {
            assert_eq!(safe_return(Some(bad)), "/previews", "{bad:?}");
        }
        assert_eq!(safe_return(None), "/previews");
    }
}
