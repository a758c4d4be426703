//! The error type of `dosepaint-eval`.

/// Everything that can go wrong while evaluating a dose distribution.
///
/// Each variant says *what* was wrong and *where* (the structure, goal,
/// parameter or voxel at fault), so that a message shown to a user is
/// actionable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from the shared data model (grids, volumes, structures).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// An error from the radiobiology models (gEUD).
    #[error(transparent)]
    Radiobio(#[from] dosepaint_radiobio::Error),
    /// A parameter had a value outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"DVH bin width"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// A dose (or occupancy, or volume) value that must be finite and
    /// non-negative was not.
    #[error("invalid {quantity} in {context} at {location}: {value} (must be {requirement})")]
    InvalidValue {
        /// What the value is, e.g. `"dose"`.
        quantity: &'static str,
        /// Which data held it, e.g. `"evaluated dose"` or `structure "PTV"`.
        context: String,
        /// Where: a voxel index `(i, j, k)` or an element index.
        location: String,
        /// The offending value.
        value: f64,
        /// What the value must satisfy.
        requirement: &'static str,
    },
    /// Two objects that must share a grid do not (resample one first).
    #[error(
        "grid mismatch: {context}; resample first (e.g. `Structure::resample` or `dosepaint_eval::resample_dose`)"
    )]
    GridMismatch {
        /// Which objects were compared, with their grids.
        context: String,
    },
    /// Two slices that must describe the same voxels have different lengths.
    #[error("length mismatch in {context}: expected {expected}, found {found}")]
    LengthMismatch {
        /// Which data.
        context: String,
        /// The expected length.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// A structure, region or selection holds no voxel where one is needed.
    #[error("empty {what}: {reason}")]
    Empty {
        /// The empty object, e.g. `structure "PTV"`.
        what: String,
        /// Why that is a problem here.
        reason: String,
    },
    /// A clinical goal could not be read or evaluated.
    #[error("clinical goal `{goal}`: {reason}")]
    InvalidGoal {
        /// The goal as written (or as much of it as was read).
        goal: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A clinical goal names a structure that was not supplied.
    #[error(
        "clinical goal `{goal}` refers to structure \"{structure}\", which is not among the structures given ({available})"
    )]
    UnknownStructure {
        /// The goal.
        goal: String,
        /// The missing structure name.
        structure: String,
        /// Names of the structures that were given.
        available: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn empty(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Empty {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
