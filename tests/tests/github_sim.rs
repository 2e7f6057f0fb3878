//! The simulated GitHub, proven with the real octocrab client (and raw HTTP where octocrab hides
//! the wire): App JWT → installation token → check runs, comments, deployments, contents; token
//! expiry and re-minting; forged and foreign credentials; signed webhooks with GitHub's headers
//! that octocrab's own webhook models parse; dropped deliveries recovered by redelivery; faults;
//! and loud 501s for anything not implemented.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use octocrab::{
    Octocrab,
    models::{
        AppId, CheckRunId, CommentId, InstallationId,
        webhook_events::{WebhookEvent, WebhookEventPayload, WebhookEventType},
    },
    params::{
        checks::{CheckRunConclusion, CheckRunOutput, CheckRunStatus},
        repos::Commitish,
    },
};
use previewd_tests::{
    github::{Fault, FaultKind, GitHubSim, GitHubSimOptions, NewPr, signature},
    wait,
};
use serde_json::{Value, json};

const APP_KEY: &str = include_str!("../fixtures/app-key.pem");
const FORGED_KEY: &str = include_str!("../fixtures/forged-key.pem");
const REPO: &str = "acme/web";
const DEADLINE: Duration = Duration::from_secs(5);

/// A simulator with one installation holding `acme/web`.
async fn sim_with(opts: GitHubSimOptions) -> (GitHubSim, i64) {
    let sim = GitHubSim::start(opts).await.expect("simulator starts");
    let inst = sim.add_installation("acme");
    sim.add_repo(inst, REPO);
    (sim, inst)
}

async fn sim() -> (GitHubSim, i64) {
    sim_with(GitHubSimOptions::default()).await
}

/// octocrab authenticated as the App with `key`.
fn app_client(sim: &GitHubSim, key: &str) -> Octocrab {
    Octocrab::builder()
        .base_uri(sim.url())
        .expect("base uri")
        .app(
            AppId(1234),
            octocrab::EncodingKey::from_rsa_pem(key.as_bytes()).expect("key"),
        )
        .build()
        .expect("octocrab")
}

/// octocrab authenticated as the installation (its own token cache).
fn inst_client(sim: &GitHubSim, inst: i64) -> Octocrab {
    app_client(sim, APP_KEY)
        .installation(InstallationId(u64::try_from(inst).expect("id")))
        .expect("installation client")
}

/// The GitHub error inside an octocrab error.
fn github_error(e: octocrab::Error) -> octocrab::GitHubError {
    match e {
        octocrab::Error::GitHub { source, .. } => *source,
        other => panic!("expected a GitHub error, got {other:?}"),
    }
}

/// A JWT like octocrab's, with chosen claims, signed with `key`.
fn jwt(key: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).expect("key"),
    )
    .expect("jwt")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Mints an installation token over raw HTTP.
