//! Shared fixtures for the dosepaint benchmarks: a synthetic dose-influence
//! matrix shaped like a 9-beam TG-119 plan.
//!
//! The matrix is not a dose calculation (that is `dosepaint-dose`'s job): it
//! is a fast, deterministic stand-in with the same size, sparsity pattern and
//! dose fall-off as a real plan, so that the matrix products and the optimizer
//! can be benchmarked without computing a real matrix first. Each beamlet
//! deposits along a straight pencil through a water cylinder: attenuation
//! `exp(-mu depth)` times a two-Gaussian lateral profile (primary plus a
//! 5 % scatter tail), cut off at 30 mm from the pencil's axis.
//!
//! ```
//! use dosepaint_benches::{synthetic_plan, SyntheticScale};
//! let plan = synthetic_plan(SyntheticScale::Tiny);
//! assert!(plan.influence.nnz() > 0);
//! assert_eq!(plan.influence.layout().n_beams(), 9);
//! ```

use dosepaint_core::{
    BeamGrid, Beamlet, BeamletLayout, DoseInfluence, Grid, InfluenceBuilder, Prescription,
    Provenance, Structure, StructureRole, Volume,
};
use rayon::prelude::*;

/// How large a synthetic plan to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticScale {
    /// TG-119 sized: 5 mm voxels and bixels, about 650,000 rows, 2,900
    /// beamlets and 35 million non-zeros (about 280 MB).
    Full,
    /// 10 mm voxels and bixels: about 80,000 rows and 700 beamlets; for tests
    /// and quick experiments.
    Small,
    /// 20 mm voxels and bixels: a few thousand rows; for doc tests.
    Tiny,
}

/// A synthetic plan: the matrix (rows = body voxels) and its structures.
pub struct SyntheticPlan {
    /// The dose-influence matrix; its rows are the body voxels.
    pub influence: DoseInfluence,
    /// The C-shaped target.
    pub target: Structure,
    /// The cylindrical core (organ at risk) inside the C.
    pub core: Structure,
    /// The body (water cylinder).
    pub body: Structure,
}

/// Radius of the water cylinder, mm.
const BODY_RADIUS_MM: f64 = 280.0;
/// Lateral cut-off of each pencil, mm.
const CUTOFF_MM: f64 = 30.0;
const MU_PER_MM: f64 = 0.005;
const SIGMA_PRIMARY_MM: f64 = 4.0;
const SIGMA_SCATTER_MM: f64 = 20.0;
const SCATTER_FRACTION: f64 = 0.05;

/// Whether a point (mm, centred) is in the C-shaped target: an annulus of radii
/// 15 and 37.5 mm, 80 mm long, open over 90 degrees towards anterior (-y).
fn in_target(x: f64, y: f64, z: f64) -> bool {
    let r = x.hypot(y);
    let opening = y < 0.0 && x.abs() < -y; // the 90-degree wedge around -y
    (15.0..=37.5).contains(&r) && z.abs() <= 40.0 && !opening
}

/// The core: a cylinder of radius 10 mm, 95 mm long.
fn in_core(x: f64, y: f64, z: f64) -> bool {
    x.hypot(y) <= 10.0 && z.abs() <= 47.5
}

