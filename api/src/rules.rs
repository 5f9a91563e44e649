//! Reloading the Sigma rules while running: on SIGHUP or `POST
//! /api/v1/rules/reload`. The evidence stage (which owns the engine) loads the
//! set; a set with any error is refused with every `file:line: message` and
//! the running rules stay. Both outcomes are `audit` records.

use tokio::sync::{mpsc, oneshot};

/// Rules loaded (their number) or why the set was refused.
pub type ReloadResult = Result<usize, Vec<String>>;

/// A request to reload, with who asked.
pub struct ReloadRequest {
    pub by: String,
    pub reply: oneshot::Sender<ReloadResult>,
}

/// Asks the engine's owner to reload the rules.
#[derive(Clone)]
pub struct RulesReload(mpsc::Sender<ReloadRequest>);

impl RulesReload {
    /// A handle and the receiving end its owner serves.
    pub fn channel() -> (Self, mpsc::Receiver<ReloadRequest>) {
        let (tx, rx) = mpsc::channel(4);
        (Self(tx), rx)
    }

    pub async fn reload(&self, by: &str) -> ReloadResult {
        let (reply, answer) = oneshot::channel();
        let stopped = || vec!["correlation is not running".to_owned()];
        self.0.send(ReloadRequest { by: by.to_owned(), reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
