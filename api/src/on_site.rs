//! Who is on site now, and where (`GET /api/v1/presence`): correlation's
//! presence, as the badge events made it, asked of the stage that owns the
//! engine, which answers between ledger batches.

use correlate::sigma::OnSite;
use tokio::sync::{mpsc, oneshot};

/// A question for the engine's owner: who is on site at `at` (Unix ms).
pub struct OnSiteAsk {
    pub at: i64,
    pub reply: oneshot::Sender<OnSiteAnswer>,
}

/// Who is on site by their badges, and how long a badge-in counts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnSiteAnswer {
    pub people: Vec<OnSite>,
    pub timeout_ms: i64,
}

/// Asks the engine's owner who is on site.
#[derive(Clone)]
pub struct OnSiteAsks(mpsc::Sender<OnSiteAsk>);

impl OnSiteAsks {
    /// A handle and the receiving end its owner serves (a few questions may wait).
    pub fn channel() -> (Self, mpsc::Receiver<OnSiteAsk>) {
        let (tx, rx) = mpsc::channel(8);
        (Self(tx), rx)
    }

    /// Who is on site at `at`; `None` once correlation has stopped.
    pub async fn at(&self, at: i64) -> Option<OnSiteAnswer> {
        let (reply, answer) = oneshot::channel();
        self.0.send(OnSiteAsk { at, reply }).await.ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The owner answers with the engine's list; once it has stopped, the
    /// question has no answer (the API says 503), and nothing waits forever.
    #[tokio::test]
    async fn asked_and_answered_or_stopped() {
        let (asks, mut owner) = OnSiteAsks::channel();
        let serving = tokio::spawn(async move {
            let ask = owner.recv().await.expect("one question");
            assert_eq!(ask.at, 42);
            let _ = ask.reply.send(OnSiteAnswer { people: Vec::new(), timeout_ms: 7 });
            // Then the stage stops.
        });
        assert_eq!(asks.at(42).await, Some(OnSiteAnswer { people: Vec::new(), timeout_ms: 7 }));
        serving.await.expect("owner");
        assert_eq!(asks.at(43).await, None, "correlation stopped");
    }
}
