//! The error type of the `dosepaint` facade.

use std::path::PathBuf;

/// Everything that can stop a plan, with the stage and the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plan spec could not be read or parsed.
    #[error("plan spec {path}: {reason}")]
    Spec {
        /// The spec file (or `<inline>`).
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A spec field is invalid or inconsistent with the inputs.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The field or input at fault.
        what: String,
        /// Why.
        reason: String,
    },
    /// A structure named in the spec does not exist.
    #[error("structure \"{name}\" not found (available: {available})")]
    UnknownStructure {
        /// The missing name.
        name: String,
        /// The names that exist.
        available: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Core data error.
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// File format error.
    #[error(transparent)]
    Format(#[from] dosepaint_io::Error),
    /// Radiobiology error.
    #[error(transparent)]
    Radiobio(#[from] dosepaint_radiobio::Error),
    /// Dose engine error.
    #[error(transparent)]
    Dose(#[from] dosepaint_dose::Error),
    /// Prescription mapping error.
    #[error(transparent)]
    Mapping(#[from] dosepaint_biomap::Error),
    /// Optimizer error.
    #[error(transparent)]
    Optim(#[from] dosepaint_optim::Error),
    /// Leaf sequencing error.
    #[error(transparent)]
    Sequencing(#[from] dosepaint_mlc::Error),
    /// Evaluation error.
    #[error(transparent)]
    Eval(#[from] dosepaint_eval::Error),
    /// Phantom error.
    #[error(transparent)]
    Phantom(#[from] dosepaint_phantom::Error),
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
