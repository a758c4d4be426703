//! `PlanSpec`: everything a plan needs, as serde data (TOML or JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dosepaint_biomap::MappingSpec;
use dosepaint_core::StructureRole;
use dosepaint_mlc::{Algorithm, SequencerParams};
use dosepaint_optim::Settings;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A complete plan description. Relative paths are resolved against
/// [`PlanSpec::base_dir`] (the directory of the spec file when read with
/// [`PlanSpec::from_file`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// Plan name (used in reports and DICOM labels).
    pub name: String,
    /// Where the CT, the structures and the functional images come from.
    pub inputs: InputSpec,
    /// How the images become a voxel-wise prescription.
    pub prescription: PrescriptionSpec,
    /// Beam arrangement and beamlet size.
    pub beams: BeamSpec,
    /// Dose grid and dose-engine settings.
    #[serde(default)]
    pub dose: DoseSpec,
    /// Optimization objectives (weighted sum).
    pub objectives: Vec<ObjectiveSpec>,
    /// Solver settings of `dosepaint-optim`.
    #[serde(default)]
    pub optimizer: Settings,
    /// Renormalisation of the optimized plan (e.g. TG-119: target D95 = 50 Gy).
    #[serde(default)]
    pub normalize: Option<NormalizeSpec>,
    /// Leaf sequencing.
    #[serde(default)]
    pub sequencing: SequencingSpec,
    /// Clinical goals, e.g. `"PTV D95 >= 66.5 Gy"`.
    #[serde(default)]
    pub goals: Vec<String>,
    /// Radiobiological and verification figures to report.
    #[serde(default)]
    pub evaluation: EvaluationSpec,
    /// What to write, and where.
    #[serde(default)]
    pub outputs: OutputSpec,
    /// Directory against which relative paths are resolved (not serialised).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// The built-in phantoms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhantomCase {
    /// Head and neck with FDG/FMISO/FLT/ADC (dose painting by numbers).
    HeadNeck,
    /// The AAPM TG-119 C-shape.
    Tg119,
    /// A water box with a cubic target.
    Box,
}

impl std::str::FromStr for PhantomCase {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "head-neck" => Ok(Self::HeadNeck),
            "tg119" => Ok(Self::Tg119),
            "box" => Ok(Self::Box),
            other => Err(Error::invalid(
                "phantom case",
                format!("\"{other}\"; choose head-neck, tg119 or box"),
            )),
        }
    }
}

/// Where the patient comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputSpec {
    /// A built-in phantom.
    Phantom {
        /// Which one.
        case: PhantomCase,
        /// CT voxel spacing override, mm (coarser is faster).
        #[serde(default)]
        spacing_mm: Option<[f64; 3]>,
    },
    /// The user's own files.
    Files {
        /// The planning CT.
        ct: ImageFile,
        /// Structures.
        structures: StructureFiles,
        /// Functional images by name (`fdg`, `fmiso`, `flt`, `adc`, ...), as
        /// the prescription mapping refers to them.
        #[serde(default)]
        images: BTreeMap<String, ImageFile>,
    },
}

/// An image file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageFile {
    /// A NIfTI-1 file (`.nii` or `.nii.gz`).
    Nifti {
        /// Path.
        path: PathBuf,
    },
    /// A DICOM series in a directory.
    Dicom {
        /// Directory.
        dir: PathBuf,
        /// Series instance UID, when the directory holds several series.
        #[serde(default)]
        series_uid: Option<String>,
        /// PET only: convert to body-weight SUV.
        #[serde(default)]
        suv: bool,
    },
}

/// Where the structures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum StructureFiles {
    /// A DICOM RTSTRUCT rasterised onto the CT grid.
    Rtstruct {
        /// The RTSTRUCT file.
        path: PathBuf,
        /// Roles by ROI name (others: organ at risk, or external for "Body"/"External").
        #[serde(default)]
        roles: BTreeMap<String, StructureRole>,
    },
    /// One NIfTI mask per structure (non-zero = inside).
    NiftiMasks {
        /// The masks.
        masks: Vec<MaskFile>,
    },
}

/// One NIfTI mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskFile {
    /// Structure name.
    pub name: String,
    /// Its role.
    pub role: StructureRole,
    /// The file.
    pub path: PathBuf,
}

/// The prescription: a `dosepaint-biomap` mapping applied to a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrescriptionSpec {
    /// Number of fractions.
    pub fractions: u32,
    /// The painted region (e.g. the GTV).
    pub target: String,
    /// The region receiving the base dose outside the painted one (e.g. the PTV).
    #[serde(default)]
    pub base_region: Option<String>,
    /// Further structures the mapping refers to by name (e.g. a blood-pool
    /// reference region).
    #[serde(default)]
    pub regions: Vec<String>,
    /// The mapping.
    pub mapping: MappingSpec,
}

