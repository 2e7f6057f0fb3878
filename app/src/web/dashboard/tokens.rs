//! The person's own API tokens on the dashboard: `/tokens` lists them (prefix, created, last
//! used, expiry, state) with a form to make one and a Revoke button on each live one. A new
//! token is shown once, in the answer to the form that made it — never stored in the session,
//! never shown again. Both forms need the session's CSRF token and a same-origin request, like
//! every action.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use super::{
    Stop, check_same_origin, pages, session, session::Flash, signed_in, store_error, take_flash,
    unreadable_form,
};
use crate::{previews::tokens, web::AppState};

/// The lifetimes the form offers, in days (0: until revoked).
pub const LIFETIMES: [(u64, &str); 5] = [
    (7, "7 days"),
    (30, "30 days"),
    (90, "90 days"),
    (365, "1 year"),
    (0, "until revoked"),
];

/// `GET /tokens`
pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Stop> {
    let mut who = signed_in(&state, &headers, "/tokens").await?;
    let mine = tokens::of_user(&state.stores.db, who.actor.user_id)
        .await
        .map_err(|e| store_error(&e))?;
    let flash = take_flash(&state, &mut who.session).await;
    Ok(pages::tokens(
        &pages::Who::of(&who.actor, &who.session),
        &mine,
        flash.as_ref(),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct NewToken {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days; 0 or absent: until revoked.
    #[serde(default)]
    days: u64,
}

/// `POST /tokens`: makes one and shows it, once.
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<NewToken>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Stop> {
    let mut who = signed_in(&state, &headers, "/tokens").await?;
    let Ok(Form(form)) = form else {
        return Err(unreadable_form());
    };
    check_same_origin(&headers, &state.server.public_url, &who.session, &form.csrf)?;
    if !LIFETIMES.iter().any(|(d, _)| *d == form.days) {
        return Err(Stop::Page(
            StatusCode::BAD_REQUEST,
            "Nothing made".into(),
            "Pick one of the lifetimes the form offers.".into(),
        ));
    }
    let lifetime = (form.days > 0).then(|| std::time::Duration::from_secs(form.days * 24 * 3600));
    match tokens::create(&state.stores.db, who.actor.user_id, &form.name, lifetime).await {
        Ok(made) => Ok(pages::token_made(
            &pages::Who::of(&who.actor, &who.session),
            &made.token,
            made.secret.expose_secret(),
        )),
        Err(tokens::TokenError::Invalid(text)) => {
            who.session.data.flash = Some(Flash { ok: false, text });
            session::save(&state.stores.db, &who.session)
                .await
                .map_err(|e| store_error(&e))?;
            Ok(Redirect::to("/tokens").into_response())
        }
        Err(tokens::TokenError::Store(e)) => Err(store_error(&e)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Revoke {
    #[serde(default)]
    csrf: String,
}

/// `POST /tokens/{id}/revoke`: only the person's own token.
pub(super) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Revoke>, axum::extract::rejection::FormRejection>,
) -> Result<Response, Stop> {
    let mut who = signed_in(&state, &headers, "/tokens").await?;
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    check_same_origin(&headers, &state.server.public_url, &who.session, &csrf)?;
    let revoked = match id.parse::<i64>() {
        Ok(id) => tokens::revoke(&state.stores.db, id, Some(who.actor.user_id))
            .await
            .map_err(|e| store_error(&e))?,
        Err(_) => false,
    };
    who.session.data.flash = Some(if revoked {
        Flash {
            ok: true,
            text: "Token revoked: it no longer works anywhere.".into(),
        }
    } else {
        Flash {
            ok: false,
            text: "You have no live token with that id.".into(),
        }
    });
    session::save(&state.stores.db, &who.session)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(Redirect::to("/tokens").into_response())
}
