//! The intake's set-wise path decides as the path that applies events one by one: the same
//! history is written to two fresh databases of each engine, then the same group of deliveries
//! that ask for deploys is applied in turn ([`intake::decide_in`]) to one and set-wise
//! ([`intake::decide_pull_requests`]) to the other. The group holds every case the set-wise
//! path distinguishes: a push to a live preview, a reopen of a removed one, a draft made ready,
//! an opening delivered again, new pull requests (one a draft, one reopened before previewd saw
//! it), and a repository
//! created again under a name whose namespace an old preview still holds. Decisions and the
//! resulting rows must be the same.

use previewd::{
    github::{
        RepoName,
        webhook::{Event, PullRequest, PullRequestAction, Repo},
    },
    previews::{
        intake::{self, Decision, Origin, Written},
        lifecycle,
    },
};
use previewd_entity::{deploy_attempt, preview, pull_request};
use previewd_migration::{Migrator, MigratorTrait};
use previewd_tests::db::{Engine, TestDatabase};
use sea_orm::{DatabaseConnection, EntityTrait};

const INSTALLATION: i64 = 4_000_001;

fn repo(id: i64, name: &str) -> Repo {
    Repo {
        id,
        name: RepoName::parse(name).expect("a valid repository name"),
        default_branch: "main".into(),
        private: true,
    }
}

fn event(action: PullRequestAction, repo: &Repo, number: u64, sha: &str, draft: bool) -> Event {
    Event::PullRequest {
        action,
        installation: INSTALLATION,
        repo: repo.clone(),
        pr: PullRequest {
            number,
            title: format!("change {number}"),
            author: "octo".into(),
            head_ref: format!("topic-{number}"),
            head_sha: sha.repeat(40 / sha.len()),
            base_ref: "main".into(),
            from_fork: false,
            draft,
            merged: false,
            labels: Vec::new(),
        },
        sender: "octo".into(),
        label: None,
    }
}

/// What both databases hold before the group: a live preview (#1), a draft without one (#2),
/// a removed preview (#7), a preview of `acme/old` (#5) whose repository is then deleted and
/// created again under the same name with another id, and a live preview (#9) whose opening is
/// delivered again (the group's duplicate).
fn history() -> Vec<Event> {
    use PullRequestAction::{Closed, Opened};
    let web = repo(101, "acme/web");
    let old = repo(100, "acme/old");
    vec![
        event(Opened, &web, 1, "a1", false),
        event(Opened, &web, 2, "b1", true),
        event(Opened, &web, 7, "c1", false),
        event(Closed, &web, 7, "c1", false),
        event(Opened, &old, 5, "d1", false),
        event(Opened, &web, 9, "g1", false),
    ]
}

/// The group: each asks for a deploy of a different pull request.
fn group() -> Vec<Event> {
    use PullRequestAction::{Opened, ReadyForReview, Reopened, Synchronize};
    let web = repo(101, "acme/web");
    let old_again = repo(102, "acme/old");
    vec![
        event(Synchronize, &web, 1, "a2", false),
        event(ReadyForReview, &web, 2, "b1", false),
        event(Opened, &web, 3, "e1", false),
        event(Opened, &web, 4, "f1", true),
        event(Opened, &old_again, 5, "d2", false),
        event(Reopened, &web, 6, "a7", false),
        event(Reopened, &web, 7, "c2", false),
        event(Synchronize, &web, 8, "b8", false),
        event(Opened, &web, 9, "g1", false),
    ]
}

async fn in_turn(db: &DatabaseConnection, events: &[Event]) -> anyhow::Result<Vec<Decision>> {
    let txn = lifecycle::begin_transaction(db).await?;
    let mut written = Written::default();
    let mut decisions = Vec::new();
    for event in events {
        decisions.push(intake::decide_in(&txn, event, Origin::Webhook, &mut written).await?);
    }
    txn.commit().await?;
    Ok(decisions)
}