/// Where the isocentre is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isocenter {
    /// The centroid of the named structure.
    CentroidOf(String),
    /// A point, LPS mm.
    Point([f64; 3]),
}

/// The beams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeamSpec {
    /// Gantry angles, degrees (IEC 61217).
    pub gantry_deg: Vec<f64>,
    /// Couch angle for every beam, degrees.
    #[serde(default)]
    pub couch_deg: f64,
    /// Collimator angle for every beam, degrees.
    #[serde(default)]
    pub collimator_deg: f64,
    /// The isocentre.
    pub isocenter: Isocenter,
    /// Square bixel width at the isocentre, mm.
    #[serde(default = "default_bixel")]
    pub bixel_width_mm: f64,
    /// The structures whose beam's-eye view the beamlets must cover.
    pub targets: Vec<String>,
}

fn default_bixel() -> f64 {
    5.0
}

/// Dose grid and engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoseSpec {
    /// Dose-grid spacing, mm (the CT box is resampled to it).
    pub grid_spacing_mm: [f64; 3],
    /// A commissioned machine file (JSON); the generic 6 MV machine if absent.
    #[serde(default)]
    pub machine: Option<PathBuf>,
    /// Voxels whose relative electron density is below this are outside the
    /// patient and get no dose row.
    #[serde(default = "default_min_density")]
    pub min_density: f64,
}

fn default_min_density() -> f64 {
    0.2
}

impl Default for DoseSpec {
    fn default() -> Self {
        Self {
            grid_spacing_mm: [3.0; 3],
            machine: None,
            min_density: default_min_density(),
        }
    }
}

