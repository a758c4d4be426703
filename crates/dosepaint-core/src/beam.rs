//! Treatment beams and their geometry in patient coordinates (IEC 61217).

use serde::{Deserialize, Serialize};

use crate::{Error, PointMm, Result};

/// DICOM `PatientPosition` (C.7.3.1.1.2).
///
/// The four recumbent positions are supported by [`Beam::geometry`];
/// decubitus positions are refused there with [`Error::Unsupported`] rather
/// than silently treated as head-first supine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PatientPosition {
    /// Head first, supine.
    #[default]
    HFS,
    /// Head first, prone.
    HFP,
    /// Feet first, supine.
    FFS,
    /// Feet first, prone.
    FFP,
    /// Head first, decubitus right.
    HFDR,
    /// Head first, decubitus left.
    HFDL,
    /// Feet first, decubitus right.
    FFDR,
    /// Feet first, decubitus left.
    FFDL,
}

impl PatientPosition {
    /// Parses the DICOM code string (e.g. `"HFS"`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for an unknown code.
    pub fn from_dicom(code: &str) -> Result<Self> {
        Ok(match code.trim() {
            "HFS" => Self::HFS,
            "HFP" => Self::HFP,
            "FFS" => Self::FFS,
            "FFP" => Self::FFP,
            "HFDR" => Self::HFDR,
            "HFDL" => Self::HFDL,
            "FFDR" => Self::FFDR,
            "FFDL" => Self::FFDL,
            other => {
                return Err(Error::invalid(
                    "patient position",
                    format!("\"{other}\" is not a DICOM PatientPosition code"),
                ));
            }
        })
    }

    /// The DICOM code string.
    pub fn as_dicom(self) -> &'static str {
        match self {
            Self::HFS => "HFS",
            Self::HFP => "HFP",
            Self::FFS => "FFS",
            Self::FFP => "FFP",
            Self::HFDR => "HFDR",
            Self::HFDL => "HFDL",
            Self::FFDR => "FFDR",
            Self::FFDL => "FFDL",
        }
    }

    /// Rows: the LPS components of the IEC patient-support axes X_s, Y_s,
    /// Z_s; i.e. `lps = M^T s` with `M` this matrix.
    fn support_axes_in_lps(self) -> Result<[[f64; 3]; 3]> {
        // X_s points to the observer's right when facing the gantry, Y_s towards
        // the gantry, Z_s up (IEC 61217).
        Ok(match self {
            Self::HFS => [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]],
            Self::HFP => [[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
            Self::FFS => [[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]],
            Self::FFP => [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]],
            other => {
                return Err(Error::Unsupported(format!(
                    "patient position {}: decubitus positions are not supported; \
                     re-orient the images or plan in a recumbent position",
                    other.as_dicom()
                )));
            }
        })
    }
}

/// One external photon beam, with angles in degrees per IEC 61217 and the
/// isocentre in patient coordinates (LPS, mm).
///
/// ```
/// use dosepaint_core::{Beam, PatientPosition};
/// let beam = Beam::new("G90", 90.0, 0.0, 0.0, [0.0, 0.0, 0.0])?;
/// let g = beam.geometry(PatientPosition::HFS)?;
/// // Gantry 90 puts the source on the patient's left (+x in LPS).
/// assert!((g.source_mm[0] - 1000.0).abs() < 1e-9);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BeamSpec", into = "BeamSpec")]
pub struct Beam {
    name: String,
    gantry_deg: f64,
    couch_deg: f64,
    collimator_deg: f64,
    isocenter_mm: PointMm,
    sad_mm: f64,
}

/// Serialised form of a [`Beam`].
#[derive(Serialize, Deserialize)]
struct BeamSpec {
    name: String,
    gantry_deg: f64,
    #[serde(default)]
    couch_deg: f64,
    #[serde(default)]
    collimator_deg: f64,
    isocenter_mm: PointMm,
    #[serde(default = "default_sad")]
    sad_mm: f64,
}

fn default_sad() -> f64 {
    Beam::DEFAULT_SAD_MM
}

impl TryFrom<BeamSpec> for Beam {
    type Error = Error;
    fn try_from(s: BeamSpec) -> Result<Self> {
        Beam::new(
            s.name,
            s.gantry_deg,
            s.couch_deg,
            s.collimator_deg,
            s.isocenter_mm,
        )?
        .with_sad_mm(s.sad_mm)
    }
}

impl From<Beam> for BeamSpec {
    fn from(b: Beam) -> Self {
        BeamSpec {
            name: b.name,
            gantry_deg: b.gantry_deg,
            couch_deg: b.couch_deg,
            collimator_deg: b.collimator_deg,
            isocenter_mm: b.isocenter_mm,
            sad_mm: b.sad_mm,
        }
    }
}

impl Beam {
    /// The usual linac source-axis distance.
    pub const DEFAULT_SAD_MM: f64 = 1000.0;

