mod store;
mod manifest;
mod config;
