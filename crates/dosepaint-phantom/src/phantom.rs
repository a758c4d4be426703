//! The [`Phantom`] type: a synthetic patient with its CT, structures,
//! functional images, beams and intended prescription.

use dosepaint_core::{
    Beam, Grid, PatientPosition, PointMm, Prescription, Provenance, Structure, StructureRole,
    Volume,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The kinds of functional image a phantom may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImageKind {
    /// FDG-PET, standardised uptake value (body weight), dimensionless.
    FdgSuv,
    /// FMISO-PET, tumour-to-blood ratio, dimensionless.
    FmisoTbr,
    /// FLT-PET, standardised uptake value, dimensionless.
    FltSuv,
    /// Apparent diffusion coefficient from diffusion MRI, in mm^2/s.
    Adc,
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FdgSuv => "FDG-PET SUV",
            Self::FmisoTbr => "FMISO-PET tumour-to-blood ratio",
            Self::FltSuv => "FLT-PET SUV",
            Self::Adc => "ADC (mm^2/s)",
        })
    }
}

/// Functional images on the CT grid (each optional: the water box and the
/// TG-119 phantom carry none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionalImages {
    /// FDG-PET SUV (background about 1, tumour SUVmax about 8-12).
    pub fdg_suv: Option<Volume<f32>>,
    /// FMISO-PET tumour-to-blood ratio (background about 1, hypoxia 1.6-2.5).
    pub fmiso_tbr: Option<Volume<f32>>,
    /// FLT-PET SUV (proliferation; high in tumour and bone marrow).
    pub flt_suv: Option<Volume<f32>>,
    /// Apparent diffusion coefficient in mm^2/s (tumour about 1e-3, soft
    /// tissue about 1.5e-3, cerebrospinal fluid about 3e-3).
    pub adc_mm2_per_s: Option<Volume<f32>>,
}

impl FunctionalImages {
    /// The image of a kind, if present.
    pub fn get(&self, kind: ImageKind) -> Option<&Volume<f32>> {
        match kind {
            ImageKind::FdgSuv => self.fdg_suv.as_ref(),
            ImageKind::FmisoTbr => self.fmiso_tbr.as_ref(),
            ImageKind::FltSuv => self.flt_suv.as_ref(),
            ImageKind::Adc => self.adc_mm2_per_s.as_ref(),
        }
    }

    /// The kinds present, in the order FDG, FMISO, FLT, ADC.
    pub fn kinds(&self) -> Vec<ImageKind> {
        [
            ImageKind::FdgSuv,
            ImageKind::FmisoTbr,
            ImageKind::FltSuv,
            ImageKind::Adc,
        ]
        .into_iter()
        .filter(|&k| self.get(k).is_some())
        .collect()
    }
}

/// Which dose statistic a [`DoseGoal`] constrains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GoalMetric {
    /// `D_x`: the minimum dose to the hottest `x` % of the structure
    /// (e.g. `DoseAtVolumePercent(95.0)` is D95).
    DoseAtVolumePercent(f64),
    /// Mean dose.
    Mean,
    /// Maximum dose (a point maximum; clinics often read it as D0.03cc).
    Max,
}

/// Whether a goal is a lower or an upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalKind {
    /// The metric must be at least the limit.
    AtLeast,
    /// The metric must be at most the limit.
    AtMost,
}

/// A planning goal on one structure, as documented data (evaluation lives in
/// `dosepaint-eval`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseGoal {
    /// Structure name in the phantom.
    pub structure: String,
    /// The statistic.
    pub metric: GoalMetric,
    /// Lower or upper bound.
    pub kind: GoalKind,
    /// The limit, total course dose in Gy.
    pub limit_gy: f64,
    /// Where the goal comes from.
    pub source: String,
}

/// A dose-painting-by-numbers intention: a linear map from an image to dose
/// inside a region (Bentzen 2005): `D = D_low + (I - I_low) / (I_high - I_low)
/// (D_high - D_low)`, clipped to `[D_low, D_high]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaintingIntent {
    /// Structure inside which the dose is painted (e.g. `"GTV"`).
    pub region: String,
    /// The image that drives the dose.
    pub image: ImageKind,
    /// Image value mapped to `dose_low_gy`.
    pub image_low: f64,
    /// Image value mapped to `dose_high_gy`.
    pub image_high: f64,
    /// Lowest painted dose (Gy, total course).
    pub dose_low_gy: f64,
    /// Highest painted dose (Gy, total course).
    pub dose_high_gy: f64,
    /// A dose level whose coverage is pinned (e.g. 80 Gy) ...
    pub high_dose_threshold_gy: f64,
    /// ... with at least this fraction of the region above it (e.g. 0.10).
    pub min_fraction_above_threshold: f64,
    /// The steepest in-region prescription gradient must reach at least this
    /// (Gy/mm), so that the painted map is not trivially smooth.
    pub min_peak_gradient_gy_per_mm: f64,
    /// Literature the intention follows.
    pub source: String,
}