async fn set_wise(db: &DatabaseConnection, events: &[Event]) -> anyhow::Result<Vec<Decision>> {
    assert!(events.iter().all(intake::asks_for_deploy));
    let txn = lifecycle::begin_transaction(db).await?;
    let refs: Vec<&Event> = events.iter().collect();
    let decisions =
        intake::decide_pull_requests(&txn, &refs, Origin::Webhook, &mut Written::default()).await?;
    txn.commit().await?;
    Ok(decisions)
}

/// A decision without the ids that depend on the order rows were inserted in.
type DecisionShape = (bool, String, usize, usize, Vec<bool>);

fn shape(decisions: &[Decision]) -> Vec<DecisionShape> {
    decisions
        .iter()
        .map(|d| {
            (
                d.acted,
                d.detail.clone(),
                d.work.deploys.len(),
                d.work.cleanups.len(),
                d.work.queued.iter().map(|q| q.claim > 0).collect(),
            )
        })
        .collect()
}

/// A preview and its current attempt, without ids and times.
type PreviewShape = (
    String,
    String,
    String,
    i64,
    Option<(String, i32, String, String, bool)>,
);

async fn rows(db: &DatabaseConnection) -> anyhow::Result<(Vec<PreviewShape>, Vec<String>)> {
    let attempts = deploy_attempt::Entity::find().all(db).await?;
    let mut previews: Vec<PreviewShape> = preview::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|p| {
            let current = p.current_attempt_id.map(|id| {
                let a = attempts
                    .iter()
                    .find(|a| a.id == id)
                    .expect("current attempt exists");
                assert_eq!(a.preview_id, p.id, "a preview's current attempt is its own");
                (
                    a.sha.clone(),
                    a.attempt,
                    a.trigger.clone(),
                    format!("{:?}", a.status),
                    a.check_run_id.is_some(),
                )
            });
            (
                p.namespace,
                format!("{:?}", p.status),
                p.head_sha,
                p.generation,
                current,
            )
        })
        .collect();
    previews.sort();
    let mut prs: Vec<String> = pull_request::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|p| {
            format!(
                "{}#{} {} {} {:?} draft={} {:?}",
                p.repository_id, p.number, p.title, p.head_sha, p.state, p.draft, p.labels
            )
        })
        .collect();
    prs.sort();
    Ok((previews, prs))
}

async fn decides_as_in_turn(engine: Engine) -> anyhow::Result<()> {
    let one = TestDatabase::create(engine).await?;
    let other = TestDatabase::create(engine).await?;
    let (a, b) = (one.connect().await?, other.connect().await?);
    for db in [&a, &b] {
        Migrator::up(db, None).await?;
        in_turn(db, &history()).await?;
    }
    let turned = in_turn(&a, &group()).await?;
    let together = set_wise(&b, &group()).await?;
    assert_eq!(shape(&turned), shape(&together));
    let (previews, prs) = rows(&a).await?;
    assert_eq!((previews.clone(), prs), rows(&b).await?);

    // What the group was meant to cover, so a change that makes it cover less fails here.
    let details: Vec<&str> = together.iter().map(|d| d.detail.as_str()).collect();
    assert!(details[3].starts_with("draft pull request"), "{details:?}");
    assert!(details[6].contains("revived; deploy"), "{details:?}");
    assert!(details[8].contains("already has a deploy"), "{details:?}");
    assert_eq!(
        together[4].work.cleanups.len(),
        1,
        "acme/old's old preview is removed"
    );
    assert_eq!(
        together.iter().map(|d| d.work.deploys.len()).sum::<usize>(),
        7,
        "{details:?}"
    );
    let namespaces: Vec<&str> = previews.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(namespaces.len(), 9, "{namespaces:?}");
    let distinct: std::collections::HashSet<&str> = namespaces.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        9,
        "every preview has a namespace of its own"
    );

    a.close().await?;
    b.close().await?;
    one.drop_database().await?;
    other.drop_database().await
}

#[tokio::test]
async fn sqlite_set_wise_decides_as_in_turn() -> anyhow::Result<()> {
    decides_as_in_turn(Engine::Sqlite).await
}

#[tokio::test]
async fn postgres_set_wise_decides_as_in_turn() -> anyhow::Result<()> {
    decides_as_in_turn(Engine::Postgres).await
}
