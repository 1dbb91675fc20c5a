mod cli;
mod config;
mod manifest;
mod process;
mod reconcile;
mod store;
