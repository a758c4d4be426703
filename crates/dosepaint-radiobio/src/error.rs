//! The error type of this crate.

/// Everything that can go wrong in `dosepaint-radiobio`.
///
/// Every variant names the offending parameter or input and, for per-voxel
/// inputs, the voxel index, so a caller can report *what* and *where*.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model or schedule parameter is outside its valid range.
    #[error("invalid parameter `{name}` = {value}: must be {requirement}")]
    InvalidParameter {
        /// Name of the parameter (e.g. `alpha_beta_gy`, `fractions`, `m`).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What the parameter must satisfy.
        requirement: &'static str,
    },
    /// A per-voxel input (dose, weight, density, radiosensitivity, pO2) is invalid.
    #[error("invalid {quantity} at voxel {index}: {value} (must be {requirement})")]
    InvalidVoxelValue {
        /// What the slice holds (e.g. `dose_gy`, `weight`, `alpha_per_gy`).
        quantity: &'static str,
        /// Index of the first offending voxel.
        index: usize,
        /// The rejected value.
        value: f64,
        /// What the value must satisfy.
        requirement: &'static str,
    },
    /// Two slices that must describe the same voxels have different lengths.
    #[error("length mismatch: `{name}` has {actual} elements, expected {expected}")]
    LengthMismatch {
        /// Name of the slice with the wrong length.
        name: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// An input that must hold at least one voxel (or phase, or region) is empty.
    #[error("`{name}` is empty")]
    Empty {
        /// Name of the empty input.
        name: &'static str,
    },
    /// Relative volumes / weights do not add up to a positive, finite number.
    #[error("`{name}` sums to {sum}: the total must be positive and finite")]
    NonPositiveTotal {
        /// Name of the weight or volume input.
        name: &'static str,
        /// The sum that was found.
        sum: f64,
    },
    /// The derivative does not exist (it is infinite) at this dose distribution.
    #[error("gradient undefined at voxel {index}: {reason}")]
    GradientUndefined {
        /// Index of a voxel where the derivative is infinite.
        index: usize,
        /// Why.
        reason: &'static str,
    },
    /// A treatment schedule is inconsistent.
    #[error("invalid schedule: {0}")]
    InvalidSchedule(String),
    /// No parameter set of that name is in the library.
    #[error("unknown parameter set `{0}`")]
    UnknownParameterSet(String),
    /// The named parameter set exists but holds a different kind of model.
    #[error("parameter set `{name}` holds a {found} model, not a {expected} model")]
    WrongModel {
        /// Name of the parameter set.
        name: String,
        /// The model kind that was asked for.
        expected: &'static str,
        /// The model kind it holds.
        found: &'static str,
    },
    /// Two parameter sets in one library share a name.
    #[error("duplicate parameter set name `{0}`")]
    DuplicateParameterSet(String),
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Check a scalar parameter: finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            requirement: "finite and > 0",
        })
    }
}

/// Check several scalar parameters, in order: each finite and strictly positive.
pub(crate) fn all_positive(params: &[(&'static str, f64)]) -> Result<()> {
    for &(name, value) in params {
        positive(name, value)?;
    }
    Ok(())
}

/// Check a scalar parameter: finite and >= 0.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            requirement: "finite and >= 0",
        })
    }
}

/// Check a scalar parameter: finite.
pub(crate) fn finite(name: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            requirement: "finite",
        })
    }
}

/// Check a fraction count: at least one.
pub(crate) fn fraction_count(name: &'static str, fractions: u32) -> Result<u32> {
    if fractions >= 1 {
        Ok(fractions)
    } else {
        Err(Error::InvalidParameter {
            name,
            value: f64::from(fractions),
            requirement: "an integer >= 1",
        })
    }
}

/// Check a total dose (Gy): finite and >= 0.
pub(crate) fn dose(name: &'static str, value: f64) -> Result<f64> {
    non_negative(name, value)
}
