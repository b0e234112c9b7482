//! What a guest call is given and what it gives back, besides the store.

/// Where the entry being applied sits in the log. `time_unix_ms` comes from the entry (the
/// proposer's clock), never from the applying member's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyContext {
    pub index: u64,
    pub term: u64,
    pub time_unix_ms: u64,
}

/// A guest's name, version and the client APIs it serves (WIT `guest-info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestInfo {
    pub name: String,
    pub version: String,
    pub apis: Vec<String>,
}

/// What a successful entry produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// For the client that proposed the entry.
    pub output: Vec<u8>,
    /// For watchers, in emit order.
    pub events: Vec<Vec<u8>>,
}
