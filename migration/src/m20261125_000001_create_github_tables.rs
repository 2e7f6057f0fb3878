//! Installations, their repositories, and pull requests: the GitHub side of the model.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Installations::Table)
                    .if_not_exists()
                    .col(big_integer(Installations::Id).primary_key())
                    .col(string(Installations::AccountLogin))
                    .col(string(Installations::AccountType))
                    .col(timestamp_with_time_zone_null(Installations::SuspendedAt))
                    .col(timestamp_with_time_zone_null(Installations::DeletedAt))
                    .col(timestamp_with_time_zone(Installations::CreatedAt))
                    .col(timestamp_with_time_zone(Installations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Repositories::Table)
                    .if_not_exists()
                    .col(big_integer(Repositories::Id).primary_key())
                    .col(big_integer(Repositories::InstallationId))
                    .col(string(Repositories::FullName))
                    .col(string(Repositories::DefaultBranch))
                    .col(boolean(Repositories::Private))
                    .col(timestamp_with_time_zone_null(Repositories::RemovedAt))
                    .col(timestamp_with_time_zone(Repositories::CreatedAt))
                    .col(timestamp_with_time_zone(Repositories::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_repositories_installation")
                            .from(Repositories::Table, Repositories::InstallationId)
                            .to(Installations::Table, Installations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_repositories_installation")
                    .table(Repositories::Table)
                    .col(Repositories::InstallationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_repositories_full_name")
                    .table(Repositories::Table)
                    .col(Repositories::FullName)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PullRequests::Table)
                    .if_not_exists()
                    .col(big_pk_auto(PullRequests::Id))
                    .col(big_integer(PullRequests::RepositoryId))
                    .col(integer(PullRequests::Number))
                    .col(text(PullRequests::Title))
                    .col(string(PullRequests::AuthorLogin))
                    .col(text(PullRequests::HeadRef))
                    .col(string_len(PullRequests::HeadSha, 64))
                    .col(text(PullRequests::BaseRef))
                    .col(boolean(PullRequests::FromFork))
                    .col(boolean(PullRequests::Draft))
                    .col(string_len(PullRequests::State, 16))
                    .col(json(PullRequests::Labels))
                    .col(timestamp_with_time_zone(PullRequests::CreatedAt))
                    .col(timestamp_with_time_zone(PullRequests::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_pull_requests_repository")
                            .from(PullRequests::Table, PullRequests::RepositoryId)
                            .to(Repositories::Table, Repositories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_pull_requests_repository_number")
                    .table(PullRequests::Table)
                    .col(PullRequests::RepositoryId)
                    .col(PullRequests::Number)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            PullRequests::Table.into_iden(),
            Repositories::Table.into_iden(),
            Installations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub(crate) enum Installations {
    Table,
    Id,
    AccountLogin,
    AccountType,
    SuspendedAt,
    DeletedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum Repositories {
    Table,
    Id,
    InstallationId,
    FullName,
    DefaultBranch,
    Private,
    RemovedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub(crate) enum PullRequests {
    Table,
    Id,
    RepositoryId,
    Number,
    Title,
    AuthorLogin,
    HeadRef,
    HeadSha,
    BaseRef,
    FromFork,
    Draft,
    State,
    Labels,
    CreatedAt,
    UpdatedAt,
}
