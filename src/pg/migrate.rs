//! Numbered SQL migrations from `sql/`, applied under an advisory lock so that nodes
//! starting together apply each exactly once.

use crate::base::names;
use crate::base::shared::ClusterSetting;
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
    (9, "identity", include_str!("../../sql/0009_identity.sql")),
    (
        10,
        "room_names",
        include_str!("../../sql/0010_room_names.sql"),
    ),
    (
        11,
        "restrictions",
        include_str!("../../sql/0011_restrictions.sql"),
    ),
    (12, "admin", include_str!("../../sql/0012_admin.sql")),
    (14, "webhooks", include_str!("../../sql/0014_webhooks.sql")),
    (15, "pins", include_str!("../../sql/0015_pins.sql")),
    (16, "reports", include_str!("../../sql/0016_reports.sql")),
    (
        17,
        "slow_mode",
        include_str!("../../sql/0017_slow_mode.sql"),
    ),
    (18, "blocks", include_str!("../../sql/0018_blocks.sql")),
    (
        19,
        "report_review",
        include_str!("../../sql/0019_report_review.sql"),
    ),
    (
        20,
        "search_recent",
        include_str!("../../sql/0020_search_recent.sql"),
    ),
    (
        21,
        "mentions_notification_levels",
        include_str!("../../sql/0021_mentions_notification_levels.sql"),
    ),
    (
        22,
        "file_uploads",
        include_str!("../../sql/0022_file_uploads.sql"),
    ),
    (
        23,
        "push_notifications",
        include_str!("../../sql/0023_push_notifications.sql"),
    ),
    (
        24,
        "file_thumbnails",
        include_str!("../../sql/0024_file_thumbnails.sql"),
    ),
    (
        25,
        "file_limits",
        include_str!("../../sql/0025_file_limits.sql"),
    ),
    (
        26,
        "push_outbox",
        include_str!("../../sql/0026_push_outbox.sql"),
    ),
    (27, "send_one", include_str!("../../sql/0027_send_one.sql")),
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

/// Fills the name key of every room that has none (rooms stored before keys, or by a
/// node of an earlier version), oldest first, under the migrations' lock, as
/// `sql/0010_room_names.sql` describes: the name cleaned of what the rules refuse, and a
/// public room whose key an older one holds renamed `<name> (2)`, `(3)`, ...; the number
/// of rooms renamed.
pub fn room_name_keys(client: &mut Client) -> Result<usize, postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = fill_room_name_keys(client);
    let unlock = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let renamed = result?;
    unlock?;
    Ok(renamed)
}

fn fill_room_name_keys(client: &mut Client) -> Result<usize, postgres::Error> {
    let mut tx = client.transaction()?;
    let rows = tx.query(
        "SELECT id, name, visibility = 'public' FROM rooms
         WHERE name_key IS NULL AND visibility <> 'direct' ORDER BY created_at, id FOR UPDATE",
        &[],
    )?;
    let mut renamed = 0;
    for r in &rows {
        let (id, stored, public): (uuid::Uuid, String, bool) = (r.get(0), r.get(1), r.get(2));
        let mut base = names::visible(&stored);
        if names::shows(&base, "name").is_err() {
            base = format!("room {}", &id.simple().to_string()[..8]);
        }
        let mut name = base.clone();
        let mut n = 1;
        loop {
            let key = names::look_alike_key(&name);
            let taken = public
                && tx
                    .query_opt(
                        "SELECT 1 FROM rooms WHERE visibility = 'public' AND id <> $1
                           AND coalesce(name_key, name) = $2",
                        &[&id, &key],
                    )?
                    .is_some();
            if !taken {
                tx.execute(
                    "UPDATE rooms SET name = $2, name_key = $3 WHERE id = $1",
                    &[&id, &name, &key],
                )?;
                break;
            }
            n += 1;
            name = format!("{base} ({n})");
        }
        if name != stored {
            log::warn!("room {id}: renamed from {stored:?} to {name:?} (room name rules)");
            renamed += 1;
        }
    }
    tx.commit()?;
    Ok(renamed)
}

/// What [`agree`] found: the settings it changed, with their old values; or the first one
/// that running nodes use another value of, with theirs.
pub type Agreement = Result<Vec<(ClusterSetting, String)>, (ClusterSetting, String)>;

/// Records this node's values of the settings every node must share (`shared`), unless
/// a node that heartbeated within `alive` runs with another value of one of them: then
/// that setting and the recorded value, untouched. With no such node, values that
/// changed replace the recorded ones (a new `search_language` empties the search index,
/// which the indexer then rebuilds); the changed ones are returned with their old values.
pub fn agree(
    client: &mut Client,
    shared: &[ClusterSetting],
    me: &str,
    alive: std::time::Duration,
) -> Result<Agreement, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])?;
    let recorded: std::collections::HashMap<String, String> = tx
        .query("SELECT key, value FROM settings", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let changed: Vec<(ClusterSetting, String)> = shared
        .iter()
        .filter_map(|s| {
            let old = recorded.get(s.stored)?;
            (*old != s.value).then(|| (s.clone(), old.clone()))
        })
        .collect();
    if let Some(first) = changed.first() {
        let running = tx
            .query_opt(
                "SELECT 1 FROM nodes WHERE heartbeat_at > now() - make_interval(secs => $1)
                   AND node_id <> $2 LIMIT 1",
                &[&alive.as_secs_f64(), &me],
            )?
            .is_some();
        if running {
            return Ok(Err(first.clone()));
        }
    }
    for s in shared {
        if s.stored == "search_language" {
            // Compares with the recorded language itself, and rebuilds on a change.
            tx.execute(
                "SELECT chatd_search_language($1::text::regconfig)",
                &[&s.value],
            )?;
            continue;
        }
        tx.execute(
            "INSERT INTO settings VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
            &[&s.stored, &s.value],
        )?;
    }
    tx.commit()?;
    Ok(Ok(changed))
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
