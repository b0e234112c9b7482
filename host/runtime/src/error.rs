//! Why a guest call produced no result, and why a module is not a guest.

use crate::limits::LimitError;
use crate::store::StoreError;

/// Why a guest call produced no result.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The guest returned `Err` (its text, verbatim), trapped, ran out of fuel, hit its memory
    /// limit or broke an import rule. Deterministic: every member gets the same error for the
    /// same entry, nothing the entry wrote survives, and the log goes on.
    #[error("{0}")]
    Guest(String),
    /// The store failed. The transaction may hold part of the entry: the member must stop.
    #[error("wasmraft: storage failure while running the guest: {0}")]
    Storage(#[from] StoreError),
    /// The host could not run the guest at all (an exhausted instance pool, an mmap failure).
    /// Not the guest's doing and not deterministic, so the entry's outcome must not be recorded:
    /// like `Storage`, fatal to the apply loop (a query may simply be retried).
    #[error("{0}")]
    Host(String),
}

impl ApplyError {
    /// Whether the member can go on applying after this error.
    pub fn is_guest(&self) -> bool {
        matches!(self, ApplyError::Guest(_))
    }
}

/// Why a module cannot run as a guest, or an engine cannot be made. The texts are wasmtime's
/// where they describe the bytes, so a refused deploy says what is wrong with the module.
///
/// Whether a module loads depends on its bytes alone ([`crate::LOAD_LIMITS`]), so every
/// variant but [`LoadError::Engine`] and [`LoadError::Vanished`] is the same on every member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// wasmtime refused the engine's configuration (or could not reserve its memory).
    #[error("creating the wasmtime engine: {0}")]
    Engine(String),
    /// A stack limit a deployment may not set.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// Limits whose stack limit is not the engine's, which is what enforces it.
    #[error("wasmraft: a guest with a stack limit of {limit} bytes on an engine of {engine} bytes")]
    StackMismatch { limit: u64, engine: u64 },
    /// The module is over the compile budget (`compile_budget.rs`): refused before compiling.
    #[error(transparent)]
    CompileBudget(#[from] crate::compile_budget::BudgetError),
    /// The bytes are not a component wasmtime compiles (or one whose stack cannot be counted).
    #[error("compiling the guest component: {0}")]
    Compile(String),
    /// The host's imports could not be defined.
    #[error("linking the guest imports: {0}")]
    Link(String),
    /// The component imports more than `store` and `events`.
    #[error(
        "the guest imports something wasmraft does not provide (a guest may import only wasmraft:guest/store and wasmraft:guest/events; no WASI): {0}"
    )]
    Imports(String),
    /// The component does not export the state-machine world.
    #[error("the component does not export the wasmraft:guest state-machine world (info, apply, query, migrate): {0}")]
    Exports(String),
    /// The guest's `info()` failed.
    #[error("calling the guest's info(): {0}")]
    Info(ApplyError),
    /// A compiled guest was gone from the registry right after it was put there.
    #[error("wasmraft: the loaded guest vanished from the registry")]
    Vanished,
}
