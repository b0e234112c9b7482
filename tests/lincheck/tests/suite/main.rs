//! The checker's test suite, one binary (one link) for all of it.

mod brute;
mod cli;
mod generate;
mod json;
mod known_bad;
mod known_good;
mod ops;
mod performance;
mod random;
mod validation;
