//! The error type of `dosepaint-mlc`.

/// Everything that can go wrong when sequencing a fluence map or computing
/// what a sequence delivers. Each variant says what was wrong and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `dosepaint-core` (layout, aperture or sequence checks).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// A parameter is outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"number of levels"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// A fluence value is negative or not finite.
    #[error("invalid fluence at row {row}, column {col}: {value} ({reason})")]
    InvalidFluence {
        /// Row (leaf pair) of the value.
        row: usize,
        /// Column (position along leaf travel) of the value.
        col: usize,
        /// The offending value.
        value: f64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An array or a sequence does not have the expected shape.
    #[error("shape mismatch in {context}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// Which object had the wrong shape.
        context: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A combination of options that no algorithm of this crate can honour.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An error while sequencing one beam of a plan.
    #[error("beam {beam}: {source}")]
    Beam {
        /// Index of the beam.
        beam: usize,
        /// What went wrong.
        source: Box<Error>,
    },
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

    pub(crate) fn in_beam(self, beam: usize) -> Self {
        Self::Beam {
            beam,
            source: Box::new(self),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