async fn raw_token(sim: &GitHubSim, inst: i64) -> String {
    let token = jwt(
        APP_KEY,
        &json!({"iss": 1234, "iat": now() - 60, "exp": now() + 540}),
    );
    let res = reqwest::Client::new()
        .post(format!(
            "{}/app/installations/{inst}/access_tokens",
            sim.url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("mint");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

async fn raw_get(url: String, auth: &str) -> (u16, HeaderMap, Value) {
    let res = reqwest::Client::new()
        .get(url)
        .header("authorization", auth)
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// A webhook receiver on loopback that records what it gets and answers `status`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    status: Arc<Mutex<u16>>,
}

impl Receiver {
    async fn start(sim: &GitHubSim) -> Self {
        let receiver = Self {
            got: Arc::default(),
            status: Arc::new(Mutex::new(200)),
        };
        async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            r.got.lock().expect("lock").push((headers, body));
            let status = *r.status.lock().expect("lock");
            StatusCode::from_u16(status).expect("status")
        }
        let router = axum::Router::new()
            .route("/webhooks/github", post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        sim.set_webhook_url(&format!(
            "http://{}/webhooks/github",
            listener.local_addr().expect("addr")
        ));
        tokio::spawn(async move { axum::serve(listener, router).await });
        receiver
    }

    fn received(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().expect("lock").clone()
    }

    fn last(&self) -> (HeaderMap, Bytes) {
        self.received().last().cloned().expect("a delivery arrived")
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("header {name} missing"))
}

fn parse(h: &HeaderMap, body: &Bytes) -> WebhookEvent {
    WebhookEvent::try_from_header_and_body(header(h, "x-github-event"), body).unwrap_or_else(|e| {
        panic!(
            "octocrab cannot parse the {} payload: {e}",
            header(h, "x-github-event")
        )
    })
}

#[tokio::test]
async fn check_run_with_actions_round_trips_through_app_jwt_and_installation_token() {
    let (sim, inst) = sim().await;
    let octo = inst_client(&sim, inst);
    let sha = "a".repeat(40);
    let created: Value = octo
        .post(
            "/repos/acme/web/check-runs",
            Some(&json!({
                "name": "Preview",
                "head_sha": sha,
                "status": "in_progress",
                "external_id": "attempt-7",
                "details_url": "https://previewd.example.com/previews/7",
                "output": {"title": "Deploying", "summary": "Building the image"},
                "actions": [
                    {"label": "Redeploy", "description": "Deploy this commit again", "identifier": "redeploy"},
                    {"label": "Destroy", "description": "Tear the preview down", "identifier": "destroy"},
                    {"label": "Extend", "description": "Keep it 24 hours longer", "identifier": "extend"},
                ],
            })),
        )
        .await
        .expect("check run created");
    let id = created["id"].as_i64().expect("id");
    assert!(id > i64::from(i32::MAX), "ids are GitHub-sized");
    assert_eq!(created["status"], "in_progress");

    let updated = octo
        .checks("acme", "web")
        .update_check_run(CheckRunId(u64::try_from(id).expect("id")))
        .status(CheckRunStatus::Completed)
        .conclusion(CheckRunConclusion::Success)
        .output(CheckRunOutput {
            title: "Ready".into(),
            summary: "https://pr-1.preview.example.com".into(),
            text: Some("took 42 s".into()),
            annotations: vec![],
            images: vec![],
        })
        .send()
        .await
        .expect("check run updated");
    assert_eq!(updated.conclusion.as_deref(), Some("success"));

    let runs = sim.check_runs(REPO, &sha);
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.status.as_str(), run.conclusion.as_deref()),
        ("completed", Some("success"))
    );
    assert_eq!(run.actions.len(), 3);
    assert_eq!(run.actions[2].identifier, "extend");
    assert_eq!(run.external_id.as_deref(), Some("attempt-7"));
    assert_eq!(run.title.as_deref(), Some("Ready"));
    assert!(run.completed_at.is_some());
    assert_eq!(sim.check_run(id).expect("by id").name, "Preview");

    let listed = octo
        .checks("acme", "web")
        .list_check_runs_for_git_ref(Commitish(sha.clone()))
        .send()
        .await
        .expect("listed");
    assert_eq!(listed.total_count, 1);
    assert_eq!(listed.check_runs[0].output.title.as_deref(), Some("Ready"));

    let calls = sim.calls();
    assert_eq!(calls.tokens_minted, 1, "one token, cached by octocrab");
    assert_eq!(calls.by_route["POST /repos/{owner}/{repo}/check-runs"], 1);
    assert_eq!(
        calls.by_route["PATCH /repos/{owner}/{repo}/check-runs/{id}"],
        1
    );
    assert_eq!(
        calls.by_route["POST /app/installations/{id}/access_tokens"],
        1
    );
    assert_eq!(calls.by_installation[&inst], 3);
}

#[tokio::test]
async fn invalid_check_runs_get_githubs_422() {
    let (sim, inst) = sim().await;
    let octo = inst_client(&sim, inst);
    let action = |label: &str| json!({"label": label, "description": "d", "identifier": "x"});
    let sha = "b".repeat(40);
    let cases = [
        (
            json!({"name": "Preview", "head_sha": sha, "actions": [action("a"), action("b"), action("c"), action("d")]}),
            "actions",
            "invalid",
        ),
        (
            json!({"name": "Preview", "head_sha": sha, "actions": [action(&"x".repeat(21))]}),
            "actions[0].label",
            "invalid",
        ),
        (json!({"head_sha": sha}), "name", "missing_field"),
        (
            json!({"name": "Preview", "head_sha": sha, "status": "completed"}),
            "conclusion",
            "missing_field",
        ),
        (
            json!({"name": "Preview", "head_sha": sha, "status": "done"}),
            "status",
            "invalid",
        ),
        (
            json!({"name": "Preview", "head_sha": sha, "output": {"title": "t"}}),
            "output.summary",
            "missing_field",
        ),
    ];
    for (body, field, code) in cases {
        let err = octo
            .post::<_, Value>("/repos/acme/web/check-runs", Some(&body))
            .await
            .expect_err("refused");
        let err = github_error(err);
        assert_eq!(err.status_code.as_u16(), 422, "{body}");
        assert_eq!(err.message, "Validation Failed");
        assert!(err.documentation_url.is_some());
        let errors = err.errors.expect("errors");
        assert_eq!(errors[0]["resource"], "CheckRun");
        assert_eq!(errors[0]["field"], field, "{body}");
        assert_eq!(errors[0]["code"], code, "{body}");
    }
    assert!(sim.check_runs(REPO, &sha).is_empty());
    // A conclusion alone completes the run.
    let run: Value = octo
        .post(
            "/repos/acme/web/check-runs",
            Some(&json!({"name": "Preview", "head_sha": sha, "conclusion": "cancelled"})),
        )
        .await
        .expect("created");
    assert_eq!(run["status"], "completed");
}

#[tokio::test]
async fn comments_are_created_updated_listed_and_deleted() {
    let (sim, inst) = sim().await;
    let (pr, _) = sim.open_pr(REPO, NewPr::default()).await;
    let octo = inst_client(&sim, inst);
    let issues = octo.issues("acme", "web");

    let c = issues
        .create_comment(pr.number, "<!-- previewd --> deploying")
        .await
        .expect("created");
    let updated = issues
        .update_comment(c.id, "<!-- previewd --> ready")
        .await
        .expect("updated by POST, as octocrab sends it");
    assert_eq!(updated.body.as_deref(), Some("<!-- previewd --> ready"));
    assert_eq!(updated.user.login, "previewd[bot]");
    let patched: Value = octo
        .patch(
            format!("/repos/acme/web/issues/comments/{}", c.id),
            Some(&json!({"body": "<!-- previewd --> patched"})),
        )
        .await
        .expect("updated by PATCH");
    assert_eq!(patched["body"], "<!-- previewd --> patched");

    let second = issues
        .create_comment(pr.number, "second")
        .await
        .expect("created");
    let page = issues
        .list_comments(pr.number)
        .send()
        .await
        .expect("listed");
    let bodies: Vec<_> = page
        .items
        .iter()
        .map(|c| c.body.clone().unwrap_or_default())
        .collect();
    assert_eq!(bodies, ["<!-- previewd --> patched", "second"]);

    issues.delete_comment(second.id).await.expect("deleted");
    let left = sim.comments(REPO, pr.number);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].body, "<!-- previewd --> patched");
    assert_eq!(left[0].user_login, "previewd[bot]");

    let err = github_error(issues.delete_comment(second.id).await.expect_err("gone"));
    assert_eq!(err.status_code.as_u16(), 404);
    let err = github_error(
        issues
            .create_comment(999, "x")
            .await
            .expect_err("no such pull request"),
    );
    assert_eq!(err.status_code.as_u16(), 404);
    let err = github_error(
        issues
            .get_comment(CommentId(1))
            .await
            .expect_err("no such comment"),
    );
    assert_eq!(err.message, "Not Found");
}

