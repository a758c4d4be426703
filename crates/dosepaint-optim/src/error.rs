//! The error type of `dosepaint-optim`.

/// Everything that can go wrong when setting up or running an optimization.
///
/// Each variant names *what* was wrong and *where* (the objective, the
/// structure, the voxel or the beamlet), so that a message shown to a user is
/// actionable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the shared data model (grids, structures, the matrix).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// An error of a radiobiological model (gEUD, TCP, NTCP).
    #[error(transparent)]
    Radiobio(#[from] dosepaint_radiobio::Error),
    /// A parameter had a value outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"objective weight"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// A vector had the wrong length.
    #[error("length mismatch in {context}: expected {expected}, found {found}")]
    LengthMismatch {
        /// Which vector.
        context: String,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        found: usize,
    },
    /// A selection of voxels holds nothing where at least one is needed.
    #[error("empty {what}: {reason}")]
    Empty {
        /// The empty object, e.g. `structure "Core"`.
        what: String,
        /// Why that is a problem here.
        reason: String,
    },
    /// A value that must be finite was NaN or infinite.
    #[error("non-finite value in {context} at {location}")]
    NonFinite {
        /// Which data held the value.
        context: String,
        /// Where (a voxel, a row, a beamlet).
        location: String,
    },
    /// Two inputs contradict each other (e.g. an underdose threshold above the
    /// overdose threshold of the same voxel, a lower bound above an upper bound).
    #[error("contradictory input: {0}")]
    Contradictory(String),
    /// The problem cannot be solved as posed (e.g. the matrix is all zero).
    #[error("ill-posed problem: {0}")]
    IllPosed(String),
    /// A solver was asked for something it does not support (e.g. the exact
    /// quadratic solver on a non-quadratic objective).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An error raised inside the argmin executor, an observer or a
    /// user-supplied solver or objective.
    #[error("solver error: {0}")]
    Solver(String),
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn length(context: impl Into<String>, expected: usize, found: usize) -> Self {
        Self::LengthMismatch {
            context: context.into(),
            expected,
            found,
        }
    }

    /// Converts an error that crossed argmin's `anyhow` boundary back into
    /// an [`Error`], keeping our own variants intact.
    pub(crate) fn from_argmin(e: argmin::core::Error) -> Self {
        match e.downcast::<Error>() {
            Ok(ours) => ours,
            Err(other) => Self::Solver(format!("{other:#}")),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `value` is finite and `>= 0`.
pub(crate) fn non_negative(what: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            what,
            format!("{value} must be finite and non-negative"),
        ))
    }
}

/// Checks that `value` is finite and `> 0`.
pub(crate) fn positive(what: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(
            what,
            format!("{value} must be finite and positive"),
        ))
    }
}
