//! Registering previewd as a GitHub App from its manifest: the simulated GitHub's side of the
//! flow is as strict as GitHub's, and the setup page, run against it and the simulated cluster,
//! stores the new App in the chart's Kubernetes Secret, touches nothing else there, refuses a
//! forged redirect and refuses to run a second time.

use previewd_tests::{
    github::{GitHubSim, GitHubSimOptions},
    kube::{KubeSim, KubeSimOptions},
    registration::register_into_secret,
};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn manifest(hook: &str) -> Value {
    json!({
        "name": "previewd-sim",
        "url": "https://previewd.example.test",
        "hook_attributes": { "url": hook, "active": true },
        "redirect_url": "https://previewd.example.test/setup/github/callback",
        "public": false,
        "default_permissions": { "checks": "write", "metadata": "read" },
        "default_events": ["pull_request"],
    })
}

async fn post_manifest(gh: &GitHubSim, path: &str, manifest: &Value) -> (u16, Option<String>) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("manifest", &manifest.to_string())
        .finish();
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}{path}", gh.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the simulator answers");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), location)
}

async fn convert(gh: &GitHubSim, code: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/app-manifests/{code}/conversions", gh.url()))
        .send()
        .await
        .expect("the simulator answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_manifest_flow_is_as_strict_as_githubs() {
    let gh = GitHubSim::start(GitHubSimOptions::default())
        .await
        .expect("simulator");
    let good = manifest("https://previewd.example.test/webhooks/github");

    // GitHub refuses what it would refuse.
    let mut unknown_key = good.clone();
    unknown_key["hooks"] = json!({});
    let mut builtin_event = good.clone();
    builtin_event["default_events"] = json!(["installation"]);
    let mut long_name = good.clone();
    long_name["name"] = json!("x".repeat(35));
    let mut no_redirect = good.clone();
    no_redirect
        .as_object_mut()
        .expect("object")
        .remove("redirect_url");
    for bad in [unknown_key, builtin_event, long_name, no_redirect] {
        let (status, _) = post_manifest(&gh, "/settings/apps/new", &bad).await;
        assert_eq!(status, 422, "{bad}");
    }

    // A good manifest: back to redirect_url with a code and the state.
    let (status, location) = post_manifest(
        &gh,
        "/organizations/acme/settings/apps/new?state=abc123",
        &good,
    )
    .await;
    assert_eq!(status, 302);
    let location = url::Url::parse(&location.expect("a redirect")).expect("URL");
    assert_eq!(
        location.as_str().split('?').next(),
        Some("https://previewd.example.test/setup/github/callback")
    );
    let query: std::collections::BTreeMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(query.get("state").map(String::as_str), Some("abc123"));
    let code = query.get("code").expect("a code").clone();

    assert_eq!(
        convert(&gh, "0123456789abcdef0123").await.0,
        404,
        "unknown code"
    );
    let (status, app) = convert(&gh, &code).await;
    assert_eq!(status, 201, "{app}");
    for field in [
        "id",
        "slug",
        "pem",
        "webhook_secret",
        "client_id",
        "client_secret",
        "html_url",
    ] {
        assert!(
            !app[field].is_null() && app[field] != "",
            "{field} missing: {app}"
        );
    }
    assert_eq!(app["slug"], "previewd-sim");
    assert_eq!(app["owner"]["login"], "acme");
    assert!(
        app["pem"]
            .as_str()
            .unwrap_or_default()
            .contains("PRIVATE KEY")
    );
    assert_eq!(convert(&gh, &code).await.0, 404, "a code is single-use");

    // From now on deliveries go where the manifest said, signed with the new secret.
    let registered = gh.registered_app().expect("registered");
    assert_eq!(registered.webhook_secret, app["webhook_secret"]);
    assert_eq!(
        gh.webhook_url().as_deref(),
        Some("https://previewd.example.test/webhooks/github")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_page_registers_the_app_into_the_charts_secret() -> anyhow::Result<()> {
    let gh = GitHubSim::start(GitHubSimOptions::default()).await?;
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let done = register_into_secret(&gh, &kube, "previewd", "previewd-github-app").await?;

    // The admin is sent on to install the App, and the process has its configuration.
    let app = gh.registered_app().expect("GitHub registered an App");
    assert_eq!(done.trip.status, 303, "{}", done.trip.body);
    assert_eq!(
        done.trip.location.as_deref(),
        Some(format!("{}/installations/new", app.html_url).as_str())
    );
    assert!(
        done.trip.github_page.starts_with(&format!(
            "{}/organizations/acme/settings/apps/new?state=",
            gh.url()
        )),
        "{}",
        done.trip.github_page
    );
    assert_eq!(
        done.trip.manifest["hook_attributes"]["url"],
        format!("{}/webhooks/github", done.app_url)
    );
    assert_eq!(
        done.trip.manifest["setup_url"],
        format!("{}/setup/installed", done.app_url)
    );
    let config = done.config.expect("configured live");
    assert_eq!(config.app_id, app.id);
    assert_eq!(config.webhook_secret.expose_secret(), app.webhook_secret);

    // The Secret holds exactly what GitHub returned, under the mounted file's name.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(done.secret.clone())?;
    let stored = secret
        .data
        .as_ref()
        .and_then(|d| d.get("github-app.json"))
        .expect("the credentials key");
    let json: Value = serde_json::from_slice(&stored.0)?;
    assert_eq!(json["app_id"], app.id);
    assert_eq!(json["webhook_secret"], app.webhook_secret);
    assert_eq!(json["client_secret"], app.client_secret);
    assert!(
        json["private_key"]
            .as_str()
            .unwrap_or_default()
            .contains("PRIVATE KEY")
    );

    // The app read and updated that one Secret and touched nothing else.
    let touched: Vec<(String, String, Option<String>, Option<String>)> = done
        .app_requests
        .iter()
        .map(|t| {
            (
                t.verb.clone(),
                t.resource.clone(),
                t.namespace.clone(),
                t.name.clone(),
            )
        })
        .collect();
    for (verb, resource, namespace, name) in &touched {
        assert!(
            ["get", "update"].contains(&verb.as_str())
                && resource == "secrets"
                && namespace.as_deref() == Some("previewd")
                && name.as_deref() == Some("previewd-github-app"),
            "the app sent {verb} {resource} {namespace:?} {name:?}: {touched:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_callback_or_a_second_registration_is_refused() -> anyhow::Result<()> {
    let gh = GitHubSim::start(GitHubSimOptions::default()).await?;
    let kube = KubeSim::start(KubeSimOptions::default()).await?;
    let done = register_into_secret(&gh, &kube, "previewd", "previewd-github-app").await?;
    // GitHub's redirect, with the state, from a browser that did not start the flow (CSRF).
    assert_eq!(done.forged_status, 403);
    assert_eq!(done.trip.status, 303, "{}", done.trip.body);

    // A second app started against the filled Secret serves the setup page but refuses to
    // register again, before sending anyone to GitHub.
    let conversions_before = gh
        .calls()
        .by_route
        .get("POST /app-manifests/{code}/conversions")
        .copied();
    let refused = register_into_secret(&gh, &kube, "previewd", "previewd-github-app").await;
    let message = format!("{:?}", refused.err());
    assert!(
        message.contains("409") && message.contains("Already registered"),
        "{message}"
    );
    assert_eq!(
        gh.calls()
            .by_route
            .get("POST /app-manifests/{code}/conversions")
            .copied(),
        conversions_before,
        "no second exchange"
    );
    Ok(())
}