#[tokio::test]
async fn deployments_and_statuses_follow_githubs_rules() {
    let (sim, inst) = sim().await;
    let (pr, _) = sim.open_pr(REPO, NewPr::default()).await;
    let octo = inst_client(&sim, inst);
    let repos = octo.repos("acme", "web");
    // A pending check run on the commit: GitHub refuses a deployment that checks every context.
    let _: Value = octo
        .post(
            "/repos/acme/web/check-runs",
            Some(&json!({"name": "Preview", "head_sha": pr.head_sha, "status": "in_progress"})),
        )
        .await
        .expect("check run");
    let err = repos
        .deployments()
        .create(pr.head_sha.clone())
        .auto_merge(false)
        .environment("preview/pr-1")
        .send()
        .await
        .expect_err("contexts are checked when required_contexts is omitted");
    assert_eq!(github_error(err).status_code.as_u16(), 409);

    let dep = repos
        .deployments()
        .create(pr.head_sha.clone())
        .auto_merge(false)
        .required_contexts(Vec::<String>::new())
        .environment("preview/pr-1")
        .transient_environment(true)
        .production_environment(false)
        .description("Preview of #1")
        .payload(json!({"preview": 1}))
        .send()
        .await
        .expect("deployment");
    assert_eq!(dep.sha, pr.head_sha);
    for (state, url) in [
        (
            octocrab::models::repos::DeploymentStatusState::InProgress,
            None,
        ),
        (
            octocrab::models::repos::DeploymentStatusState::Success,
            Some("https://pr-1.preview.example.com"),
        ),
    ] {
        let mut b = repos
            .deployments()
            .statuses(dep.id)
            .create(state)
            .log_url("https://previewd.example.com/previews/1");
        if let Some(url) = url {
            b = b.environment_url(url);
        }
        b.send().await.expect("status");
    }
    let err = repos
        .deployments()
        .statuses(dep.id)
        .create(octocrab::models::repos::DeploymentStatusState::Failure)
        .description("x".repeat(141))
        .send()
        .await
        .expect_err("description too long");
    assert_eq!(github_error(err).status_code.as_u16(), 422);

    let deployments = sim.deployments(REPO);
    assert_eq!(deployments.len(), 1);
    let d = &deployments[0];
    assert_eq!(d.environment, "preview/pr-1");
    assert!(d.transient_environment && !d.production_environment && !d.auto_merge);
    assert!(d.required_contexts.is_empty());
    assert_eq!(d.payload, json!({"preview": 1}));
    let statuses = sim.deployment_statuses(d.id);
    let states: Vec<_> = statuses.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["in_progress", "success"]);
    assert_eq!(
        statuses[1].environment_url.as_deref(),
        Some("https://pr-1.preview.example.com")
    );
    let listed = repos
        .deployments()
        .statuses(dep.id)
        .list()
        .send()
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2, "newest first");
    let err = repos
        .deployments()
        .create("")
        .auto_merge(false)
        .send()
        .await
        .expect_err("no ref");
    assert_eq!(github_error(err).status_code.as_u16(), 422);
}