/// The prescription a phantom is meant to be planned with, as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrescriptionIntent {
    /// Number of fractions.
    pub fractions: u32,
    /// Structure receiving the base dose (e.g. `"PTV"`).
    pub target: String,
    /// Base (uniform) dose to `target` outside any painted region, Gy total.
    pub base_dose_gy: f64,
    /// Optional dose painting inside part of the target.
    pub painting: Option<PaintingIntent>,
    /// Planning goals on targets and organs at risk.
    pub goals: Vec<DoseGoal>,
    /// Human-readable summary.
    pub description: String,
}

/// A synthetic patient.
///
/// Every voxel array shares the CT grid (`ct.grid()`). Coordinates are DICOM
/// LPS in mm (x to the patient's left, y posterior, z superior); the patient
/// lies head-first supine ([`PatientPosition::HFS`]).
///
/// ```
/// let p = dosepaint_phantom::water_box(&dosepaint_phantom::WaterBoxParams::default())?;
/// assert_eq!(p.structure("PTV")?.name(), "PTV");
/// // An unknown name lists the available ones.
/// let err = p.structure("Brain").unwrap_err().to_string();
/// assert!(err.contains("Body") && err.contains("PTV"));
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Phantom {
    /// Name, e.g. `"TG-119 C-shape"`.
    pub name: String,
    /// CT numbers in Hounsfield units.
    pub ct: Volume<f32>,
    /// Patient position (always HFS here).
    pub position: PatientPosition,
    /// Structures, all on the CT grid.
    pub structures: Vec<Structure>,
    /// Functional images on the CT grid.
    pub images: FunctionalImages,
    /// Suggested isocentre (LPS, mm): the centroid of the main target.
    pub isocenter_mm: PointMm,
    /// Suggested beams, all aimed at [`Phantom::isocenter_mm`].
    pub beams: Vec<Beam>,
    /// The intended prescription.
    pub intent: PrescriptionIntent,
    /// Seed of the pseudo-random noise, if any was used.
    pub seed: Option<u64>,
}

impl Phantom {
    /// The CT grid (shared by every structure and image).
    pub fn grid(&self) -> &Grid {
        self.ct.grid()
    }

    /// The structure of this name (exact, case-sensitive match).
    ///
    /// # Errors
    /// [`Error::UnknownStructure`] listing the available names.
    pub fn structure(&self, name: &str) -> Result<&Structure> {
        self.structures
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownStructure {
                phantom: self.name.clone(),
                name: name.to_string(),
                available: self.structure_names().join(", "),
            })
    }

    /// Names of all structures, in storage order.
    pub fn structure_names(&self) -> Vec<&str> {
        self.structures.iter().map(Structure::name).collect()
    }

    /// Structures of a role (e.g. all organs at risk), in storage order.
    pub fn structures_with_role(&self, role: StructureRole) -> Vec<&Structure> {
        self.structures
            .iter()
            .filter(|s| s.role() == role)
            .collect()
    }

    /// The functional image of a kind.
    ///
    /// # Errors
    /// [`Error::MissingImage`] if the phantom has none.
    pub fn image(&self, kind: ImageKind) -> Result<&Volume<f32>> {
        self.images.get(kind).ok_or_else(|| Error::MissingImage {
            phantom: self.name.clone(),
            image: kind,
        })
    }

    /// The uniform part of the intended prescription: `base_dose_gy` in every
    /// voxel of the intended target, 0 elsewhere, with the intended number of
    /// fractions. (For the painted head-and-neck prescription see
    /// [`crate::head_neck_reference_prescription`].)
    ///
    /// # Errors
    /// If the target structure is missing or empty.
    pub fn uniform_prescription(&self) -> Result<Prescription> {
        let target = self.structure(&self.intent.target)?;
        target.ensure_not_empty("a uniform prescription")?;
        let dose = self.intent.base_dose_gy as f32;
        let map = target.mask().map(|&b| if b { dose } else { 0.0 });
        Ok(Prescription::new(
            map,
            self.intent.fractions,
            Provenance {
                description: format!(
                    "uniform {} Gy in {} fractions to {} of phantom \"{}\"",
                    self.intent.base_dose_gy, self.intent.fractions, self.intent.target, self.name
                ),
                spec: format!(
                    "{{\"kind\":\"uniform\",\"phantom\":\"{}\",\"structure\":\"{}\",\"dose_gy\":{},\"fractions\":{}}}",
                    self.name, self.intent.target, self.intent.base_dose_gy, self.intent.fractions
                ),
            },
        )?)
    }
}
