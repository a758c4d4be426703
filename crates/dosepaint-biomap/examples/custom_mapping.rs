//! A researcher's own dose mapping, plugged into dosepaint-biomap.
//!
//! Run with `cargo run -p dosepaint-biomap --example custom_mapping`.
//!
//! Two ways are shown:
//! 1. implementing the `DoseMapping` trait on a type (whole volumes in, a
//!    prescription out): here a boost proportional to the product of
//!    normalised FDG and FMISO uptake, a "metabolically active and hypoxic"
//!    index;
//! 2. the `VoxelFn` adapter for a simple per-voxel function.
//!
//! Both are then combined with a built-in mapping (the voxel-wise maximum
//! with an FDG contour boost) and the result's provenance is printed.

use dosepaint_biomap::{
    ContourLevelSpec, ContourSpec, DoseMap, DoseMapping, ImageSource, MappingInputs, MappingReport,
    MappingSpec, MaxOf, Result, ThresholdRule, VoxelFn, region_stats,
};
use dosepaint_core::{Grid, Prescription, Provenance, Structure, StructureRole, Volume};

/// `D = base + boost * (FDG / SUVmax) * (FMISO / blood)` inside the target,
/// capped at `cap`; `base` in the rest of the base region.
#[derive(Debug)]
struct ActiveHypoxia {
    /// Base dose (Gy).
    base: f64,
    /// Boost at an index of 1 (Gy).
    boost: f64,
    /// Dose cap (Gy).
    cap: f64,
}

impl DoseMapping for ActiveHypoxia {
    fn map(&self, inputs: &MappingInputs) -> Result<Prescription> {
        Ok(self
            .paint(inputs)?
            .into_output(inputs.fractions())?
            .prescription)
    }

    fn paint(&self, inputs: &MappingInputs) -> Result<DoseMap> {
        let fdg = inputs.image("fdg")?;
        let fmiso = inputs.image("fmiso")?;
        let suv_max = region_stats(fdg, inputs.target())?.max;
        let blood = region_stats(fmiso, inputs.region("blood")?)?.mean;
        let target = inputs.target().mask().as_slice();
        let base = inputs.base_region().map(|b| b.mask().as_slice());
        let dose: Vec<f32> = (0..inputs.grid().n_voxels())
            .map(|n| {
                if target[n] {
                    let index = f64::from(fdg.as_slice()[n]) / suv_max
                        * (f64::from(fmiso.as_slice()[n]) / blood);
                    (self.base + self.boost * index).min(self.cap) as f32
                } else if base.is_some_and(|b| b[n]) {
                    self.base as f32
                } else {
                    0.0
                }
            })
            .collect();
        Ok(DoseMap {
            target_gy: Volume::from_vec(inputs.grid().clone(), dose)?,
            bounds: None,
            provenance: Provenance {
                description: format!(
                    "active-hypoxia boost: {} Gy + {} Gy x FDG/SUVmax x FMISO/blood, cap {} Gy",
                    self.base, self.boost, self.cap
                ),
                spec: format!(
                    r#"{{"kind": "active_hypoxia", "base_gy": {}, "boost_gy": {}, "cap_gy": {}}}"#,
                    self.base, self.boost, self.cap
                ),
            },
            report: MappingReport::default(),
        })
    }

    fn describe(&self) -> String {
        "active-hypoxia boost".into()
    }
}

fn main() -> Result<()> {
    // A synthetic patient: 3 mm grid, GTV (r 15 mm) in a PTV (r 21 mm), a
    // blood-pool region and smooth FDG / FMISO images peaking at the centre.
    let grid = Grid::new([24, 24, 16], [3.0; 3], [-34.5, -34.5, -22.5])?;
    let r = |v: [usize; 3]| {
        let p = grid.voxel_center(v);
        (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt()
    };
    let ball = |name: &str, radius: f64| {
        Structure::new(
            name,
            StructureRole::Target,
            Volume::from_fn(grid.clone(), |v| r(v) <= radius),
        )
    };
    let blood = Structure::new(
        "aorta",
        StructureRole::Other,
        Volume::from_fn(grid.clone(), |[i, j, _]| i < 2 && j < 2),
    )?;
    let inputs = MappingInputs::new(ball("GTV", 15.0)?, 35)?
        .with_base_region(ball("PTV", 21.0)?)?
        .with_region("blood", blood)?
        .with_image(
            "fdg",
            Volume::from_fn(grid.clone(), |v| (14.0 - 0.5 * r(v)).max(1.0) as f32),
        )?
        .with_image(
            "fmiso",
            Volume::from_fn(grid.clone(), |v| (2.6 - 0.06 * r(v)).max(1.0) as f32),
        )?;

    // 1. The custom type.
    let custom = ActiveHypoxia {
        base: 70.0,
        boost: 10.0,
        cap: 84.0,
    };
    let rx = custom.map(&inputs)?;
    let centre = grid.linear_index([11, 11, 7]);
    println!(
        "custom mapping: {:.1} Gy at the centre, {} prescribed voxels",
        rx.target_gy().as_slice()[centre],
        rx.prescribed_voxels().len()
    );

    // 2. A per-voxel closure through the adapter: 70 Gy + 4 Gy per unit of
    //    FMISO tumour-to-blood ratio above 1.
    let closure = VoxelFn::new(
        "FMISO TBR ramp",
        [ImageSource::new("fmiso").ratio_to("blood")],
        |v| 70.0 + 4.0 * (v.values[0] - 1.0).max(0.0),
    )
    .with_base_dose(70.0)?;
    println!(
        "closure mapping: {:.1} Gy at the centre",
        closure.map(&inputs)?.target_gy().as_slice()[centre]
    );

    // Combined with a built-in FDG contour boost (50 % SUVmax -> 77 Gy).
    let contours = MappingSpec::Contours(ContourSpec::new(
        70.0,
        vec![ContourLevelSpec::new(
            "BTV_FDG50",
            ImageSource::new("fdg"),
            ThresholdRule::FractionOfMax(0.5),
            77.0,
        )],
    ));
    let combined = MaxOf::new(vec![Box::new(custom), Box::new(closure), contours.build()?])?;
    let out = combined.map_with_report(&inputs)?;
    let d = out.prescription.target_gy().as_slice();
    let prescribed: Vec<f32> = out
        .prescription
        .prescribed_voxels()
        .iter()
        .map(|&n| d[n as usize])
        .collect();
    let max = prescribed.iter().copied().fold(f32::MIN, f32::max);
    let min = prescribed.iter().copied().fold(f32::MAX, f32::min);
    println!(
        "combined: {min:.1}-{max:.1} Gy over {} voxels",
        prescribed.len()
    );
    println!(
        "boost structures: {:?}",
        out.report
            .structures
            .iter()
            .map(Structure::name)
            .collect::<Vec<_>>()
    );
    println!("provenance: {}", out.prescription.provenance().description);
    println!("spec: {}", out.prescription.provenance().spec);
    assert!(max <= 84.0 && min >= 70.0);
    Ok(())
}
