//! Speaking to GitHub as a person who signed in to the dashboard: the OAuth web flow of the
//! App's own client (the authorize URL with `state` and a PKCE S256 challenge, the code
//! exchange, the single-use refresh), and the two questions the dashboard asks with that
//! person's user-to-server token: who they are (`GET /user`) and which repositories of the
//! App's installations they can reach (`GET /user/installations`, then each installation's
//! `…/repositories`, every page).
//!
//! These calls go through the client's transport but not its installation policies: the
//! credential is the person's, never cached or paced, and each call has one short time-out.
//! Tokens travel as [`SecretString`] and no error carries one.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use http::{Method, header};
use http_body_util::BodyExt as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::{GitHub, GitHubError, client::MAX_PAGES, urls};
use crate::config::OAuthClient;

/// Time-out of one call made for a person (a page load waits on it).
pub const PERSON_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A user-to-server token and what renews it.
#[derive(Clone)]
pub struct UserTokens {
    pub access: SecretString,
    /// Single-use; `None` when the App does not expire user tokens.
    pub refresh: Option<SecretString>,
    /// When `access` stops working; `None`: it does not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTokens")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The signed-in person, as `GET /user` describes them.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A PKCE verifier (43 URL-safe characters from 256 random bits) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.as_bytes().to_vec())
        .collect();
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Where the browser goes to sign in: GitHub's authorize page for the App's client.
pub fn authorize_url(
    web_url: &Url,
    client: &OAuthClient,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Url {
    let mut url = urls::web_path(web_url, "login/oauth/authorize");
    url.query_pairs_mut()
        .append_pair("client_id", &client.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("allow_signup", "false");
    url
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct InstallationsPage {
    installations: Vec<IdOnly>,
}

#[derive(Deserialize)]
struct RepositoriesPage {
    repositories: Vec<IdOnly>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: i64,
}

const TOKEN_OPERATION: &str = "POST /login/oauth/access_token";

impl GitHub {
    /// Exchanges the code of the OAuth redirect (with the PKCE verifier) for the person's tokens.
    pub async fn exchange_oauth_code(
        &self,
        web_url: &Url,
        client: &OAuthClient,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<UserTokens, GitHubError> {
        let body = serde_json::json!({
            "client_id": client.client_id,
            "client_secret": client.client_secret.expose_secret(),
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        });
        self.token_request(web_url, &body).await
    }

    /// Renews the person's tokens with their single-use refresh token.
    pub async fn refresh_user_token(
        &self,
        web_url: &Url,
        client: &OAuthClient,
        refresh: &SecretString,
    ) -> Result<UserTokens, GitHubError> {
        let body = serde_json::json!({
            "client_id": client.client_id,
            "client_secret": client.client_secret.expose_secret(),
            "grant_type": "refresh_token",
            "refresh_token": refresh.expose_secret(),
        });
        self.token_request(web_url, &body).await
    }

    async fn token_request(
        &self,
        web_url: &Url,
        body: &serde_json::Value,
    ) -> Result<UserTokens, GitHubError> {
        let url = urls::web_path(web_url, "login/oauth/access_token");
        let (status, bytes, _) = self
            .person_call(Method::POST, url.as_str(), None, Some(body))
            .await?;
        let fail =
            |message: &str| GitHubError::new(TOKEN_OPERATION.to_owned(), Some(status), message);
        if !(200..300).contains(&status) {
            return Err(if status >= 500 {
                fail("GitHub did not sign you in (server error)").retryable()
            } else {
                fail("GitHub refused the sign-in")
            });
        }
        let answer: TokenAnswer =
            serde_json::from_slice(&bytes).map_err(|_| fail("unexpected answer"))?;
        // GitHub answers 200 with an `error` field when the code or client is wrong.
        if let Some(error) = answer.error {
            let description = answer.error_description.unwrap_or_default();
            return Err(fail(&format!("{error}: {description}")));
        }
        let Some(access) = answer.access_token.filter(|t| !t.is_empty()) else {
            return Err(fail("the answer has no access token"));
        };
        let expires_in = answer.expires_in.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        Ok(UserTokens {
            access: SecretString::from(access),
            refresh: answer
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            expires_at: expires_in.map(|s| Utc::now() + chrono::Duration::seconds(s)),
        })
    }

    /// Who holds `token`.
    pub async fn person(&self, token: &SecretString) -> Result<Person, GitHubError> {
        let url = self.api_link("/user");
        let (status, bytes, _) = self
            .person_call(Method::GET, &url, Some(token), None)
            .await?;
        check_status("GET /user", status)?;
        serde_json::from_slice(&bytes).map_err(|_| {
            GitHubError::new("GET /user".to_owned(), Some(status), "unexpected answer")
        })
    }

    /// Ids of every repository of the App's installations the holder of `token` can reach.
    pub async fn person_repositories(&self, token: &SecretString) -> Result<Vec<i64>, GitHubError> {
        let installations: Vec<InstallationsPage> = self
            .person_pages(
                token,
                "/user/installations?per_page=100",
                "GET /user/installations",
            )
            .await?;
        let mut ids = Vec::new();
        for installation in installations.into_iter().flat_map(|p| p.installations) {
            let path = format!(
                "/user/installations/{}/repositories?per_page=100",
                installation.id
            );
            let pages: Vec<RepositoriesPage> = match self
                .person_pages(token, &path, "GET /user/installations/{id}/repositories")
                .await
            {
                Ok(pages) => pages,
                // Uninstalled meanwhile, or nothing the person can reach there.
                Err(e) if e.status == Some(404) => continue,
                Err(e) => return Err(e),
            };
            ids.extend(pages.into_iter().flat_map(|p| p.repositories).map(|r| r.id));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Every page of a listing read with `token`, following `Link: rel="next"` on the same API.
    async fn person_pages<P: serde::de::DeserializeOwned>(
        &self,
        token: &SecretString,
        first: &str,
        operation: &str,
    ) -> Result<Vec<P>, GitHubError> {
        let mut pages = Vec::new();
        let mut next = Some(self.api_link(first));
        while let Some(url) = next.take() {
            if pages.len() >= MAX_PAGES {
                return Err(GitHubError::new(
                    operation.to_owned(),
                    None,
                    &format!("more than {MAX_PAGES} pages"),
                ));
            }
            let (status, bytes, link) = self
                .person_call(Method::GET, &url, Some(token), None)
                .await?;
            check_status(operation, status)?;
            pages.push(serde_json::from_slice(&bytes).map_err(|_| {
                GitHubError::new(operation.to_owned(), Some(status), "unexpected answer")
            })?);
            next = link
                .and_then(|l| super::client::next_from_link(&l))
                .filter(|l| Url::parse(l).is_ok_and(|u| urls::same_api(self.api_url(), &u)));
        }
        Ok(pages)
    }

    /// The absolute URL of an API path.
    fn api_link(&self, path: &str) -> String {
        format!("{}{path}", self.api_url().as_str().trim_end_matches('/'))
    }

    /// One exchange for a person: an absolute URL, their token or none, a JSON body.
    async fn person_call(
        &self,
        method: Method,
        url: &str,
        token: Option<&SecretString>,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, bytes::Bytes, Option<String>), GitHubError> {
        let operation = format!(
            "{method} {}",
            Url::parse(url).map_or_else(|_| String::new(), |u| u.path().to_owned())
        );
        let fail = |message: &str| GitHubError::new(operation.clone(), None, message).retryable();
        let mut builder = http::Request::builder().method(method).uri(url).header(
            header::ACCEPT,
            if token.is_some() {
                "application/vnd.github+json"
            } else {
                "application/json"
            },
        );
        if let Some(token) = token {
            let mut value =
                http::HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                    .map_err(|_| fail("the token is not a header value"))?;
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let request = self
            .octo()
            .build_request(builder, body)
            .map_err(|_| fail("cannot build the request"))?;
        self.count_call();
        let exchange = async {
            let response = self
                .octo()
                .execute(request)
                .await
                .map_err(|_| fail("GitHub did not answer"))?;
            let status = response.status().as_u16();
            let link = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|_| fail("the answer broke off"))?
                .to_bytes();
            Ok((status, bytes, link))
        };
        tokio::time::timeout(PERSON_CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| fail("no answer in time"))?
    }
}

fn check_status(operation: &str, status: u16) -> Result<(), GitHubError> {
    match status {
        200..=299 => Ok(()),
        401 => Err(GitHubError::new(
            operation.to_owned(),
            Some(401),
            "GitHub no longer accepts this sign-in",
        )),
        500.. => Err(
            GitHubError::new(operation.to_owned(), Some(status), "GitHub server error").retryable(),
        ),
        _ => Err(GitHubError::new(
            operation.to_owned(),
            Some(status),
            "GitHub refused the request",
        )),
    }
}
