//! The REST API (`/api/v1`) over HTTP with API tokens: who a token acts as, what it sees — the
//! same answers as the dashboard's for reader, writer, operator and stranger — and errors as
//! `application/problem+json` with their stable codes. The session cookie opens nothing here.
//! Every answer is checked against the OpenAPI document the app serves.

use previewd::previews::tokens;
use previewd_entity::PreviewStatus;
use previewd_tests::{
    db::Engine,
    github::user_id,
    openapi::Spec,
    scenario::{self, MAINTAINER, OUTSIDER, Options, REPO, Scenario},
    visitor::Visitor,
};
use reqwest::{StatusCode, header};
use secrecy::ExposeSecret as _;
use serde_json::Value;

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\n";
const OPERATOR: &str = "olga";
const STRANGER: &str = "sam";

/// A token for `login`, who signs in to the dashboard once first (tokens act as people).
async fn token_for(s: &Scenario, login: &str) -> anyhow::Result<String> {
    let mut v = Visitor::new(&s.app_url, login)?;
    v.sign_in("/previews").await?;
    let made = tokens::create(&s.db, user_id(login), "api test", None).await?;
    Ok(made.secret.expose_secret().to_owned())
}

/// The OpenAPI document the app serves.
async fn document(s: &Scenario) -> anyhow::Result<Spec> {
    let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", s.app_url))
        .await?
        .json()
        .await?;
    Ok(Spec::from_value(doc))
}

/// Checks an answer against the OpenAPI document the app serves: the operation must be in it
/// (or the answer a problem), and the body must fit the schema for its status and type.
async fn described(
    s: &Scenario,
    method: &reqwest::Method,
    path: &str,
    status: StatusCode,
    content_type: &str,
    body: &Value,
) -> anyhow::Result<()> {
    let spec = document(s).await?;
    let template = spec.template_of(method.as_str(), path);
    let Some(template) = template else {
        assert_eq!(
            content_type, "application/problem+json",
            "{method} {path} is not in the document, so it can only be refused"
        );
        return Ok(());
    };
    let schema = spec
        .answer_schema(method.as_str(), &template, status.as_u16(), content_type)
        .unwrap_or_else(|| panic!("{method} {template} {status} {content_type} is documented"))
        .clone();
    let problems = spec.check(&schema, body);
    assert!(
        problems.is_empty(),
        "{method} {path} ({status}) fits the document: {problems:?}\n{body}"
    );
    Ok(())
}

