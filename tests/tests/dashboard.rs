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
    let installation = s.gh.add_installation("globex");
    s.gh.add_repo(installation, OTHER_REPO);
    s.gh.set_permission(OTHER_REPO, OTHER_WRITER, "write");
    s.gh.put_file(
        OTHER_REPO,
        "feature/api",
        ".github/preview.yml",
        READY_IMAGE,
    );
    let sha = s.sha();
    let (_, delivery) =
        s.gh.open_pr(
            OTHER_REPO,
            NewPr {
                author: OTHER_WRITER.into(),
                head_ref: "feature/api".into(),
                head_sha: sha,
                title: "Globex API change".into(),
                ..NewPr::default()
            },
        )
        .await;
    assert!(delivery.status_code.is_some_and(|c| c < 300));
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

        // Search goes through the PostgreSQL path (LOWER, LIKE with an escape).
        let found = maya.get("/previews?q=FLAKY").await?;
        assert!(found.body.contains(&page));
        let none = maya.get("/previews?q=fl_ky").await?;
        assert!(!none.body.contains(&page), "_ is literal");

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
