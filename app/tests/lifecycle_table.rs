//! The lifecycle table of ARCHITECTURE.md, row by row, against a real (SQLite) database: every
//! trigger from every state it can meet, what the preview becomes, whether an attempt is made
//! and becomes current, which job starts — and what a late, stale or duplicate trigger gets.

use previewd::{
    github::{
        RepoName,
        webhook::{PullRequest, Repo},
    },
    previews::{
        lifecycle::{
            self, Adopted, Ask, Asker, FailureRecord, Outcome, Removal, ShowQueued, Wanted,
        },
        records::{self, PreviewChange, PreviewGuard},
    },
};
use previewd_entity::{AttemptStatus, PreviewStatus, PullRequestState, deploy_attempt, preview};
use previewd_tests::db::{Engine, TestDatabase};
use sea_orm::DatabaseConnection;

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One pull request (#`number`, head `sha`) with a preview in `status` whose current attempt is
/// for `SHA_A`; returns the preview.
async fn preview_in(
    db: &DatabaseConnection,
    number: u64,
    status: PreviewStatus,
    sha: &str,
) -> preview::Model {
    let repo = Repo {
        id: 1,
        name: RepoName::parse("acme/web").expect("name"),
        default_branch: "main".into(),
        private: true,
    };
    records::ensure_installation(db, 10, "acme")
        .await
        .expect("installation");
    records::upsert_repository(db, 10, &repo)
        .await
        .expect("repository");
    let pr = pull_request(number, SHA_A);
    let row = records::upsert_pull_request(db, 1, &pr, PullRequestState::Open)
        .await
        .expect("pull request");
    let outcome = lifecycle::request_deploy(
        db,
        &row,
        "acme/web",
        Ask::Open,
        "opened",
        ShowQueued::ByWorker,
    )
    .await
    .expect("first deploy");
    assert_eq!(outcome.work.deploys.len(), 1);
    let preview = records::preview_of(db, row.id)
        .await
        .expect("read")
        .expect("preview");
    records::update_preview(
        db,
        &PreviewGuard::id(preview.id),
        PreviewChange {
            status: Some(status),
            ..PreviewChange::default()
        },
    )
    .await
    .expect("status");
    if sha != SHA_A {
        records::upsert_pull_request(db, 1, &pull_request(number, sha), PullRequestState::Open)
            .await
            .expect("new head");
    }
    reload(db, preview.id).await
}

fn pull_request(number: u64, sha: &str) -> PullRequest {
    PullRequest {
        number,
        title: "t".into(),
        author: "maya".into(),
        head_ref: "feature".into(),
        head_sha: sha.into(),
        base_ref: "main".into(),
        from_fork: false,
        draft: false,
        merged: false,
        labels: Vec::new(),
    }
}

async fn reload(db: &DatabaseConnection, id: i64) -> preview::Model {
    records::preview_by_id(db, id)
        .await
        .expect("read")
        .expect("preview")
}

async fn pr_row(db: &DatabaseConnection, number: u64) -> previewd_entity::pull_request::Model {
    records::find_pull_request(db, 1, number)
        .await
        .expect("read")
        .expect("pull request")
}

async fn attempt(db: &DatabaseConnection, id: i64) -> deploy_attempt::Model {
    records::attempt_by_id(db, id)
        .await
        .expect("read")
        .expect("attempt")
}

/// What a deploy request did to the preview.
fn deployed(outcome: &Outcome) -> Option<i64> {
    outcome.work.deploys.first().map(|j| j.attempt_id)
}

#[tokio::test]
async fn every_row_of_the_lifecycle_table() {
    let test_db = TestDatabase::create(Engine::Sqlite)
        .await
        .expect("database");
    let db = test_db.connect().await.expect("connect");
    previewd_migration_up(&db).await;
    let mut number = 0;
    let mut next = || {
        number += 1;
        number
    };

    // Deploy requests: (from, ask, head) → (to, new current attempt?)
    let rows: &[(PreviewStatus, Ask, &str, PreviewStatus, bool)] = &[
        // A push of a new commit supersedes, from every live state.
        (
            PreviewStatus::Pending,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Building,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Deploying,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Running,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Failed,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::AwaitingApproval,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        // The same commit again (a duplicate) changes nothing.
        (
            PreviewStatus::Running,
            Ask::Push,
            SHA_A,
            PreviewStatus::Running,
            false,
        ),
        (
            PreviewStatus::Running,
            Ask::Open,
            SHA_A,
            PreviewStatus::Running,
            false,
        ),
        (
            PreviewStatus::Failed,
            Ask::ReadyForReview,
            SHA_A,
            PreviewStatus::Failed,
            false,
        ),
        // A base change deploys again.
        (
            PreviewStatus::Running,
            Ask::BaseChange,
            SHA_A,
            PreviewStatus::Pending,
            true,
        ),
        // Removed stays removed, but for a new push or a reopen.
        (
            PreviewStatus::Deleted,
            Ask::Push,
            SHA_A,
            PreviewStatus::Deleted,
            false,
        ),
        (
            PreviewStatus::Deleted,
            Ask::ReadyForReview,
            SHA_A,
            PreviewStatus::Deleted,
            false,
        ),
        (
            PreviewStatus::Deleted,
            Ask::BaseChange,
            SHA_A,
            PreviewStatus::Deleted,
            false,
        ),
        (
            PreviewStatus::Deleted,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Deleted,
            Ask::Reopen,
            SHA_A,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Deleting,
            Ask::Reopen,
            SHA_A,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Deleting,
            Ask::Push,
            SHA_B,
            PreviewStatus::Pending,
            true,
        ),
        (
            PreviewStatus::Deleting,
            Ask::Push,
            SHA_A,
            PreviewStatus::Deleting,
            false,
        ),
    ];
    for (from, ask, head, to, new) in rows {
        let n = next();
        let before = preview_in(&db, n, *from, head).await;
        let outcome = lifecycle::request_deploy(
            &db,
            &pr_row(&db, n).await,
            "acme/web",
            *ask,
            "t",
            ShowQueued::ByWorker,
        )
        .await
        .expect("request");
        let after = reload(&db, before.id).await;
        let case = format!("{from:?} + {ask:?} at {}", &head[..1]);
        assert_eq!(after.status, *to, "{case}");
        assert_eq!(deployed(&outcome).is_some(), *new, "{case}: {outcome:?}");
        if let Some(id) = deployed(&outcome) {
            assert_eq!(
                after.current_attempt_id,
                Some(id),
                "{case}: the new attempt is current"
            );
            assert_eq!(after.head_sha, *head, "{case}");
            let revived = lifecycle::REMOVED.contains(from);
            assert_eq!(
                after.generation,
                before.generation + i64::from(revived),
                "{case}"
            );
            // The attempt it replaced is no longer wanted: its job stops as superseded.
            let old = before.current_attempt_id.expect("an earlier attempt");
            assert!(
                matches!(
                    lifecycle::wanted(&db, old).await.expect("wanted"),
                    Wanted::Superseded { .. }
                ),
                "{case}"
            );
        } else {
            assert_eq!(
                after.current_attempt_id, before.current_attempt_id,
                "{case}"
            );
            assert_eq!(after.generation, before.generation, "{case}");
        }
    }

    // A force-push back to an earlier commit is the head again: deployed.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_B).await;
    lifecycle::request_deploy(
        &db,
        &pr_row(&db, n).await,
        "acme/web",
        Ask::Push,
        "t",
        ShowQueued::ByWorker,
    )
    .await
    .expect("to B");
    records::upsert_pull_request(&db, 1, &pull_request(n, SHA_A), PullRequestState::Open)
        .await
        .expect("back to A");
    let back = lifecycle::request_deploy(
        &db,
        &pr_row(&db, n).await,
        "acme/web",
        Ask::Push,
        "t",
        ShowQueued::ByWorker,
    )
    .await
    .expect("back");
    assert!(
        deployed(&back).is_some(),
        "force-push back deploys: {back:?}"
    );
    assert_eq!(reload(&db, p.id).await.head_sha, SHA_A);

    // Re-run (trusted) revives a removed preview; only the head commit.
    for from in [
        PreviewStatus::Running,
        PreviewStatus::Failed,
        PreviewStatus::Deleted,
    ] {
        let n = next();
        let p = preview_in(&db, n, from, SHA_A).await;
        let stale = lifecycle::request_rerun(
            &db,
            &p,
            SHA_B,
            "rerun",
            Asker::Trusted,
            ShowQueued::ByWorker,
        )
        .await
        .expect("stale rerun");
        assert!(deployed(&stale).is_none(), "not the head: {stale:?}");
        let outcome = lifecycle::request_rerun(
            &db,
            &p,
            SHA_A,
            "rerun",
            Asker::Trusted,
            ShowQueued::ByWorker,
        )
        .await
        .expect("rerun");
        let after = reload(&db, p.id).await;
        assert_eq!(after.status, PreviewStatus::Pending, "{from:?}");
        assert_eq!(after.current_attempt_id, deployed(&outcome), "{from:?}");
    }

    // An unverified Redeploy changes nothing until the worker adopts it; refused, nothing.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_A).await;
    let asked = lifecycle::request_rerun(
        &db,
        &p,
        SHA_A,
        "redeploy",
        Asker::Unverified("otto"),
        ShowQueued::ByWorker,
    )
    .await
    .expect("asked");
    let id = deployed(&asked).expect("an attempt for the job");
    assert_eq!(asked.work.deploys[0].requested_by.as_deref(), Some("otto"));
    assert_eq!(
        reload(&db, p.id).await.current_attempt_id,
        p.current_attempt_id
    );
    lifecycle::refuse(&db, id).await.expect("refuse");
    assert_eq!(attempt(&db, id).await.status, AttemptStatus::Cancelled);
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Running);
    let asked = lifecycle::request_rerun(
        &db,
        &p,
        SHA_A,
        "redeploy",
        Asker::Unverified("maya"),
        ShowQueued::ByWorker,
    )
    .await
    .expect("asked");
    let id = deployed(&asked).expect("attempt");
    assert_eq!(
        lifecycle::adopt(&db, id, false).await.expect("adopt"),
        Adopted::Current
    );
    assert_eq!(reload(&db, p.id).await.current_attempt_id, Some(id));
    // A request adopted after the head moved on is stale: cancelled, nothing else.
    let asked = lifecycle::request_rerun(
        &db,
        &reload(&db, p.id).await,
        SHA_A,
        "redeploy",
        Asker::Unverified("maya"),
        ShowQueued::ByWorker,
    )
    .await
    .expect("asked");
    let late = deployed(&asked).expect("attempt");
    records::upsert_pull_request(&db, 1, &pull_request(n, SHA_B), PullRequestState::Open)
        .await
        .expect("push");
    lifecycle::request_deploy(
        &db,
        &pr_row(&db, n).await,
        "acme/web",
        Ask::Push,
        "t",
        ShowQueued::ByWorker,
    )
    .await
    .expect("push");
    assert!(matches!(
        lifecycle::adopt(&db, late, false).await.expect("adopt"),
        Adopted::Stale(_)
    ));

    // Approval: only while awaiting one, once per commit.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_A).await;
    let noted = lifecycle::request_approval(&db, &pr_row(&db, n).await, "maya")
        .await
        .expect("noted");
    assert!(deployed(&noted).is_none(), "not waiting: {noted:?}");
    records::update_preview(
        &db,
        &PreviewGuard::id(p.id),
        PreviewChange {
            status: Some(PreviewStatus::AwaitingApproval),
            ..PreviewChange::default()
        },
    )
    .await
    .expect("awaiting");
    let asked = lifecycle::request_approval(&db, &pr_row(&db, n).await, "maya")
        .await
        .expect("approval");
    let id = deployed(&asked).expect("attempt");
    assert_eq!(
        lifecycle::adopt(&db, id, true).await.expect("adopt"),
        Adopted::Current
    );
    let approved = reload(&db, p.id).await;
    assert_eq!(approved.approved_sha.as_deref(), Some(SHA_A));
    assert_eq!(approved.status, PreviewStatus::Pending);
    let again = lifecycle::request_approval(&db, &pr_row(&db, n).await, "maya")
        .await
        .expect("again");
    assert!(deployed(&again).is_none(), "already approved: {again:?}");

    // Removal: from every live state, once; a running job is cancelled.
    for from in [
        PreviewStatus::Pending,
        PreviewStatus::Building,
        PreviewStatus::Deploying,
        PreviewStatus::Running,
        PreviewStatus::Failed,
        PreviewStatus::AwaitingApproval,
    ] {
        let n = next();
        let p = preview_in(&db, n, from, SHA_A).await;
        let removal = lifecycle::request_removal(&db, &p, &Removal::Closed)
            .await
            .expect("removal");
        let job = removal.work.cleanups.first().expect("a cleanup").clone();
        let after = reload(&db, p.id).await;
        assert_eq!(after.status, PreviewStatus::Deleting, "{from:?}");
        assert_eq!(job.generation, Some(p.generation + 1));
        let current = p.current_attempt_id.expect("attempt");
        assert!(matches!(
            lifecycle::wanted(&db, current).await.expect("wanted"),
            Wanted::Cancelled(_)
        ));
        let twice = lifecycle::request_removal(&db, &after, &Removal::Expired(chrono::Utc::now()))
            .await
            .expect("twice");
        assert!(twice.work.cleanups.is_empty(), "already removed");
        assert!(
            lifecycle::finish_removal(&db, p.id, p.generation + 1)
                .await
                .expect("finish")
        );
        let done = reload(&db, p.id).await;
        assert_eq!(done.status, PreviewStatus::Deleted);
        assert!(done.deleted_at.is_some());
    }

    // A reopen while cleanup runs wins: the cleanup finishes without marking it deleted.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_A).await;
    let removal = lifecycle::request_removal(&db, &p, &Removal::Closed)
        .await
        .expect("close");
    let generation = removal.work.cleanups[0].generation.expect("generation");
    lifecycle::request_deploy(
        &db,
        &pr_row(&db, n).await,
        "acme/web",
        Ask::Reopen,
        "reopened",
        ShowQueued::ByWorker,
    )
    .await
    .expect("reopen");
    assert!(
        !lifecycle::finish_removal(&db, p.id, generation)
            .await
            .expect("finish")
    );
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Pending);
    assert!(
        !lifecycle::flag_removal_failed(&db, p.id, generation, "x")
            .await
            .expect("flag")
    );

    // Destroy: nothing until confirmed; a stale confirmation does nothing.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_A).await;
    let asked = lifecycle::request_destroy(&p, "maya");
    let job = asked.work.cleanups[0].clone();
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Running);
    let confirmed = lifecycle::confirm_destroy(&db, p.id, job.generation.expect("gen"))
        .await
        .expect("confirm");
    assert_eq!(confirmed, Some(p.generation + 1));
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Deleting);
    let stale = lifecycle::confirm_destroy(&db, p.id, p.generation)
        .await
        .expect("stale");
    assert_eq!(stale, None, "already being removed");

    // Job outcomes: an attempt that is not current records its own end, never the preview's.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Building, SHA_A).await;
    let old = attempt(&db, p.current_attempt_id.expect("attempt")).await;
    lifecycle::start(&db, &old).await.expect("start");
    assert_eq!(attempt(&db, old.id).await.status, AttemptStatus::Running);
    records::upsert_pull_request(&db, 1, &pull_request(n, SHA_B), PullRequestState::Open)
        .await
        .expect("push");
    lifecycle::request_deploy(
        &db,
        &pr_row(&db, n).await,
        "acme/web",
        Ask::Push,
        "t",
        ShowQueued::ByWorker,
    )
    .await
    .expect("push");
    let shown = lifecycle::succeed(&db, &old, "https://x", chrono::Utc::now())
        .await
        .expect("late success");
    assert!(
        !shown,
        "a superseded attempt does not set the preview running"
    );
    assert_eq!(attempt(&db, old.id).await.status, AttemptStatus::Succeeded);
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Pending);
    let current = attempt(
        &db,
        reload(&db, p.id).await.current_attempt_id.expect("current"),
    )
    .await;
    lifecycle::start(&db, &current).await.expect("start");
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Building);
    assert!(
        lifecycle::enter_phase(&db, &current, PreviewStatus::Deploying)
            .await
            .expect("phase")
    );
    let failed = lifecycle::fail(
        &db,
        &current,
        FailureRecord {
            status: AttemptStatus::Failed,
            kind: "crash_loop",
            summary: "crash",
            message: "crash",
            log_tail: None,
        },
    )
    .await
    .expect("fail");
    assert!(failed);
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Failed);
    // A duplicate outcome of a finished attempt changes nothing.
    assert!(
        !lifecycle::stop(&db, current.id, AttemptStatus::Cancelled, "x", "y")
            .await
            .expect("stop")
    );
    assert_eq!(attempt(&db, current.id).await.status, AttemptStatus::Failed);

    // The queue killed a running job: abandoned, shown while current.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Deploying, SHA_A).await;
    let running = attempt(&db, p.current_attempt_id.expect("attempt")).await;
    lifecycle::start(&db, &running).await.expect("start");
    assert!(
        lifecycle::abandon(&db, &running, "killed")
            .await
            .expect("abandon")
    );
    assert_eq!(
        attempt(&db, running.id).await.status,
        AttemptStatus::TimedOut
    );
    assert_eq!(reload(&db, p.id).await.status, PreviewStatus::Failed);
    assert!(
        !lifecycle::abandon(&db, &running, "killed")
            .await
            .expect("twice")
    );

    // Extend: only running or failed previews.
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Pending, SHA_A).await;
    let until = chrono::Utc::now() + chrono::Duration::hours(3);
    assert!(
        lifecycle::extend(&db, p.id, until)
            .await
            .expect("extend")
            .is_none()
    );
    let n = next();
    let p = preview_in(&db, n, PreviewStatus::Running, SHA_A).await;
    assert!(
        lifecycle::extend(&db, p.id, until)
            .await
            .expect("extend")
            .is_some()
    );

    db.close().await.expect("close");
    test_db.drop_database().await.expect("drop");
}

async fn previewd_migration_up(db: &DatabaseConnection) {
    use previewd_migration::MigratorTrait as _;
    previewd_migration::Migrator::up(db, None)
        .await
        .expect("migrations");
}
