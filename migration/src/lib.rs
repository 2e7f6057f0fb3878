//! Schema migrations for previewd, one file per migration, applied in order by [`Migrator`].
//!
//! Both binaries call [`Migrator::up`] at start-up and `previewd migrate` runs it alone; applied
//! migrations are recorded in `seaql_migrations`, so running them again is a no-op. The same
//! migrations run on SQLite (single node) and PostgreSQL (scale-out): only portable column types,
//! and status enums as short strings.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_github_tables;
mod m20261125_000002_create_previews;
mod m20261125_000003_create_webhook_deliveries;
mod m20261125_000004_create_auth_tables;
mod m20261126_000005_add_preview_expiry_warning;
mod m20261201_000006_preview_lifecycle;
mod m20261202_000007_drop_preview_check_run;

/// Every migration of the schema, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_github_tables::Migration),
            Box::new(m20261125_000002_create_previews::Migration),
            Box::new(m20261125_000003_create_webhook_deliveries::Migration),
            Box::new(m20261125_000004_create_auth_tables::Migration),
            Box::new(m20261126_000005_add_preview_expiry_warning::Migration),
            Box::new(m20261201_000006_preview_lifecycle::Migration),
            Box::new(m20261202_000007_drop_preview_check_run::Migration),
        ]
    }
}
