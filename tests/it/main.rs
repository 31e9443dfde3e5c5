//! The integration tests: one test binary whose modules each cover one area, all talking
//! to a real PostgreSQL over real sockets (one database per test, dropped after). One
//! binary links the crate and `support` once instead of once per area.

mod support;

mod abuse;
mod acceptance;
mod admin;
mod admin_export;
mod architecture;
mod asyncapi;
mod auth;
mod blocks;
mod clients;
mod cluster;
mod conformance;
mod conversations;
mod cookie;
mod external;
mod faults;
mod files;
mod files_budget;
mod files_limits;
mod files_thumbs;
mod fuzz_regressions;
mod hardening;
mod history;
mod http;
mod limits;
mod mentions;
mod messages;
mod nodes;
mod nul;
mod pins;
mod push;
mod push_retry;
mod quiet;
mod removed;
mod replicas;
mod report_review;
mod reports;
mod retention;
mod rooms;
mod rules;
mod safety;
mod security;
mod shards;
mod slow_mode;
mod startup;
mod users;
mod webhooks;
mod writes;
mod ws;
