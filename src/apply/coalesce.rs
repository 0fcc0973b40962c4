//! Reloads that serve every request made while one was under way. A rollout asks the load
//! balancers to follow each replica that becomes ready or leaves; when several ask at once
//! (replicas of a window ready together, a fresh deploy's replicas all at once), one reload
//! that starts after all of them asked reflects every change, so the others need not run
//! their own. Runs never overlap, so no balancer goes back to an older view.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// One kind of work (an ingress or mesh sync) whose later run covers every earlier request.
#[derive(Default)]
pub struct Coalesced {
    /// Requests so far.
    asked: AtomicU64,
    /// Held by the run under way; the number of requests the last successful run served.
    served: tokio::sync::Mutex<u64>,
}

impl Coalesced {
    pub fn new() -> Coalesced {
        Coalesced::default()
    }

    /// Runs `work`, unless a run that began after this request has succeeded meanwhile. The
    /// caller changes what `work` reads (marks a replica draining, say) before it calls this.
    pub async fn run<F>(&self, work: impl FnOnce() -> F) -> anyhow::Result<()>
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let mine = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut served = self.served.lock().await;
        if *served >= mine {
            return Ok(());
        }
        // Every request made before this point is covered by the run that starts now.
        let covers = self.asked.load(Ordering::SeqCst);
        work().await?;
        *served = covers;
        Ok(())
    }

    /// Keeps every run from starting until the guard is dropped (for work that reads and
    /// writes what runs do, and must not overlap them).
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, u64> {
        self.served.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn requests_made_during_a_run_share_the_next_one() {
        let coalesced = Coalesced::new();
        let runs = AtomicUsize::new(0);
        // A run yields once (a reload in flight): the other requests arrive meanwhile.
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(())
        };
        let results = futures_util::future::join_all((0..5).map(|_| coalesced.run(work))).await;
        assert!(results.iter().all(Result::is_ok));
        // One run for the first request, one shared by the four that came during it.
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // A request after that runs again.
        coalesced.run(work).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_run_serves_nobody() {
        let coalesced = Coalesced::new();
        let r = coalesced
            .run(|| async { anyhow::bail!("reload failed") })
            .await;
        assert!(r.is_err());
        let runs = AtomicUsize::new(0);
        let r = coalesced
            .run(|| async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
