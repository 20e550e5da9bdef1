//! The system clock, the production implementation of the clock port.

use chrono::{DateTime, Utc};
use ports::Clock;

/// Reads the operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
