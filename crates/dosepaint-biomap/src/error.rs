//! The error type of `dosepaint-biomap`.

/// Everything that can go wrong while turning images into a prescription.
///
/// Every variant names *what* was wrong and *where* (the parameter, the image,
/// the region or the voxel), so a message shown to a user is actionable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `dosepaint-core` (grid mismatch, non-finite image voxel,
    /// invalid prescription...).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// An error from `dosepaint-radiobio` (invalid LQ or OER parameter...).
    #[error(transparent)]
    Radiobio(#[from] dosepaint_radiobio::Error),
    /// A mapping or preparation parameter is outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"linear mapping i_high"`.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// A mapping refers to an image that the inputs do not hold.
    #[error("no image named \"{name}\" in the mapping inputs (available: {available})")]
    MissingImage {
        /// The name asked for.
        name: String,
        /// The names the inputs hold.
        available: String,
    },
    /// A mapping refers to a region that the inputs do not hold.
    #[error("no region named \"{name}\" in the mapping inputs (available: {available})")]
    MissingRegion {
        /// The name asked for.
        name: String,
        /// The names the inputs hold.
        available: String,
    },
    /// An image holds values a preparation step cannot use (e.g. an ADC map in
    /// the wrong unit, or a reference region whose mean uptake is zero).
    #[error("image \"{image}\": {reason}")]
    InvalidImage {
        /// The image name.
        image: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A region (structure) is empty or too small for what is asked of it.
    #[error("region \"{region}\": {reason}")]
    InvalidRegion {
        /// The region name.
        region: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A model gave an unusable value at one voxel.
    #[error("{what} at voxel {voxel:?}: {reason}")]
    VoxelValue {
        /// The quantity or mapping, e.g. `"custom mapping \"my_map\" dose"`.
        what: String,
        /// The voxel index `(i, j, k)`.
        voxel: [usize; 3],
        /// What went wrong there.
        reason: String,
    },
    /// Adaptive re-prescription: the dose already delivered exceeds the new
    /// intent (in EQD2) in some prescribed voxels, and the caller asked to refuse.
    #[error(
        "the delivered dose already exceeds the new intent in {count} prescribed voxel(s); \
         first at voxel {first_voxel:?}: delivered EQD2 {delivered_eqd2_gy:.3} Gy > intended \
         EQD2 {intended_eqd2_gy:.3} Gy"
    )]
    DeliveredExceedsIntent {
        /// Number of prescribed voxels where the delivered EQD2 exceeds the intent.
        count: usize,
        /// The first such voxel `(i, j, k)` in memory order.
        first_voxel: [usize; 3],
        /// EQD2 already delivered there (Gy).
        delivered_eqd2_gy: f64,
        /// EQD2 intended there (Gy).
        intended_eqd2_gy: f64,
    },
    /// A mapping specification could not be read or written.
    #[error("mapping spec: {0}")]
    Spec(String),
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn image(image: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidImage {
            image: image.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn region(region: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidRegion {
            region: region.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn voxel(
        what: impl Into<String>,
        voxel: [usize; 3],
        reason: impl Into<String>,
    ) -> Self {
        Self::VoxelValue {
            what: what.into(),
            voxel,
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Spec(e.to_string())
    }
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that a parameter is finite.
pub(crate) fn finite(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(what, format!("{v} is not finite")))
    }
}

/// Checks that a parameter is finite and strictly positive.
pub(crate) fn positive(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(what, format!("{v} must be finite and > 0")))
    }
}

/// Checks that a parameter is finite and non-negative.
pub(crate) fn non_negative(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(what, format!("{v} must be finite and >= 0")))
    }
}

/// Checks that a dose (Gy) is finite and non-negative.
pub(crate) fn dose(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(
            what,
            format!("{v} Gy must be finite and >= 0 Gy"),
        ))
    }
}
