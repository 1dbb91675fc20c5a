mod cli;
mod config;
mod manifest;
mod reconcile;
mod store;
