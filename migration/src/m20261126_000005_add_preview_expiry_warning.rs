//! Remember when a preview's owners were warned that it will expire, so the warning is given
//! once per idle period.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .add_column_if_not_exists(timestamp_with_time_zone_null(
                        Previews::ExpiryWarnedAt,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Previews::Table)
                    .drop_column(Previews::ExpiryWarnedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Previews {
    Table,
    ExpiryWarnedAt,
}
