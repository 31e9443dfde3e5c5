//! Configuration: a TOML file, environment overrides, validation with errors that name the key.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

mod api_keys;
mod external;
mod push;
mod webhooks;
pub use api_keys::ApiKeyConfig;
pub use external::{ExternalAuthConfig, KeySource};
pub use push::PushConfig;
pub use webhooks::{EVENT_TYPES, WebhookConfig};

/// How the node treats missing secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Random per-process secrets when none are configured.
    Development,
    /// Real secrets required.
    Production,
}

/// The whole configuration, as read from the file and the environment.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Development or production.
    pub mode: Mode,
    /// Name of this node in presence rows; empty means derived from host and port.
    pub node_id: String,
    /// Log level (error, warn, info, debug, trace).
    pub log_level: String,
    /// Listener and event loops.
    pub server: ServerConfig,
    /// HTTP limits and timeouts.
    pub http: HttpConfig,
    /// WebSocket limits.
    pub websocket: WsConfig,
    /// Database connection, pool and writers.
    pub database: DbConfig,
    /// Tokens and password hashing.
    pub auth: AuthConfig,
    /// Presence heartbeats.
    pub presence: PresenceConfig,
    /// Abuse limits.
    pub limits: LimitsConfig,
    /// Rooms: read receipts.
    pub rooms: RoomsConfig,
    /// Messages after send: edits, reactions, attachments, search.
    pub messages: MessagesConfig,
    /// `[notifications]`: mentions of the whole room, default notification levels.
    pub notifications: NotificationsConfig,
    /// `[files]`: uploads.
    pub files: FilesConfig,
    /// `[push]`: Web Push to members who are offline.
    pub push: PushConfig,
    /// `[retention]`
    pub retention: RetentionConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
    /// `[[webhooks]]`: where events are sent.
    pub webhooks: Vec<WebhookConfig>,
    /// `[[api_keys]]`: the keys of the product's backend on `/admin/...`.
    pub api_keys: Vec<ApiKeyConfig>,
}

/// `[metrics]`: where Prometheus scrapes the node. Never the public port.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address and port of the metrics listener (`127.0.0.1:9464`); empty: none.
    pub listen: String,
    /// When set, a scrape must bring `Authorization: Bearer <token>`.
    pub token: String,
}

/// `[retention]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Messages older than this many days are deleted (0 = kept forever); a room's
    /// `retention_days` overrides it.
    pub max_age_days: u32,
    /// Most messages deleted per transaction.
    pub batch_size: i64,
    /// Seconds between passes over the rooms.
    pub interval_secs: u64,
    /// Pause between two batches, milliseconds (keeps the deleter off the hot path).
    pub pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age_days: 0,
            batch_size: 1000,
            interval_secs: 60,
            pause_ms: 20,
        }
    }
}

/// `[messages]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// How long after sending an author may edit, seconds (0 = always).
    pub edit_window_secs: u64,
    /// Most different emoji on one message.
    pub max_reactions: usize,
    /// Most attachments on one message.
    pub max_attachments: usize,
    /// Most pinned messages in one room.
    pub max_pins: usize,
    /// PostgreSQL text search configuration for message search (`simple`, `english`,
    /// ...); changing it rebuilds the search index in the background.
    pub search_language: String,
    /// Most stream entries the search indexer applies per transaction.
    pub search_batch: usize,
    /// The indexer waits while the cluster stores more messages a second than this
    /// (0 = never waits).
    pub search_defer_above: u32,
    /// Longest the indexer waits for a burst to end, seconds.
    pub search_max_defer_secs: u64,
    /// Share of the time (percent) the indexer works on a backlog while the cluster
    /// writes more than a tenth of `search_defer_above` messages a second.
    pub search_busy_pct: u32,
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig {
            edit_window_secs: 0,
            max_reactions: 20,
            max_attachments: 10,
            max_pins: 50,
            search_language: "simple".into(),
            search_batch: 5000,
            search_defer_above: 5000,
            search_max_defer_secs: 60,
            search_busy_pct: 25,
        }
    }
}

