//! A head-and-neck-like patient (oropharyngeal tumour with a hypoxic core)
//! with matching synthetic FDG, FMISO and FLT PET and ADC maps.

use dosepaint_core::{PatientPosition, PointMm, Structure, StructureRole, Volume};
use serde::{Deserialize, Serialize};

use crate::geometry::{
    centered_grid, check_spacing, coplanar_beams, ellipse_xy, ellipsoid, equispaced_angles,
    nonempty_structure,
};
use crate::{
    DoseGoal, Error, FunctionalImages, GoalKind, GoalMetric, ImageKind, PaintingIntent, Phantom,
    PrescriptionIntent, Result, SplitMix64, gaussian_blur,
};

/// Default CT spacing of the head-and-neck phantom, mm.
pub const HEAD_NECK_SPACING_MM: [f64; 3] = [2.5, 2.5, 3.0];
/// Extent of the CT grid, mm: 101 x 101 x 61 voxels at the default spacing.
pub const HEAD_NECK_EXTENT_MM: [f64; 3] = [250.0, 250.0, 180.0];
/// Default seed of the image texture and noise.
pub const HEAD_NECK_SEED: u64 = 20_080_101;
/// Number of fractions of the intended prescription.
pub const HEAD_NECK_FRACTIONS: u32 = 35;
/// Base dose to the PTV outside the painted region, Gy (total course).
pub const HEAD_NECK_BASE_DOSE_GY: f64 = 70.0;
/// Highest painted dose in the GTV, Gy (Lee et al. 2008 reached 84 Gy).
pub const HEAD_NECK_BOOST_DOSE_GY: f64 = 84.0;
/// FMISO tumour-to-blood ratio mapped to the base dose (a common hypoxia
/// threshold, /work/shared/reference/dose_painting.md: TBR >= 1.2-1.4).
pub const HEAD_NECK_FMISO_LOW: f64 = 1.3;
/// FMISO tumour-to-blood ratio mapped to the boost dose (and above).
pub const HEAD_NECK_FMISO_HIGH: f64 = 2.0;

/// Parameters of [`head_neck_with`]; [`HeadNeckParams::default`] gives the
/// reference case ([`head_neck`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadNeckParams {
    /// CT (and image) voxel spacing, mm, each in (0, 8]. Default
    /// [`HEAD_NECK_SPACING_MM`].
    pub spacing_mm: [f64; 3],
    /// Seed of the tumour texture and the image noise (the anatomy does not
    /// depend on it). Default [`HEAD_NECK_SEED`].
    pub seed: u64,
    /// PET resolution, full width at half maximum, mm (isotropic). Default 6.
    pub pet_fwhm_mm: f64,
    /// Diffusion-MRI resolution, FWHM, mm (isotropic). Default 3.
    pub adc_fwhm_mm: f64,
    /// Whether to add noise to the functional images. Default true.
    pub noise: bool,
    /// Isotropic GTV-to-PTV margin, mm, in [0, 15]. Default 5.
    pub ptv_margin_mm: f64,
    /// Number of equally spaced coplanar beams (0, 360/n, ...), 1 to 36.
    /// Default 7.
    pub n_beams: usize,
}

impl Default for HeadNeckParams {
    fn default() -> Self {
        Self {
            spacing_mm: HEAD_NECK_SPACING_MM,
            seed: HEAD_NECK_SEED,
            pet_fwhm_mm: 6.0,
            adc_fwhm_mm: 3.0,
            noise: true,
            ptv_margin_mm: 5.0,
            n_beams: 7,
        }
    }
}

impl HeadNeckParams {
    /// Checks every parameter (called by [`head_neck_with`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        check_spacing(self.spacing_mm, 8.0)?;
        for (what, v, max) in [
            ("pet_fwhm_mm", self.pet_fwhm_mm, 30.0),
            ("adc_fwhm_mm", self.adc_fwhm_mm, 30.0),
            ("ptv_margin_mm", self.ptv_margin_mm, 15.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return Err(Error::invalid(
                    what,
                    format!("{v} mm must be finite and in [0, {max}] mm"),
                ));
            }
        }
        if !(1..=36).contains(&self.n_beams) {
            return Err(Error::invalid(
                "n_beams",
                format!("{} must be between 1 and 36", self.n_beams),
            ));
        }
        Ok(())
    }
}