async fn call(
    s: &Scenario,
    token: Option<&str>,
    path: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = reqwest::Client::new().get(format!("{}{path}", s.app_url));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await?;
    let status = response.status();
    let content_type = content_type(&response);
    let problem = content_type == "application/problem+json";
    let body: Value = response.json().await?;
    described(s, &reqwest::Method::GET, path, status, &content_type, &body).await?;
    assert_eq!(
        problem,
        !status.is_success(),
        "errors are problem+json: {body}"
    );
    if !status.is_success() {
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_see_through_the_api_what_their_people_see_on_the_dashboard() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    options.settings.push(format!("--operators={OPERATOR}"));
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/api", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        // A preview of another installation, which only the operator sees.
        s.open_pr_elsewhere("globex", "globex/api", "gina", "Globex change")
            .await;
        let db = s.db.clone();
        let globex =
            previewd_tests::wait::until("the globex preview to run", scenario::DEADLINE, || {
                let db = db.clone();
                async move {
                    use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
                    previewd_entity::preview::Entity::find()
                        .filter(previewd_entity::preview::Column::Namespace.contains("globex"))
                        .filter(previewd_entity::preview::Column::Status.eq(PreviewStatus::Running))
                        .one(&db)
                        .await
                        .ok()
                        .flatten()
                }
            })
            .await?;

        let maya = token_for(s, MAINTAINER).await?;
        let otto = token_for(s, OUTSIDER).await?;
        let sam = token_for(s, STRANGER).await?;
        let olga = token_for(s, OPERATOR).await?;

        // No token, a wrong one, or only the session cookie: 401 with the code.
        let (status, body) = call(s, None, "/api/v1/whoami").await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED"))
        );
        let (status, _) = call(s, Some("pvd_not-a-real-token"), "/api/v1/previews").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let mut visitor = Visitor::new(&s.app_url, MAINTAINER)?;
        visitor.sign_in("/previews").await?;
        let cookie_only = visitor.get("/api/v1/whoami").await?;
        assert_eq!(
            cookie_only.status,
            StatusCode::UNAUTHORIZED,
            "cookies open nothing here"
        );
        let bare = reqwest::Client::new()
            .get(format!("{}/api/v1/whoami", s.app_url))
            .send()
            .await?;
        assert!(bare.headers().contains_key(header::WWW_AUTHENTICATE));

        // Who each token is.
        let (status, me) = call(s, Some(&maya), "/api/v1/whoami").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (me["login"].as_str(), me["operator"].as_bool()),
            (Some(MAINTAINER), Some(false))
        );
        let (_, op) = call(s, Some(&olga), "/api/v1/whoami").await?;
        assert_eq!(op["operator"], true);

        // The document is strict enough to catch an answer that lost a field or changed a type.
        let spec = document(s).await?;
        let schema = spec
            .answer_schema("get", "/api/v1/whoami", 200, "application/json")
            .expect("whoami is documented")
            .clone();
        assert!(spec.check(&schema, &me).is_empty());
        let mut lost = me.clone();
        lost.as_object_mut().expect("an object").remove("login");
        assert!(!spec.check(&schema, &lost).is_empty(), "a missing field");
        let mut retyped = me.clone();
        retyped["operator"] = Value::from("no");
        assert!(!spec.check(&schema, &retyped).is_empty(), "a wrong type");
        assert_eq!(
            spec.template_of(
                "GET",
                &format!("/api/v1/previews/{}/logs?tail=5", preview.id)
            )
            .as_deref(),
            Some("/api/v1/previews/{preview}/logs")
        );

        // What each sees: as on the dashboard.
        let by_id = format!("/api/v1/previews/{}", preview.id);
        let by_ns = format!("/api/v1/previews/{}", preview.namespace);
        let globex_path = format!("/api/v1/previews/{}", globex.id);
        for (who, token, sees_acme, sees_globex) in [
            ("maya (writer)", &maya, true, false),
            ("otto (reader)", &otto, true, false),
            ("sam (stranger)", &sam, false, false),
            ("olga (operator)", &olga, true, true),
        ] {
            let (status, list) = call(s, Some(token), "/api/v1/previews").await?;
            assert_eq!(status, StatusCode::OK, "{who}");
            let ids: Vec<i64> = list["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|i| i["id"].as_i64())
                .collect();
            assert_eq!(ids.contains(&preview.id), sees_acme, "{who}: {list}");
            assert_eq!(ids.contains(&globex.id), sees_globex, "{who}: {list}");
            assert_eq!(list["total"].as_u64(), Some(ids.len() as u64), "{who}");
            for path in [&by_id, &by_ns] {
                let (status, body) = call(s, Some(token), path).await?;
                if sees_acme {
                    assert_eq!(status, StatusCode::OK, "{who} {path}: {body}");
                    assert_eq!(body["namespace"], preview.namespace.as_str());
                    assert_eq!(body["status"], "running");
                    assert_eq!(body["attempts"][0]["status"], "succeeded", "{body}");
                } else {
                    assert_eq!(
                        (status, body["code"].as_str()),
                        (StatusCode::NOT_FOUND, Some("NOT_FOUND")),
                        "{who} {path}"
                    );
                }
            }
            let (status, _) = call(s, Some(token), &globex_path).await?;
            assert_eq!(status == StatusCode::OK, sees_globex, "{who}");
        }

        // Filters and their refusals.
        let (_, running) =
            call(s, Some(&olga), "/api/v1/previews?status=running&per_page=1").await?;
        assert_eq!(running["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(running["total"], 2);
        let (_, mine) = call(s, Some(&maya), "/api/v1/previews?mine=true").await?;
        assert_eq!(mine["total"], 1, "maya authored the acme PR: {mine}");
        let (_, none) = call(s, Some(&olga), "/api/v1/previews?repository=globex/api").await?;
        assert_eq!(none["total"], 1);
        for bad in [
            "status=bogus",
            "per_page=0",
            "per_page=101",
            "page=0",
            "mine=perhaps",
        ] {
            let (status, body) = call(s, Some(&maya), &format!("/api/v1/previews?{bad}")).await?;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("INVALID_INPUT")),
                "{bad}: {body}"
            );
        }
        let (status, body) = call(s, Some(&maya), "/api/v1/nothing/here").await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
        );

        // A revoked token is worth nothing at once.
        let row = tokens::authenticate(&s.db, &secrecy::SecretString::from(maya.clone()))
            .await?
            .expect("live");
        assert!(tokens::revoke(&s.db, row.0.id, None).await?);
        let (status, _) = call(s, Some(&maya), "/api/v1/whoami").await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        Ok(())
    })
    .await
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn send(
    s: &Scenario,
    method: reqwest::Method,
    token: &str,
    path: &str,
) -> anyhow::Result<(StatusCode, Value)> {
    let response = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", s.app_url))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let content_type = content_type(&response);
    let body: Value = response.json().await?;
    described(s, &method, path, status, &content_type, &body).await?;
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_through_the_api_take_the_same_checks_and_transitions() -> anyhow::Result<()> {
    use reqwest::Method;
    let options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/act", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let maya = token_for(s, MAINTAINER).await?;
        let otto = token_for(s, OUTSIDER).await?;
        let sam = token_for(s, STRANGER).await?;
        let base = format!("/api/v1/previews/{}", preview.id);

        // A reader may look, not act; a stranger finds nothing.
        let (status, body) = send(s, Method::POST, &otto, &format!("{base}/redeploy")).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("FORBIDDEN")),
            "{body}"
        );
        let (status, body) = send(s, Method::DELETE, &sam, &base).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
        );

        // Retry is for failed attempts only; redeploy makes a new attempt; extend moves expiry.
        let (status, body) = send(s, Method::POST, &maya, &format!("{base}/retry")).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("CONFLICT")),
            "{body}"
        );
        let (status, body) = send(s, Method::POST, &maya, &format!("{base}/redeploy")).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["attempt"]["attempt"], 2, "a new attempt: {body}");
        assert_eq!(body["attempt"]["trigger"], "redeploy");
        s.wait_status(pr.number, PreviewStatus::Running).await;
        let (status, body) = send(s, Method::POST, &maya, &format!("{base}/extend")).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["expires_at"].is_string(), "{body}");
        let (status, _) = send(s, Method::POST, &maya, &format!("{base}/explode")).await?;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Delete by namespace: accepted, the namespace goes; a second time is a conflict.
        let by_ns = format!("/api/v1/previews/{}", preview.namespace);
        let (status, body) = send(s, Method::DELETE, &maya, &by_ns).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "deleting");
        let kube = s.kube.clone();
        let namespace = preview.namespace.clone();
        previewd_tests::wait::until("the namespace to go", scenario::DEADLINE, || {
            let (kube, namespace) = (kube.clone(), namespace.clone());
            async move { (!kube.namespaces().contains(&namespace)).then_some(()) }
        })
        .await?;
        let (status, body) = send(s, Method::DELETE, &maya, &by_ns).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::CONFLICT, Some("CONFLICT"))
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_the_current_pod_and_wrong_methods_are_problems() -> anyhow::Result<()> {
    use reqwest::Method;
    let options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/logs", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let maya = token_for(s, MAINTAINER).await?;
        let otto = token_for(s, OUTSIDER).await?;
        let sam = token_for(s, STRANGER).await?;
        let logs = format!("/api/v1/previews/{}/logs", preview.namespace);
        let pod_of = |s: &Scenario| {
            s.kube
                .list("pods", Some(&preview.namespace))
                .into_iter()
                .find_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                .expect("a running pod")
        };
        let first = pod_of(s);
        s.kube.write_log(
            &preview.namespace,
            &first,
            None,
            "GET /checkout 200 token=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        )?;

        // A reader may read the log; the secret in it is redacted; a stranger finds nothing.
        let (status, body) = call(s, Some(&otto), &format!("{logs}?tail=50")).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["pod"], first.as_str());
        assert_eq!(body["container"], "web", "{body}");
        let lines: Vec<&str> = body["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let line = lines
            .iter()
            .find(|l| l.contains("GET /checkout"))
            .unwrap_or_else(|| panic!("the written line: {body}"));
        assert!(!line.contains("ghp_abcdefghij"), "redacted: {line}");
        assert_eq!(body["pods"][0]["containers"][0], "web");
        let (status, body) = call(s, Some(&sam), &logs).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("NOT_FOUND"))
        );

        // What the preview does not have, and tails out of range, are refused with the choices.
        for bad in [
            "container=sidecar".to_owned(),
            "pod=web-elsewhere".to_owned(),
            "tail=0".to_owned(),
            "tail=5001".to_owned(),
            "timestamps=maybe".to_owned(),
        ] {
            let (status, body) = call(s, Some(&maya), &format!("{logs}?{bad}")).await?;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("INVALID_INPUT")),
                "{bad}: {body}"
            );
        }
        let (_, body) = call(s, Some(&maya), &format!("{logs}?container=sidecar")).await?;
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(&first)),
            "the refusal lists the pods: {body}"
        );
        let (status, body) = call(
            s,
            Some(&maya),
            &format!("{logs}?pod={first}&container=web&timestamps=true"),
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A push replaces the pod: the log is the new attempt's, not the old one's.
        let next = s.sha();
        s.gh.push(REPO, pr.number, &next).await;
        let moved = s.wait_head_running(pr.number, &next).await;
        let kube = s.kube.clone();
        let namespace = preview.namespace.clone();
        let old = first.clone();
        let second = previewd_tests::wait::until("the old pod to go", scenario::DEADLINE, || {
            let (kube, namespace, old) = (kube.clone(), namespace.clone(), old.clone());
            async move {
                let pods: Vec<String> = kube
                    .list("pods", Some(&namespace))
                    .into_iter()
                    .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
                    .collect();
                (pods.len() == 1 && pods[0] != old).then(|| pods[0].clone())
            }
        })
        .await?;
        s.kube
            .write_log(&preview.namespace, &second, None, "second attempt up")?;
        let (status, body) = call(s, Some(&maya), &logs).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["pod"], second.as_str(), "{body}");
        assert_eq!(
            body["pods"][0]["attempt"],
            moved.current_attempt_id.expect("an attempt"),
            "{body}"
        );
        assert!(body["lines"].to_string().contains("second attempt up"));
        assert!(!body["lines"].to_string().contains("GET /checkout"));

        // A route asked with a method it does not take: 405, problem+json, and what it takes.
        for (method, path) in [
            (Method::POST, logs.clone()),
            (
                Method::GET,
                format!("/api/v1/previews/{}/retry", preview.id),
            ),
            (Method::PUT, "/api/v1/previews".to_owned()),
        ] {
            let response = reqwest::Client::new()
                .request(method.clone(), format!("{}{path}", s.app_url))
                .bearer_auth(&maya)
                .send()
                .await?;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert!(
                response.headers().contains_key(header::ALLOW),
                "{method} {path}"
            );
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/problem+json"
            );
            let content_type = content_type(&response);
            let body: Value = response.json().await?;
            described(
                s,
                &method,
                &path,
                StatusCode::METHOD_NOT_ALLOWED,
                &content_type,
                &body,
            )
            .await?;
            assert_eq!(
                (body["status"].as_u64(), body["code"].as_str()),
                (Some(405), Some("INVALID_INPUT")),
                "{body}"
            );
        }
        Ok(())
    })
    .await
}
