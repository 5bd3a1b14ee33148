//! Work done every so often until shutdown: the recompute of dirty days, the
//! store's health check.

use std::future::Future;
use std::pin::Pin;

/// Ticks every `every` (the first at once; late ticks are not made up) until
/// the shutdown future completes.
pub struct Periodic {
    tick: tokio::time::Interval,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Periodic {
    pub fn new(
        every: std::time::Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Periodic {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Periodic {
            tick,
            shutdown: Box::pin(shutdown),
        }
    }

    /// Waits for the next tick: `true`, or `false` once shutdown has come (which
    /// wins over a tick due at the same time).
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            () = &mut self.shutdown => false,
            _ = self.tick.tick() => true,
        }
    }
}
