//! An error with its causes on one line (`step: cause: cause`), for the texts only an operator
//! or a client reads: a fatal error's, a log line's, [`NodeError::Internal`](crate::NodeError)'s.
//!
//! The crate's errors follow the storage crate's rule: each type's `Display` is its own step and
//! its `source` the step below. Printed through this, a chain reads exactly as `anyhow`'s `{:#}`
//! printed it when these paths were `anyhow` contexts.

use std::error::Error;
use std::fmt;

/// Displays `0` and every `source` below it, separated by `": "`.
pub(crate) struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("applying entry 7")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_its_step() {
        let e = Outer(std::io::Error::other("disk full"));
        assert_eq!(Chain(&e).to_string(), "applying entry 7: disk full");
    }
}
