//! Previews (one per pull request) and their deploy attempts (one per preview, sha, attempt).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_create_github_tables::PullRequests;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Previews::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Previews::Id))
                    .col(big_integer_uniq(Previews::PullRequestId))
                    .col(string_len(Previews::Status, 24))
                    .col(string_len_uniq(Previews::Namespace, 63))
                    .col(text_null(Previews::Url))
                    .col(string_len(Previews::HeadSha, 64))
                    .col(string_len_null(Previews::ApprovedSha, 64))
                    .col(big_integer_null(Previews::CheckRunId))
                    .col(big_integer_null(Previews::GithubDeploymentId))
                    .col(big_integer_null(Previews::CommentId))
                    .col(timestamp_with_time_zone_null(Previews::ExpiresAt))
                    .col(text_null(Previews::LastError))
                    .col(boolean(Previews::CleanupFailed).default(false))
                    .col(timestamp_with_time_zone(Previews::CreatedAt))
                    .col(timestamp_with_time_zone(Previews::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Previews::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_previews_pull_request")
                            .from(Previews::Table, Previews::PullRequestId)
                            .to(PullRequests::Table, PullRequests::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_previews_status")
                    .table(Previews::Table)
                    .col(Previews::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_previews_expires_at")
                    .table(Previews::Table)
                    .col(Previews::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeployAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DeployAttempts::Id))
                    .col(big_integer(DeployAttempts::PreviewId))
                    .col(string_len(DeployAttempts::Sha, 64))
                    .col(integer(DeployAttempts::Attempt))
                    .col(string_len(DeployAttempts::Status, 16))
                    .col(string_len(DeployAttempts::Trigger, 32))
                    .col(big_integer_null(DeployAttempts::CheckRunId))
                    .col(big_integer_null(DeployAttempts::GithubDeploymentId))
                    .col(text_null(DeployAttempts::Image))
                    .col(string_len_null(DeployAttempts::ErrorKind, 32))
                    .col(text_null(DeployAttempts::Error))
                    .col(text_null(DeployAttempts::LogTail))
                    .col(timestamp_with_time_zone(DeployAttempts::CreatedAt))
                    .col(timestamp_with_time_zone_null(DeployAttempts::StartedAt))
                    .col(timestamp_with_time_zone_null(DeployAttempts::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_deploy_attempts_preview")
                            .from(DeployAttempts::Table, DeployAttempts::PreviewId)
                            .to(Previews::Table, Previews::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_deploy_attempts_preview_sha_attempt")
                    .table(DeployAttempts::Table)
                    .col(DeployAttempts::PreviewId)
                    .col(DeployAttempts::Sha)
                    .col(DeployAttempts::Attempt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_deploy_attempts_check_run")
                    .table(DeployAttempts::Table)
                    .col(DeployAttempts::CheckRunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(DeployAttempts::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Previews::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Previews {
    Table,
    Id,
    PullRequestId,
    Status,
    Namespace,
    Url,
    HeadSha,
    ApprovedSha,
    CheckRunId,
    GithubDeploymentId,
    CommentId,
    ExpiresAt,
    LastError,
    CleanupFailed,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum DeployAttempts {
    Table,
    Id,
    PreviewId,
    Sha,
    Attempt,
    Status,
    Trigger,
    CheckRunId,
    GithubDeploymentId,
    Image,
    ErrorKind,
    Error,
    LogTail,
    CreatedAt,
    StartedAt,
    FinishedAt,
}
