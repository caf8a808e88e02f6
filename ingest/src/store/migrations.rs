//! The schema migrations, embedded in the binary.
//!
//! Listed by hand rather than with `sqlx::migrate!`: that macro needs sqlx's
//! `macros` feature, which builds both database drivers, SQLite's C source,
//! tokio and rustls a second time for the compiler host, about four CPU
//! minutes of every cold build (benches/RESULTS.md, "Test suite"). What the
//! list yields is what the macro would: a test checks it against sqlx's own
//! reading of the `migrations/` directories (every file, same versions,
//! descriptions and checksums), so a new file cannot be forgotten.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// One migration file: version, description (the file name after the
/// version, `_` read as a space), SQL.
type File = (i64, &'static str, &'static str);

const SQLITE: [File; 2] = [
    (
        1,
        "schema",
        include_str!("../../migrations/sqlite/0001_schema.sql"),
    ),
    (
        2,
        "alerting",
        include_str!("../../migrations/sqlite/0002_alerting.sql"),
    ),
];

const POSTGRES: [File; 2] = [
    (
        1,
        "schema",
        include_str!("../../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "alerting",
        include_str!("../../migrations/postgres/0002_alerting.sql"),
    ),
];

/// The SQLite schema's migrations.
pub(super) fn sqlite() -> Migrator {
    migrator(&SQLITE)
}

/// The PostgreSQL schema's migrations.
pub(super) fn postgres() -> Migrator {
    migrator(&POSTGRES)
}

fn migrator(files: &[File]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    // sqlx's own marker for a migration run outside a transaction.
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// (version, description, checksum, no_tx, type) of every migration.
    fn summary(m: &Migrator) -> Vec<(i64, String, Vec<u8>, bool, MigrationType)> {
        m.iter()
            .map(|m| {
                (
                    m.version,
                    m.description.to_string(),
                    m.checksum.to_vec(),
                    m.no_tx,
                    m.migration_type,
                )
            })
            .collect()
    }

    async fn from_directory(backend: &str) -> Migrator {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        Migrator::new(dir).await.expect("migrations directory")
    }

    #[tokio::test]
    async fn embedded_migrations_are_the_directories_files() {
        for (backend, embedded) in [("sqlite", sqlite()), ("postgres", postgres())] {
            let on_disk = from_directory(backend).await;
            assert!(on_disk.iter().count() >= 2, "{backend}: no files read");
            assert_eq!(summary(&embedded), summary(&on_disk), "{backend}");
        }
    }
}
