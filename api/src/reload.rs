//! Reloading while running, on SIGHUP or through the API: the Sigma rules
//! (`POST /api/v1/rules/reload`) and the plant inventory (`POST
//! /api/v1/inventory/reload`). The evidence stage, which owns the engine,
//! loads and checks what was asked for; anything with an error is refused
//! with every message and what runs stays. Both outcomes are `audit`
//! records naming who asked, with what changed.

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// What to reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The rule files, compiled against the running inventory.
    Rules,
    /// The inventory file, with the running rule files compiled against it.
    Inventory,
}

/// What a reload put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reloaded {
    /// The rules now running.
    pub rules: usize,
    /// Whether what was reloaded differs from what ran before.
    pub changed: bool,
}

/// What was put in place, or every reason it was refused.
pub type ReloadResult = Result<Reloaded, Vec<String>>;

/// A request to reload, with who asked.
pub struct ReloadRequest {
    pub by: String,
    pub what: Reload,
    pub reply: oneshot::Sender<ReloadResult>,
}

/// Asks the engine's owner to reload.
#[derive(Clone)]
pub struct Reloads(mpsc::Sender<ReloadRequest>);

impl Reloads {
    /// A handle and the receiving end its owner serves.
    pub fn channel() -> (Self, mpsc::Receiver<ReloadRequest>) {
        let (tx, rx) = mpsc::channel(4);
        (Self(tx), rx)
    }

    pub async fn rules(&self, by: &str) -> ReloadResult {
        self.ask(by, Reload::Rules).await
    }

    pub async fn inventory(&self, by: &str) -> ReloadResult {
        self.ask(by, Reload::Inventory).await
    }

    async fn ask(&self, by: &str, what: Reload) -> ReloadResult {
        let (reply, answer) = oneshot::channel();
        let stopped = || vec!["correlation is not running".to_owned()];
        self.0.send(ReloadRequest { by: by.to_owned(), what, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
