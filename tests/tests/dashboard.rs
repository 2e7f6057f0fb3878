//! The dashboard over HTTP: signing in with GitHub, who sees which previews, and the actions —
//! with the authorization matrix checked on the server (not only hidden buttons), CSRF and
//! cross-site refusals, escaping of hostile values, token refresh and revoked authorizations.

use previewd_entity::{PreviewStatus, deploy_attempt, session};
use previewd_tests::{
    db::Engine,
    github::NewPr,
    kube::Behaviour,
    scenario::{self, MAINTAINER, OUTSIDER, Options, REPO, Scenario},
    visitor::Visitor,
    wait,
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

const READY_IMAGE: &str = "image: ghcr.io/acme/web:{sha}\nport: 8080\nhealth: /healthz\n";
/// A second installation, with its own repository and writer.
const OTHER_REPO: &str = "globex/api";
const OTHER_WRITER: &str = "gina";
const OPERATOR: &str = "olga";
/// Nobody on any repository.
const STRANGER: &str = "sam";
const HOSTILE_TITLE: &str = "Fix <script>alert('pwned')</script> & friends";

fn options(engine: Engine) -> anyhow::Result<Options> {
    let mut options = Options::new(engine).with_loopback_public_url()?;
    options.settings.push(format!("--operators={OPERATOR}"));
    Ok(options)
}

/// Opens a pull request in the other installation's repository and waits for its preview.
async fn other_installation_preview(s: &mut Scenario) -> i64 {
    s.open_pr_elsewhere("globex", OTHER_REPO, OTHER_WRITER, "Globex API change")
        .await;
    let db = s.db.clone();
    let preview = wait::until("the globex preview to run", scenario::DEADLINE, || {
        let db = db.clone();
        async move {
            previewd_entity::preview::Entity::find()
                .filter(previewd_entity::preview::Column::Status.eq(PreviewStatus::Running))
                .filter(previewd_entity::preview::Column::Namespace.contains("globex"))
                .one(&db)
                .await
                .ok()
                .flatten()
        }
    })
    .await
    .expect("globex preview running");
    preview.id
}

async fn signed_in(s: &Scenario, login: &str) -> anyhow::Result<Visitor> {
    let mut v = Visitor::new(&s.app_url, login)?;
    let page = v.sign_in("/previews").await?;
    assert_eq!(page.status, StatusCode::OK, "{login}: {page:?}");
    assert!(page.body.contains(login), "{login} is named on the page");
    Ok(v)
}

async fn attempts_of(s: &Scenario, preview_id: i64) -> u64 {
    deploy_attempt::Entity::find()
        .filter(deploy_attempt::Column::PreviewId.eq(preview_id))
        .count(&s.db)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_see_their_previews_and_act_only_where_they_may() -> anyhow::Result<()> {
    scenario::run(options(Engine::Sqlite)?, async |s| {
        s.gh.put_file(REPO, "feature/xss", ".github/preview.yml", READY_IMAGE);
        let sha = s.sha();
        let (pr, _) =
            s.gh.open_pr(
                REPO,
                NewPr {
                    author: MAINTAINER.into(),
                    head_ref: "feature/xss".into(),
                    head_sha: sha,
                    title: HOSTILE_TITLE.into(),
                    ..NewPr::default()
                },
            )
            .await;
        let acme = s.wait_status(pr.number, PreviewStatus::Running).await;
        let globex = other_installation_preview(s).await;
        let acme_page = format!("/previews/{}", acme.id);
        let globex_page = format!("/previews/{globex}");

        // A stranger is sent to sign in; nothing is shown before.
        let mut anonymous = Visitor::new(&s.app_url, STRANGER)?;
        let page = anonymous.get(&acme_page).await?;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(!page.body.contains(&acme.namespace));
        let page = anonymous
            .post(&format!("{acme_page}/redeploy"), &[("csrf", "x")], &[])
            .await?;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "no action before sign-in"
        );

        let mut maya = signed_in(s, MAINTAINER).await?;
        let mut otto = signed_in(s, OUTSIDER).await?;
        let mut gina = signed_in(s, OTHER_WRITER).await?;
        let mut olga = signed_in(s, OPERATOR).await?;
        let mut sam = signed_in(s, STRANGER).await?;

        // The list: each sees exactly their installations' repositories.
        let list = maya.get("/previews").await?;
        assert!(list.body.contains(&acme.namespace) || list.body.contains(&acme_page));
        assert!(
            !list.body.contains(&globex_page),
            "maya does not see globex"
        );
        assert!(
            list.body
                .contains("Fix &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; &amp; friends")
                || list
                    .body
                    .contains("Fix &lt;script&gt;alert('pwned')&lt;/script&gt; &amp; friends"),
            "the hostile title is shown as text"
        );
        assert!(!list.body.contains("<script>"), "no markup from a PR title");
        let list = gina.get("/previews").await?;
        assert!(list.body.contains(&globex_page) && !list.body.contains(&acme_page));
        let list = olga.get("/previews").await?;
        assert!(list.body.contains(&globex_page) && list.body.contains(&acme_page));
        assert!(
            list.body.contains("running"),
            "operators see totals by status"
        );
        let list = sam.get("/previews").await?;
        assert!(!list.body.contains(&globex_page) && !list.body.contains(&acme_page));

        // Filters: status, repository, mine, search.
        let failed = olga.get("/previews?status=failed").await?;
        assert!(!failed.body.contains(&acme_page) && !failed.body.contains(&globex_page));
        let by_repo = olga.get("/previews?repo=globex%2Fapi").await?;
        assert!(by_repo.body.contains(&globex_page) && !by_repo.body.contains(&acme_page));
        let mine = gina.get("/previews?mine=1").await?;
        assert!(mine.body.contains(&globex_page));
        let mine = olga.get("/previews?mine=1").await?;
        assert!(!mine.body.contains(&globex_page), "olga opened nothing");
        let search = olga.get("/previews?q=SCRIPT").await?;
        assert!(search.body.contains(&acme_page) && !search.body.contains(&globex_page));
        let wildcard = olga.get("/previews?q=%25").await?;
        assert!(
            !wildcard.body.contains(&acme_page),
            "% is searched for literally"
        );
        assert_eq!(
            olga.get("/previews?status=bogus").await?.status,
            StatusCode::BAD_REQUEST
        );

        // Detail pages: visible ones open; others are not found (no existence leak).
        let detail = otto.get(&acme_page).await?;
        assert_eq!(detail.status, StatusCode::OK);
        assert!(detail.body.contains(&acme.namespace));
        assert!(
            !detail.body.contains("/redeploy\""),
            "a reader gets no buttons"
        );
        let detail = maya.get(&acme_page).await?;
        assert!(
            detail
                .body
                .contains(&format!("action=\"{acme_page}/redeploy\""))
        );
        assert_eq!(gina.get(&acme_page).await?.status, StatusCode::NOT_FOUND);
        assert_eq!(sam.get(&acme_page).await?.status, StatusCode::NOT_FOUND);
        assert_eq!(olga.get(&globex_page).await?.status, StatusCode::OK);
        assert_eq!(
            maya.get("/previews/999999").await?.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            maya.get("/previews/abc").await?.status,
            StatusCode::NOT_FOUND
        );

        // The authorization matrix on the server: every action × reader, other installation,
        // stranger. None changes anything.
        let before = attempts_of(s, acme.id).await;
        for verb in ["delete", "retry", "redeploy", "extend"] {
            let path = format!("{acme_page}/{verb}");
            let confirm = [("confirm", acme.namespace.as_str())];
            assert_eq!(
                otto.act(&path, &confirm).await?.status,
                StatusCode::FORBIDDEN,
                "reader {verb}"
            );
            assert_eq!(
                gina.act(&path, &confirm).await?.status,
                StatusCode::NOT_FOUND,
                "other installation {verb}"
            );
            assert_eq!(
                sam.act(&path, &confirm).await?.status,
                StatusCode::NOT_FOUND,
                "stranger {verb}"
            );
        }
        assert_eq!(attempts_of(s, acme.id).await, before);

        // A writer's actions need the CSRF token and a same-origin request.
        let path = format!("{acme_page}/redeploy");
        let no_token = maya
            .post(&path, &[("csrf", "")], &[("sec-fetch-site", "same-origin")])
            .await?;
        assert_eq!(no_token.status, StatusCode::FORBIDDEN);
        let wrong_token = maya
            .post(
                &path,
                &[("csrf", "not-the-token")],
                &[("sec-fetch-site", "same-origin")],
            )
            .await?;
        assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
        let csrf = maya.csrf.clone().expect("a token on the page");
        for site in ["same-site", "cross-site"] {
            let page = maya
                .post(
                    &path,
                    &[("csrf", csrf.as_str())],
                    &[("sec-fetch-site", site)],
                )
                .await?;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{site}");
        }
        let foreign = maya
            .post(
                &path,
                &[("csrf", csrf.as_str())],
                &[("origin", "https://evil.example")],
            )
            .await?;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN, "another origin");
        let olga_token = olga.csrf.clone().expect("token");
        let swapped = maya
            .post(
                &path,
                &[("csrf", olga_token.as_str())],
                &[("sec-fetch-site", "same-origin")],
            )
            .await?;
        assert_eq!(
            swapped.status,
            StatusCode::FORBIDDEN,
            "another session's token"
        );
        assert_eq!(
            attempts_of(s, acme.id).await,
            before,
            "nothing done without a valid request"
        );

        // Retry applies to failed deploys only; said on the page, nothing done.
        let retry = maya.act(&format!("{acme_page}/retry"), &[]).await?;
        assert_eq!(retry.status, StatusCode::SEE_OTHER);
        let shown = maya.get(&acme_page).await?;
        assert!(
            shown.body.contains("only a failed deploy can be retried"),
            "{}",
            shown.body
        );
        assert_eq!(attempts_of(s, acme.id).await, before);

        // Redeploy: a new attempt, queued on GitHub, running again.
        let redeploy = maya.act(&path, &[]).await?;
        assert_eq!(redeploy.status, StatusCode::SEE_OTHER);
        assert_eq!(attempts_of(s, acme.id).await, before + 1);
        let shown = maya.get(&acme_page).await?;
        assert!(shown.body.contains("redeploy of"), "the result is shown");
        s.wait_status(pr.number, PreviewStatus::Running).await;

        // Extend: the expiry moves.
        let extend = maya.act(&format!("{acme_page}/extend"), &[]).await?;
        assert_eq!(extend.status, StatusCode::SEE_OTHER);
        let shown = maya.get(&acme_page).await?;
        assert!(shown.body.contains("now expires"), "{}", shown.body);

        // An operator acts anywhere; delete wants the namespace typed.
        let wrong = olga
            .act(
                &format!("{globex_page}/delete"),
                &[("confirm", "something-else")],
            )
            .await?;
        assert_eq!(wrong.status, StatusCode::SEE_OTHER);
        let shown = olga.get(&globex_page).await?;
        assert!(shown.body.contains("type its namespace"), "{}", shown.body);
        let globex_ns = previewd_entity::preview::Entity::find_by_id(globex)
            .one(&s.db)
            .await?
            .expect("row")
            .namespace;
        let deleted = olga
            .act(
                &format!("{globex_page}/delete"),
                &[("confirm", globex_ns.as_str())],
            )
            .await?;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER);
        let db = s.db.clone();
        wait::until(
            "the globex preview to be deleted",
            scenario::DEADLINE,
            || {
                let db = db.clone();
                async move {
                    let p = previewd_entity::preview::Entity::find_by_id(globex)
                        .one(&db)
                        .await
                        .ok()??;
                    (p.status == PreviewStatus::Deleted).then_some(())
                }
            },
        )
        .await?;
        assert!(
            !s.kube.namespaces().contains(&globex_ns),
            "the namespace is gone"
        );

        // Signing out ends the session; the old cookie is worth nothing.
        let old_cookie = maya.cookie.clone();
        let out = maya.act("/auth/logout", &[]).await?;
        assert_eq!(out.status, StatusCode::OK);
        maya.cookie = old_cookie;
        assert_eq!(maya.get("/previews").await?.status, StatusCode::SEE_OTHER);

        // Revoking the App's authorization on GitHub ends that person's sessions at once.
        let sessions = |login: &str| {
            let id = previewd_tests::github::user_id(login);
            session::Entity::find()
                .filter(session::Column::UserId.eq(id))
                .count(&s.db)
        };
        assert_eq!(sessions(OUTSIDER).await?, 1);
        let delivery = s.gh.revoke_authorization(OUTSIDER).await;
        assert!(
            delivery.status_code.is_some_and(|c| c < 300),
            "{delivery:?}"
        );
        assert_eq!(sessions(OUTSIDER).await?, 0);
        assert_eq!(otto.get("/previews").await?.status, StatusCode::SEE_OTHER);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_a_failed_preview_and_refresh_an_expiring_sign_in_on_postgres() -> anyhow::Result<()>
{
    scenario::run(options(Engine::Postgres)?, async |s| {
        s.kube.set_behaviour_for_image(
            "ghcr.io/acme/flaky",
            Behaviour::CrashLoopBackOff {
                logs: vec![
                    "panic: <b>boom</b> token=ghs_abcdefghijklmnopqrstuvwxyz0123456789".into(),
                ],
            },
        );
        let pr = s
            .open_pr_with_config(
                "feature/flaky",
                "image: ghcr.io/acme/flaky:{sha}\nport: 8080\n",
            )
            .await;
        let failed = s.wait_status(pr.number, PreviewStatus::Failed).await;
        let page = format!("/previews/{}", failed.id);

        // Tokens that expire within the refresh margin: the first page load refreshes once.
        s.gh.set_user_token_lifetime(std::time::Duration::from_secs(30));
        let mut maya = signed_in(s, MAINTAINER).await?;
        assert_eq!(s.gh.calls().user_token_refreshes, 1, "refreshed once");

        let detail = maya.get(&page).await?;
        assert_eq!(detail.status, StatusCode::OK);
        assert!(detail.body.contains("failed"));
        assert!(!detail.body.contains("<b>boom</b>"), "log lines are text");
        assert!(
            !detail.body.contains("ghs_abcdefghijklmnopqrstuvwxyz"),
            "no token on a page"
        );
        assert!(detail.body.contains(&format!("action=\"{page}/retry\"")));
        // The person's GitHub tokens (refreshed and saved again) are in the table only sealed.
        use sea_orm::EntityTrait as _;
        let rows = session::Entity::find().all(&s.db).await?;
        let signed = rows.iter().filter(|r| r.user_id.is_some()).count();
        assert!(signed > 0);
        for row in &rows {
            assert!(
                row.data.get("token").is_none(),
                "no plain token: {}",
                row.data
            );
            assert_eq!(
                row.data.get("sealed").is_some(),
                row.user_id.is_some(),
                "signed-in sessions hold a sealed token"
            );
        }

        // Search goes through the PostgreSQL path (LOWER, LIKE with an escape).
        let found = maya.get("/previews?q=FLAKY").await?;
        assert!(found.body.contains(&page));
        let none = maya.get("/previews?q=fl_ky").await?;
        assert!(!none.body.contains(&page), "_ is literal");
        // The operators' totals are counted by PostgreSQL (GROUP BY status, cleanup failed).
        let mut olga = signed_in(s, OPERATOR).await?;
        let list = olga.get("/previews").await?;
        assert!(
            list.body.contains("<strong>1</strong> failed")
                && list.body.contains("<strong>0</strong> cleanups failed"),
            "{}",
            list.body
        );

        // The fix lands in the cluster; Retry deploys the same commit again and it runs.
        s.kube
            .set_behaviour_for_image("ghcr.io/acme/flaky", Behaviour::Succeed);
        let retry = maya.act(&format!("{page}/retry"), &[]).await?;
        assert_eq!(retry.status, StatusCode::SEE_OTHER);
        let running = s.wait_status(pr.number, PreviewStatus::Running).await;
        assert_eq!(running.id, failed.id);
        assert_eq!(attempts_of(s, failed.id).await, 2);
        let shown = maya.get(&page).await?;
        assert!(shown.body.contains("retry"), "the timeline shows the retry");
        Ok(())
    })
    .await
}

/// The first workload pod of `namespace` and its first container.
fn workload_pod(s: &Scenario, namespace: &str) -> (String, String) {
    s.kube
        .list("pods", Some(namespace))
        .into_iter()
        .find_map(|p| {
            let name = p["metadata"]["name"].as_str()?.to_owned();
            let container = p["spec"]["containers"][0]["name"].as_str()?.to_owned();
            Some((name, container))
        })
        .expect("a workload pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_page_shows_the_cluster_and_follows_a_log() -> anyhow::Result<()> {
    scenario::run(options(Engine::Sqlite)?, async |s| {
        let pr = s.open_pr_with_config("feature/logs", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let page = format!("/previews/{}", preview.id);
        let (pod, container) = workload_pod(s, &preview.namespace);
        s.kube.write_log(
            &preview.namespace,
            &pod,
            None,
            "boot <script>alert(1)</script> token=ghp_supersecret123",
        )?;

        let mut maya = signed_in(s, MAINTAINER).await?;
        // The list shows each live preview's use against its quota; an operator also sees what
        // all live previews hold.
        let list = maya.get("/previews").await?;
        assert!(list.body.contains("CPU / memory"), "{}", list.body);
        assert!(list.body.contains("m / 500m"), "{}", list.body);
        assert!(!list.body.contains("live previews:"), "operators only");
        let mut olga = signed_in(s, OPERATOR).await?;
        let list = olga.get("/previews").await?;
        assert!(
            list.body
                .contains("Held by <strong>1</strong> of 1 live previews:"),
            "{}",
            list.body
        );
        let detail = maya.get(&page).await?;
        assert_eq!(detail.status, StatusCode::OK);
        let body = &detail.body;
        for part in [
            "Usage",
            "CPU",
            "Memory",
            "Events of the current attempt",
            "Logs",
        ] {
            assert!(body.contains(part), "{part}: {body}");
        }
        assert!(
            body.contains("Scheduled") || body.contains("Started"),
            "events: {body}"
        );
        assert!(
            body.contains(&format!("{container} ({pod})")),
            "the picker lists it"
        );
        assert!(
            body.contains("boot &lt;script&gt;alert(1)&lt;/script&gt;"),
            "a log line is text: {body}"
        );
        assert!(!body.contains("<script>alert(1)"));
        assert!(
            !body.contains("ghp_supersecret123") && body.contains("token=[REDACTED]"),
            "secrets in logs are redacted"
        );
        assert!(!body.contains("data-follow"), "following only when asked");

        // The viewer's choices: tail, timestamps, the previous container.
        let chosen = format!("{page}?c={pod}/{container}&tail=50&timestamps=1");
        let shown = maya.get(&chosen).await?;
        let today = chrono::Utc::now().format("%Y-%m-%dT").to_string();
        assert!(shown.body.contains(&today), "timestamps: {}", shown.body);
        assert!(shown.body.contains(r#"option value="50" selected"#));
        let previous = maya.get(&format!("{page}?previous=1")).await?;
        assert!(
            previous.body.contains("Could not read this log")
                && previous.body.contains("previous terminated container"),
            "the cluster's reason, said: {}",
            previous.body
        );
        // A pod of another namespace cannot be asked for: the viewer shows its own default.
        let foreign = maya
            .get(&format!("{page}?c=kube-apiserver/etcd&tail=7"))
            .await?;
        assert_eq!(foreign.status, StatusCode::OK);
        assert!(
            foreign
                .body
                .contains(&format!(r#"value="{pod}/{container}" selected"#))
        );
        let follow = maya.get(&format!("{page}?follow=1")).await?;
        assert!(
            follow.body.contains("data-follow=\"/previews/"),
            "{}",
            follow.body
        );
        assert!(
            follow
                .body
                .contains(r#"<script src="/dashboard.js" defer>"#)
        );

        // Live follow over server-sent events: the tail, then each new line as written.
        let stream = format!("{page}/logs/stream?c={pod}/{container}&tail=50");
        let mut live = maya.open_stream(&stream).await?;
        assert_eq!(live.status(), StatusCode::OK);
        assert!(
            live.headers()[reqwest::header::CONTENT_TYPE]
                .to_str()?
                .starts_with("text/event-stream")
        );
        let mut seen = String::new();
        assert!(
            previewd_tests::visitor::read_until(&mut live, &mut seen, "token=[REDACTED]").await?
        );
        assert!(!seen.contains("ghp_supersecret123"), "{seen}");
        wait::until(
            "the follow to reach the cluster",
            scenario::DEADLINE,
            || async { (s.kube.open_log_follows() == 1).then_some(()) },
        )
        .await?;
        s.kube
            .write_log(&preview.namespace, &pod, Some(&container), "GET /cart 200")?;
        assert!(
            previewd_tests::visitor::read_until(&mut live, &mut seen, "data: GET /cart 200\n")
                .await?,
            "{seen}"
        );
        drop(live);
        wait::until(
            "the follow to close with its reader",
            scenario::DEADLINE,
            || async { (s.kube.open_log_follows() == 0).then_some(()) },
        )
        .await?;

        // A reader of the repository may read its logs (as its CI logs); anyone else finds no
        // preview there.
        let otto = signed_in(s, OUTSIDER).await?;
        assert_eq!(otto.open_stream(&stream).await?.status(), StatusCode::OK);
        let sam = signed_in(s, STRANGER).await?;
        let answer = sam.open_stream(&stream).await?;
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        let anonymous = Visitor::new(&s.app_url, STRANGER)?;
        let answer = anonymous.open_stream(&stream).await?;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "sign in first");

        // A preview being deleted ends a follow: the pod goes, the stream says so and ends.
        let mut live = maya.open_stream(&stream).await?;
        let mut seen = String::new();
        assert!(previewd_tests::visitor::read_until(&mut live, &mut seen, "GET /cart 200").await?);
        s.gh.close_pr(REPO, pr.number, false).await;
        assert!(
            previewd_tests::visitor::read_until(&mut live, &mut seen, "event: end").await?,
            "{seen}"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_an_operators_team_see_everything_while_they_are_members() -> anyhow::Result<()>
{
    const TINA: &str = "tina";
    let mut options = Options::new(Engine::Sqlite).with_loopback_public_url()?;
    // A team of the installed organization, and one of an organization without the App.
    options
        .settings
        .push("--operators=acme/platform,globex/ops".to_owned());
    scenario::run(options, async |s| {
        let pr = s.open_pr_with_config("feature/team", READY_IMAGE).await;
        let preview = s.wait_status(pr.number, PreviewStatus::Running).await;
        let page = format!("/previews/{}", preview.id);
        s.gh.add_team_member("acme", "platform", TINA);
        s.gh.add_team_member("globex", "ops", STRANGER);

        // Tina reaches no repository herself; as a member of acme/platform she sees and acts.
        let mut tina = signed_in(s, TINA).await?;
        let list = tina.get("/previews").await?;
        assert!(
            list.body.contains("operator"),
            "named an operator: {}",
            list.body
        );
        assert!(list.body.contains(&page), "{}", list.body);
        let detail = tina.get(&page).await?;
        assert_eq!(detail.status, StatusCode::OK);
        assert!(detail.body.contains("/redeploy\""), "operators act");
        let calls = s.gh.calls();
        assert!(
            calls
                .by_route
                .contains_key("GET /orgs/{org}/teams/{team}/memberships/{name}"),
            "{:?}",
            calls.by_route.keys().collect::<Vec<_>>()
        );

        // A team of an organization without the App makes nobody an operator.
        let mut sam = signed_in(s, STRANGER).await?;
        assert_eq!(sam.get(&page).await?.status, StatusCode::NOT_FOUND);

        // Out of the team, signed in again: back to what she reaches herself (nothing).
        s.gh.remove_team_member("acme", "platform", TINA);
        assert_eq!(tina.act("/auth/logout", &[]).await?.status, StatusCode::OK);
        let mut tina = signed_in(s, TINA).await?;
        assert_eq!(tina.get(&page).await?.status, StatusCode::NOT_FOUND);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_make_see_once_and_revoke_their_own_api_tokens() -> anyhow::Result<()> {
    use previewd::previews::tokens;
    use secrecy::SecretString;
    scenario::run(options(Engine::Sqlite)?, async |s| {
        let mut maya = signed_in(s, MAINTAINER).await?;
        let page = maya.get("/tokens").await?;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("No tokens yet"));

        // Made with the form: shown once, in the answer, and stored only as a hash.
        let made = maya
            .act("/tokens", &[("name", "agent <on> laptop"), ("days", "30")])
            .await?;
        assert_eq!(made.status, StatusCode::OK, "{}", made.body);
        let start = made.body.find("pvd_").expect("the token is shown");
        let secret: String = made.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        assert!(secret.len() > 40, "{secret}");
        assert!(
            made.body.contains("agent &lt;on&gt; laptop"),
            "names are text"
        );
        let list = maya.get("/tokens").await?;
        assert!(!list.body.contains(&secret), "never shown again");
        assert!(list.body.contains(&format!("{}…", &secret[..12])));
        assert!(list.body.contains("live"));
        let rows = previewd_entity::api_token::Entity::find()
            .all(&s.db)
            .await?;
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].token_hash, secret, "a hash, not the token");
        let (token, person) = tokens::authenticate(&s.db, &SecretString::from(secret.clone()))
            .await?
            .expect("it works");
        assert_eq!(person.login, MAINTAINER);

        // The forms need the CSRF token and the same origin; names and lifetimes are checked.
        let no_csrf = maya
            .post("/tokens", &[("name", "x"), ("days", "30")], &[])
            .await?;
        assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
        let foreign = maya
            .post(
                "/tokens",
                &[
                    ("csrf", maya.csrf.clone().unwrap_or_default().as_str()),
                    ("name", "x"),
                    ("days", "30"),
                ],
                &[("sec-fetch-site", "same-site")],
            )
            .await?;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN);
        let odd = maya.act("/tokens", &[("name", "x"), ("days", "3")]).await?;
        assert_eq!(odd.status, StatusCode::BAD_REQUEST);
        let blank = maya
            .act("/tokens", &[("name", "  "), ("days", "30")])
            .await?;
        assert_eq!(blank.status, StatusCode::SEE_OTHER);
        let said = maya.get("/tokens").await?;
        assert!(said.body.contains("needs a name"), "{}", said.body);

        // Someone else cannot revoke it; its owner can, and then it is worth nothing.
        let mut otto = signed_in(s, OUTSIDER).await?;
        otto.get("/tokens").await?;
        let theirs = otto
            .act(&format!("/tokens/{}/revoke", token.id), &[])
            .await?;
        assert_eq!(theirs.status, StatusCode::SEE_OTHER);
        assert!(otto.get("/tokens").await?.body.contains("no live token"));
        assert!(
            tokens::authenticate(&s.db, &SecretString::from(secret.clone()))
                .await?
                .is_some()
        );
        maya.get("/tokens").await?;
        let revoked = maya
            .act(&format!("/tokens/{}/revoke", token.id), &[])
            .await?;
        assert_eq!(revoked.status, StatusCode::SEE_OTHER);
        let list = maya.get("/tokens").await?;
        assert!(list.body.contains("Token revoked") && list.body.contains("revoked"));
        assert!(
            tokens::authenticate(&s.db, &SecretString::from(secret))
                .await?
                .is_none()
        );
        // Signed out, the pages send you to sign in.
        let mut anonymous = Visitor::new(&s.app_url, STRANGER)?;
        assert_eq!(
            anonymous.get("/tokens").await?.status,
            StatusCode::SEE_OTHER
        );
        Ok(())
    })
    .await
}
