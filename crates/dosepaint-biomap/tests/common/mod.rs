//! Small synthetic cases shared by the integration tests.
#![allow(dead_code)]

use dosepaint_biomap::MappingInputs;
use dosepaint_core::{Grid, Structure, StructureRole, Volume};

/// A grid of `dims` voxels of `spacing` mm with voxel (0, 0, 0) at the origin.
pub fn grid(dims: [usize; 3], spacing: [f64; 3]) -> Grid {
    Grid::new(dims, spacing, [0.0; 3]).unwrap()
}

/// A row of `values.len()` voxels (3 mm cubes) as an image.
pub fn row(values: &[f32]) -> Volume<f32> {
    Volume::from_vec(grid([values.len(), 1, 1], [3.0; 3]), values.to_vec()).unwrap()
}

/// A structure from a mask function.
pub fn structure(g: &Grid, name: &str, f: impl FnMut([usize; 3]) -> bool) -> Structure {
    Structure::new(name, StructureRole::Target, Volume::from_fn(g.clone(), f)).unwrap()
}

/// A structure from its mask, voxel by voxel in memory order.
pub fn structure_from(g: &Grid, name: &str, role: StructureRole, mask: Vec<bool>) -> Structure {
    Structure::new(name, role, Volume::from_vec(g.clone(), mask).unwrap()).unwrap()
}

/// A sphere (in mm, about a voxel-centre point).
pub fn sphere(g: &Grid, name: &str, centre: [f64; 3], r: f64) -> Structure {
    structure(g, name, |v| {
        let p = g.voxel_center(v);
        (0..3).map(|a| (p[a] - centre[a]).powi(2)).sum::<f64>() <= r * r
    })
}

/// A head-and-neck-like case on a 2 mm grid: GTV (r 10 mm) inside a PTV
/// (r 16 mm), a blood pool, and FDG, FMISO, FLT and ADC images that vary
/// with the distance from the centre.
pub fn head_and_neck() -> MappingInputs {
    let g = grid([24, 24, 20], [2.0, 2.0, 2.0]);
    let c = [23.0, 23.0, 19.0];
    let r = |v: [usize; 3]| {
        let p = g.voxel_center(v);
        (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>().sqrt()
    };
    let blood = structure(&g, "aorta", |[i, j, _]| i < 2 && j < 2);
    let fdg = Volume::from_fn(g.clone(), |v| (12.0 - 0.6 * r(v)).max(1.5) as f32);
    // FMISO: blood pool 2.0 kBq/mL, tumour up to 2.2x blood in the core.
    let fmiso = Volume::from_fn(g.clone(), |v| {
        if r(v) > 25.0 {
            2.0
        } else {
            (2.0 * (2.2 - 0.1 * r(v)).max(0.9)) as f32
        }
    });
    let flt = Volume::from_fn(g.clone(), |v| (6.0 - 0.3 * r(v)).max(0.5) as f32);
    // ADC in 1e-6 mm^2/s: dense core 700, water-like edge 3100.
    let adc = Volume::from_fn(g.clone(), |v| (700.0 + 160.0 * r(v)).min(3100.0) as f32);
    MappingInputs::new(sphere(&g, "GTV", c, 10.0), 35)
        .unwrap()
        .with_base_region(sphere(&g, "PTV", c, 16.0))
        .unwrap()
        .with_region("blood", blood)
        .unwrap()
        .with_image("fdg", fdg)
        .unwrap()
        .with_image("fmiso", fmiso)
        .unwrap()
        .with_image("flt", flt)
        .unwrap()
        .with_image("adc", adc)
        .unwrap()
}

/// Inputs over a row of voxels: every voxel in the target unless `target` says otherwise.
pub fn row_inputs(
    images: &[(&str, &[f32])],
    target: Option<&[bool]>,
    fractions: u32,
) -> MappingInputs {
    let n = images[0].1.len();
    let g = grid([n, 1, 1], [3.0; 3]);
    let mask: Vec<bool> = target.map_or_else(|| vec![true; n], <[bool]>::to_vec);
    let t = structure_from(&g, "GTV", StructureRole::Target, mask);
    let mut inputs = MappingInputs::new(t, fractions).unwrap();
    for (name, values) in images {
        inputs = inputs
            .with_image(*name, Volume::from_vec(g.clone(), values.to_vec()).unwrap())
            .unwrap();
    }
    inputs
}