/// Tissue classes of the phantom, by increasing priority of assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tissue {
    Outside,
    Fat,
    Muscle,
    Parotid,
    Mandible,
    VertebraCortex,
    VertebraMarrow,
    Lamina,
    Csf,
    Cord,
    Airway,
    Tumour,
    Hypoxic,
}

impl Tissue {
    /// CT number, HU.
    fn hu(self) -> f32 {
        match self {
            Self::Outside | Self::Airway => -1000.0,
            Self::Fat => -90.0,
            Self::Muscle => 40.0,
            Self::Parotid => -10.0,
            Self::Mandible | Self::VertebraCortex => 1000.0,
            Self::VertebraMarrow => 700.0,
            Self::Lamina => 900.0,
            Self::Csf => 10.0,
            Self::Cord => 35.0,
            Self::Tumour | Self::Hypoxic => 55.0,
        }
    }
}

// Anatomy, LPS mm (x to the patient's left, y posterior, z superior).
const BODY_CENTRE: [f64; 2] = [0.0, 5.0];
const BODY_SEMI: [f64; 2] = [72.0, 68.0];
const FAT_THICKNESS_MM: f64 = 6.0;
const MANDIBLE_CENTRE: [f64; 2] = [0.0, 5.0];
const MANDIBLE_OUTER: [f64; 2] = [52.0, 55.0];
const MANDIBLE_THICKNESS_MM: f64 = 7.0;
const MANDIBLE_Z_MIN: f64 = 15.0;
const VERTEBRA_CENTRE: [f64; 2] = [0.0, 25.0];
const VERTEBRA_SEMI: [f64; 2] = [15.0, 9.0];
const CANAL_CENTRE: [f64; 2] = [0.0, 42.0];
const CANAL_RADIUS_MM: f64 = 7.0;
const CORD_RADIUS_MM: f64 = 4.5;
const LAMINA_OUTER_RADIUS_MM: f64 = 11.0;
const AIRWAY_CENTRE: [f64; 2] = [6.0, -12.0];
const AIRWAY_SEMI: [f64; 2] = [9.0, 7.0];
const ORAL_CENTRE: PointMm = [0.0, -30.0, 55.0];
const ORAL_SEMI: [f64; 3] = [20.0, 14.0, 14.0];
const PAROTID_CENTRE_R: PointMm = [-50.0, 22.0, 35.0];
const PAROTID_SEMI: [f64; 3] = [13.0, 15.0, 22.0];
const GTV_MAIN_CENTRE: PointMm = [-10.0, 4.0, 10.0];
const GTV_MAIN_SEMI: [f64; 3] = [16.0, 14.0, 18.0];
const GTV_LOBE_CENTRE: PointMm = [-20.0, 14.0, 18.0];
const GTV_LOBE_SEMI: [f64; 3] = [9.0, 8.0, 10.0];
const HYPOXIC_CENTRE: PointMm = [-13.0, 8.0, 11.0];
const HYPOXIC_SEMI: [f64; 3] = [11.0, 9.0, 12.0];

