//! Scheduling maths. `schedule` parses cron expressions the way crontab users write them
//! and computes fire instants; pure functions, `now` is always a parameter.

pub mod schedule;