/// `[files]`: uploads (`POST /rooms/:id/files`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Largest file, bytes; a larger `Content-Length` is answered 413 before the body.
    pub max_bytes: usize,
    /// Uploads per user per minute across the cluster (0 = unlimited).
    pub uploads_per_minute: u32,
    /// Most bytes of files one user has uploaded and not deleted (0 = no quota).
    pub user_quota_bytes: u64,
    /// Most bytes of files stored in one room (0 = no quota).
    pub room_quota_bytes: u64,
    /// Files never attached to a message are deleted this many hours after their
    /// upload (0 = kept).
    pub unattached_ttl_hours: u64,
    /// Overrides `unattached_ttl_hours` in seconds (tests; not documented for operators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unattached_ttl_secs: Option<u64>,
    /// Seconds between two passes of the unattached-files sweeper.
    pub sweep_interval_secs: u64,
    /// Longest side of an image's thumbnail, pixels.
    pub thumbnail_px: u32,
    /// How long a signed download URL (`GET /rooms/:id/files/:file_id/url`) is valid.
    pub url_ttl_minutes: u32,
    /// The key of signed download URLs; empty: derived from `auth.access_secret`
    /// (every node of a cluster has the same, and development keeps it in `.local/`).
    pub url_secret: String,
    /// Bytes a second all uploads of a node may write together, sustained (0 =
    /// unlimited); the bucket holds `max_bytes`, so a lone upload goes at full speed.
    pub upload_bytes_per_sec: u64,
    /// Threads that store uploads (each holds a connection for its upload's length), apart
    /// from the export workers so that uploads waiting for the budget never hold back
    /// downloads and exports.
    pub upload_workers: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_bytes: 25 << 20,
            uploads_per_minute: 20,
            user_quota_bytes: 1 << 30,
            room_quota_bytes: 10 << 30,
            unattached_ttl_hours: 24,
            unattached_ttl_secs: None,
            sweep_interval_secs: 300,
            thumbnail_px: 320,
            url_ttl_minutes: 10,
            url_secret: String::new(),
            upload_bytes_per_sec: 16 << 20,
            upload_workers: 2,
        }
    }
}

impl FilesConfig {
    /// How long an unattached file is kept; `None` when forever.
    pub fn unattached_ttl(&self) -> Option<std::time::Duration> {
        let secs = self
            .unattached_ttl_secs
            .unwrap_or(self.unattached_ttl_hours.saturating_mul(3600));
        (secs > 0).then(|| std::time::Duration::from_secs(secs))
    }
}

/// `[rooms]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Read receipts go out in rooms of at most this many members (0 = never).
    pub receipts_max_members: u32,
    /// At most one receipt per member and room per this window; marks within it are
    /// folded into the next.
    pub receipt_window_ms: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            receipts_max_members: 100,
            receipt_window_ms: 1000,
        }
    }
}

/// `[notifications]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Any member may mention the whole room (`@room`) in rooms of at most this many
    /// members; the owner and admins may in any room.
    pub room_mention_max_members: u32,
    /// Members of rooms with more members than this are notified of mentions only
    /// unless they chose a level (direct rooms always default to all messages).
    pub mentions_only_above_members: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            room_mention_max_members: 20,
            mentions_only_above_members: 100,
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Login attempts per client address per minute (0 = unlimited).
    pub login_per_ip_per_min: u32,
    /// Login attempts per (account, client address) per minute (0 = unlimited).
    pub login_per_account_ip_per_min: u32,
    /// Login attempts per account (email) from all addresses per minute (0 = unlimited).
    pub login_per_account_per_min: u32,
    /// Registrations per client address per minute (0 = unlimited).
    pub register_per_ip_per_min: u32,
    /// Open connections per client address (0 = unlimited); not counted by chatd
    /// behind a trusted proxy (`trust_forwarded_for`), whose peer is the proxy.
    pub connections_per_ip: u32,
    /// Take the client address from X-Forwarded-For (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Rooms (not direct rooms) one user may create per hour, cluster-wide (0 = unlimited).
    pub rooms_per_user_per_hour: u32,
    /// Invitations one user may send per hour, cluster-wide (0 = unlimited).
    pub invites_per_user_per_hour: u32,
    /// Users one user may block at once (`POST /me/blocks`).
    pub max_blocks_per_user: u32,
}

impl LimitsConfig {
    /// Connections per peer address the event loops allow (0 = unlimited): behind a
    /// trusted proxy every peer is the proxy, which limits connections per client
    /// itself (`deploy/nginx.conf`), so none here.
    pub fn per_peer_connections(&self) -> u32 {
        if self.trust_forwarded_for {
            0
        } else {
            self.connections_per_ip
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            login_per_ip_per_min: 60,
            login_per_account_ip_per_min: 10,
            login_per_account_per_min: 100,
            register_per_ip_per_min: 30,
            connections_per_ip: 1000,
            trust_forwarded_for: false,
            rooms_per_user_per_hour: 50,
            invites_per_user_per_hour: 200,
            max_blocks_per_user: 1000,
        }
    }
}