#[tokio::test]
async fn octocrab_remints_an_expired_token() {
    // octocrab treats a token as expired 30 s before `expires_at`: 31 s leaves it ~1 s of use.
    let (sim, inst) = sim_with(GitHubSimOptions {
        token_lifetime: Duration::from_secs(31),
        ..Default::default()
    })
    .await;
    let octo = inst_client(&sim, inst);
    octo.repos("acme", "web").get().await.expect("first call");
    assert_eq!(sim.calls().tokens_minted, 1);
    wait::until("octocrab to mint a second token", DEADLINE, || {
        let (octo, sim) = (octo.clone(), sim.clone());
        async move {
            octo.repos("acme", "web").get().await.ok()?;
            (sim.calls().tokens_minted >= 2).then_some(())
        }
    })
    .await
    .expect("re-minted");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let (sim, inst) = sim_with(GitHubSimOptions {
        token_lifetime: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let token = raw_token(&sim, inst).await;
    let url = format!("{}/repos/acme/web", sim.url());
    let (status, _, _) = raw_get(url.clone(), &format!("token {token}")).await;
    assert_eq!(status, 200);
    let body = wait::until("the token to expire", DEADLINE, || {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let (status, _, body) = raw_get(url, &format!("Bearer {token}")).await;
            (status == 401).then_some(body)
        }
    })
    .await
    .expect("refused once expired");
    assert_eq!(body["message"], "Bad credentials");
    assert_eq!(body["status"], "401");
    assert_eq!(body["documentation_url"], "https://docs.github.com/rest");
}

#[tokio::test]
async fn unauthorized_on_first_use_makes_octocrab_remint() {
    let (sim, inst) = sim().await;
    sim.inject(Fault::any(FaultKind::UnauthorizedOnFirstUse, 1));
    let octo = inst_client(&sim, inst);
    octo.repos("acme", "web")
        .get()
        .await
        .expect("octocrab retries once with a fresh token");
    assert_eq!(sim.calls().tokens_minted, 2);
    assert_eq!(sim.calls().by_route["GET /repos/{owner}/{repo}"], 2);
}

#[tokio::test]
async fn forged_and_malformed_jwts_are_refused() {
    let (sim, _) = sim().await;
    let err = app_client(&sim, FORGED_KEY)
        .get::<Value, _, ()>("/app", None)
        .await
        .expect_err("signed with another key");
    let err = github_error(err);
    assert_eq!(err.status_code.as_u16(), 401);
    assert_eq!(err.message, "A JSON web token could not be decoded");

    let app: Value = app_client(&sim, APP_KEY)
        .get("/app", None::<&()>)
        .await
        .expect("the real key works");
    assert_eq!(app["id"], 1234);
    assert_eq!(app["slug"], "previewd");

    let url = format!("{}/app", sim.url());
    let bad = [
        json!({"iss": 1234, "iat": now() - 700, "exp": now() - 100}),
        json!({"iss": 1234, "iat": now(), "exp": now() + 1200}),
        json!({"iss": 1234, "iat": now() + 300, "exp": now() + 500}),
        json!({"iss": 9999, "iat": now() - 60, "exp": now() + 500}),
    ];
    for claims in bad {
        let (status, _, body) =
            raw_get(url.clone(), &format!("Bearer {}", jwt(APP_KEY, &claims))).await;
        assert_eq!(status, 401, "{claims}");
        assert_eq!(body["status"], "401");
    }
    // `iss` may be a string; `iat` a minute back and `exp` ten minutes ahead is fine.
    let ok = jwt(
        APP_KEY,
        &json!({"iss": "1234", "iat": now() - 60, "exp": now() + 600}),
    );
    assert_eq!(raw_get(url.clone(), &format!("Bearer {ok}")).await.0, 200);
    assert_eq!(raw_get(url, "").await.0, 401);
}

#[tokio::test]
async fn a_token_only_opens_its_own_installations_repositories() {
    let (sim, inst) = sim().await;
    let other = sim.add_installation("globex");
    sim.add_repo(other, "globex/api");
    let octo = inst_client(&sim, inst);
    let err = octo
        .repos("globex", "api")
        .get()
        .await
        .expect_err("not this installation's");
    assert_eq!(github_error(err).status_code.as_u16(), 401);
    let err = octo
        .repos("acme", "nope")
        .get()
        .await
        .expect_err("no such repository");
    assert_eq!(github_error(err).status_code.as_u16(), 404);
    let theirs = inst_client(&sim, other);
    let repo = theirs
        .repos("globex", "api")
        .get()
        .await
        .expect("their own");
    assert_eq!(repo.full_name.as_deref(), Some("globex/api"));
    assert_eq!(repo.private, Some(true));
    assert_eq!(repo.default_branch.as_deref(), Some("main"));
    // Installation listing and lookup by repository, with the App's JWT.
    let app = app_client(&sim, APP_KEY);
    let found = app
        .apps()
        .get_repository_installation("globex", "api")
        .await
        .expect("installation");
    assert_eq!(found.id.0, u64::try_from(other).expect("id"));
    let listed: Value = octo
        .get("/installation/repositories", None::<&()>)
        .await
        .expect("listed");
    assert_eq!(listed["total_count"], 1);
    assert_eq!(listed["repositories"][0]["full_name"], "acme/web");
}

#[tokio::test]
async fn contents_are_base64_in_sixty_character_lines_or_404() {
    let (sim, inst) = sim().await;
    let config = format!("# preview\nimage: {}\n", "x".repeat(120));
    sim.put_file(REPO, "main", ".github/preview.yml", &config);
    let (pr, _) = sim
        .open_pr(
            REPO,
            NewPr {
                head_ref: "broken".into(),
                ..Default::default()
            },
        )
        .await;
    sim.put_file(REPO, "broken", ".github/preview.yml", "image: [unclosed\n");
    let octo = inst_client(&sim, inst);
    let repos = octo.repos("acme", "web");

    let mut on_main = repos
        .get_content()
        .path(".github/preview.yml")
        .r#ref("main")
        .send()
        .await
        .expect("found");
    let item = on_main.take_items().remove(0);
    assert_eq!(item.decoded_content().as_deref(), Some(config.as_str()));
    assert_eq!(
        (item.r#type.as_str(), item.encoding.as_deref()),
        ("file", Some("base64"))
    );
    let raw = item.content.clone().expect("content");
    assert!(raw.lines().all(|l| l.len() <= 60) && raw.ends_with('\n') && raw.lines().count() > 1);

    // The pull request's head sha sees its branch's file.
    let mut on_head = repos
        .get_content()
        .path(".github/preview.yml")
        .r#ref(pr.head_sha.clone())
        .send()
        .await
        .expect("found");
    assert_eq!(
        on_head.take_items()[0].decoded_content().as_deref(),
        Some("image: [unclosed\n")
    );

    let err = repos
        .get_content()
        .path("missing.yml")
        .r#ref("main")
        .send()
        .await
        .expect_err("missing");
    let err = github_error(err);
    assert_eq!(
        (err.status_code.as_u16(), err.message.as_str()),
        (404, "Not Found")
    );
    let err = repos
        .get_content()
        .path(".github/preview.yml")
        .r#ref("no-such-branch")
        .send()
        .await
        .expect_err("bad ref");
    assert_eq!(github_error(err).status_code.as_u16(), 404);
}

#[tokio::test]
async fn directories_and_pull_request_files_come_from_put_files() {
    let (sim, inst) = sim().await;
    sim.put_file(REPO, "main", "README.md", "hello\n");
    sim.put_file(REPO, "main", ".github/preview.yml", "port: 8080\n");
    let (pr, _) = sim.open_pr(REPO, NewPr::default()).await;
    sim.put_file(REPO, &pr.head_sha, ".github/preview.yml", "port: 9090\n");
    sim.put_file(REPO, &pr.head_sha, "src/main.rs", "fn main() {}\n");
    sim.put_file(REPO, &pr.head_sha, "README.md", "hello\n");
    let octo = inst_client(&sim, inst);

    let root: Vec<Value> = octo
        .get(
            format!("/repos/acme/web/contents/?ref={}", pr.head_sha),
            None::<&()>,
        )
        .await
        .expect("root listing");
    let entries: Vec<(String, String)> = root
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap_or_default().to_owned(),
                e["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (".github".into(), "dir".into()),
            ("README.md".into(), "file".into()),
            ("src".into(), "dir".into())
        ]
    );
    assert!(
        root.iter().all(|e| e.get("content").is_none()),
        "listings carry no content"
    );

    let files: Vec<Value> = octo
        .get(
            format!(
                "/repos/acme/web/pulls/{}/files?per_page=100&page=1",
                pr.number
            ),
            None::<&()>,
        )
        .await
        .expect("files");
    let changed: Vec<(&str, &str)> = files
        .iter()
        .map(|f| {
            (
                f["filename"].as_str().unwrap_or_default(),
                f["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            (".github/preview.yml", "modified"),
            ("src/main.rs", "added")
        ]
    );
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let (sim, _) = sim().await;
    let url = format!("{}/app", sim.url());
    let copy = sim.clone();
    drop(sim);
    assert_eq!(
        raw_get(url.clone(), "").await.0,
        401,
        "a clone keeps it running"
    );
    drop(copy);
    wait::until("the server to stop", DEADLINE, || {
        let url = url.clone();
        async move { reqwest::get(url).await.is_err().then_some(()) }
    })
    .await
    .expect("stopped");
}

#[tokio::test]
async fn pulls_permissions_and_labels_speak_githubs_shapes() {
    let (sim, inst) = sim().await;
    sim.set_permission(REPO, "alice", "maintain");
    for i in 0..3 {
        sim.open_pr(
            REPO,
            NewPr {
                head_ref: format!("b{i}"),
                ..Default::default()
            },
        )
        .await;
    }
    sim.close_pr(REPO, 1, false).await;
    let octo = inst_client(&sim, inst);
    let open = octo.pulls("acme", "web").list().send().await.expect("open");
    assert_eq!(
        open.items.iter().map(|p| p.number).collect::<Vec<_>>(),
        [3, 2]
    );
    let all = octo
        .pulls("acme", "web")
        .list()
        .state(octocrab::params::State::All)
        .per_page(2)
        .send()
        .await
        .expect("all");
    assert_eq!(all.items.len(), 2);
    assert!(all.next.is_some(), "Link: rel=next");
    let one = octo.pulls("acme", "web").get(1).await.expect("pull");
    assert_eq!(one.head.ref_field, "b0");
    assert!(one.closed_at.is_some());

    // octocrab's RepoPermission cannot parse GitHub's legacy `permission`, so read it raw.
    let p: Value = octo
        .get(
            "/repos/acme/web/collaborators/alice/permission",
            None::<&()>,
        )
        .await
        .expect("permission");
    assert_eq!(
        (p["permission"].as_str(), p["role_name"].as_str()),
        (Some("write"), Some("maintain"))
    );
    assert_eq!(p["user"]["login"], "alice");
    let p: Value = octo
        .get(
            "/repos/acme/web/collaborators/mallory/permission",
            None::<&()>,
        )
        .await
        .expect("permission");
    assert_eq!(p["permission"], "none");

    let labels = octo
        .issues("acme", "web")
        .add_labels(2, &["preview:approved".to_owned()])
        .await
        .expect("labelled");
    assert_eq!(labels[0].name, "preview:approved");
    assert_eq!(sim.pr(REPO, 2).labels, ["preview:approved"]);
    octo.issues("acme", "web")
        .remove_label(2, "preview:approved")
        .await
        .expect("unlabelled");
    assert!(sim.pr(REPO, 2).labels.is_empty());
}

#[tokio::test]
async fn webhooks_arrive_signed_with_githubs_headers_and_parse_with_octocrab() {
    let (sim, inst) = sim().await;
    let receiver = Receiver::start(&sim).await;
    sim.set_permission(REPO, "octocat", "write");

    let (pr, d) = sim
        .open_pr(
            REPO,
            NewPr {
                labels: vec!["preview".into()],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(d.status_code, Some(200));
    assert_eq!(
        (d.event.as_str(), d.action.as_deref()),
        ("pull_request", Some("opened"))
    );
    assert_eq!(d.installation_id, Some(inst));
    let (h, body) = receiver.last();
    assert_eq!(
        header(&h, "x-hub-signature-256"),
        signature("webhook-secret-value", &body)
    );
    octocrab::models::webhook_events::verify_signature(
        header(&h, "x-hub-signature-256"),
        "webhook-secret-value",
        &body,
    )
    .expect("octocrab verifies the signature");
    assert_eq!(header(&h, "x-github-delivery"), d.guid);
    assert!(uuid::Uuid::parse_str(&d.guid).is_ok());
    assert_eq!(header(&h, "x-github-event"), "pull_request");
    assert!(header(&h, "user-agent").starts_with("GitHub-Hookshot/"));
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(
        header(&h, "x-github-hook-installation-target-type"),
        "integration"
    );
    assert_eq!(header(&h, "x-github-hook-installation-target-id"), "1234");
    assert!(!header(&h, "x-github-hook-id").is_empty());
    let event = parse(&h, &body);
    let WebhookEventPayload::PullRequest(p) = event.specific else {
        panic!("not a pull request event")
    };
    assert_eq!(p.number, pr.number);
    assert_eq!(p.pull_request.head.sha, pr.head_sha);
    assert_eq!(
        event.installation.expect("installation").id().0,
        u64::try_from(inst).expect("id")
    );
    let raw: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(raw["pull_request"]["labels"][0]["name"], "preview");
    assert_eq!(raw["pull_request"]["author_association"], "COLLABORATOR");
    assert_eq!(raw["repository"]["full_name"], REPO);

    // Every other event the App receives parses too.
    sim.push(REPO, pr.number, &"c".repeat(40)).await;
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::PullRequest
    );
    sim.add_label(REPO, pr.number, "preview:approved", "alice")
        .await;
    let raw: Value = serde_json::from_slice(&receiver.last().1).expect("json");
    assert_eq!(
        (raw["action"].as_str(), raw["label"]["name"].as_str()),
        (Some("labeled"), Some("preview:approved"))
    );
    sim.comment(REPO, pr.number, "alice", "/preview redeploy")
        .await;
    let (h, body) = receiver.last();
    let WebhookEventPayload::IssueComment(c) = parse(&h, &body).specific else {
        panic!("not a comment event")
    };
    assert_eq!(c.comment.body.as_deref(), Some("/preview redeploy"));
    assert!(c.issue.pull_request.is_some());

    let run: Value = inst_client(&sim, inst)
        .post(
            "/repos/acme/web/check-runs",
            Some(&json!({"name": "Preview", "head_sha": "c".repeat(40)})),
        )
        .await
        .expect("check run");
    let run_id = run["id"].as_i64().expect("id");
    assert_eq!(run["pull_requests"][0]["number"], pr.number);
    let typed = inst_client(&sim, inst)
        .checks("acme", "web")
        .list_check_runs_for_git_ref(Commitish("c".repeat(40)))
        .send()
        .await
        .expect("octocrab parses check runs with their pull requests");
    assert_eq!(typed.check_runs[0].pull_requests[0].number, pr.number);
    sim.request_action(REPO, run_id, "redeploy", "alice").await;
    let (h, body) = receiver.last();
    assert_eq!(parse(&h, &body).kind, WebhookEventType::CheckRun);
    let raw: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(raw["requested_action"]["identifier"], "redeploy");
    assert_eq!(raw["check_run"]["id"], run_id);
    assert_eq!(raw["check_run"]["app"]["id"], 1234);
    assert_eq!(raw["check_run"]["check_suite"]["head_sha"], "c".repeat(40));
    sim.rerequest_check_run(REPO, run_id, "alice").await;
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::CheckRun
    );
    sim.rerequest_check_suite(REPO, &"c".repeat(40), "alice")
        .await;
    let raw: Value = serde_json::from_slice(&receiver.last().1).expect("json");
    assert_eq!(raw["check_suite"]["pull_requests"][0]["number"], pr.number);
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::CheckSuite
    );
    sim.close_pr(REPO, pr.number, true).await;
    let raw: Value = serde_json::from_slice(&receiver.last().1).expect("json");
    assert_eq!(
        (
            raw["action"].as_str(),
            raw["pull_request"]["merged"].as_bool()
        ),
        (Some("closed"), Some(true))
    );
    sim.installation_repositories_event(inst, &["acme/api"], &[])
        .await;
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::InstallationRepositories
    );
    sim.installation_event(inst, "suspend").await;
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::Installation
    );
    let d = sim.ping().await;
    assert_eq!(d.status_code, Some(200));
    assert_eq!(
        parse(&receiver.last().0, &receiver.last().1).kind,
        WebhookEventType::Ping
    );
    let d = sim.send_raw("pull_request", b"{not json".to_vec()).await;
    assert_eq!(receiver.last().1.as_ref(), b"{not json");
    assert_eq!(d.action, None);
    assert_eq!(sim.deliveries().len(), receiver.received().len());
}