fn tissue_at(p: PointMm) -> Tissue {
    let body = ellipse_xy(p, BODY_CENTRE, BODY_SEMI);
    if body > 1.0 {
        return Tissue::Outside;
    }
    let rho = |c: [f64; 2]| (p[0] - c[0]).hypot(p[1] - c[1]);
    // Airway and oral cavity (air) come first: nothing else lives there.
    if ellipse_xy(p, AIRWAY_CENTRE, AIRWAY_SEMI) <= 1.0
        || ellipsoid(p, ORAL_CENTRE, ORAL_SEMI) <= 1.0
    {
        return Tissue::Airway;
    }
    let canal = rho(CANAL_CENTRE);
    if canal <= CORD_RADIUS_MM {
        return Tissue::Cord;
    }
    if canal <= CANAL_RADIUS_MM {
        return Tissue::Csf;
    }
    if canal <= LAMINA_OUTER_RADIUS_MM {
        return Tissue::Lamina;
    }
    let vert = ellipse_xy(p, VERTEBRA_CENTRE, VERTEBRA_SEMI);
    if vert <= 0.6 {
        return Tissue::VertebraMarrow;
    }
    if vert <= 1.0 {
        return Tissue::VertebraCortex;
    }
    if p[2] >= MANDIBLE_Z_MIN && p[1] <= 0.0 {
        let outer = ellipse_xy(p, MANDIBLE_CENTRE, MANDIBLE_OUTER);
        let inner_semi = MANDIBLE_OUTER.map(|r| r - MANDIBLE_THICKNESS_MM);
        let inner = ellipse_xy(p, MANDIBLE_CENTRE, inner_semi);
        if outer <= 1.0 && inner > 1.0 {
            return Tissue::Mandible;
        }
    }
    if in_gtv_shape(p) {
        return if ellipsoid(p, HYPOXIC_CENTRE, HYPOXIC_SEMI) <= 1.0 {
            Tissue::Hypoxic
        } else {
            Tissue::Tumour
        };
    }
    let parotid_l = [
        -PAROTID_CENTRE_R[0],
        PAROTID_CENTRE_R[1],
        PAROTID_CENTRE_R[2],
    ];
    if ellipsoid(p, PAROTID_CENTRE_R, PAROTID_SEMI) <= 1.0
        || ellipsoid(p, parotid_l, PAROTID_SEMI) <= 1.0
    {
        return Tissue::Parotid;
    }
    // Subcutaneous fat: within about FAT_THICKNESS_MM of the skin.
    let inner = BODY_SEMI.map(|r| r - FAT_THICKNESS_MM);
    if ellipse_xy(p, BODY_CENTRE, inner) > 1.0 {
        return Tissue::Fat;
    }
    Tissue::Muscle
}

fn in_gtv_shape(p: PointMm) -> bool {
    ellipsoid(p, GTV_MAIN_CENTRE, GTV_MAIN_SEMI) <= 1.0
        || ellipsoid(p, GTV_LOBE_CENTRE, GTV_LOBE_SEMI) <= 1.0
}

/// A smooth random texture of roughly unit variance: the normalised sum of
/// plane waves with random directions, wavelengths (12-24 mm) and phases.
struct Texture {
    waves: Vec<([f64; 3], f64)>,
}

impl Texture {
    const N_WAVES: usize = 6;

    fn new(rng: &mut SplitMix64) -> Self {
        let waves = (0..Self::N_WAVES)
            .map(|_| {
                let mut d = [
                    rng.next_gaussian(),
                    rng.next_gaussian(),
                    rng.next_gaussian(),
                ];
                let norm = d.iter().map(|c| c * c).sum::<f64>().sqrt().max(1e-12);
                let wavelength = 12.0 + 12.0 * rng.next_f64();
                let k = std::f64::consts::TAU / wavelength;
                for c in &mut d {
                    *c *= k / norm;
                }
                (d, std::f64::consts::TAU * rng.next_f64())
            })
            .collect();
        Self { waves }
    }

    /// Value at `p`: sum of cosines / sqrt(N / 2), mean 0, variance about 1.
    fn at(&self, p: PointMm) -> f64 {
        let s: f64 = self
            .waves
            .iter()
            .map(|(k, phi)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + phi).cos())
            .sum();
        s / (Self::N_WAVES as f64 / 2.0).sqrt()
    }
}

