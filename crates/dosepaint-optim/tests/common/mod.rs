//! Fixtures shared by the integration tests: small dose-influence matrices
//! on a line of voxels.

use dosepaint_core::{
    BeamGrid, BeamletLayout, DoseInfluence, Grid, Structure, StructureRole, Volume,
};

/// A line of `voxels` 2 mm voxels (grid `voxels x 1 x 1`), every voxel a row
/// of the matrix, one beam of `beam[0] x beam[1]` 5 mm beamlets, and the
/// entries `(row, beamlet, Gy per unit weight)`.
pub fn line_influence(
    voxels: usize,
    beam: [usize; 2],
    entries: impl IntoIterator<Item = (u32, u32, f32)>,
) -> DoseInfluence {
    let grid = Grid::new([voxels, 1, 1], [2.0; 3], [0.0; 3]).unwrap();
    let layout = BeamletLayout::full(
        vec![BeamGrid {
            n_rows: beam[0],
            n_cols: beam[1],
            x0_mm: 0.0,
            y0_mm: 0.0,
        }],
        5.0,
        5.0,
    )
    .unwrap();
    let rows = (0..voxels as u32).collect();
    DoseInfluence::from_triplets(grid, rows, layout, entries).unwrap()
}

/// On the grid of a [`line_influence`] matrix: a target "PTV" over the first
/// `n_target` voxels and an organ "OAR" over the rest.
pub fn target_and_organ(d: &DoseInfluence, n_target: usize) -> (Structure, Structure) {
    let grid = d.grid();
    let ptv = Structure::new(
        "PTV",
        StructureRole::Target,
        Volume::from_fn(grid.clone(), |[i, _, _]| i < n_target),
    )
    .unwrap();
    let oar = Structure::new(
        "OAR",
        StructureRole::OrganAtRisk,
        Volume::from_fn(grid.clone(), |[i, _, _]| i >= n_target),
    )
    .unwrap();
    (ptv, oar)
}
