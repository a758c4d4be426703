//! A water box in air with a single target: the simplest phantom, for tests.

use dosepaint_core::{PatientPosition, PointMm, StructureRole};
use serde::{Deserialize, Serialize};

use crate::geometry::{
    centered_grid, check_spacing, coplanar_beams, ellipsoid, mask_from, nonempty_structure,
};
use crate::{
    DoseGoal, Error, FunctionalImages, GoalKind, GoalMetric, Phantom, PrescriptionIntent, Result,
};

/// Shape of the water box's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetShape {
    /// An axis-aligned box of the given size.
    #[default]
    Cuboid,
    /// An axis-aligned ellipsoid whose diameters are the given size.
    Ellipsoid,
}

/// Parameters of [`water_box`]. Build with struct update syntax from
/// [`WaterBoxParams::default`]; [`water_box`] validates them.
///
/// ```
/// use dosepaint_phantom::{water_box, TargetShape, WaterBoxParams};
/// let p = water_box(&WaterBoxParams {
///     spacing_mm: [5.0; 3],
///     target_shape: TargetShape::Ellipsoid,
///     target_size_mm: [50.0, 50.0, 50.0],
///     ..WaterBoxParams::default()
/// })?;
/// // A 5 cm sphere: 65.4 cm^3, up to voxelisation at 5 mm.
/// assert!((p.structure("PTV")?.volume_cm3() - 65.4).abs() < 10.0);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaterBoxParams {
    /// Size of the water box (x, y, z), mm. Default 200 x 200 x 200.
    pub box_size_mm: [f64; 3],
    /// Air around the box on every side, mm. Default 20.
    pub air_margin_mm: f64,
    /// CT voxel spacing, mm, at most 20. Default 4 x 4 x 4.
    pub spacing_mm: [f64; 3],
    /// Shape of the target. Default [`TargetShape::Cuboid`].
    pub target_shape: TargetShape,
    /// Size of the target (box edges or ellipsoid diameters), mm. Default
    /// 40 x 40 x 40.
    pub target_size_mm: [f64; 3],
    /// Centre of the target (LPS, mm; the box is centred on the origin).
    /// Default the origin.
    pub target_center_mm: PointMm,
    /// Gantry angles of the suggested coplanar beams, deg. Default 5 beams
    /// at 0, 72, 144, 216, 288.
    pub beam_angles_deg: Vec<f64>,
    /// Prescribed dose to the target, Gy total. Default 60.
    pub dose_gy: f64,
    /// Number of fractions. Default 30.
    pub fractions: u32,
}

impl Default for WaterBoxParams {
    fn default() -> Self {
        Self {
            box_size_mm: [200.0; 3],
            air_margin_mm: 20.0,
            spacing_mm: [4.0; 3],
            target_shape: TargetShape::Cuboid,
            target_size_mm: [40.0; 3],
            target_center_mm: [0.0; 3],
            beam_angles_deg: vec![0.0, 72.0, 144.0, 216.0, 288.0],
            dose_gy: 60.0,
            fractions: 30,
        }
    }
}

impl WaterBoxParams {
    /// Checks every parameter (called by [`water_box`]).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first bad field.
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !self.box_size_mm.iter().all(|&v| positive(v)) {
            return Err(Error::invalid(
                "box_size_mm",
                format!("{:?} mm must be positive and finite", self.box_size_mm),
            ));
        }
        if !(self.air_margin_mm.is_finite() && self.air_margin_mm >= 0.0) {
            return Err(Error::invalid(
                "air_margin_mm",
                format!("{} mm must be finite and non-negative", self.air_margin_mm),
            ));
        }
        check_spacing(self.spacing_mm, 20.0)?;
        if !self.target_size_mm.iter().all(|&v| positive(v)) {
            return Err(Error::invalid(
                "target_size_mm",
                format!("{:?} mm must be positive and finite", self.target_size_mm),
            ));
        }
        for a in 0..3 {
            let c = self.target_center_mm[a];
            let half = self.target_size_mm[a] / 2.0;
            if !c.is_finite() || (c.abs() + half) > self.box_size_mm[a] / 2.0 {
                return Err(Error::invalid(
                    "target_center_mm",
                    format!(
                        "target centred at {:?} mm with size {:?} mm does not fit inside the \
                         {:?} mm box (axis {a})",
                        self.target_center_mm, self.target_size_mm, self.box_size_mm
                    ),
                ));
            }
        }
        if self.beam_angles_deg.iter().any(|g| !g.is_finite()) {
            return Err(Error::invalid(
                "beam_angles_deg",
                format!("{:?} must all be finite", self.beam_angles_deg),
            ));
        }
        if !positive(self.dose_gy) {
            return Err(Error::invalid(
                "dose_gy",
                format!("{} Gy must be positive and finite", self.dose_gy),
            ));
        }
        if self.fractions == 0 {
            return Err(Error::invalid("fractions", "must be at least 1"));
        }
        Ok(())
    }
}

