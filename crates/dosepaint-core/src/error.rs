//! The error type of `dosepaint-core`.

/// Everything that can go wrong when building or combining core data.
///
/// Each variant says *what* was wrong and *where*, so that a message shown to a
/// user names the parameter, the structure or the index at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter had a value outside its valid range (NaN, negative, zero...).
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"grid spacing"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// Two objects that must share a grid do not.
    #[error("grid mismatch: {context}")]
    GridMismatch {
        /// Which objects were compared.
        context: String,
    },
    /// An array or slice had the wrong length or shape.
    #[error("shape mismatch in {context}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Which object had the wrong shape.
        context: String,
        /// The expected shape or length.
        expected: String,
        /// The shape or length found.
        found: String,
    },
    /// An index was outside the valid range.
    #[error("index out of range in {context}: {index} (valid: {bound})")]
    IndexOutOfRange {
        /// Which index space.
        context: String,
        /// The offending index.
        index: String,
        /// The valid range.
        bound: String,
    },
    /// A value that must be finite was NaN or infinite.
    #[error("non-finite value in {context} at {location}")]
    NonFinite {
        /// Which data held the value.
        context: String,
        /// Where (an index or a voxel).
        location: String,
    },
    /// A structure or selection holds no voxel where at least one is needed.
    #[error("empty {what}: {reason}")]
    Empty {
        /// The empty object, e.g. `structure "GTV"`.
        what: String,
        /// Why that is a problem here.
        reason: String,
    },
    /// A requested feature is not supported (e.g. a decubitus patient position).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn shape(
        context: impl Into<String>,
        expected: impl std::fmt::Display,
        found: impl std::fmt::Display,
    ) -> Self {
        Self::ShapeMismatch {
            context: context.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