#[tokio::test]
async fn dropped_deliveries_are_listed_and_redelivered() {
    let (sim, _) = sim().await;
    let receiver = Receiver::start(&sim).await;
    sim.drop_next_deliveries(1);
    let (_, dropped) = sim.open_pr(REPO, NewPr::default()).await;
    assert_eq!(dropped.status_code, None);
    assert!(receiver.received().is_empty());
    *receiver.status.lock().expect("lock") = 503;
    let refused = sim.ping().await;
    assert_eq!(refused.status_code, Some(503));

    let app = app_client(&sim, APP_KEY);
    let listed: Vec<Value> = app
        .get("/app/hook/deliveries", Some(&json!({"per_page": 10})))
        .await
        .expect("listed");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], refused.id, "newest first");
    assert_eq!(listed[0]["status"], "Invalid HTTP Response: 503");
    assert_eq!(listed[1]["guid"], dropped.guid);
    assert_eq!(listed[1]["status_code"], 0);
    assert_eq!(listed[1]["event"], "pull_request");
    assert_eq!(listed[1]["action"], "opened");
    let paged: Vec<Value> = app
        .get("/app/hook/deliveries", Some(&json!({"per_page": 1})))
        .await
        .expect("paged");
    assert_eq!(paged.len(), 1);

    *receiver.status.lock().expect("lock") = 202;
    let res = app
        ._post(
            format!("/app/hook/deliveries/{}/attempts", dropped.id),
            None::<&()>,
        )
        .await
        .expect("attempt");
    assert_eq!(res.status().as_u16(), 202);
    let again = wait::until("the redelivery to arrive", DEADLINE, || {
        let sim = sim.clone();
        let guid = dropped.guid.clone();
        async move {
            sim.deliveries()
                .into_iter()
                .find(|d| d.guid == guid && d.redelivery)
        }
    })
    .await
    .expect("redelivered");
    assert_eq!(again.status_code, Some(202));
    assert_ne!(again.id, dropped.id);
    let (h, _) = receiver.last();
    assert_eq!(header(&h, "x-github-delivery"), dropped.guid);

    let direct = sim.redeliver(refused.id).await;
    assert!(direct.redelivery && direct.guid == refused.guid && direct.status_code == Some(202));
}

