//! App servers: each app of each project is a supervised child process.
//!
//! - [`backoff`] (pure): restart policy and exponential backoff.
//! - [`health`]: `http` and `tcp` checks on 127.0.0.1.

pub mod backoff;
pub mod health;
