mod cli;
mod config;
mod manifest;
mod process;
mod queue_cli;
mod reconcile;
mod store;
mod worker;