    /// A beam with the default SAD of 1000 mm. Angles are normalised to
    /// `[0, 360)`.
    ///
    /// # Errors
    /// If an angle or the isocentre is not finite.
    pub fn new(
        name: impl Into<String>,
        gantry_deg: f64,
        couch_deg: f64,
        collimator_deg: f64,
        isocenter_mm: PointMm,
    ) -> Result<Self> {
        let name = name.into();
        for (what, v) in [
            ("gantry angle", gantry_deg),
            ("couch angle", couch_deg),
            ("collimator angle", collimator_deg),
        ] {
            if !v.is_finite() {
                return Err(Error::invalid(what, format!("{v} deg in beam \"{name}\"")));
            }
        }
        if isocenter_mm.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid(
                "isocenter",
                format!("{isocenter_mm:?} mm in beam \"{name}\""),
            ));
        }
        Ok(Self {
            name,
            gantry_deg: gantry_deg.rem_euclid(360.0),
            couch_deg: couch_deg.rem_euclid(360.0),
            collimator_deg: collimator_deg.rem_euclid(360.0),
            isocenter_mm,
            sad_mm: Self::DEFAULT_SAD_MM,
        })
    }

    /// The same beam with another source-axis distance.
    ///
    /// # Errors
    /// If `sad_mm` is not positive and finite.
    pub fn with_sad_mm(mut self, sad_mm: f64) -> Result<Self> {
        if !(sad_mm.is_finite() && sad_mm > 0.0) {
            return Err(Error::invalid(
                "source-axis distance",
                format!("{sad_mm} mm in beam \"{}\"", self.name),
            ));
        }
        self.sad_mm = sad_mm;
        Ok(self)
    }

    /// Beam name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Gantry angle in degrees, `[0, 360)`.
    pub fn gantry_deg(&self) -> f64 {
        self.gantry_deg
    }
    /// Patient-support (couch) angle in degrees, `[0, 360)`.
    pub fn couch_deg(&self) -> f64 {
        self.couch_deg
    }
    /// Beam-limiting-device (collimator) angle in degrees, `[0, 360)`.
    pub fn collimator_deg(&self) -> f64 {
        self.collimator_deg
    }
    /// Isocentre (LPS, mm).
    pub fn isocenter_mm(&self) -> PointMm {
        self.isocenter_mm
    }
    /// Source-axis distance in mm.
    pub fn sad_mm(&self) -> f64 {
        self.sad_mm
    }

    /// The beam's source position and beam's-eye-view axes in patient
    /// coordinates for a patient in `position`.
    ///
    /// IEC 61217: gantry rotates about the fixed Y axis (towards the gantry),
    /// source at +Z at gantry 0; the patient support rotates about the
    /// vertical Z axis; the collimator rotates about the beam axis. Positive
    /// angles are right-handed rotations about those axes.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for decubitus positions.
    pub fn geometry(&self, position: PatientPosition) -> Result<BeamGeometry> {
        let axes = position.support_axes_in_lps()?;
        let (sg, cg) = self.gantry_deg.to_radians().sin_cos();
        let (sc, cc) = self.collimator_deg.to_radians().sin_cos();
        let (ss, cs) = self.couch_deg.to_radians().sin_cos();
        // Gantry system axes in the fixed system.
        let xg = [cg, 0.0, -sg];
        let yg = [0.0, 1.0, 0.0];
        let zg = [sg, 0.0, cg]; // towards the source
        // Beam-limiting device axes (collimator rotation about zg).
        let xb = [0, 1, 2].map(|c| cc * xg[c] + sc * yg[c]);
        let yb = [0, 1, 2].map(|c| -sc * xg[c] + cc * yg[c]);
        // Fixed -> patient support: s = Rz(-couch) f.
        let to_support = |f: [f64; 3]| [cs * f[0] + ss * f[1], -ss * f[0] + cs * f[1], f[2]];
        let to_lps = |s: [f64; 3]| {
            [0, 1, 2].map(|c| s[0] * axes[0][c] + s[1] * axes[1][c] + s[2] * axes[2][c])
        };
        let dir = |f: [f64; 3]| to_lps(to_support(f));
        let towards_source = dir(zg);
        let iso = self.isocenter_mm;
        Ok(BeamGeometry {
            source_mm: [0, 1, 2].map(|c| iso[c] + self.sad_mm * towards_source[c]),
            isocenter_mm: iso,
            axis: towards_source.map(|v| -v),
            bev_x: dir(xb),
            bev_y: dir(yb),
            sad_mm: self.sad_mm,
        })
    }
}

/// A beam's geometry in patient coordinates (LPS, mm).
///
/// The beam's-eye view (BEV) plane is the plane through the isocentre normal
/// to the central axis; `bev_x` is the direction of leaf travel (IEC X_b:
/// left leaves at negative x) and `bev_y` runs across leaf pairs (IEC Y_b).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeamGeometry {
    /// Position of the (virtual) source.
    pub source_mm: PointMm,
    /// Isocentre.
    pub isocenter_mm: PointMm,
    /// Unit vector of the central axis, from the source towards the isocentre.
    pub axis: [f64; 3],
    /// Unit vector of BEV x (leaf travel).
    pub bev_x: [f64; 3],
    /// Unit vector of BEV y (across leaf pairs).
    pub bev_y: [f64; 3],
    /// Source-axis distance in mm.
    pub sad_mm: f64,
}

impl BeamGeometry {
    /// Projects a patient point through the source onto the isocentre plane:
    /// returns `(x, y)` in the BEV plane (mm at isocentre distance) and the
    /// point's depth along the central axis measured from the source, in mm.
    /// `None` for points at or behind the source.
    pub fn project(&self, p: PointMm) -> Option<([f64; 2], f64)> {
        let d = [0, 1, 2].map(|c| p[c] - self.source_mm[c]);
        let along = dot(d, self.axis);
        if along <= 0.0 {
            return None;
        }
        let scale = self.sad_mm / along;
        Some((
            [dot(d, self.bev_x) * scale, dot(d, self.bev_y) * scale],
            along,
        ))
    }

    /// The patient point at BEV coordinates `(x, y)` in the isocentre plane.
    pub fn bev_point(&self, [x, y]: [f64; 2]) -> PointMm {
        [0, 1, 2].map(|c| self.isocenter_mm[c] + x * self.bev_x[c] + y * self.bev_y[c])
    }
}

#[inline]
fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
