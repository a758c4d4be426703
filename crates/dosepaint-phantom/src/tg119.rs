//! The AAPM TG-119 C-shape test case (Ezzell et al., Med Phys 36:5359, 2009),
//! laid out like its CORT/matRad voxel version.

use dosepaint_core::{PatientPosition, PointMm, StructureRole, Volume};

use crate::geometry::{
    centered_grid, check_spacing, coplanar_beams, equispaced_angles, mask_from, nonempty_structure,
};
use crate::{
    DoseGoal, Error, FunctionalImages, GoalKind, GoalMetric, Phantom, PrescriptionIntent, Result,
};

/// CT spacing of the reference TG-119 phantom (CORT/matRad): 3 x 3 x 2.5 mm.
pub const TG119_SPACING_MM: [f64; 3] = [3.0, 3.0, 2.5];
/// Extent of the CT grid: 167 x 167 x 129 voxels of [`TG119_SPACING_MM`].
pub const TG119_EXTENT_MM: [f64; 3] = [501.0, 501.0, 322.5];
/// Transverse size (x, y) and length (z) of the water box (the body), mm.
pub const TG119_BODY_MM: [f64; 3] = [300.0, 300.0, 300.0];
/// Radius of the cylindrical core (the organ at risk), mm.
pub const TG119_CORE_RADIUS_MM: f64 = 10.0;
/// Half-length of the core along z, mm (core from -45 to +45 mm).
pub const TG119_CORE_HALF_LENGTH_MM: f64 = 45.0;
/// Inner radius of the C (core radius plus a 5 mm gap), mm.
pub const TG119_C_INNER_RADIUS_MM: f64 = 15.0;
/// Outer radius of the C, mm.
pub const TG119_C_OUTER_RADIUS_MM: f64 = 37.0;
/// Half-length of the C along z, mm (target from -38 to +38 mm).
pub const TG119_C_HALF_LENGTH_MM: f64 = 38.0;
/// Half-angle of the C's opening, measured from the anterior direction, deg
/// (the C spans the 210 degrees that face away from the anterior).
pub const TG119_C_OPENING_HALF_ANGLE_DEG: f64 = 75.0;
/// Prescription: 50 Gy ...
pub const TG119_DOSE_GY: f64 = 50.0;
/// ... in 25 fractions of 2 Gy.
pub const TG119_FRACTIONS: u32 = 25;

/// The TG-119 C-shape at the reference resolution: 167 x 167 x 129 voxels of
/// 3 x 3 x 2.5 mm (3.6 million voxels; builds in about 0.1 s in release and
/// 0.3 s in the dev profile on one core).
///
/// Geometry (LPS, mm; origin at the centre of the core):
/// - `Body` (external): a water box (0 HU) of 300 x 300 x 300 mm in air
///   (-1000 HU), see [`TG119_BODY_MM`].
/// - `Core` (organ at risk): a cylinder along z of radius 10 mm and length
///   90 mm (28.3 cm^3 nominal; 30.8 cm^3 of voxel centres at the reference
///   spacing, against the matRad/CORT value of about 30 cm^3).
/// - `PTV` (target): the C, the part of the cylindrical shell
///   15 mm <= r <= 37 mm, |z| <= 38 mm, that lies more than 75 degrees away
///   from the anterior direction (-y); the opening faces anterior.
///   Nominally 35.9 cm^2 x 210/360 x 7.6 cm = 159 cm^3; the voxel centres
///   at the reference spacing (31 slices of 2.5 mm) hold about 167 cm^3,
///   against the matRad/CORT value of about 168 cm^3
///   (/work/shared/reference/tg119.md). The gap between core and C is 5 mm.
///
/// Beams: 9 coplanar beams at gantry 0, 40, ..., 320 deg on the PTV centroid.
/// Intent: 50 Gy in 25 fractions; goals PTV D95 >= 50 Gy, D10 <= 55 Gy,
/// core D10 <= 25 Gy (the "easier" goal; the harder one is 10 Gy).
///
/// ```
/// let p = dosepaint_phantom::tg119()?;
/// assert_eq!(p.grid().dims(), [167, 167, 129]);
/// assert_eq!(p.beams.len(), 9);
/// let ptv = p.structure("PTV")?.volume_cm3();
/// assert!((ptv - 168.0).abs() < 0.1 * 168.0);
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// None in practice (the reference spacing is valid); the `Result` is kept
/// for symmetry with [`tg119_with_spacing`].
pub fn tg119() -> Result<Phantom> {
    tg119_with_spacing(TG119_SPACING_MM)
}

