//! PostgreSQL, as both ends of a run use it: connection settings ([`connect`]), TLS ([`tls`]) and validated
//! table names ([`name`]). A leaf module: the PostgreSQL source and the sink both build on it.

pub mod connect;
mod name;
pub mod tls;

pub use name::{MAX_IDENTIFIER, TableName};
