//! Scheduling. [`crate::schedule`] (below `manifest`, which holds parsed schedules) parses cron
//! expressions the way crontab users write them and computes fire instants (daylight saving
//! time included); `due` decides what one pass fires
//! (catch-up); both are pure, `now` is always a parameter. `fire` is the task that sleeps until
//! the next instant and enqueues, once across every scheduler sharing the store.

pub mod due;
pub mod fire;

pub use fire::{FireCounts, Scheduler, SchedulerSettings};
