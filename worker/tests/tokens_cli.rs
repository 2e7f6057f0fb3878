//! `previewd token create / list / revoke`, the operator's command line for API tokens, run as
//! the real binary against a PostgreSQL database of its own: the token is printed once (and only
//! its prefix ever again), works until revoked, and a person who never signed in gets none.

use std::process::Output;

use previewd_entity::user;
use previewd_tests::db::{Engine, TestDatabase};
use sea_orm::{ActiveModelTrait as _, ActiveValue::Set};
use secrecy::SecretString;

const BIN: &str = env!("CARGO_BIN_EXE_previewd");

fn token(database_url: &str, args: &[&str]) -> Output {
    // `bare`: nothing of this environment but PATH (and, under coverage, the profile's path).
    previewd_tests::process::bare(BIN)
        .env("DATABASE_URL", database_url)
        .arg("token")
        .args(args)
        .output()
        .expect("spawn previewd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_makes_lists_and_revokes_tokens_from_the_command_line() -> anyhow::Result<()> {
    let db = TestDatabase::create(Engine::Postgres).await?;
    // The command migrates an empty database as any process does; the person signs in first.
    let out = token(&db.url, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conn = db.connect().await?;
    user::ActiveModel {
        id: Set(4242),
        login: Set("Maya".into()),
        name: Set(None),
        avatar_url: Set(None),
        is_operator: Set(false),
        created_at: Set(chrono::Utc::now()),
        last_login_at: Set(Some(chrono::Utc::now())),
    }
    .insert(&conn)
    .await?;

    let made = token(
        &db.url,
        &[
            "create",
            "--login",
            "maya",
            "--name",
            "release pipeline",
            "--expires",
            "30d",
        ],
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    let secret = text(&made.stdout).trim().to_owned();
    assert!(secret.starts_with("pvd_") && secret.len() > 40, "{secret}");
    assert!(text(&made.stderr).contains("shown only now"));
    let who = previewd::previews::tokens::authenticate(&conn, &SecretString::from(secret.clone()))
        .await?
        .expect("the token works");
    assert_eq!(who.1.login, "Maya");
    assert!(who.0.expires_at.is_some(), "30 days");

    let listed = token(&db.url, &["list", "--login", "MAYA"]);
    let listing = text(&listed.stdout);
    assert!(listed.status.success());
    assert!(
        listing.contains("release pipeline") && listing.contains("live"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("{}…", &secret[..12])),
        "{listing}"
    );
    assert!(!listing.contains(&secret), "never the token again");

    let id = who.0.id.to_string();
    let revoked = token(&db.url, &["revoke", &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(
        previewd::previews::tokens::authenticate(&conn, &SecretString::from(secret))
            .await?
            .is_none(),
        "revoked: worth nothing"
    );
    let again = token(&db.url, &["revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("no live token"),
        "{}",
        text(&again.stderr)
    );
    assert!(text(&token(&db.url, &["list"]).stdout).contains("revoked"));

    // Nobody by that login has signed in; bad lifetimes and names are refused in words.
    for (args, says) in [
        (
            vec!["create", "--login", "ghost", "--name", "x"],
            "has not signed in",
        ),
        (
            vec![
                "create",
                "--login",
                "maya",
                "--name",
                "x",
                "--expires",
                "soon",
            ],
            "--expires",
        ),
        (
            vec![
                "create",
                "--login",
                "maya",
                "--name",
                "x",
                "--expires",
                "400d",
            ],
            "at most 366 days",
        ),
        (
            vec!["create", "--login", "maya", "--name", " "],
            "needs a name",
        ),
    ] {
        let out = token(&db.url, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "no token printed: {args:?}");
    }
    conn.close().await?;
    db.drop_database().await
}