/// Builds the synthetic plan (deterministic; parallel).
///
/// # Panics
/// Never for the built-in scales (the geometry is fixed and valid).
pub fn synthetic_plan(scale: SyntheticScale) -> SyntheticPlan {
    let (spacing, dims) = match scale {
        SyntheticScale::Full => (5.0, [116, 116, 66]),
        SyntheticScale::Small => (10.0, [58, 58, 33]),
        SyntheticScale::Tiny => (20.0, [29, 29, 17]),
    };
    let origin = [0, 1, 2].map(|a| -(dims[a] as f64 - 1.0) * spacing / 2.0);
    let grid = Grid::new(dims, [spacing; 3], origin).expect("valid synthetic grid");
    let mask = |f: &dyn Fn(f64, f64, f64) -> bool| {
        Volume::from_fn(grid.clone(), |v| {
            let p = grid.voxel_center(v);
            f(p[0], p[1], p[2])
        })
    };
    let body_radius = (dims[0] as f64 * spacing / 2.0).min(BODY_RADIUS_MM);
    let body = Structure::new(
        "Body",
        StructureRole::External,
        mask(&|x, y, _| x.hypot(y) <= body_radius),
    )
    .expect("named");
    let target = Structure::new("PTV", StructureRole::Target, mask(&in_target)).expect("named");
    let core = Structure::new("Core", StructureRole::OrganAtRisk, mask(&in_core)).expect("named");

    // Beamlet grids: 9 coplanar beams, columns across the target's projection
    // (radius 37.5 mm plus a bixel), rows along z over its length.
    let n_cols = (2.0 * (37.5 + spacing) / spacing).ceil() as usize;
    let n_rows = (2.0 * (40.0 + spacing) / spacing).ceil() as usize;
    let beam_grid = BeamGrid {
        n_rows,
        n_cols,
        x0_mm: -(n_cols as f64 - 1.0) * spacing / 2.0,
        y0_mm: -(n_rows as f64 - 1.0) * spacing / 2.0,
    };
    let layout = BeamletLayout::full(vec![beam_grid; 9], spacing, spacing).expect("valid layout");
    let voxels = body.voxel_indices();
    let positions: Vec<[f64; 3]> = voxels
        .iter()
        .map(|&v| grid.voxel_center(grid.voxel_index(v as usize)))
        .collect();
    let builder =
        InfluenceBuilder::new(grid.clone(), voxels, layout.clone()).expect("valid builder");

    (0..9usize).into_par_iter().for_each(|b| {
        let angle = (40.0 * b as f64).to_radians();
        // Direction of travel (source at gantry angle, travelling inwards) and
        // the in-plane lateral axis.
        let dir = [-angle.sin(), angle.cos(), 0.0];
        let lateral = [angle.cos(), angle.sin(), 0.0];
        // Bucket rows by (column, row) cell of the beam's grid, padded by the
        // cut-off's reach on every side.
        let reach_f = (CUTOFF_MM / spacing).ceil();
        let reach = reach_f as usize;
        let cell = |x: f64, z: f64| -> Option<(usize, usize)> {
            let c = ((x - beam_grid.x0_mm) / spacing).round() + reach_f;
            let r = ((z - beam_grid.y0_mm) / spacing).round() + reach_f;
            (c >= 0.0
                && r >= 0.0
                && c < (n_cols + 2 * reach) as f64
                && r < (n_rows + 2 * reach) as f64)
                .then_some((c as usize, r as usize))
        };
        let (gc, gr) = (n_cols + 2 * reach, n_rows + 2 * reach);
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); gc * gr];
        for (row, p) in positions.iter().enumerate() {
            let x = p[0] * lateral[0] + p[1] * lateral[1];
            if let Some((c, r)) = cell(x, p[2]) {
                buckets[r * gc + c].push(row as u32);
            }
        }
        let range = layout.beam_range(b);
        range.into_par_iter().for_each(|n| {
            let Beamlet { row, col, .. } = layout.beamlet(n);
            let [bx, bz] = layout.center_mm(n);
            let mut rows = Vec::new();
            let mut vals = Vec::new();
            let (c0, r0) = (col as usize + reach, row as usize + reach);
            for r in r0 - reach..=r0 + reach {
                for c in c0 - reach..=c0 + reach {
                    for &v in &buckets[r * gc + c] {
                        let p = positions[v as usize];
                        let dx = p[0] * lateral[0] + p[1] * lateral[1] - bx;
                        let dz = p[2] - bz;
                        let r2 = dx * dx + dz * dz;
                        if r2 > CUTOFF_MM * CUTOFF_MM {
                            continue;
                        }
                        let depth = p[0] * dir[0] + p[1] * dir[1] + BODY_RADIUS_MM;
                        let lateral_dose = (-r2 / (2.0 * SIGMA_PRIMARY_MM.powi(2))).exp()
                            + SCATTER_FRACTION * (-r2 / (2.0 * SIGMA_SCATTER_MM.powi(2))).exp();
                        rows.push(v);
                        vals.push(((-MU_PER_MM * depth).exp() * lateral_dose) as f32);
                    }
                }
            }
            builder
                .add_column(n, &rows, &vals)
                .expect("entries are in range");
        });
    });
    SyntheticPlan {
        influence: builder.finish().expect("no thread panicked"),
        target,
        core,
        body,
    }
}

/// Weight of the core's overdose objective (above 20 Gy) in the painted
/// case; the target's squared deviation has weight 1.
pub const PAINTED_CORE_WEIGHT: f64 = 0.03;
/// Weight of the normal tissue's overdose objective (above 30 Gy) in the
/// painted case. With [`PAINTED_CORE_WEIGHT`], of the pairs compared in
/// `docs/optimization.md` the lightest that keeps the organ doses of the
/// 3.3 times heavier pair within 0.5 Gy.
pub const PAINTED_NORMAL_WEIGHT: f64 = 0.006;

/// The painted prescription of the optimizer figures: 50 Gy in the C, with a
/// smooth (Gaussian, sigma 15 mm) boost to 70 Gy around the middle of its
/// back (y = 26.25 mm, the mid-radius of the C), in 25 fractions.
///
/// # Panics
/// Never: the values are finite and positive inside the target.
pub fn painted_prescription(plan: &SyntheticPlan) -> Prescription {
    let grid = plan.target.grid().clone();
    let mask = plan.target.mask();
    let values = Volume::from_fn(grid.clone(), |v| {
        if !mask[v] {
            return 0.0f32;
        }
        let p = grid.voxel_center(v);
        let r2 = p[0].powi(2) + (p[1] - 26.25).powi(2) + p[2].powi(2);
        (50.0 + 20.0 * (-r2 / (2.0 * 15.0f64.powi(2))).exp()) as f32
    });
    Prescription::new(
        values,
        25,
        Provenance {
            description: "synthetic smooth boost 50-70 Gy".into(),
            spec: String::new(),
        },
    )
    .expect("a finite, positive painted prescription")
}

/// The Ghent quality factor of weights `w` against a prescription: the mean
/// over the target's voxels of `|D / D_presc - 1|` (the Ghent definition
/// quoted in `shared/reference/dose_painting.md`).
///
/// # Panics
/// If `w` does not have one weight per beamlet of the plan.
pub fn quality_factor(plan: &SyntheticPlan, rx: &Prescription, w: &[f64]) -> f64 {
    let d = &plan.influence;
    let dose = d.dose(w).expect("one weight per beamlet");
    let rows = d
        .rows_in_mask(plan.target.mask())
        .expect("the target is on the plan's grid");
    let p = rx.target_gy().as_slice();
    let sum: f64 = rows
        .iter()
        .map(|&r| (dose[r as usize] / f64::from(p[d.voxels()[r as usize] as usize]) - 1.0).abs())
        .sum();
    sum / rows.len() as f64
}