#[tokio::test]
async fn injected_faults_look_like_githubs_bad_days() {
    let (sim, inst) = sim().await;
    let octo = inst_client(&sim, inst);
    octo.repos("acme", "web").get().await.expect("warm up");
    sim.reset_calls();

    sim.inject(Fault::on(
        "GET /repos/{owner}/{repo}",
        FaultKind::Status(502),
        2,
    ));
    octo.repos("acme", "web")
        .get()
        .await
        .expect("octocrab retries 5xx and gets through");
    assert_eq!(sim.calls().by_route["GET /repos/{owner}/{repo}"], 3);

    sim.inject(Fault::any(
        FaultKind::SecondaryRateLimit {
            status: 403,
            retry_after_secs: 7,
        },
        1,
    ));
    let err = github_error(
        octo.repos("acme", "web")
            .get()
            .await
            .expect_err("rate limited"),
    );
    assert_eq!(err.status_code.as_u16(), 403);
    assert!(
        err.message.contains("secondary rate limit"),
        "{}",
        err.message
    );
    let headers = err.headers.expect("headers");
    assert_eq!(headers["retry-after"].to_str().ok(), Some("7"));
    assert!(headers.contains_key("x-ratelimit-remaining"));

    sim.inject(Fault::any(
        FaultKind::Latency(Duration::from_millis(300)),
        1,
    ));
    let started = Instant::now();
    octo.repos("acme", "web")
        .get()
        .await
        .expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Rate-limit headers on every answer, the budget going down per installation.
    let token = raw_token(&sim, inst).await;
    let url = format!("{}/repos/acme/web", sim.url());
    let (_, h1, _) = raw_get(url.clone(), &format!("token {token}")).await;
    let (_, h2, _) = raw_get(url, &format!("token {token}")).await;
    let remaining = |h: &HeaderMap| {
        header(h, "x-ratelimit-remaining")
            .parse::<u64>()
            .expect("number")
    };
    assert_eq!(remaining(&h1) - 1, remaining(&h2));
    assert_eq!(header(&h2, "x-ratelimit-limit"), "5000");
    assert_eq!(header(&h2, "x-ratelimit-resource"), "core");
    assert!(
        header(&h2, "x-ratelimit-reset")
            .parse::<i64>()
            .expect("epoch")
            > now()
    );
    assert!(!header(&h2, "x-github-request-id").is_empty());
}