/// A water box (0 HU) in air (-1000 HU) with one target, `PTV`.
///
/// Structures: `Body` (external; the box), `PTV` (target). No functional
/// images. The isocentre is the PTV centroid; beams as in
/// [`WaterBoxParams::beam_angles_deg`]. With the defaults: a 200 mm cube on
/// a 61 x 61 x 61 grid of 4 mm (240 mm with the air margin), a 40 mm cubic
/// target at the centre, 60 Gy in 30 fractions.
///
/// ```
/// use dosepaint_phantom::{water_box, WaterBoxParams};
/// let p = water_box(&WaterBoxParams::default())?;
/// assert_eq!(p.grid().dims(), [61, 61, 61]);
/// // 11 x 11 x 11 voxel centres of 4 mm fall in the 40 mm cube (|x| <= 20).
/// assert_eq!(p.structure("PTV")?.voxel_count(), 11 * 11 * 11);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// Invalid parameters (see [`WaterBoxParams::validate`]), or a target too
/// small to hold a voxel centre at the chosen spacing.
pub fn water_box(params: &WaterBoxParams) -> Result<Phantom> {
    const NAME: &str = "water box";
    params.validate()?;
    let extent = params.box_size_mm.map(|b| b + 2.0 * params.air_margin_mm);
    let grid = centered_grid(extent, params.spacing_mm)?;
    // A voxel-centre test with a tiny tolerance so that a boundary that falls
    // exactly on a voxel centre (e.g. +-20 mm on a 4 mm grid) is inside.
    const TOL: f64 = 1e-9;
    let half_box = params.box_size_mm.map(|b| b / 2.0 + TOL);
    let body = mask_from(&grid, |p| (0..3).all(|a| p[a].abs() <= half_box[a]));
    let c = params.target_center_mm;
    let half_t = params.target_size_mm.map(|t| t / 2.0);
    let target = match params.target_shape {
        TargetShape::Cuboid => mask_from(&grid, |p| {
            (0..3).all(|a| (p[a] - c[a]).abs() <= half_t[a] + TOL)
        }),
        TargetShape::Ellipsoid => mask_from(&grid, |p| ellipsoid(p, c, half_t) <= 1.0 + TOL),
    };
    let ct = body.map(|&b| if b { 0.0f32 } else { -1000.0 });
    let body = nonempty_structure(NAME, "Body", StructureRole::External, body)?;
    let ptv = nonempty_structure(NAME, "PTV", StructureRole::Target, target)?;
    let isocenter = ptv
        .centroid_mm()
        .ok_or_else(|| Error::invalid("PTV", "is empty"))?;
    let beams = coplanar_beams(&params.beam_angles_deg, isocenter)?;
    Ok(Phantom {
        name: NAME.to_string(),
        ct,
        position: PatientPosition::HFS,
        structures: vec![body, ptv],
        images: FunctionalImages::default(),
        isocenter_mm: isocenter,
        beams,
        intent: PrescriptionIntent {
            fractions: params.fractions,
            target: "PTV".into(),
            base_dose_gy: params.dose_gy,
            painting: None,
            goals: vec![
                DoseGoal {
                    structure: "PTV".into(),
                    metric: GoalMetric::DoseAtVolumePercent(95.0),
                    kind: GoalKind::AtLeast,
                    limit_gy: 0.95 * params.dose_gy,
                    source: "ICRU 83 style coverage: D95 >= 95 % of the prescription".into(),
                },
                DoseGoal {
                    structure: "PTV".into(),
                    metric: GoalMetric::Max,
                    kind: GoalKind::AtMost,
                    limit_gy: 1.07 * params.dose_gy,
                    source: "ICRU 50/62 homogeneity: maximum <= 107 % of the prescription".into(),
                },
            ],
            description: format!(
                "water box: {} Gy in {} fractions to the PTV",
                params.dose_gy, params.fractions
            ),
        },
        seed: None,
    })
}