/// Noise-free ("true") activity or diffusivity of one image per tissue.
// One row per tissue reads as a table; equal values in two rows are a
// coincidence of the numbers, not one tissue.
#[allow(clippy::match_same_arms)]
fn true_value(kind: ImageKind, t: Tissue, p: PointMm, tex: f64) -> f64 {
    // Normalised radius inside the hypoxic ellipsoid, 0 at its centre.
    let hyp = || ellipsoid(p, HYPOXIC_CENTRE, HYPOXIC_SEMI).min(1.0);
    match kind {
        ImageKind::FdgSuv => match t {
            Tissue::Outside | Tissue::Airway => 0.0,
            Tissue::Fat => 0.4,
            Tissue::Muscle => 0.9,
            Tissue::Parotid => 1.8,
            Tissue::Mandible | Tissue::VertebraCortex | Tissue::Lamina => 0.6,
            Tissue::VertebraMarrow => 1.6,
            Tissue::Csf => 0.3,
            Tissue::Cord => 1.0,
            Tissue::Tumour => (6.5 + 1.8 * tex).max(2.0),
            // Hypoxic cells are glycolytic: FDG rises towards the core.
            Tissue::Hypoxic => (6.5 + 1.8 * tex).max(2.0) + 2.5 * (1.0 - hyp()),
        },
        ImageKind::FmisoTbr => match t {
            Tissue::Outside | Tissue::Airway => 0.0,
            Tissue::Fat => 0.6,
            Tissue::Muscle | Tissue::Cord => 1.0,
            Tissue::Parotid => 1.1,
            Tissue::Mandible | Tissue::VertebraCortex | Tissue::Lamina => 0.4,
            Tissue::VertebraMarrow => 0.8,
            Tissue::Csf => 0.8,
            Tissue::Tumour => 1.15 + 0.05 * tex,
            // Plateau-like core: 2.5 at the centre, 1.15 at the rim.
            Tissue::Hypoxic => 1.15 + 1.4 * (1.0 - hyp()).powf(0.3) + 0.05 * tex,
        },
        ImageKind::FltSuv => match t {
            Tissue::Outside | Tissue::Airway => 0.0,
            Tissue::Fat | Tissue::Csf => 0.3,
            Tissue::Muscle => 0.7,
            Tissue::Parotid => 0.9,
            Tissue::Mandible => 0.8,
            Tissue::VertebraCortex | Tissue::Lamina => 1.5,
            // Proliferating bone marrow takes up FLT avidly.
            Tissue::VertebraMarrow => 7.0,
            Tissue::Cord => 0.5,
            Tissue::Tumour => (4.5 + 1.0 * tex).max(1.5),
            // Hypoxia slows proliferation.
            Tissue::Hypoxic => (2.5 + 0.5 * tex).max(1.0),
        },
        // ADC in 1e-3 mm^2/s here; scaled below.
        ImageKind::Adc => match t {
            Tissue::Outside | Tissue::Airway => 0.0,
            Tissue::Fat => 0.4,
            Tissue::Muscle => 1.5,
            Tissue::Parotid => 1.2,
            Tissue::Mandible | Tissue::VertebraCortex | Tissue::Lamina => 0.3,
            Tissue::VertebraMarrow => 0.5,
            Tissue::Csf => 3.0,
            Tissue::Cord => 1.0,
            Tissue::Tumour => (0.95 + 0.1 * tex).clamp(0.75, 1.2),
            Tissue::Hypoxic => 1.15,
        },
    }
}

/// Noise model of each image: standard deviation `r sqrt(v v_ref)` at value
/// `v` (Poisson-like: relative noise `r` at the reference value `v_ref`).
fn noise_model(kind: ImageKind) -> (f64, f64) {
    match kind {
        ImageKind::FdgSuv | ImageKind::FltSuv => (0.10, 1.0),
        ImageKind::FmisoTbr => (0.05, 1.0),
        ImageKind::Adc => (0.03, 1.5e-3),
    }
}

