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

/// Why a reload put nothing in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// What was asked for has errors (each `file:line: message`, or the
    /// inventory key); what runs stays.
    Refused(Vec<String>),
    /// Correlation has stopped, so nothing can be reloaded.
    NotRunning,
}

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

    pub async fn rules(&self, by: &str) -> Result<Reloaded, ReloadError> {
        self.ask(by, Reload::Rules).await
    }

    pub async fn inventory(&self, by: &str) -> Result<Reloaded, ReloadError> {
        self.ask(by, Reload::Inventory).await
    }

    async fn ask(&self, by: &str, what: Reload) -> Result<Reloaded, ReloadError> {
        let (reply, answer) = oneshot::channel();
        let request = ReloadRequest { by: by.to_owned(), what, reply };
        self.0.send(request).await.map_err(|_| ReloadError::NotRunning)?;
        answer.await.map_err(|_| ReloadError::NotRunning)?.map_err(ReloadError::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refusal_is_told_from_correlation_having_stopped() {
        let (reloads, mut owner) = Reloads::channel();
        let serve = tokio::spawn(async move {
            let r = owner.recv().await.expect("a request");
            assert_eq!((r.by.as_str(), r.what), ("ann", Reload::Inventory));
            let _ = r.reply.send(Err(vec!["inventory assets[0].zone: unknown zone \"cell-9\"".into()]));
            // Taken, then dropped unanswered: the owner stopped meanwhile.
            drop(owner.recv().await);
        });
        let refused = reloads.inventory("ann").await;
        assert_eq!(
            refused,
            Err(ReloadError::Refused(vec!["inventory assets[0].zone: unknown zone \"cell-9\"".into()]))
        );
        assert_eq!(reloads.rules("ann").await, Err(ReloadError::NotRunning), "asked, never answered");
        serve.await.expect("owner");
        assert_eq!(reloads.rules("ann").await, Err(ReloadError::NotRunning), "no owner at all");
    }
}
