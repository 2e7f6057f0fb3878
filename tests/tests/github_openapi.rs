//! The simulated GitHub's answers, checked against GitHub's own published REST description
//! (`@octokit/openapi`, installed at test time into a cache outside the repository): every
//! operation previewd uses is exercised through previewd's client, and every answer the
//! simulator gave must fit the response schema GitHub documents for it — so the typed models and
//! the simulator cannot drift apart from GitHub.

use std::collections::BTreeSet;

use previewd::{
    config::GithubConfig,
    github::{
        GitHub, RepoName,
        api::{CheckRunReport, CheckStatus, Conclusion, DeploymentState, DeploymentStatus},
    },
};
use previewd_tests::{
    github::{Fault, FaultKind, GitHubSim, GitHubSimOptions, NewPr},
    openapi::{Spec, Unavailable},
};
use secrecy::SecretString;

const REPO: &str = "acme/web";

/// Where GitHub's description contradicts itself, with the reason each is not held against the
/// simulator: (route, the problem's start).
const DESCRIPTION_QUIRKS: &[(&str, &str)] = &[
    // `GET /app/installations` types each item's `account` as allOf[simple-user, enterprise]
    // (the single-installation operation says anyOf): an organization account cannot be an
    // enterprise too; the enterprise-only fields are not asked of it.
    ("GET /app/installations", "/account/name: required"),
    ("GET /app/installations", "/account/slug: required"),
    ("GET /app/installations", "/account/created_at: required"),
    ("GET /app/installations", "/account/updated_at: required"),
];

fn is_quirk(route: &str, problem: &str) -> bool {
    DESCRIPTION_QUIRKS
        .iter()
        .any(|(r, p)| *r == route && problem.contains(p))
}
const MARKER: &str = "<!-- previewd:openapi -->";

/// Every REST operation previewd's `github::api` uses, as the simulator's route keys.
const USED: &[&str] = &[
    "POST /app/installations/{id}/access_tokens",
    "GET /app/installations",
    "GET /app/hook/deliveries",
    "POST /app/hook/deliveries/{id}/attempts",
    "GET /installation/repositories",
    "GET /repos/{owner}/{repo}/pulls",
    "GET /repos/{owner}/{repo}/pulls/{id}/files",
    "GET /repos/{owner}/{repo}/collaborators/{name}/permission",
    "GET /repos/{owner}/{repo}/contents/{path}",
    "POST /repos/{owner}/{repo}/check-runs",
    "PATCH /repos/{owner}/{repo}/check-runs/{id}",
    "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
    "POST /repos/{owner}/{repo}/issues/{id}/comments",
    "PATCH /repos/{owner}/{repo}/issues/comments/{id}",
    "GET /repos/{owner}/{repo}/issues/{id}/comments",
    "POST /repos/{owner}/{repo}/deployments",
    "GET /repos/{owner}/{repo}/deployments",
    "POST /repos/{owner}/{repo}/deployments/{id}/statuses",
    "GET /repos/{owner}/{repo}/deployments/{id}/statuses",
    // Operators named by team.
    "GET /orgs/{org}/teams/{team}/memberships/{name}",
    // With a person's own token (the dashboard).
    "GET /user",
    "GET /user/installations",
    "GET /user/installations/{id}/repositories",
];

