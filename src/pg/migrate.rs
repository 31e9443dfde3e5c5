//! Numbered SQL migrations from `sql/`, applied under an advisory lock so that nodes
//! starting together apply each exactly once.

use postgres::{Client, NoTls};

/// The migrations, in order: (version, name, SQL).
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../sql/0001_init.sql")),
    (2, "usernames", include_str!("../../sql/0002_usernames.sql")),
    (
        3,
        "conversations",
        include_str!("../../sql/0003_conversations.sql"),
    ),
    (
        4,
        "message_events",
        include_str!("../../sql/0004_message_events.sql"),
    ),
    (5, "shards", include_str!("../../sql/0005_shards.sql")),
    (6, "retention", include_str!("../../sql/0006_retention.sql")),
    (
        7,
        "search_index",
        include_str!("../../sql/0007_search_index.sql"),
    ),
    (8, "room_keys", include_str!("../../sql/0008_room_keys.sql")),
];

/// Arbitrary constant naming our advisory lock.
const LOCK_KEY: i64 = 0x6368_6174_645f_6d67; // "chatd_mg"

/// Applies every migration not yet recorded; returns how many were applied.
pub fn migrate(client: &mut Client) -> Result<usize, postgres::Error> {
    // Lock first: concurrent CREATE TABLE IF NOT EXISTS can still collide.
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .and_then(|()| apply_pending(client));
    // Unlock even when a migration failed, so another node can try.
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let applied = result?;
    unlock?;
    Ok(applied)
}

fn apply_pending(client: &mut Client) -> Result<usize, postgres::Error> {
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let done = client
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )?
            .is_some();
        if done {
            continue;
        }
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )?;
        tx.commit()?;
        log::info!("applied migration {version:04} {name}");
        applied += 1;
    }
    Ok(applied)
}

/// Makes the search column use the text search configuration `language` (rebuilt only
/// when it changed), under the migrations' lock.
pub fn search_language(client: &mut Client, language: &str) -> Result<(), postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = client.execute(
        "SELECT chatd_search_language($1::text::regconfig)",
        &[&language],
    );
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    result?;
    unlock?;
    Ok(())
}

/// Sets the cluster's message notification shard count to `n`, unless a node that
/// heartbeated within `alive` uses another count (then `Err(their count)`): every node
/// must write and listen on the same channels.
pub fn notify_shards(
    client: &mut Client,
    n: u16,
    me: &str,
    alive: std::time::Duration,
) -> Result<Result<(), u16>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce((SELECT value::int FROM settings WHERE key = 'notify_shards'), 1)",
            &[],
        )?
        .get(0);
    if current == i32::from(n) {
        return Ok(Ok(()));
    }
    let running = tx
        .query_opt(
            "SELECT 1 FROM nodes WHERE heartbeat_at > now() - make_interval(secs => $1)
               AND node_id <> $2 LIMIT 1",
            &[&alive.as_secs_f64(), &me],
        )?
        .is_some();
    if running {
        return Ok(Err(current as u16));
    }
    tx.execute(
        "INSERT INTO settings VALUES ('notify_shards', $1)
         ON CONFLICT (key) DO UPDATE SET value = $1",
        &[&n.to_string()],
    )?;
    tx.commit()?;
    Ok(Ok(()))
}

/// Connects to `url`, creating its database first when it does not exist.
pub fn connect_creating(url: &str, timeout_secs: u64) -> Result<Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(timeout_secs));
    match config.connect(NoTls) {
        Ok(c) => Ok(c),
        Err(e) if e.code() == Some(&postgres::error::SqlState::INVALID_CATALOG_NAME) => {
            let db = config.get_dbname().unwrap_or("postgres").to_string();
            let mut admin = config.clone();
            admin.dbname("postgres");
            let mut c = admin.connect(NoTls)?;
            let quoted = format!("\"{}\"", db.replace('"', "\"\""));
            match c.batch_execute(&format!("CREATE DATABASE {quoted}")) {
                Ok(()) => log::info!("created database {db}"),
                // Another node created it first.
                Err(e) if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                Err(e) => return Err(e),
            }
            config.connect(NoTls)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    /// Every file of `sql/` is a listed migration, in order.
    #[test]
    fn every_sql_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), super::MIGRATIONS.len(), "{files:?}");
        for (i, (version, name, _)) in super::MIGRATIONS.iter().enumerate() {
            assert_eq!(files[i], format!("{version:04}_{name}.sql"));
        }
    }
}
