//! End-to-end tests: a running Custos with real senders, receivers and a
//! Kafka-protocol broker. One test binary, so a build links it once.

mod alarms;
mod collectors;
mod common;
mod demo;
mod kafka;
mod reload;
mod room;
mod sources;
mod syslog_logger;
mod syslog_tls;