/// Calls every operation previewd uses, some of them in more than one shape of answer.
async fn exercise(sim: &GitHubSim, github: &GitHub, inst: i64) {
    let repo = RepoName::parse(REPO).expect("name");
    sim.set_permission(REPO, "maya", "write");
    sim.set_custom_role(REPO, "dana", "deployer", "write");
    sim.put_file(REPO, "main", ".github/preview.yml", "port: 8080\n");
    sim.put_file(REPO, "feature", "chart/Chart.yaml", "name: web\n");
    sim.put_file(REPO, "feature", "chart/templates/a.yaml", "kind: x\n");
    let pr = sim.add_pr_quietly(
        REPO,
        NewPr {
            head_ref: "feature".into(),
            ..NewPr::default()
        },
    );
    sim.add_pr_quietly(
        REPO,
        NewPr {
            from_fork: true,
            author: "otto".into(),
            head_ref: "fork-branch".into(),
            ..NewPr::default()
        },
    );
    sim.ping().await; // no webhook URL: a failed delivery in the log

    github.installation_token(inst).await.expect("token");
    github.clone_token(inst, &repo).await.expect("scoped token");
    github.installations().await.expect("installations");
    github
        .installation_repositories(inst)
        .await
        .expect("repositories");
    github
        .open_pull_requests(inst, &repo, 0)
        .await
        .expect("pulls");
    github
        .pull_request_files(inst, &repo, pr.number)
        .await
        .expect("files");
    for who in ["maya", "dana", "nobody"] {
        github
            .permission(inst, &repo, who)
            .await
            .expect("permission");
    }
    sim.add_team_member("acme", "platform", "olga");
    for (who, member) in [("olga", true), ("nobody", false)] {
        let answer = github
            .team_member(inst, "acme", "platform", who)
            .await
            .expect("membership");
        assert_eq!(answer, member, "{who}");
    }
    github
        .file(inst, &repo, ".github/preview.yml", "main")
        .await
        .expect("file");
    assert!(
        github
            .file(inst, &repo, "missing.yml", "main")
            .await
            .expect("no file")
            .is_none()
    );
    github
        .directory(inst, &repo, "chart", &pr.head_sha)
        .await
        .expect("directory");

    let mut report = CheckRunReport {
        head_sha: pr.head_sha.clone(),
        status: CheckStatus::Queued,
        external_id: "1".into(),
        details_url: Some("https://previewd.example.test/previews/1".into()),
        title: "Queued".into(),
        summary: "Waiting".into(),
        text: None,
        actions: Vec::new(),
    };
    let run = github
        .create_check_run(inst, &repo, &report)
        .await
        .expect("check run");
    report.status = CheckStatus::Completed(Conclusion::Success);
    report.text = Some("done".into());
    github
        .update_check_run(inst, &repo, run, &report)
        .await
        .expect("update");
    github
        .update_check_run_output(inst, &repo, run, "Title", "Summary")
        .await
        .expect("output");
    github
        .find_check_run(inst, &repo, &pr.head_sha, "1")
        .await
        .expect("find run");

    let body = format!("{MARKER}\nhello");
    let comment = github
        .create_comment(inst, &repo, pr.number, &body, MARKER)
        .await
        .expect("comment");
    github
        .update_comment(inst, &repo, comment, &format!("{MARKER}\nagain"))
        .await
        .expect("update comment");
    github
        .find_comment(inst, &repo, pr.number, MARKER)
        .await
        .expect("find comment");

    let deployment = github
        .create_deployment(inst, &repo, &pr.head_sha, "preview/pr-1", "Preview", "1")
        .await
        .expect("deployment");
    github
        .find_deployment(inst, &repo, &pr.head_sha, "preview/pr-1", "1")
        .await
        .expect("find deployment");
    // One status applied but answered 502, so the latest status is read back.
    sim.inject(Fault::on(
        "POST /repos/{owner}/{repo}/deployments/{id}/statuses",
        FaultKind::FailAfterApply(502),
        1,
    ));
    for (state, url) in [
        (DeploymentState::InProgress, None),
        (
            DeploymentState::Success,
            Some("https://x.preview.example.test"),
        ),
    ] {
        github
            .create_deployment_status(
                inst,
                &repo,
                deployment,
                &DeploymentStatus {
                    state,
                    environment_url: url,
                    log_url: Some("https://previewd.example.test/previews/1"),
                    description: "status",
                },
            )
            .await
            .expect("status");
    }

    let page = github.hook_deliveries_page(None).await.expect("deliveries");
    github
        .redeliver(page.deliveries[0].id)
        .await
        .expect("redeliver");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_answers_fit_githubs_published_schemas() {
    let spec = match tokio::task::spawn_blocking(Spec::fetch)
        .await
        .expect("task")
    {
        Ok(spec) => spec,
        Err(Unavailable::NoRegistry(why)) => {
            eprintln!("SKIPPED: GitHub's OpenAPI description cannot be installed here: {why}");
            return;
        }
        Err(Unavailable::Broken(e)) => panic!("GitHub's OpenAPI description: {e:#}"),
    };
    let sim = GitHubSim::start(GitHubSimOptions::default())
        .await
        .expect("simulator");
    let inst = sim.add_installation("acme");
    sim.add_repo(inst, REPO);
    let github = GitHub::new(&GithubConfig {
        app_id: 1234,
        private_key: SecretString::from(include_str!("../fixtures/app-key.pem")),
        webhook_secret: SecretString::from("webhook-secret-value"),
        api_url: url::Url::parse(&sim.url()).expect("url"),
        web_url: url::Url::parse(&sim.url()).expect("url"),
        oauth: None,
    })
    .expect("client");
    sim.record_responses(true);
    exercise(&sim, &github, inst).await;
    let token = SecretString::from(sim.user_token("maya"));
    let person = github.person(&token).await.expect("who");
    assert_eq!(person.login, "maya");
    let reach = github
        .person_repositories(&token)
        .await
        .expect("repositories");
    assert_eq!(reach.len(), 1, "maya reaches acme/web: {reach:?}");

    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for answer in sim.recorded_responses() {
        let (method, template) = answer.route.split_once(' ').expect("route key");
        assert!(
            spec.has_operation(method, template),
            "{} is not an operation of GitHub's REST API",
            answer.route
        );
        if answer.status == 304 {
            continue; // no body
        }
        seen.insert(answer.route.clone());
        let Some(schema) = spec.response_schema(method, template, answer.status) else {
            // GitHub documents no body for this status (an injected 502, a 202 without one).
            continue;
        };
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
            panic!(
                "{} answered {} with non-JSON: {e}",
                answer.route, answer.status
            )
        });
        for p in spec.check(schema, &body) {
            if is_quirk(&answer.route, &p) {
                continue;
            }
            problems.push(format!("{} {}: {p}", answer.route, answer.status));
        }
    }
    let missing: Vec<&&str> = USED.iter().filter(|u| !seen.contains(**u)).collect();
    assert!(
        missing.is_empty(),
        "operations previewd uses that were not exercised: {missing:?}"
    );
    assert!(
        problems.is_empty(),
        "the simulator's answers do not fit GitHub's description:\n{}",
        problems.join("\n")
    );

    // The check would notice a simulator that dropped or mistyped a field.
    let answer = sim
        .recorded_responses()
        .into_iter()
        .find(|a| a.route == "POST /repos/{owner}/{repo}/check-runs" && a.status == 201)
        .expect("a created check run");
    let schema = spec
        .response_schema("POST", "/repos/{owner}/{repo}/check-runs", 201)
        .expect("schema");
    let mut body: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
    body.as_object_mut().expect("object").remove("head_sha");
    body["id"] = serde_json::json!("not a number");
    let found = spec.check(schema, &body).join("\n");
    assert!(found.contains("/head_sha: required but missing"), "{found}");
    assert!(found.contains("/id: expected integer"), "{found}");
}
