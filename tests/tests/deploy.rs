//! A pull request's first life: opened, deployed, shown on GitHub — or refused with a reason.

use std::time::Duration;

use previewd::previews::report::COMMENT_MARKER;
use previewd_entity::{PreviewStatus, deploy_attempt};
use previewd_tests::{
    db::Engine,
    github::{Fault, FaultKind},
    kube::Behaviour,
    scenario::{self, MAINTAINER, OUTSIDER, Options, REPO, preview_of},
    wait,
};
use sea_orm::{EntityTrait, PaginatorTrait};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n";

async fn opened_pull_request_gets_a_running_preview(engine: Engine) -> anyhow::Result<()> {
    scenario::run(Options::new(engine), async |s| {
        let pr = s.open_pr_with_config("feature/login", READY_IMAGE).await;

        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let url = preview.url.clone().expect("a URL");
        assert_eq!(
            url,
            format!("https://{}.preview.example.test", preview.namespace)
        );

        // GitHub shows it: a successful check run, one comment with the URL, a successful deployment.
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"), "{run:?}");
        assert!(run.summary.as_deref().unwrap_or_default().contains(&url));
        assert_eq!(
            run.external_id.as_deref(),
            Some("1"),
            "external_id is the attempt id"
        );
        assert_eq!(
            run.details_url.as_deref(),
            Some(format!("http://previewd.example.test/previews/{}", preview.id).as_str())
        );
        assert_eq!(
            s.gh.check_runs(REPO, &pr.head_sha).len(),
            1,
            "one check run per attempt"
        );
        let comments = s.wait_comment(pr.number, &url).await;
        assert_eq!(comments.len(), 1, "{comments:?}");
        let deployments = s.gh.deployments(REPO);
        assert_eq!(deployments.len(), 1);
        let d = &deployments[0];
        assert!(
            !d.auto_merge
                && d.transient_environment
                && !d.production_environment
                && d.required_contexts.is_empty()
        );
        assert_eq!(d.environment, format!("preview/pr-{}", pr.number));
        let statuses = s.gh.deployment_statuses(d.id);
        let states: Vec<&str> = statuses.iter().map(|d| d.state.as_str()).collect();
        assert_eq!(states, ["success"], "no status before the outcome's");
        assert_eq!(statuses[0].environment_url.as_deref(), Some(url.as_str()));

        // The cluster has the namespace with its guard rails and the workload.
        let ns = &preview.namespace;
        let namespace = s.kube.get("namespaces", None, ns).expect("namespace");
        assert_eq!(
            namespace["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "previewd"
        );
        assert_eq!(
            namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
            "restricted"
        );
        let quota = &s.kube.list("resourcequotas", Some(ns))[0];
        assert_eq!(quota["spec"]["hard"]["limits.cpu"], "500m");
        assert_eq!(quota["spec"]["hard"]["limits.memory"], "512Mi");
        assert_eq!(s.kube.list("limitranges", Some(ns)).len(), 1);
        assert!(s.kube.list("networkpolicies", Some(ns)).len() >= 3);
        assert_eq!(s.kube.list("deployments", Some(ns)).len(), 1);
        assert_eq!(s.kube.list("services", Some(ns)).len(), 1);
        let ingress = &s.kube.list("ingresses", Some(ns))[0];
        assert_eq!(
            ingress["spec"]["rules"][0]["host"],
            format!("{ns}.preview.example.test")
        );

        // The database tells the same story.
        let attempts = deploy_attempt::Entity::find().all(&s.db).await?;
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].status,
            previewd_entity::AttemptStatus::Succeeded
        );
        assert_eq!(
            attempts[0].image.as_deref(),
            Some(format!("ghcr.io/acme/web:{}", pr.head_sha).as_str())
        );
        let preview = preview_of(&s.db, pr.number).await.expect("preview");
        assert!(
            preview.comment_id.is_some_and(|id| id > 0)
                && attempts[0].check_run_id.is_some_and(|id| id > 0),
            "{preview:?} {attempts:?}"
        );

        // Few GitHub calls, and nothing the simulators do not know.
        let calls = s.gh.calls();
        assert!(calls.unimplemented.is_empty(), "{:?}", calls.unimplemented);
        // Installation tokens are minted once an hour per process (app and worker), not per PR;
        // the reconciler's rounds (running beside every scenario) are not the PR's calls.
        let reconciler: u64 = [
            "GET /app/installations",
            "GET /installation/repositories",
            "GET /repos/{owner}/{repo}/pulls",
        ]
        .iter()
        .filter_map(|route| calls.by_route.get(*route))
        .sum();
        // Seven: the author's permission, `.github/preview.yml`, the check run (the app's
        // queued one, then its outcome: a rollout this fast is never shown in progress), the
        // deployment and its one status, the comment. The permission is asked again with the
        // answer's ETag for the author's next PR: a 304, free of rate limit.
        let per_pr = calls.total - calls.tokens_minted - reconciler;
        assert!(
            per_pr <= 7,
            "GitHub calls for one deployed PR: {per_pr} ({:?})",
            calls.by_route
        );
        assert!(
            s.kube.requests().unimplemented.is_empty(),
            "{:?}",
            s.kube.requests().unimplemented
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_pull_request_gets_a_running_preview() -> anyhow::Result<()> {
    opened_pull_request_gets_a_running_preview(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opened_pull_request_gets_a_running_preview() -> anyhow::Result<()> {
    opened_pull_request_gets_a_running_preview(Engine::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_is_built_in_the_cluster_without_a_config() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s.open_pr("feature/build").await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let ns = preview.namespace.clone();
        let attempt = preview.current_attempt_id.expect("current attempt");
        let build_ns = format!("{ns}--b{attempt}");

        // The build ran in a namespace of its own, privileged there only, and it is gone.
        let built = s
            .kube
            .ever("namespaces", None)
            .into_iter()
            .find(|n| n["metadata"]["name"] == build_ns.as_str())
            .expect("a build namespace existed");
        let labels = &built["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
        assert_eq!(labels["previewd.dev/attempt"], attempt.to_string());
        let kube = s.kube.clone();
        let gone = build_ns.clone();
        wait::until(
            "the build namespace to be gone",
            Duration::from_secs(30),
            || {
                let (kube, gone) = (kube.clone(), gone.clone());
                async move { kube.get("namespaces", None, &gone).is_none().then_some(()) }
            },
        )
        .await?;
        let jobs = s.kube.ever("jobs", Some(&build_ns));
        assert_eq!(jobs.len(), 1, "one build job");
        assert_eq!(jobs[0]["status"]["succeeded"], 1);
        let secrets = s.kube.ever("secrets", Some(&build_ns));
        assert_eq!(secrets.len(), 1, "the token lived in the build namespace");
        // It was minted for this build: this repository only, its contents read only.
        let encoded = secrets[0]["data"]["GIT_AUTH_TOKEN"]
            .as_str()
            .expect("the token is in the Secret");
        let token = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
                .expect("base64"),
        )
        .expect("utf-8");
        assert_eq!(
            s.gh.token_grant(&token),
            Some((
                Some(vec!["acme/web".to_owned()]),
                // GitHub adds metadata:read to every token.
                vec!["contents:read".to_owned(), "metadata:read".to_owned()]
            )),
            "a scoped token, not the installation's"
        );

        // Out of it only to the git host (the simulated GitHub) and the registry.
        let policy = s
            .kube
            .ever("networkpolicies", Some(&build_ns))
            .into_iter()
            .find(|p| p["metadata"]["name"] == "allow-build-egress")
            .expect("the build's egress policy");
        let mut allowed: Vec<String> = policy["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|rule| {
                format!(
                    "{}:{}",
                    rule["to"][0]["ipBlock"]["cidr"].as_str().unwrap_or("?"),
                    rule["ports"][0]["port"]
                )
            })
            .collect();
        allowed.sort();
        let gh_port = s.gh.url().rsplit(':').next().unwrap_or_default().to_owned();
        assert_eq!(
            allowed,
            [
                "10.96.0.50/32:5000".to_owned(),
                format!("127.0.0.1/32:{gh_port}")
            ]
        );

        // The preview's own namespace stays restricted and never held a build or the token.
        assert!(s.kube.ever("jobs", Some(&ns)).is_empty());
        assert!(s.kube.ever("secrets", Some(&ns)).is_empty());
        for namespace in s.kube.ever("namespaces", None) {
            if namespace["metadata"]["name"] == ns.as_str() {
                assert_eq!(
                    namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                    "restricted"
                );
            }
        }
        let image = format!("10.96.0.50:5000/previews/acme/web:{}", pr.head_sha);
        let deployment = &s.kube.list("deployments", Some(&ns))[0];
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            image.as_str()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failure_is_reported_once() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.kube
            .set_behaviour_for_image("ghcr.io/acme/missing", Behaviour::ImagePullBackOff);
        let pr = s
            .open_pr_with_config("feature/typo", "image: ghcr.io/acme/missing:{sha}\n")
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Failed).await;
        assert!(
            preview
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("ImagePullBackOff"),
            "{preview:?}"
        );
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        assert!(
            run.title
                .as_deref()
                .unwrap_or_default()
                .contains("ImagePullBackOff"),
            "{run:?}"
        );
        assert!(
            run.summary
                .as_deref()
                .unwrap_or_default()
                .contains("ghcr.io/acme/missing"),
            "names the image: {run:?}"
        );
        // The comment is the last report: once it is there, so is everything before it.
        let comments = s.wait_comment(pr.number, "failed").await;
        assert_eq!(comments.len(), 1);
        let deployment = &s.gh.deployments(REPO)[0];
        let states: Vec<String> =
            s.gh.deployment_statuses(deployment.id)
                .into_iter()
                .map(|d| d.state)
                .collect();
        assert_eq!(states, ["failure"]);
        // A user error is not retried: one attempt, one apply of the workload, nothing queued.
        assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 1);
        assert!(s.deploy_queue_is_idle().await?, "no retry is scheduled");
        assert_eq!(
            s.kube.requests().count("apply", "deployments"),
            1,
            "{:?}",
            s.kube.requests().by_verb_resource
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_reports_the_sanitized_log_tail() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.kube.set_behaviour_for_image(
            "ghcr.io/acme/web",
            Behaviour::CrashLoopBackOff {
                logs: vec![
                    "starting web on :8080".into(),
                    "Error: cannot connect to postgres://app:hunter2@db.internal:5432/app".into(),
                    "token=ghs_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                ],
            },
        );
        let pr = s.open_pr_with_config("feature/crash", READY_IMAGE).await;
        s.wait_status(pr.number, PreviewStatus::Failed).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        assert!(
            run.title
                .as_deref()
                .unwrap_or_default()
                .contains("CrashLoopBackOff"),
            "{run:?}"
        );
        let text = run.text.clone().unwrap_or_default();
        assert!(
            text.contains("cannot connect to"),
            "the log tail is shown: {text}"
        );
        // The comment is written after the check run: wait for it, so the check below is not vacuous.
        s.wait_comment(pr.number, "Preview failed").await;
        for secret in ["hunter2", "ghs_abcdef"] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into the check run: {text}"
            );
            for comment in s.gh.comments(REPO, pr.number) {
                assert!(
                    !comment.body.contains(secret),
                    "{secret} leaked into the comment"
                );
            }
        }
        assert_eq!(deploy_attempt::Entity::find().count(&s.db).await?, 1);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_config_is_a_failure_naming_the_line() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        let pr = s
            .open_pr_with_config(
                "feature/config",
                "image: ghcr.io/acme/web:{sha}\nport: 8080\nreplicas: 3\n",
            )
            .await;
        s.wait_status(pr.number, PreviewStatus::Failed).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        let summary = run.summary.clone().unwrap_or_default();
        assert!(
            summary.contains("line 3") && summary.contains("replicas"),
            "{summary}"
        );
        assert!(
            s.kube
                .namespaces()
                .iter()
                .all(|n| !n.starts_with("acme-web")),
            "nothing was created in the cluster"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_waits_for_approval_per_commit() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.gh.put_file(REPO, "main", ".github/preview.yml", READY_IMAGE);
        let pr = s.open_pr_as(OUTSIDER, "otto/feature", true).await;
        s.wait_status(pr.number, PreviewStatus::AwaitingApproval)
            .await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("action_required"));
        assert!(
            run.summary
                .as_deref()
                .unwrap_or_default()
                .contains("preview:approved"),
            "{run:?}"
        );
        assert!(
            s.kube
                .namespaces()
                .iter()
                .all(|n| !n.starts_with("acme-web")),
            "untrusted code is not deployed"
        );

        // An approval by someone without write permission is refused.
        s.gh.comment(REPO, pr.number, OUTSIDER, "/preview approve")
            .await;
        assert_eq!(s.wait_refusal(pr.number, OUTSIDER, "approve").await, 1);
        // Refusals never add "approval needed" check runs: still the one from the first try.
        assert_eq!(s.gh.check_runs(REPO, &pr.head_sha).len(), 1);
        assert!(
            s.kube
                .namespaces()
                .iter()
                .all(|n| !n.starts_with("acme-web"))
        );

        // A maintainer approves this commit: deployed.
        s.gh.add_label(REPO, pr.number, "preview:approved", MAINTAINER)
            .await;
        s.wait_status(pr.number, PreviewStatus::Running).await;

        // A new push needs a new approval.
        let next = s.sha();
        s.gh.push(REPO, pr.number, &next).await;
        let gh = s.gh.clone();
        wait::until(
            "action_required on the new commit",
            Duration::from_secs(30),
            || {
                let (gh, next) = (gh.clone(), next.clone());
                async move {
                    gh.check_runs(REPO, &next)
                        .into_iter()
                        .any(|c| c.conclusion.as_deref() == Some("action_required"))
                        .then_some(())
                }
            },
        )
        .await?;
        let preview = preview_of(&s.db, pr.number).await.expect("preview");
        assert_eq!(preview.status, PreviewStatus::AwaitingApproval);
        assert_eq!(
            s.gh.comments(REPO, pr.number)
                .into_iter()
                .filter(|c| c.body.contains(COMMENT_MARKER))
                .count(),
            1,
            "still one sticky comment"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_errors_for_a_while_do_not_stop_the_preview() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.gh.inject(Fault::on(
            "POST /repos/{owner}/{repo}/check-runs",
            FaultKind::Status(502),
            3,
        ));
        s.gh.inject(Fault::on(
            "POST /repos/{owner}/{repo}/issues/{id}/comments",
            FaultKind::Status(500),
            2,
        ));
        s.gh.inject(Fault::on(
            "POST /repos/{owner}/{repo}/deployments",
            FaultKind::SecondaryRateLimit {
                status: 403,
                retry_after_secs: 1,
            },
            1,
        ));
        s.gh.inject(Fault::on(
            "PATCH /repos/{owner}/{repo}/check-runs/{id}",
            FaultKind::SecondaryRateLimit {
                status: 429,
                retry_after_secs: 1,
            },
            1,
        ));
        let pr = s.open_pr_with_config("feature/flaky", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("success"));
        let comments = s
            .wait_comment(pr.number, &preview.url.unwrap_or_default())
            .await;
        assert_eq!(comments.len(), 1, "no duplicate comment: {comments:?}");
        assert_eq!(
            s.gh.check_runs(REPO, &pr.head_sha).len(),
            1,
            "no duplicate check run"
        );
        Ok(())
    })
    .await
}

/// The repository's own Helm chart, rendered by the real `helm` and applied by server-side apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_chart_is_rendered_and_applied() -> anyhow::Result<()> {
    let helm = std::env::var("HELM_BIN")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.tools/bin/helm").to_owned());
    assert!(
        std::path::Path::new(&helm).is_file(),
        "helm not found at {helm}: run scripts/install-tools"
    );
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push(format!("--helm-bin={helm}"));
    scenario::run(options, async |s| {
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/tests/fixtures/chart");
        let branch = "feature/chart";
        for entry in walk(&fixture) {
            let relative = entry.strip_prefix(&fixture)?.to_string_lossy().into_owned();
            s.gh.put_file(
                REPO,
                branch,
                &format!("deploy/chart/{relative}"),
                &std::fs::read_to_string(&entry)?,
            );
        }
        let pr = s
            .open_pr_with_config(
                branch,
                "image: ghcr.io/acme/web:{sha}\nchart: deploy/chart\n",
            )
            .await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let ns = &preview.namespace;
        let deployments = s.kube.list("deployments", Some(ns));
        assert_eq!(deployments.len(), 1, "the chart's Deployment");
        let image = deployments[0]["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            image,
            format!("ghcr.io/acme/web:{}", pr.head_sha),
            "previewd's image reaches the chart's values"
        );
        assert_eq!(
            deployments[0]["metadata"]["labels"]["app.kubernetes.io/managed-by"], "previewd",
            "labelled for pruning"
        );
        assert!(
            !s.kube.list("configmaps", Some(ns)).is_empty(),
            "the chart's ConfigMap"
        );
        assert!(
            s.kube
                .list("pods", Some(ns))
                .iter()
                .all(|p| !p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("test-connection")),
            "helm test hooks are skipped"
        );
        Ok(())
    })
    .await
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_that_never_gets_ready_fails_at_the_deadline() -> anyhow::Result<()> {
    let mut options = Options::new(Engine::Sqlite);
    options.settings.push("--deploy-timeout=3s".into());
    scenario::run(options, async |s| {
        s.kube
            .set_behaviour_for_image("ghcr.io/acme/slow", Behaviour::NeverReady);
        let pr = s
            .open_pr_with_config(
                "feature/slow",
                "image: ghcr.io/acme/slow:{sha}\nhealth: /ready\n",
            )
            .await;
        s.wait_status(pr.number, PreviewStatus::Failed).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"), "{run:?}");
        assert!(
            run.title
                .as_deref()
                .unwrap_or_default()
                .contains("never became ready"),
            "{run:?}"
        );
        assert!(
            run.summary
                .as_deref()
                .unwrap_or_default()
                .contains("health"),
            "says what to check: {run:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_replaced_once() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.gh.inject(Fault::any(FaultKind::UnauthorizedOnFirstUse, 2));
        let pr = s.open_pr_with_config("feature/token", READY_IMAGE).await;
        s.wait_status(pr.number, PreviewStatus::Running).await;
        assert_eq!(
            s.completed_check_run(&pr.head_sha)
                .await
                .conclusion
                .as_deref(),
            Some("success")
        );
        assert!(
            s.gh.calls().tokens_minted >= 3,
            "a refused token is replaced: {:?}",
            s.gh.calls()
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_branch_names_still_get_a_valid_preview() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        // Long, in parts of up to 255 bytes (a ref is stored as a path).
        let part = "Ünïcödé.Branch-".repeat(8);
        let long = format!("Feature/{part}/{part}");
        for branch in ["0-Leading.Digits/UPPER", "feature/代码/🚀", long.as_str()] {
            let pr = s.open_pr_with_config(branch, READY_IMAGE).await;
            let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
            assert!(
                previewd::cluster::is_dns1123_label(&preview.namespace),
                "{}",
                preview.namespace
            );
            assert!(preview.namespace.len() <= 63);
            assert!(s.kube.get("namespaces", None, &preview.namespace).is_some());
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_shows_its_log() -> anyhow::Result<()> {
    scenario::run(Options::new(Engine::Sqlite), async |s| {
        s.kube.set_behaviour_for_image(
            "moby/buildkit",
            Behaviour::JobFails {
                logs: vec![
                    "#5 [2/3] RUN npm ci".into(),
                    "npm ERR! missing script: build".into(),
                ],
            },
        );
        let pr = s.open_pr("feature/broken-build").await;
        s.wait_status(pr.number, PreviewStatus::Failed).await;
        let run = s.completed_check_run(&pr.head_sha).await;
        assert_eq!(run.conclusion.as_deref(), Some("failure"));
        assert!(
            run.title
                .as_deref()
                .unwrap_or_default()
                .contains("image build failed"),
            "{run:?}"
        );
        assert!(
            run.text
                .as_deref()
                .unwrap_or_default()
                .contains("npm ERR! missing script"),
            "{run:?}"
        );
        assert_eq!(
            deploy_attempt::Entity::find().count(&s.db).await?,
            1,
            "not retried"
        );
        Ok(())
    })
    .await
}
