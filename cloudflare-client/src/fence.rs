//! [`Fence`]: a switch that stops a client from sending anything.
//!
//! A replica that can no longer prove it leads (its Lease renewals failed past the renew
//! deadline) closes its fence: from then on every request fails with
//! [`crate::CloudflareError::Fenced`] before it leaves the process, including retries and
//! requests that were waiting for rate budget. Passes in flight therefore end at their next call
//! boundary, and two replicas never change one account at the same time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared open/closed switch. Clones share the state; it starts open. Closing is final.
#[derive(Clone, Default)]
pub struct Fence(Arc<AtomicBool>);

impl Fence {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop every request of every client configured with this fence.
    pub fn close(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_closed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_closed() { "Fence(closed)" } else { "Fence(open)" })
    }
}

/// Two configs are equal when they share the same switch.
impl PartialEq for Fence {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Fence {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_switch() {
        let a = Fence::new();
        let b = a.clone();
        assert!(!b.is_closed());
        a.close();
        assert!(b.is_closed());
        assert_eq!(a, b);
        assert_ne!(a, Fence::new());
    }
}