/// One optimization objective on the named structure's dose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectiveSpec {
    /// Squared deviation from the painted prescription (absolute Gy, or
    /// relative to each voxel's prescription).
    Prescription {
        /// Structure (default: the prescription's target region).
        #[serde(default)]
        structure: Option<String>,
        /// Weight.
        weight: f64,
        /// Relative deviation `(d - p) / p`.
        #[serde(default)]
        relative: bool,
    },
    /// Underdose below `under x` prescription and overdose above `over x`
    /// prescription, with separate weights for the cold and the hot side.
    PrescriptionWindow {
        /// Structure (default: the prescription's target region).
        #[serde(default)]
        structure: Option<String>,
        /// Weight of the whole term.
        weight: f64,
        /// Fraction of the prescription below which a voxel is cold.
        under: f64,
        /// Fraction of the prescription above which a voxel is hot.
        over: f64,
        /// Relative weight of the cold side.
        #[serde(default = "one")]
        cold_weight: f64,
        /// Relative weight of the hot side.
        #[serde(default = "one")]
        hot_weight: f64,
    },
    /// Uniform prescription (squared deviation from one dose).
    Uniform {
        /// Structure.
        structure: String,
        /// Dose, Gy.
        dose_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Piecewise-quadratic overdose above a limit.
    Overdose {
        /// Structure.
        structure: String,
        /// Limit, Gy.
        limit_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Piecewise-quadratic underdose below a limit.
    Underdose {
        /// Structure.
        structure: String,
        /// Limit, Gy.
        limit_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Smooth maximum dose.
    MaxDose {
        /// Structure.
        structure: String,
        /// Limit, Gy.
        limit_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Mean dose at most a limit.
    MeanDose {
        /// Structure.
        structure: String,
        /// Limit, Gy.
        limit_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Dose-volume: at most `max_volume_percent` above `dose_gy`.
    DoseVolume {
        /// Structure.
        structure: String,
        /// Dose, Gy.
        dose_gy: f64,
        /// Largest volume above it, percent.
        max_volume_percent: f64,
        /// Weight.
        weight: f64,
    },
    /// Overdose of everything outside a margin around the targets (a "ring"
    /// that shapes the fall-off).
    Ring {
        /// The targets.
        around: Vec<String>,
        /// Inner distance from the targets, mm.
        inner_mm: f64,
        /// Limit, Gy.
        limit_gy: f64,
        /// Weight.
        weight: f64,
    },
    /// Fluence smoothness between neighbouring beamlets.
    Smoothness {
        /// Weight.
        weight: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// Scale the optimized weights so that a dose metric meets a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeSpec {
    /// Structure.
    pub structure: String,
    /// Percent of the volume: the plan is scaled so that `D<percent>` equals `dose_gy`.
    pub volume_percent: f64,
    /// Dose, Gy.
    pub dose_gy: f64,
}

/// Leaf sequencing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencingSpec {
    /// The sequencer that produces the delivered plan.
    pub sequencer: SequencerParams,
    /// Further numbers of levels to report Q and D95 degradation for.
    #[serde(default)]
    pub compare_levels: Vec<u32>,
    /// Leaf transmission (fraction) used for the delivered dose.
    #[serde(default)]
    pub transmission: f64,
    /// Monitor units per unit beamlet weight (course), for RTPLAN.
    #[serde(default = "default_mu_per_weight")]
    pub mu_per_unit_weight: f64,
}

fn default_mu_per_weight() -> f64 {
    100.0
}

impl Default for SequencingSpec {
    fn default() -> Self {
        Self {
            sequencer: SequencerParams::new(Algorithm::Engel, 10),
            compare_levels: Vec::new(),
            transmission: 0.0,
            mu_per_unit_weight: default_mu_per_weight(),
        }
    }
}

/// LKB NTCP of an organ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtcpSpec {
    /// Structure.
    pub structure: String,
    /// TD50, Gy.
    pub td50_gy: f64,
    /// Slope parameter m.
    pub m: f64,
    /// Volume parameter n.
    pub n: f64,
    /// Source of the parameters.
    #[serde(default)]
    pub source: String,
}

/// Poisson LQ TCP of a target (uniform radiosensitivity and clonogen density).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// Structure.
    pub structure: String,
    /// alpha, 1/Gy.
    pub alpha_per_gy: f64,
    /// alpha/beta, Gy.
    pub alpha_beta_gy: f64,
    /// Clonogens per cm^3.
    pub clonogens_per_cm3: f64,
    /// Source of the parameters.
    #[serde(default)]
    pub source: String,
}

/// What to evaluate beyond DVHs and goals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// The structure over which the dose-painting quality (Q, QF, QVH) is
    /// judged, e.g. the painted GTV; default: every prescribed voxel.
    #[serde(default)]
    pub quality_region: Option<String>,
    /// Structures to show DVHs of (default: all).
    #[serde(default)]
    pub dvh_structures: Vec<String>,
    /// NTCP models.
    #[serde(default)]
    pub ntcp: Vec<NtcpSpec>,
    /// TCP models.
    #[serde(default)]
    pub tcp: Vec<TcpSpec>,
    /// Gamma (delivered vs optimized): dose difference, percent.
    #[serde(default = "default_dd")]
    pub gamma_dose_percent: f64,
    /// Gamma distance to agreement, mm.
    #[serde(default = "default_dta")]
    pub gamma_dta_mm: f64,
}

fn default_dd() -> f64 {
    3.0
}
fn default_dta() -> f64 {
    3.0
}

impl Default for EvaluationSpec {
    fn default() -> Self {
        Self {
            quality_region: None,
            dvh_structures: Vec::new(),
            ntcp: Vec::new(),
            tcp: Vec::new(),
            gamma_dose_percent: default_dd(),
            gamma_dta_mm: default_dta(),
        }
    }
}

/// Outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory.
    pub dir: PathBuf,
    /// NIfTI volumes (CT, prescription, doses, Q map).
    pub nifti: bool,
    /// DICOM RTDOSE, RTSTRUCT and RTPLAN.
    pub dicom: bool,
    /// The HTML report.
    pub report: bool,
}

impl Default for OutputSpec {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("out"),
            nifti: true,
            dicom: true,
            report: true,
        }
    }
}

impl PlanSpec {
    /// Reads a spec from a TOML (`.toml`) or JSON (anything else) file;
    /// relative paths inside it are resolved against the file's directory.
    ///
    /// # Errors
    /// [`Error::Spec`] for an unreadable or invalid file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Spec {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let mut spec = if is_toml {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        }
        .map_err(|e| match e {
            Error::Spec { reason, .. } => Error::Spec {
                path: path.to_path_buf(),
                reason,
            },
            e => e,
        })?;
        spec.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(spec)
    }

    /// Parses TOML.
    ///
    /// # Errors
    /// [`Error::Spec`] with the parser's message (line and column).
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::Spec {
            path: "<inline>".into(),
            reason: e.to_string(),
        })
    }

    /// Parses JSON.
    ///
    /// # Errors
    /// [`Error::Spec`] with the parser's message.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::Spec {
            path: "<inline>".into(),
            reason: e.to_string(),
        })
    }

    /// Serialises as TOML.
    ///
    /// # Errors
    /// Only if a value cannot be represented in TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::invalid("plan spec", e.to_string()))
    }

    /// A path from the spec, resolved against [`PlanSpec::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}