/// `[server]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: String,
    /// Port to bind (0 picks a free one).
    pub port: u16,
    /// Event-loop threads (0 = number of cores).
    pub event_loops: usize,
    /// Most open connections per node.
    pub max_connections: usize,
    /// One SO_REUSEPORT listener per loop (kernel balances) instead of one shared.
    pub reuse_port: bool,
    /// Start even when another process serves the port, sharing it (for handing a port
    /// over between two chatd processes); otherwise such a start is refused.
    pub shared_port: bool,
}

/// `[http]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Most headers per request.
    pub max_headers: usize,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Time allowed for a request head to arrive.
    pub header_timeout_ms: u64,
    /// Keep-alive idle timeout.
    pub idle_timeout_secs: u64,
    /// Memory for the cache of each room's newest messages (history reads), MiB; 0 = off.
    pub history_cache_mb: usize,
    /// Serve the web app at `/` (the client library at `/chatd.js` is always served).
    pub web_app: bool,
    /// Origins allowed to call the API from a browser page (CORS): exact origins, or
    /// `*` for any; empty allows none (the web app is same-origin and needs none).
    pub cors_origins: Vec<String>,
    /// Origins besides its own the web app may connect to (an API and WebSocket served
    /// from another origin), named in its Content-Security-Policy.
    pub connect_origins: Vec<String>,
    /// Mark the web app's refresh cookie `Secure` (sent over HTTPS and loopback only);
    /// `false` only for a plain-HTTP deployment reached by a name other than loopback.
    pub refresh_cookie_secure: bool,
}

/// `[websocket]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// Largest incoming message or frame.
    pub max_message_bytes: usize,
    /// Initial read buffer per socket.
    pub read_buffer_bytes: usize,
    /// Outbound bytes queued before a socket is closed as a slow consumer.
    pub max_outbound_bytes: usize,
    /// Server ping interval.
    pub ping_interval_secs: u64,
    /// Adaptive batching window for live messages: a quiet room's message goes out at
    /// once; while a room is busy, at most one frame per room per window (0 = one
    /// frame per loop turn).
    pub coalesce_ms: u64,
    /// Messages and typing events per socket per second (0 = unlimited).
    pub max_events_per_sec: u32,
    /// Serve `/echo`: an unauthenticated WebSocket echo on the same framing code, for
    /// conformance suites. Never enable it in production.
    pub echo_endpoint: bool,
}

/// `[database]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DbConfig {
    /// PostgreSQL URL.
    pub url: String,
    /// r2d2 pool size.
    pub pool_size: u32,
    /// Query worker threads.
    pub db_workers: usize,
    /// Threads that stream exports of the server API (each holds a connection while
    /// its client takes the bytes).
    pub export_workers: usize,
    /// Batched message writer threads.
    pub writers: usize,
    /// Most messages per write transaction.
    pub write_batch_size: usize,
    /// Seconds to wait for a connection.
    pub connect_timeout_secs: u64,
    /// Bound of each job queue.
    pub max_queued_jobs: usize,
    /// Message notification channels: a node LISTENs only to the shards of its rooms.
    pub notify_shards: u16,
    /// Hot standby URLs for reads that may lag (a string or a list; empty: none).
    #[serde(deserialize_with = "one_or_many")]
    pub read_url: Vec<String>,
    /// Connections per standby.
    pub read_pool_size: u32,
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) if s.is_empty() => Vec::new(),
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// `[auth]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 secret for access tokens.
    pub access_secret: String,
    /// HS256 secret for refresh-token hashing.
    pub refresh_secret: String,
    /// Access token lifetime.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime.
    pub refresh_ttl_secs: u64,
    /// A refresh token presented again this soon after its rotation answers the same
    /// new token (parallel refreshes) instead of being treated as stolen.
    pub refresh_grace_secs: u64,
    /// Password hashing threads (0 = number of cores).
    pub auth_workers: usize,
    /// argon2id memory cost.
    pub argon2_memory_kib: u32,
    /// argon2id time cost.
    pub argon2_iterations: u32,
    /// argon2id lanes.
    pub argon2_parallelism: u32,
    /// Accounts of chatd's own (register, login, refresh); `false` leaves the product's
    /// tokens (`[auth.external]`) as the only way in.
    pub local_accounts: bool,
    /// `[auth.external]`: tokens from the product's identity provider.
    pub external: ExternalAuthConfig,
}