/// The head-and-neck phantom at the default resolution and seed
/// ([`HeadNeckParams::default`]): 101 x 101 x 61 voxels of 2.5 x 2.5 x 3 mm.
///
/// Anatomy (LPS mm, patient head-first supine; the origin is mid-neck):
/// - `Body` (external): elliptic neck, semi-axes 72 (left-right) x 68
///   (anterior-posterior) mm, centred at y = 5, along the whole grid; a 6 mm
///   subcutaneous fat layer (-90 HU) over muscle/soft tissue (40 HU).
/// - Bone (not a structure except the mandible): vertebral body, an
///   ellipse of semi-axes 15 x 9 mm at y = 25 (cortex 1000 HU, marrow
///   700 HU), lamina ring (900 HU, radius 7-11 mm) around the spinal canal
///   (CSF, 10 HU) centred at y = 42; `Mandible` (organ at risk, 1000 HU), a
///   7 mm U-shaped arch anterior of y = 0 above z = 15.
/// - Air (-1000 HU): the pharyngeal airway (ellipse at x = 6, y = -12, all
///   slices) and the oral cavity (ellipsoid at y = -30, z = 55).
/// - `GTV` (target, 55 HU): a right-sided oropharyngeal tumour, the union of
///   two ellipsoids (about 20 cm^3), minus air and bone.
/// - `Hypoxic` (target): an ellipsoid of semi-axes 11 x 9 x 12 mm centred
///   at (-13, 8, 11) mm, inside the GTV (about a quarter of it).
/// - `PTV` (target) = GTV dilated by `ptv_margin_mm` (core
///   [`Structure::dilate`]), cropped to the body.
/// - `SpinalCord` (organ at risk, 35 HU): radius 4.5 mm at y = 42, about
///   18 mm posterior of the PTV.
/// - `Parotid_R`, `Parotid_L` (organs at risk, -10 HU): ellipsoids of
///   semi-axes 13 x 15 x 22 mm at x = -50 / +50, y = 22, z = 35; the right
///   one about 8 mm from the PTV, the left one about 34 mm away.
///
/// Functional images (all on the CT grid, blurred by the scanner's
/// resolution and with seeded noise, see [`HeadNeckParams`]):
/// FDG SUV (tissue 0.4-1.8, tumour 6.5 +- 1.8 with a random texture, rising
/// towards the hypoxic core, SUVmax about 10 after blur), FMISO TBR (tissue
/// 0.4-1.1, normoxic tumour 1.15, hypoxic core up to 2.5), FLT SUV (tumour
/// 4.5, hypoxic core 2.5, vertebral marrow 7) and ADC (tumour about
/// 0.95e-3 mm^2/s, hypoxic core 1.15e-3, muscle 1.5e-3, CSF 3e-3).
///
/// Intent: 35 fractions; 70 Gy to the PTV outside the GTV; inside the GTV
/// a linear dose painting by numbers from the FMISO TBR, 1.3 -> 70 Gy to
/// 2.0 -> 84 Gy (see [`head_neck_reference_prescription`]); beams: 7 equally
/// spaced coplanar fields on the PTV centroid.
///
/// [`head_neck_reference_prescription`]: crate::head_neck_reference_prescription
///
/// ```
/// let p = dosepaint_phantom::head_neck()?;
/// assert_eq!(p.grid().dims(), [101, 101, 61]);
/// let gtv = p.structure("GTV")?;
/// let hyp = p.structure("Hypoxic")?;
/// assert!(hyp.difference(gtv)?.is_empty());
/// let tbr = p.image(dosepaint_phantom::ImageKind::FmisoTbr)?;
/// assert!(tbr.stats().max > 2.0);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// None in practice with the defaults; see [`head_neck_with`].
pub fn head_neck() -> Result<Phantom> {
    head_neck_with(&HeadNeckParams::default())
}

/// The head-and-neck phantom on another spacing (default seed and
/// everything else), e.g. `[4.0, 4.0, 4.0]` for fast tests.
///
/// ```
/// let p = dosepaint_phantom::head_neck_with_spacing([5.0, 5.0, 5.0])?;
/// assert_eq!(p.grid().spacing_mm(), [5.0, 5.0, 5.0]);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// As [`head_neck_with`].
pub fn head_neck_with_spacing(spacing_mm: [f64; 3]) -> Result<Phantom> {
    head_neck_with(&HeadNeckParams {
        spacing_mm,
        ..HeadNeckParams::default()
    })
}

