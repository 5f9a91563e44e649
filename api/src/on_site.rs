//! Who is on site now, and where (`GET /api/v1/presence`): correlation's
//! presence, as the badge events made it, asked of the stage that owns the
//! engine, which answers between ledger batches.

use correlate::sigma::OnSite;
use tokio::sync::{mpsc, oneshot};

/// A question for the engine's owner: who is on site at `at` (Unix ms).
pub struct OnSiteAsk {
    pub at: i64,
    pub reply: oneshot::Sender<Vec<OnSite>>,
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
    pub async fn at(&self, at: i64) -> Option<Vec<OnSite>> {
        let (reply, answer) = oneshot::channel();
        self.0.send(OnSiteAsk { at, reply }).await.ok()?;
        answer.await.ok()
    }
}