/// The TG-119 C-shape on a grid of another spacing covering the same
/// 501 x 501 x 322.5 mm box (odd dimensions, a voxel centred at the origin).
/// Coarser grids (e.g. 5 x 5 x 5 mm) make fast tests; volumes then deviate
/// more from their nominal values through voxelisation.
///
/// ```
/// let p = dosepaint_phantom::tg119_with_spacing([6.0, 6.0, 6.0])?;
/// let core = p.structure("Core")?;
/// let ptv = p.structure("PTV")?;
/// assert!(core.intersection(ptv)?.is_empty());
/// # Ok::<(), dosepaint_phantom::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for a spacing that is not finite and in
/// (0, 10] mm, or that would need more than
/// [`crate::MAX_PHANTOM_VOXELS`] voxels; [`Error::EmptyStructure`] if a
/// structure has no voxel at that spacing.
pub fn tg119_with_spacing(spacing_mm: [f64; 3]) -> Result<Phantom> {
    const NAME: &str = "TG-119 C-shape";
    check_spacing(spacing_mm, 10.0)?;
    let grid = centered_grid(TG119_EXTENT_MM, spacing_mm)?;

    let body = mask_from(&grid, in_body);
    let core = mask_from(&grid, in_core);
    let ptv = mask_from(&grid, in_c_target);
    let ct = Volume::from_fn(grid.clone(), |v| {
        if body.get(v).copied().unwrap_or(false) {
            0.0f32
        } else {
            -1000.0
        }
    });

    let body = nonempty_structure(NAME, "Body", StructureRole::External, body)?;
    let ptv = nonempty_structure(NAME, "PTV", StructureRole::Target, ptv)?;
    let core = nonempty_structure(NAME, "Core", StructureRole::OrganAtRisk, core)?;
    let isocenter = ptv
        .centroid_mm()
        .ok_or_else(|| Error::invalid("PTV", "is empty"))?;
    let beams = coplanar_beams(&equispaced_angles(9), isocenter)?;

    let source = "AAPM TG-119 (Ezzell et al., Med Phys 36:5359, 2009); \
                  /work/shared/reference/tg119.md"
        .to_string();
    let goals = vec![
        DoseGoal {
            structure: "PTV".into(),
            metric: GoalMetric::DoseAtVolumePercent(95.0),
            kind: GoalKind::AtLeast,
            limit_gy: 50.0,
            source: source.clone(),
        },
        DoseGoal {
            structure: "PTV".into(),
            metric: GoalMetric::DoseAtVolumePercent(10.0),
            kind: GoalKind::AtMost,
            limit_gy: 55.0,
            source: source.clone(),
        },
        DoseGoal {
            structure: "Core".into(),
            metric: GoalMetric::DoseAtVolumePercent(10.0),
            kind: GoalKind::AtMost,
            limit_gy: 25.0,
            source: format!("{source} (easier goal; the harder goal is 10 Gy)"),
        },
    ];
    Ok(Phantom {
        name: NAME.to_string(),
        ct,
        position: PatientPosition::HFS,
        structures: vec![body, ptv, core],
        images: FunctionalImages::default(),
        isocenter_mm: isocenter,
        beams,
        intent: PrescriptionIntent {
            fractions: TG119_FRACTIONS,
            target: "PTV".into(),
            base_dose_gy: TG119_DOSE_GY,
            painting: None,
            goals,
            description: "TG-119 C-shape: 50 Gy in 25 fractions to the PTV, spare the core".into(),
        },
        seed: None,
    })
}

fn in_body(p: PointMm) -> bool {
    (0..3).all(|a| p[a].abs() <= TG119_BODY_MM[a] / 2.0)
}

fn in_core(p: PointMm) -> bool {
    p[0] * p[0] + p[1] * p[1] <= TG119_CORE_RADIUS_MM * TG119_CORE_RADIUS_MM
        && p[2].abs() <= TG119_CORE_HALF_LENGTH_MM
}

fn in_c_target(p: PointMm) -> bool {
    let r = p[0].hypot(p[1]);
    if !(TG119_C_INNER_RADIUS_MM..=TG119_C_OUTER_RADIUS_MM).contains(&r)
        || p[2].abs() > TG119_C_HALF_LENGTH_MM
    {
        return false;
    }
    // Angle between the in-plane direction and anterior (-y), in degrees.
    let angle_from_anterior = p[0].atan2(-p[1]).abs().to_degrees();
    angle_from_anterior > TG119_C_OPENING_HALF_ANGLE_DEG
}
