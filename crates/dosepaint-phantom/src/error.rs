//! The error type of `dosepaint-phantom`.

use crate::ImageKind;

/// Everything that can go wrong when building or querying a phantom.
///
/// Each variant names the parameter, structure or image at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `dosepaint-core` (grid, structure, prescription...).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// A phantom parameter was outside its valid range.
    #[error("invalid phantom parameter {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"spacing_mm"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// No structure of that name exists in the phantom.
    #[error("phantom \"{phantom}\" has no structure named \"{name}\"; available: {available}")]
    UnknownStructure {
        /// The phantom's name.
        phantom: String,
        /// The name asked for.
        name: String,
        /// The names that do exist, comma separated.
        available: String,
    },
    /// The phantom carries no image of that kind.
    #[error("phantom \"{phantom}\" has no {image} image")]
    MissingImage {
        /// The phantom's name.
        phantom: String,
        /// The image asked for.
        image: ImageKind,
    },
    /// A structure came out without a voxel (typically: the spacing is too
    /// coarse for it).
    #[error("structure \"{structure}\" of phantom \"{phantom}\" holds no voxel: {reason}")]
    EmptyStructure {
        /// The phantom's name.
        phantom: String,
        /// The structure's name.
        structure: String,
        /// Why, and what to change.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