/// The head-and-neck phantom with explicit parameters (see [`head_neck`] for
/// the anatomy and images). The same parameters give identical bytes.
///
/// # Errors
/// [`Error::InvalidParameter`] for a bad parameter
/// ([`HeadNeckParams::validate`]); [`Error::EmptyStructure`] when the
/// spacing is too coarse for a structure to hold a voxel centre.
pub fn head_neck_with(params: &HeadNeckParams) -> Result<Phantom> {
    const NAME: &str = "head and neck";
    params.validate()?;
    let grid = centered_grid(HEAD_NECK_EXTENT_MM, params.spacing_mm)?;
    let tissue = Volume::from_fn(grid.clone(), |v| tissue_at(grid.voxel_center(v)));
    let ct = tissue.map(|t| t.hu());
    let mask = |f: &dyn Fn(Tissue, PointMm) -> bool| {
        Volume::from_fn(grid.clone(), |v| f(tissue[v], grid.voxel_center(v)))
    };

    let body = nonempty_structure(
        NAME,
        "Body",
        StructureRole::External,
        mask(&|t, _| t != Tissue::Outside),
    )?;
    let gtv = nonempty_structure(
        NAME,
        "GTV",
        StructureRole::Target,
        mask(&|t, _| matches!(t, Tissue::Tumour | Tissue::Hypoxic)),
    )?;
    let hypoxic = nonempty_structure(
        NAME,
        "Hypoxic",
        StructureRole::Target,
        mask(&|t, _| t == Tissue::Hypoxic),
    )?;
    let ptv = gtv
        .dilate([params.ptv_margin_mm; 3])?
        .intersection(&body)?
        .renamed("PTV")
        .with_role(StructureRole::Target);
    let cord = nonempty_structure(
        NAME,
        "SpinalCord",
        StructureRole::OrganAtRisk,
        mask(&|t, _| t == Tissue::Cord),
    )?;
    let parotid_l = nonempty_structure(
        NAME,
        "Parotid_L",
        StructureRole::OrganAtRisk,
        mask(&|t, p| t == Tissue::Parotid && p[0] > 0.0),
    )?;
    let parotid_r = nonempty_structure(
        NAME,
        "Parotid_R",
        StructureRole::OrganAtRisk,
        mask(&|t, p| t == Tissue::Parotid && p[0] < 0.0),
    )?;
    let mandible = nonempty_structure(
        NAME,
        "Mandible",
        StructureRole::OrganAtRisk,
        mask(&|t, _| t == Tissue::Mandible),
    )?;

    let images = synthetic_images(&tissue, params)?;
    let isocenter = ptv
        .centroid_mm()
        .ok_or_else(|| Error::invalid("PTV", "is empty"))?;
    let beams = coplanar_beams(&equispaced_angles(params.n_beams), isocenter)?;
    let structures: Vec<Structure> = vec![
        body, ptv, gtv, hypoxic, cord, parotid_l, parotid_r, mandible,
    ];
    Ok(Phantom {
        name: NAME.to_string(),
        ct,
        position: PatientPosition::HFS,
        structures,
        images,
        isocenter_mm: isocenter,
        beams,
        intent: head_neck_intent(),
        seed: Some(params.seed),
    })
}

