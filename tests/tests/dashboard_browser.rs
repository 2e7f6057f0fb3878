//! The dashboard in a real browser (headless Chromium over WebDriver): sign in with GitHub, see
//! only your repositories' previews, filter, open a detail page (its events and log), retry a
//! failed preview and see it run, follow a log live and see a new line appear (and the stream
//! close when the page goes), delete one with its confirmation and see the namespace go. Each step saves a
//! screenshot into `target/dashboard-screenshots/`.

use previewd_entity::PreviewStatus;
use previewd_tests::{
    browser::Browser,
    db::Engine,
    github::NewPr,
    kube::Behaviour,
    scenario::{self, MAINTAINER, Options, REPO},
    wait,
};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n";
const TITLE: &str = "Make <b>checkout</b> faster";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_signs_in_filters_retries_and_deletes_in_a_browser() -> anyhow::Result<()> {
    let options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    scenario::run(options, async |s| {
        s.kube.set_behaviour_for_image(
            "ghcr.io/acme/flaky",
            Behaviour::CrashLoopBackOff {
                logs: vec!["panic: cache unavailable".into()],
            },
        );
        s.gh.put_file(REPO, "feature/checkout", ".github/preview.yml", READY_IMAGE);
        let sha = s.sha();
        let (good, _) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/checkout".into(),
                    head_sha: sha,
                    title: TITLE.into(),
                    ..NewPr::default()
                },
            )
            .await;
        let flaky = s
            .open_pr_with_config(
                "feature/cache",
                "image: ghcr.io/acme/flaky:{sha}\nport: 8080\n",
            )
            .await;
        let running = s.wait_status(good.number, PreviewStatus::Running).await;
        let failed = s.wait_status(flaky.number, PreviewStatus::Failed).await;
        // A preview of a repository maya cannot reach.
        s.open_pr_elsewhere("globex", "globex/api", "gina", "Globex secret project")
            .await;

        let browser = Browser::start().await?;
        let app = s.app_url.clone();
        // Signed in to GitHub as maya (GitHub's own cookie; cookies are per host, not port).
        browser.goto(&format!("{app}/healthz")).await?;
        browser.add_cookie("user_session", MAINTAINER).await?;

        // Sign in: the list sends a stranger through GitHub and back.
        browser.goto(&format!("{app}/previews")).await?;
        let text = browser.wait_text("Signed in as maya", None).await?;
        browser.screenshot("01-signed-in-list").await?;
        assert!(
            text.contains(TITLE),
            "the title is shown as text, tags and all: {text}"
        );
        assert!(text.contains("Change feature/cache"));
        assert!(
            !text.contains("Globex secret project"),
            "only maya's repositories"
        );
        assert!(browser.url().await?.ends_with("/previews"));

        // Filter by status with the form.
        browser
            .click("select[name=status] option[value=failed]")
            .await?;
        browser.click("form.filters button[type=submit]").await?;
        // The list before the filter says "Change feature/cache" too: wait for the one without
        // the running preview (a filter that keeps it fails here, after the wait's deadline).
        browser
            .wait_text_where("the running preview to be filtered out", |text| {
                text.contains("Change feature/cache") && !text.contains(TITLE)
            })
            .await?;
        assert!(browser.url().await?.contains("status=failed"));
        browser.screenshot("02-filtered-failed").await?;

        // Open the failed preview.
        browser
            .click(&format!("a[href=\"/previews/{}\"]", failed.id))
            .await?;
        let text = browser.wait_text("Attempts", None).await?;
        assert!(text.contains(&failed.namespace));
        assert!(text.contains("failed"));
        // The cluster's side: the attempt's events and the crashing container's own words.
        assert!(text.contains("Events of the current attempt"), "{text}");
        assert!(text.contains("BackOff"), "the crash loop's events: {text}");
        assert!(text.contains("panic: cache unavailable"), "its log: {text}");
        browser.screenshot("03-detail-failed").await?;

        // The cause is fixed; Retry deploys the head commit again and it runs.
        s.kube
            .set_behaviour_for_image("ghcr.io/acme/flaky", Behaviour::Succeed);
        browser
            .click(&format!(
                "form[action=\"/previews/{}/retry\"] button",
                failed.id
            ))
            .await?;
        browser.wait_text("retry of", None).await?;
        s.wait_status(flaky.number, PreviewStatus::Running).await;
        let detail = format!("{app}/previews/{}", failed.id);
        browser.wait_text("running", Some(&detail)).await?;
        browser.screenshot("04-retried-running").await?;

        // Follow the running one's log live: a line the pod writes appears without a reload,
        // as text.
        let page = format!("{app}/previews/{}", running.id);
        browser.goto(&format!("{page}?follow=1#logs")).await?;
        let text = browser.wait_text("following live", None).await?;
        assert!(text.contains("Usage") && text.contains("CPU"), "{text}");
        let pod = s
            .kube
            .list("pods", Some(&running.namespace))
            .into_iter()
            .find_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
            .expect("a running pod");
        let line = "GET /checkout 200 <script>alert(1)</script>";
        s.kube.write_log(&running.namespace, &pod, None, line)?;
        browser.wait_text(line, None).await?;
        assert_eq!(s.kube.open_log_follows(), 1, "one stream, the page's");
        browser.screenshot("05-following-logs").await?;
        // Leaving the page ends the stream, down to the cluster.
        browser.goto(&format!("{app}/previews")).await?;
        let kube = s.kube.clone();
        wait::until("the followed log to close", scenario::DEADLINE, || {
            let kube = kube.clone();
            async move { (kube.open_log_follows() == 0).then_some(()) }
        })
        .await?;

        // Delete the other one: the form asks for its namespace.
        browser.goto(&page).await?;
        browser
            .type_into("form.delete input[name=confirm]", &running.namespace)
            .await?;
        browser.click("form.delete button").await?;
        browser.wait_text("is being deleted", None).await?;
        let kube = s.kube.clone();
        let namespace = running.namespace.clone();
        wait::until("the namespace to go", scenario::DEADLINE, || {
            let kube = kube.clone();
            let namespace = namespace.clone();
            async move { (!kube.namespaces().contains(&namespace)).then_some(()) }
        })
        .await?;
        browser.wait_text("deleted", Some(&page)).await?;
        browser.screenshot("06-deleted").await?;
        browser.quit().await;
        Ok(())
    })
    .await
}