/// `[presence]`
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Heartbeat period.
    pub heartbeat_secs: u64,
    /// Age after which another node's rows are removed.
    pub node_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Development,
            node_id: String::new(),
            log_level: "info".into(),
            server: ServerConfig::default(),
            http: HttpConfig::default(),
            websocket: WsConfig::default(),
            database: DbConfig::default(),
            auth: AuthConfig::default(),
            presence: PresenceConfig::default(),
            limits: LimitsConfig::default(),
            rooms: RoomsConfig::default(),
            messages: MessagesConfig::default(),
            notifications: NotificationsConfig::default(),
            files: FilesConfig::default(),
            push: PushConfig::default(),
            retention: RetentionConfig::default(),
            metrics: MetricsConfig::default(),
            webhooks: Vec::new(),
            api_keys: Vec::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0".into(),
            port: 3000,
            event_loops: 0,
            max_connections: 20000,
            reuse_port: true,
            shared_port: false,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: 8192,
            max_headers: 64,
            max_body_bytes: 1 << 20,
            header_timeout_ms: 10_000,
            idle_timeout_secs: 60,
            history_cache_mb: 64,
            web_app: true,
            cors_origins: vec!["*".into()],
            connect_origins: Vec::new(),
            refresh_cookie_secure: true,
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_bytes: 1 << 20,
            read_buffer_bytes: 1024,
            max_outbound_bytes: 4 << 20,
            ping_interval_secs: 30,
            coalesce_ms: 20,
            max_events_per_sec: 100,
            echo_endpoint: false,
        }
    }
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            url: "postgres://postgres@127.0.0.1:5432/chatd".into(),
            pool_size: 22,
            db_workers: 8,
            export_workers: 2,
            writers: 2,
            write_batch_size: 1000,
            connect_timeout_secs: 5,
            max_queued_jobs: 65536,
            notify_shards: 16,
            read_url: Vec::new(),
            read_pool_size: 8,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_secret: String::new(),
            refresh_secret: String::new(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            refresh_grace_secs: 10,
            auth_workers: 0,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            local_accounts: true,
            external: ExternalAuthConfig::default(),
        }
    }
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            heartbeat_secs: 5,
            node_timeout_secs: 20,
        }
    }
}

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Path given.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Path given.
        path: String,
        /// The parser's message (names the key and line).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// Dotted key name.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Where the environment gets its values: the process environment in production, a map in tests.
