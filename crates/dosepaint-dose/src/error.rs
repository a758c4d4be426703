//! The error type of `dosepaint-dose`.

/// Everything that can go wrong in the dose engine.
///
/// Each variant says *what* was wrong and *where* (the parameter, the beam,
/// the voxel), so that a message shown to a user can be acted upon.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from `dosepaint-core` (grids, beams, layouts, the matrix builder).
    #[error(transparent)]
    Core(#[from] dosepaint_core::Error),
    /// A parameter (of a machine, an engine option, a calibration curve, a
    /// measurement) is outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// The parameter at fault, e.g. `"bixel width"`.
        what: String,
        /// Why the value was refused.
        reason: String,
    },
    /// A CT or density volume holds a value that is not finite.
    #[error("non-finite {what} at voxel {voxel:?} (i, j, k)")]
    NonFinite {
        /// Which volume, e.g. `"CT number (HU)"`.
        what: String,
        /// The first offending voxel index `(i, j, k)`.
        voxel: [usize; 3],
    },
    /// A structure or selection that must hold voxels is empty.
    #[error("empty {what}: {reason}")]
    Empty {
        /// The empty object.
        what: String,
        /// Why that is a problem here.
        reason: String,
    },
    /// A beam's isocentre lies outside the CT volume.
    #[error(
        "beam \"{beam}\": isocentre {isocenter_mm:?} mm lies outside the CT volume {ct_box_mm:?} mm"
    )]
    IsocenterOutside {
        /// Beam name.
        beam: String,
        /// Isocentre, LPS mm.
        isocenter_mm: [f64; 3],
        /// CT bounding box `(min corner, max corner)`, LPS mm.
        ct_box_mm: ([f64; 3], [f64; 3]),
    },
    /// No voxel of interest receives dose from a beam: its field does not
    /// reach the patient (or the voxels of interest).
    #[error("beam \"{beam}\" misses the patient: {reason}")]
    BeamMissesPatient {
        /// Beam name.
        beam: String,
        /// What was found.
        reason: String,
    },
    /// A machine file could not be read.
    #[error("machine file: {0}")]
    MachineFile(String),
    /// The commissioning fit did not run to completion.
    #[error("commissioning fit failed: {0}")]
    Fit(String),
    /// A requested operation is not supported by this engine.
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
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