#[tokio::test]
#[should_panic(expected = "no route")]
async fn a_fault_on_a_misspelt_route_is_refused() {
    let (sim, _) = sim().await;
    sim.inject(Fault::on(
        "POST /repos/{owner}/{repo}/check_runs",
        FaultKind::Status(500),
        1,
    ));
}

#[tokio::test]
async fn unimplemented_routes_answer_a_loud_501() {
    let (sim, inst) = sim().await;
    let octo = inst_client(&sim, inst);
    let err = octo
        .get::<Value, _, ()>("/repos/acme/web/branches", None)
        .await
        .expect_err("not implemented");
    let err = github_error(err);
    assert_eq!(err.status_code.as_u16(), 501);
    assert_eq!(
        err.message,
        "github simulator: not implemented: GET /repos/acme/web/branches"
    );
    let calls = sim.calls();
    assert_eq!(calls.unimplemented, ["GET /repos/acme/web/branches"]);
    assert!(calls.total >= 2);
}

/// Sends a request with a raw installation token; returns status, headers and body.
async fn raw(
    method: reqwest::Method,
    url: String,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("authorization", format!("token {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn conditional_gets_answer_304_for_free_until_something_changes() {
    let (sim, inst) = sim().await;
    sim.add_pr_quietly(REPO, NewPr::default());
    let token = raw_token(&sim, inst).await;
    let url = format!("{}/repos/acme/web/pulls?state=open", sim.url());
    let get = reqwest::Method::GET;
    let (status, h1, body) = raw(get.clone(), url.clone(), &token, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    let etag = header(&h1, "etag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    sim.reset_calls();

    let (status, h2, _) = raw(
        get.clone(),
        url.clone(),
        &token,
        &[("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(status, 304, "unchanged");
    assert_eq!(header(&h2, "etag"), etag);
    assert_eq!(
        header(&h2, "x-ratelimit-remaining"),
        header(&h1, "x-ratelimit-remaining"),
        "a 304 costs no rate limit"
    );
    let calls = sim.calls();
    assert_eq!((calls.total, calls.not_modified), (0, 1), "{calls:?}");

    sim.add_pr_quietly(REPO, NewPr::default());
    let (status, h3, body) = raw(get, url, &token, &[("if-none-match", &etag)], None).await;
    assert_eq!(status, 200, "changed");
    assert_ne!(header(&h3, "etag"), etag);
    assert_eq!(body.as_array().map(Vec::len), Some(2));
    assert_eq!(sim.calls().total, 1);
}

#[tokio::test]
async fn listings_page_as_github_does() {
    let (sim, inst) = sim().await;
    for _ in 0..130 {
        sim.add_pr_quietly(REPO, NewPr::default());
    }
    let token = raw_token(&sim, inst).await;
    let get = reqwest::Method::GET;
    let (_, h, body) = raw(
        get.clone(),
        format!("{}/repos/acme/web/pulls", sim.url()),
        &token,
        &[],
        None,
    )
    .await;
    assert_eq!(body.as_array().map(Vec::len), Some(30), "30 by default");
    assert!(header(&h, "link").contains("rel=\"next\""));
    let (_, h, body) = raw(
        get.clone(),
        format!("{}/repos/acme/web/pulls?per_page=500", sim.url()),
        &token,
        &[],
        None,
    )
    .await;
    assert_eq!(body.as_array().map(Vec::len), Some(100), "100 at most");
    let next = header(&h, "link")
        .split(',')
        .find(|l| l.contains("rel=\"next\""))
        .and_then(|l| l.split(';').next())
        .map(|u| u.trim().trim_matches(['<', '>']).to_owned())
        .expect("next link");
    let (_, h, body) = raw(get, next, &token, &[], None).await;
    assert_eq!(body.as_array().map(Vec::len), Some(30));
    assert!(
        !header(&h, "link").contains("rel=\"next\""),
        "the last page"
    );
}

#[tokio::test]
async fn writes_can_fail_or_stall_after_github_applied_them() {
    let (sim, inst) = sim().await;
    let pr = sim.add_pr_quietly(REPO, NewPr::default());
    let token = raw_token(&sim, inst).await;
    let path = format!("/repos/acme/web/issues/{}/comments", pr.number);
    sim.inject(
        Fault::on(
            "POST /repos/{owner}/{repo}/issues/{id}/comments",
            FaultKind::FailAfterApply(502),
            1,
        )
        .at_path(&path),
    );
    let post = reqwest::Method::POST;
    let url = format!("{}{path}", sim.url());
    let (status, _, _) = raw(
        post.clone(),
        url.clone(),
        &token,
        &[],
        Some(json!({"body": "one"})),
    )
    .await;
    assert_eq!(status, 502, "GitHub said it failed");
    assert_eq!(
        sim.comments(REPO, pr.number).len(),
        1,
        "but it made the comment"
    );

    sim.inject(Fault::on(
        "POST /repos/{owner}/{repo}/issues/{id}/comments",
        FaultKind::SlowAfterApply(Duration::from_secs(30)),
        1,
    ));
    let slow = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client")
        .post(url)
        .header("authorization", format!("token {token}"))
        .json(&json!({"body": "two"}))
        .send()
        .await;
    assert!(slow.is_err_and(|e| e.is_timeout()), "no answer in time");
    assert_eq!(
        sim.comments(REPO, pr.number).len(),
        2,
        "applied all the same"
    );
}

#[tokio::test]
async fn scoped_tokens_reach_only_their_repository_and_permissions() {
    let (sim, inst) = sim().await;
    sim.add_repo(inst, "acme/api");
    sim.put_file(REPO, "main", "README.md", "hello");
    sim.put_file("acme/api", "main", "README.md", "api");
    let jwt = jwt(
        APP_KEY,
        &json!({"iss": 1234, "iat": now() - 60, "exp": now() + 540}),
    );
    let mint = |body: Value| {
        let (sim, jwt) = (sim.clone(), jwt.clone());
        async move {
            let res = reqwest::Client::new()
                .post(format!(
                    "{}/app/installations/{inst}/access_tokens",
                    sim.url()
                ))
                .bearer_auth(jwt)
                .json(&body)
                .send()
                .await
                .expect("mint");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) =
        mint(json!({"repositories": ["web"], "permissions": {"contents": "read"}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["permissions"],
        json!({"contents": "read", "metadata": "read"})
    );
    assert_eq!(body["repositories"][0]["full_name"], "acme/web");
    let token = body["token"].as_str().expect("token").to_owned();
    let get = reqwest::Method::GET;
    let contents = |repo: &str| format!("{}/repos/{repo}/contents/README.md", sim.url());
    assert_eq!(
        raw(get.clone(), contents("acme/web"), &token, &[], None)
            .await
            .0,
        200
    );
    assert_eq!(
        raw(get.clone(), contents("acme/api"), &token, &[], None)
            .await
            .0,
        404,
        "another repository of the installation"
    );
    let (status, _, err) = raw(
        reqwest::Method::POST,
        format!("{}/repos/acme/web/check-runs", sim.url()),
        &token,
        &[],
        Some(json!({"name": "x", "head_sha": "abc"})),
    )
    .await;
    assert_eq!(
        (status, err["message"].as_str()),
        (403, Some("Resource not accessible by integration"))
    );
    let (_, _, listed) = raw(
        get,
        format!("{}/installation/repositories", sim.url()),
        &token,
        &[],
        None,
    )
    .await;
    assert_eq!(listed["total_count"], 1);

    assert_eq!(mint(json!({"repositories": ["elsewhere"]})).await.0, 422);
    assert_eq!(
        mint(json!({"permissions": {"administration": "write"}}))
            .await
            .0,
        422
    );
    assert_eq!(
        mint(json!({"permissions": {"contents": "write"}})).await.0,
        422,
        "the App has contents: read"
    );
}

#[tokio::test]
async fn custom_repository_roles_report_their_name_and_base() {
    let (sim, inst) = sim().await;
    sim.set_custom_role(REPO, "dana", "deployer", "write");
    let token = raw_token(&sim, inst).await;
    let (status, _, p) = raw(
        reqwest::Method::GET,
        format!("{}/repos/acme/web/collaborators/dana/permission", sim.url()),
        &token,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(p["permission"], "write");
    assert_eq!(p["role_name"], "deployer");
    assert_eq!(p["user"]["permissions"]["push"], true);
    assert_eq!(p["user"]["permissions"]["maintain"], false);
}