pub trait Env {
    /// Value of a variable, if set and non-empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Parses TOML text (no environment applied); `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " "),
        })
    }

    /// Reads the file (if any), applies the environment, validates.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        let path = path
            .map(|p| p.to_path_buf())
            .or_else(|| env.get("CHATD_CONFIG").map(Into::into));
        let mut cfg = match path {
            Some(p) => {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                Config::from_toml(&text, &shown)?
            }
            None => Config::default(),
        };
        cfg.apply_env(env)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies DATABASE_URL, PORT, JWT_ACCESS_SECRET, JWT_REFRESH_SECRET, CHATD_NODE_ID.
    pub fn apply_env(&mut self, env: &dyn Env) -> Result<(), ConfigError> {
        if let Some(url) = env.get("DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(port) = env.get("PORT") {
            self.server.port = port
                .trim()
                .parse()
                .map_err(|_| invalid("PORT", format!("`{port}` is not a port number")))?;
        }
        if let Some(s) = env.get("JWT_ACCESS_SECRET") {
            self.auth.access_secret = s;
        }
        if let Some(s) = env.get("JWT_REFRESH_SECRET") {
            self.auth.refresh_secret = s;
        }
        if let Some(urls) = env.get("DATABASE_READ_URL") {
            self.database.read_url = urls
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
        }
        if let Some(s) = env.get("CHATD_VAPID_PRIVATE_KEY") {
            self.push.vapid_private_key = s;
        }
        if let Some(s) = env.get("CHATD_NODE_ID") {
            self.node_id = s;
        }
        Ok(())
    }

    /// Checks ranges and relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(
            self.log_level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(invalid(
                "log_level",
                "must be one of error, warn, info, debug, trace",
            ));
        }
        if self.node_id.len() > 64 {
            return Err(invalid("node_id", "at most 64 characters"));
        }
        if self.server.listen.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid("server.listen", "must be an IP address"));
        }
        range("server.event_loops", self.server.event_loops, 0, 256)?;
        range(
            "server.max_connections",
            self.server.max_connections,
            1,
            10_000_000,
        )?;
        range(
            "http.max_header_bytes",
            self.http.max_header_bytes,
            256,
            1 << 20,
        )?;
        range("http.max_headers", self.http.max_headers, 4, 1024)?;
        range(
            "http.max_body_bytes",
            self.http.max_body_bytes,
            1024,
            64 << 20,
        )?;
        range("files.max_bytes", self.files.max_bytes, 1, 1 << 30)?;
        range("files.thumbnail_px", self.files.thumbnail_px, 16, 2048)?;
        range(
            "files.url_ttl_minutes",
            self.files.url_ttl_minutes,
            1,
            10_080,
        )?;
        range(
            "files.unattached_ttl_hours",
            self.files.unattached_ttl_hours,
            0,
            24 * 365 * 10,
        )?;
        if self.files.upload_bytes_per_sec != 0 {
            range(
                "files.upload_bytes_per_sec",
                self.files.upload_bytes_per_sec,
                1024,
                1 << 40,
            )?;
        }
        range("files.upload_workers", self.files.upload_workers, 1, 64)?;
        range(
            "files.sweep_interval_secs",
            self.files.sweep_interval_secs,
            1,
            86_400,
        )?;
        range(
            "http.header_timeout_ms",
            self.http.header_timeout_ms,
            100,
            3_600_000,
        )?;
        range(
            "http.idle_timeout_secs",
            self.http.idle_timeout_secs,
            1,
            86_400,
        )?;
        range(
            "http.history_cache_mb",
            self.http.history_cache_mb,
            0,
            65_536,
        )?;
        range(
            "websocket.max_message_bytes",
            self.websocket.max_message_bytes,
            1024,
            64 << 20,
        )?;
        range(
            "websocket.read_buffer_bytes",
            self.websocket.read_buffer_bytes,
            64,
            1 << 20,
        )?;
        range(
            "websocket.max_outbound_bytes",
            self.websocket.max_outbound_bytes,
            64 << 10,
            1 << 30,
        )?;
        range(
            "websocket.ping_interval_secs",
            self.websocket.ping_interval_secs,
            1,
            3600,
        )?;
        range("websocket.coalesce_ms", self.websocket.coalesce_ms, 0, 1000)?;
        for origin in &self.http.connect_origins {
            if !plain_origin(origin) {
                return Err(invalid(
                    "http.connect_origins",
                    format!(
                        "`{origin}` is not an origin: scheme (http, https, ws, wss), host and \
                         optional port, e.g. \"https://api.example\""
                    ),
                ));
            }
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics.listen",
                "must be an IP address and port, e.g. \"127.0.0.1:9464\" (empty: no metrics)",
            ));
        }
        if !self.metrics.token.is_empty()
            && (self.metrics.token.len() < 16 || self.metrics.token.contains(char::is_whitespace))
        {
            return Err(invalid(
                "metrics.token",
                "must be at least 16 characters without spaces (empty: none)",
            ));
        }
        range(
            "messages.max_reactions",
            self.messages.max_reactions,
            1,
            1000,
        )?;
        range(
            "messages.max_attachments",
            self.messages.max_attachments,
            0,
            100,
        )?;
        range("messages.max_pins", self.messages.max_pins, 1, 1000)?;
        range(
            "limits.max_blocks_per_user",
            self.limits.max_blocks_per_user as usize,
            1,
            100_000,
        )?;
        if self.messages.search_language.is_empty()
            || self.messages.search_language.len() > 63
            || !self
                .messages
                .search_language
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            return Err(invalid(
                "messages.search_language",
                "must name a PostgreSQL text search configuration (simple, english, ...)",
            ));
        }
        range(
            "messages.search_batch",
            self.messages.search_batch,
            1,
            1_000_000,
        )?;
        range(
            "messages.search_max_defer_secs",
            self.messages.search_max_defer_secs,
            0,
            86_400,
        )?;
        range(
            "messages.search_busy_pct",
            self.messages.search_busy_pct,
            1,
            100,
        )?;
        range(
            "rooms.receipt_window_ms",
            self.rooms.receipt_window_ms,
            0,
            60_000,
        )?;
        if !self.database.url.starts_with("postgres://")
            && !self.database.url.starts_with("postgresql://")
        {
            return Err(invalid(
                "database.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        // An unparseable URL is a configuration error, not a database that is down.
        if let Err(e) = self.database.url.parse::<postgres::Config>() {
            return Err(invalid(
                "database.url",
                format!("{e} ({})", mask_url_password(&self.database.url)),
            ));
        }
        range("database.db_workers", self.database.db_workers, 1, 256)?;
        range(
            "database.export_workers",
            self.database.export_workers,
            1,
            64,
        )?;
        range("database.notify_shards", self.database.notify_shards, 1, 64)?;
        range(
            "retention.max_age_days",
            self.retention.max_age_days,
            0,
            36500,
        )?;
        range(
            "retention.batch_size",
            self.retention.batch_size,
            1,
            100_000,
        )?;
        range(
            "retention.interval_secs",
            self.retention.interval_secs,
            1,
            86_400,
        )?;
        range("retention.pause_ms", self.retention.pause_ms, 0, 60_000)?;
        range(
            "database.read_pool_size",
            self.database.read_pool_size,
            1,
            256,
        )?;
        for url in &self.database.read_url {
            if let Err(e) = url.parse::<postgres::Config>() {
                return Err(invalid(
                    "database.read_url",
                    format!("{e} ({})", mask_url_password(url)),
                ));
            }
        }
        range("database.writers", self.database.writers, 1, 64)?;
        range(
            "database.write_batch_size",
            self.database.write_batch_size,
            1,
            100_000,
        )?;
        range(
            "database.connect_timeout_secs",
            self.database.connect_timeout_secs,
            1,
            600,
        )?;
        range(
            "database.max_queued_jobs",
            self.database.max_queued_jobs,
            16,
            10_000_000,
        )?;
        // The presence and read-marks threads hold one each, and one spare.
        let d = &self.database;
        let needed = d.db_workers
            + d.export_workers
            + self.files.upload_workers
            + d.writers
            + self.auth_workers()
            + 3;
        if (self.database.pool_size as usize) < needed {
            return Err(invalid(
                "database.pool_size",
                format!(
                    "{} is too small: db_workers + export_workers + files.upload_workers + writers + auth_workers + 3 = {needed}",
                    self.database.pool_size
                ),
            ));
        }
        range(
            "auth.access_ttl_secs",
            self.auth.access_ttl_secs,
            10,
            86_400 * 7,
        )?;
        range(
            "auth.refresh_ttl_secs",
            self.auth.refresh_ttl_secs,
            60,
            86_400 * 365,
        )?;
        range("auth.auth_workers", self.auth.auth_workers, 0, 256)?;
        range(
            "auth.refresh_grace_secs",
            self.auth.refresh_grace_secs,
            0,
            300,
        )?;
        range(
            "auth.argon2_memory_kib",
            self.auth.argon2_memory_kib as usize,
            8,
            4 << 20,
        )?;
        range(
            "auth.argon2_iterations",
            self.auth.argon2_iterations as usize,
            1,
            100,
        )?;
        range(
            "auth.argon2_parallelism",
            self.auth.argon2_parallelism as usize,
            1,
            64,
        )?;
        range(
            "presence.heartbeat_secs",
            self.presence.heartbeat_secs,
            1,
            3600,
        )?;
        if self.presence.node_timeout_secs < self.presence.heartbeat_secs * 2 {
            return Err(invalid(
                "presence.node_timeout_secs",
                "must be at least twice presence.heartbeat_secs",
            ));
        }
        self.auth
            .external
            .validate(self.mode, &self.auth.access_secret)?;
        api_keys::validate(&self.api_keys)?;
        if !self.auth.local_accounts && !self.auth.external.enabled() {
            return Err(invalid(
                "auth.local_accounts",
                "false needs [auth.external]: nobody could sign in",
            ));
        }
        webhooks::validate(&self.webhooks)?;
        self.push.validate(self.mode)?;
        if self.mode == Mode::Production {
            self.validate_production()?;
        }
        Ok(())
    }

    fn validate_production(&self) -> Result<(), ConfigError> {
        for (key, secret) in [
            ("auth.access_secret", &self.auth.access_secret),
            ("auth.refresh_secret", &self.auth.refresh_secret),
        ] {
            if secret.len() < 32 {
                return Err(invalid(
                    key,
                    "production mode needs a secret of at least 32 bytes (JWT_ACCESS_SECRET / JWT_REFRESH_SECRET)",
                ));
            }
        }
        for (key, secret) in [
            ("auth.access_secret", &self.auth.access_secret),
            ("auth.refresh_secret", &self.auth.refresh_secret),
        ] {
            if entropy_bits(secret) < 100.0 {
                return Err(invalid(
                    key,
                    "production mode needs a random secret (it looks guessable: too few \
                     distinct characters); e.g. `openssl rand -hex 32`",
                ));
            }
        }
        if self.auth.access_secret == self.auth.refresh_secret {
            return Err(invalid(
                "auth.refresh_secret",
                "must differ from auth.access_secret",
            ));
        }
        let url = &self.files.url_secret;
        if !url.is_empty() && (url.len() < 32 || entropy_bits(url) < 100.0) {
            return Err(invalid(
                "files.url_secret",
                "production mode needs a random secret of at least 32 bytes (or none: it is \
                 then derived from auth.access_secret); e.g. `openssl rand -hex 32`",
            ));
        }
        if self.websocket.echo_endpoint {
            return Err(invalid(
                "websocket.echo_endpoint",
                "the unauthenticated echo socket is for conformance tests, never production",
            ));
        }
        let l = &self.limits;
        for (key, v) in [
            ("limits.login_per_ip_per_min", l.login_per_ip_per_min),
            (
                "limits.login_per_account_ip_per_min",
                l.login_per_account_ip_per_min,
            ),
            (
                "limits.login_per_account_per_min",
                l.login_per_account_per_min,
            ),
            ("limits.register_per_ip_per_min", l.register_per_ip_per_min),
        ] {
            if v == 0 {
                return Err(invalid(
                    key,
                    "production mode needs a limit (0 means unlimited password guessing)",
                ));
            }
        }
        if self.auth.access_ttl_secs > 3600 {
            return Err(invalid(
                "auth.access_ttl_secs",
                "production mode allows at most 3600: a stolen access token lives that long \
                 (clients refresh)",
            ));
        }
        if self.auth.argon2_memory_kib > 262_144 {
            return Err(invalid(
                "auth.argon2_memory_kib",
                "production mode allows at most 262144 (256 MiB per hashing thread)",
            ));
        }
        // OWASP's floor for argon2id: 19 MiB with 2 passes.
        if self.auth.argon2_memory_kib < 19456 || self.auth.argon2_iterations < 2 {
            return Err(invalid(
                "auth.argon2_memory_kib",
                "production mode needs at least OWASP's argon2id cost (19456 KiB, 2 iterations)",
            ));
        }
        Ok(())
    }

    /// Event loops to run.
    pub fn event_loops(&self) -> usize {
        if self.server.event_loops == 0 {
            cores()
        } else {
            self.server.event_loops
        }
    }

    /// Password hashing threads to run (default: one per core, at most 4, so the
    /// default pool fits on any host).
    pub fn auth_workers(&self) -> usize {
        if self.auth.auth_workers == 0 {
            cores().min(4)
        } else {
            self.auth.auth_workers
        }
    }

    /// True when no secret was configured (dev mode generates them).
    pub fn secrets_missing(&self) -> bool {
        self.auth.access_secret.is_empty() || self.auth.refresh_secret.is_empty()
    }

    /// The effective configuration as TOML with secrets and passwords masked.
    pub fn masked_toml(&self) -> String {
        let mut shown = self.clone();
        for s in [
            &mut shown.auth.access_secret,
            &mut shown.auth.refresh_secret,
            &mut shown.auth.external.hs256_secret,
            &mut shown.files.url_secret,
        ] {
            if !s.is_empty() {
                *s = "********".into();
            }
        }
        for s in std::iter::once(&mut shown.metrics.token)
            .chain(std::iter::once(&mut shown.push.vapid_private_key))
            .chain(shown.webhooks.iter_mut().map(|h| &mut h.secret))
        {
            if !s.is_empty() {
                *s = "********".into();
            }
        }
        for k in &mut shown.api_keys {
            k.key_sha256 = "********".into();
        }
        shown.database.url = mask_url_password(&shown.database.url);
        for u in &mut shown.database.read_url {
            *u = mask_url_password(u);
        }
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Whether `s` is an origin and nothing else: `scheme://host[:port]` with an http(s) or
/// ws(s) scheme (it goes into a Content-Security-Policy, where a space or `;` would add
/// sources or directives).
fn plain_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    matches!(scheme, "http" | "https" | "ws" | "wss")
        && host_ok
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Estimated entropy of a secret in bits: its length times the Shannon entropy of its
/// character frequencies. `aaaa…` scores 0; 64 random hex digits about 250.
fn entropy_bits(secret: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in secret.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = secret.chars().count() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    per_char * n
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn range<T: PartialOrd + fmt::Display + Copy>(
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(key, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

/// A database URL fit to print: the password of `user:password@` (up to the last `@`,
/// since an unencoded `@` may be part of it: masking too much beats leaking a tail) and
/// the value of every query parameter whose name contains `password`, as asterisks.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let mut out = url[..scheme_end].to_string();
    let rest = &url[scheme_end..];
    let rest = match (rest.find(':'), rest.rfind('@')) {
        (Some(colon), Some(at)) if colon < at && !rest[..colon].contains('@') => {
            out.push_str(&rest[..colon]);
            out.push_str(":********");
            &rest[at..]
        }
        _ => rest,
    };
    match rest.split_once('?') {
        None => out.push_str(rest),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=********")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../../chat.toml");
        let cfg = Config::from_toml(text, "chat.toml").unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            toml::to_string(&cfg).unwrap(),
            toml::to_string(&Config::default()).unwrap()
        );
    }

    #[test]
    fn connect_origins_are_plain_origins() {
        for ok in [
            "https://api.example",
            "http://10.0.0.1:4000",
            "wss://a-b.example:443",
            "http://[::1]:3000",
        ] {
            assert!(plain_origin(ok), "{ok}");
        }
        for bad in [
            "api.example",
            "https://api.example/",
            "https://a.example; script-src *",
            "https://a.example 'unsafe-inline'",
            "https://*.example",
            "ftp://a.example",
            "https://a.example:0",
            "https://",
        ] {
            assert!(!plain_origin(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[server]\nprot = 1\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn unparseable_database_url_is_refused() {
        let mut cfg = Config::default();
        cfg.database.url = "postgres://me:secret@db:notaport/chat".into();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("database.url") && !err.contains("secret"),
            "{err}"
        );
    }

    #[test]
    fn bad_value_is_named() {
        let mut cfg = Config::default();
        cfg.database.writers = 0;
        let err = cfg.validate().unwrap_err();
        assert!(err.to_string().contains("database.writers"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let env = MapEnv(HashMap::from([
            ("PORT", "4001"),
            ("DATABASE_URL", "postgres://u:pw@h/db"),
            ("JWT_ACCESS_SECRET", "a"),
        ]));
        let mut cfg = Config::default();
        cfg.apply_env(&env).unwrap();
        assert_eq!(cfg.server.port, 4001);
        assert_eq!(cfg.database.url, "postgres://u:pw@h/db");
        assert_eq!(cfg.auth.access_secret, "a");
        let bad = MapEnv(HashMap::from([("PORT", "http")]));
        assert!(
            cfg.apply_env(&bad)
                .unwrap_err()
                .to_string()
                .contains("PORT")
        );
    }

    #[test]
    fn production_needs_secrets() {
        let mut cfg = Config {
            mode: Mode::Production,
            ..Default::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("access_secret")
        );
        cfg.auth.access_secret = "a".repeat(32);
        cfg.auth.refresh_secret = "b".repeat(32);
        assert!(cfg.validate().unwrap_err().to_string().contains("random"));
        cfg.auth.access_secret = "3f9c1e0a7b5d2c4e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c".into();
        cfg.auth.refresh_secret = "b7e2d9c4a1f6e3b8d5c2a9f4e1b6d3c8a5f2e9b4d1c6a3f8".into();
        cfg.validate().unwrap();
        for (tweak, key) in [
            (
                (|c: &mut Config| c.websocket.echo_endpoint = true) as fn(&mut Config),
                "echo_endpoint",
            ),
            (|c| c.limits.login_per_ip_per_min = 0, "login_per_ip"),
            (|c| c.limits.register_per_ip_per_min = 0, "register"),
            (|c| c.auth.access_ttl_secs = 7 * 86400, "access_ttl"),
            (|c| c.auth.argon2_memory_kib = 4 << 20, "argon2_memory"),
        ] {
            let mut bad = cfg.clone();
            tweak(&mut bad);
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn production_needs_owasp_argon2_and_distinct_secrets() {
        let mut cfg = Config {
            mode: Mode::Production,
            ..Default::default()
        };
        cfg.auth.access_secret = "3f9c1e0a7b5d2c4e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c".into();
        cfg.auth.refresh_secret = cfg.auth.access_secret.clone();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("refresh_secret")
        );
        cfg.auth.refresh_secret = "b".repeat(31);
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("refresh_secret")
        );
        cfg.auth.refresh_secret = "b7e2d9c4a1f6e3b8d5c2a9f4e1b6d3c8a5f2e9b4d1c6a3f8".into();
        cfg.auth.argon2_memory_kib = 4096;
        assert!(cfg.validate().unwrap_err().to_string().contains("argon2"));
        cfg.auth.argon2_memory_kib = 19456;
        cfg.auth.argon2_iterations = 1;
        assert!(cfg.validate().unwrap_err().to_string().contains("argon2"));
    }

    #[test]
    fn masks_secrets() {
        let mut cfg = Config::default();
        cfg.auth.access_secret = "topsecret".into();
        cfg.auth.external.hs256_secret = "providersecret".into();
        cfg.database.url = "postgres://me:hunter2@db/chat".into();
        let shown = cfg.masked_toml();
        assert!(!shown.contains("topsecret") && !shown.contains("hunter2"));
        assert!(!shown.contains("providersecret"));
        assert!(shown.contains("postgres://me:********@db/chat"));
        for (url, secret, shown) in [
            (
                "postgres://me@db/chat?password=hunter2",
                "hunter2",
                "postgres://me@db/chat?password=********",
            ),
            (
                "postgres://me:p@ss@db/chat",
                "ss",
                "postgres://me:********@db/chat",
            ),
            (
                "postgres://me:a:b@db/chat?sslpassword=x1y2&x=1",
                "x1y2",
                "postgres://me:********@db/chat?sslpassword=********&x=1",
            ),
            ("postgres://db/chat", "", "postgres://db/chat"),
        ] {
            let m = mask_url_password(url);
            assert_eq!(m, shown);
            assert!(secret.is_empty() || !m.contains(secret), "{m}");
        }
    }
}