/// The intended prescription of the head-and-neck phantom.
fn head_neck_intent() -> PrescriptionIntent {
    let quantec = "QUANTEC (Deasy et al. 2010 parotid; Kirkpatrick et al. 2010 cord)";
    PrescriptionIntent {
        fractions: HEAD_NECK_FRACTIONS,
        target: "PTV".into(),
        base_dose_gy: HEAD_NECK_BASE_DOSE_GY,
        painting: Some(PaintingIntent {
            region: "GTV".into(),
            image: ImageKind::FmisoTbr,
            image_low: HEAD_NECK_FMISO_LOW,
            image_high: HEAD_NECK_FMISO_HIGH,
            dose_low_gy: HEAD_NECK_BASE_DOSE_GY,
            dose_high_gy: HEAD_NECK_BOOST_DOSE_GY,
            high_dose_threshold_gy: 80.0,
            min_fraction_above_threshold: 0.10,
            min_peak_gradient_gy_per_mm: 2.0,
            source: "linear DPbN (Bentzen 2005) from FMISO TBR; 84 Gy to the hypoxic \
                     subvolume with 70 Gy to the rest (Lee et al. 2008); \
                     /work/shared/reference/dose_painting.md"
                .into(),
        }),
        goals: vec![
            DoseGoal {
                structure: "PTV".into(),
                metric: GoalMetric::DoseAtVolumePercent(95.0),
                kind: GoalKind::AtLeast,
                limit_gy: 0.95 * HEAD_NECK_BASE_DOSE_GY,
                source: "ICRU 83: D95 >= 95 % of the base prescription".into(),
            },
            DoseGoal {
                structure: "GTV".into(),
                metric: GoalMetric::DoseAtVolumePercent(98.0),
                kind: GoalKind::AtLeast,
                limit_gy: HEAD_NECK_BASE_DOSE_GY,
                source: "the painted GTV never gets less than the base dose".into(),
            },
            DoseGoal {
                structure: "SpinalCord".into(),
                metric: GoalMetric::Max,
                kind: GoalKind::AtMost,
                limit_gy: 50.0,
                source: quantec.into(),
            },
            DoseGoal {
                structure: "Parotid_L".into(),
                metric: GoalMetric::Mean,
                kind: GoalKind::AtMost,
                limit_gy: 26.0,
                source: quantec.into(),
            },
            DoseGoal {
                structure: "Parotid_R".into(),
                metric: GoalMetric::Mean,
                kind: GoalKind::AtMost,
                limit_gy: 26.0,
                source: quantec.into(),
            },
            DoseGoal {
                structure: "Mandible".into(),
                metric: GoalMetric::Max,
                kind: GoalKind::AtMost,
                limit_gy: 70.0,
                source: "common osteoradionecrosis constraint: Dmax <= 70 Gy".into(),
            },
        ],
        description: "oropharynx, 35 fractions: 70 Gy to the PTV, FMISO-guided linear \
                      painting of the GTV from 70 to 84 Gy (Lee et al. 2008)"
            .into(),
    }
}

/// Builds the four functional images from the tissue map: true values,
/// Gaussian blur at the scanner's resolution, then seeded noise.
fn synthetic_images(tissue: &Volume<Tissue>, params: &HeadNeckParams) -> Result<FunctionalImages> {
    let grid = tissue.grid().clone();
    let texture = Texture::new(&mut SplitMix64::stream(params.seed, 0));
    let tex = Volume::from_fn(grid.clone(), |v| {
        if matches!(tissue[v], Tissue::Tumour | Tissue::Hypoxic) {
            texture.at(grid.voxel_center(v))
        } else {
            0.0
        }
    });
    let kinds = [
        ImageKind::FdgSuv,
        ImageKind::FmisoTbr,
        ImageKind::FltSuv,
        ImageKind::Adc,
    ];
    let mut out = FunctionalImages::default();
    for (stream, kind) in kinds.into_iter().enumerate() {
        let scale = if kind == ImageKind::Adc { 1e-3 } else { 1.0 };
        let truth = Volume::from_fn(grid.clone(), |v| {
            (scale * true_value(kind, tissue[v], grid.voxel_center(v), tex[v])) as f32
        });
        let fwhm = if kind == ImageKind::Adc {
            params.adc_fwhm_mm
        } else {
            params.pet_fwhm_mm
        };
        let mut img = gaussian_blur(&truth, [fwhm; 3])?;
        if params.noise {
            let (r, v_ref) = noise_model(kind);
            let mut rng = SplitMix64::stream(params.seed, stream as u64 + 1);
            for x in img.as_slice_mut() {
                let v = f64::from(*x).max(0.0);
                let noisy = v + r * (v * v_ref).sqrt() * rng.next_gaussian();
                // Reconstructed PET and fitted ADC are non-negative.
                *x = noisy.max(0.0) as f32;
            }
        }
        match kind {
            ImageKind::FdgSuv => out.fdg_suv = Some(img),
            ImageKind::FmisoTbr => out.fmiso_tbr = Some(img),
            ImageKind::FltSuv => out.flt_suv = Some(img),
            ImageKind::Adc => out.adc_mm2_per_s = Some(img),
        }
    }
    Ok(out)
}
