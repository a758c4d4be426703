//! Binary morphology on masks, written for speed on large grids: row runs,
//! run-based connected-component labelling and margin dilation by stamping
//! the margin ellipsoid on boundary intervals only.

use dosepaint_core::{Grid, Structure, Volume};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, non_negative};
use crate::inputs::Window;

/// Voxel neighbourhood for connected components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// 6-connected: voxels sharing a face.
    Faces,
    /// 26-connected: voxels sharing a face, an edge or a corner.
    #[default]
    Full,
}

/// A maximal run of set voxels along x: row `row = k ny + j`, `i0..i1`.
#[derive(Debug, Clone, Copy)]
struct Run {
    row: usize,
    i0: usize,
    i1: usize,
}

/// The runs of a mask in memory order, and where each row's runs start
/// (`row_start[r]..row_start[r + 1]`).
struct Runs {
    runs: Vec<Run>,
    row_start: Vec<usize>,
}

/// The runs of `mask`, which must be false outside the window `w`.
fn runs_of(grid: &Grid, mask: &[bool], w: Window) -> Runs {
    let [nx, ny, _] = grid.dims();
    let per_slice: Vec<Vec<Run>> = mask
        .par_chunks(nx * ny)
        .enumerate()
        .skip(w.lo[2])
        .take(w.hi[2] + 1 - w.lo[2])
        .map(|(k, slice)| {
            let mut out = Vec::new();
            for j in w.lo[1]..=w.hi[1] {
                let row = &slice[j * nx..(j + 1) * nx];
                let end = w.hi[0] + 1;
                let mut i = w.lo[0];
                while i < end {
                    let Some(start) = row[i..end].iter().position(|&b| b) else {
                        break;
                    };
                    let i0 = i + start;
                    let len = row[i0..end].iter().position(|&b| !b).unwrap_or(end - i0);
                    out.push(Run {
                        row: k * ny + j,
                        i0,
                        i1: i0 + len,
                    });
                    i = i0 + len;
                }
            }
            out
        })
        .collect();
    let runs: Vec<Run> = per_slice.into_iter().flatten().collect();
    let rows = grid.dims()[1] * grid.dims()[2];
    let mut row_start = vec![0usize; rows + 1];
    for r in &runs {
        row_start[r.row + 1] += 1;
    }
    for r in 0..rows {
        row_start[r + 1] += row_start[r];
    }
    Runs { runs, row_start }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// Component index (0-based, in memory order of the component's first run)
/// of every run, and the voxel count of every component.
fn label_runs(grid: &Grid, runs: &Runs, connectivity: Connectivity) -> (Vec<u32>, Vec<usize>) {
    let [_, ny, _] = grid.dims();
    let n = runs.runs.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    // Rows that precede a run's row and may touch it.
    let neighbour_rows: &[(isize, isize)] = match connectivity {
        Connectivity::Faces => &[(0, -1), (-1, 0)],
        Connectivity::Full => &[(0, -1), (-1, -1), (-1, 0), (-1, 1)],
    };
    // Faces: the x ranges must overlap; Full: touching diagonally is enough.
    let slack = usize::from(connectivity == Connectivity::Full);
    for (idx, r) in runs.runs.iter().enumerate() {
        let (k, j) = ((r.row / ny) as isize, (r.row % ny) as isize);
        for &(dk, dj) in neighbour_rows {
            let (kk, jj) = (k + dk, j + dj);
            if kk < 0 || jj < 0 || jj >= ny as isize {
                continue;
            }
            let row = kk as usize * ny + jj as usize;
            for other in runs.row_start[row]..runs.row_start[row + 1] {
                let o = runs.runs[other];
                if o.i0 < r.i1 + slack && r.i0 < o.i1 + slack {
                    let (a, b) = (
                        find(&mut parent, idx as u32),
                        find(&mut parent, other as u32),
                    );
                    if a != b {
                        // Keep the earlier run as root so labels follow memory order.
                        let (lo, hi) = (a.min(b), a.max(b));
                        parent[hi as usize] = lo;
                    }
                }
            }
        }
    }
    let mut label_of_root = vec![u32::MAX; n];
    let mut labels = Vec::with_capacity(n);
    let mut sizes = Vec::new();
    for (idx, r) in runs.runs.iter().enumerate() {
        let root = find(&mut parent, idx as u32) as usize;
        if label_of_root[root] == u32::MAX {
            label_of_root[root] = sizes.len() as u32;
            sizes.push(0);
        }
        let l = label_of_root[root];
        sizes[l as usize] += r.i1 - r.i0;
        labels.push(l);
    }
    (labels, sizes)
}

/// Connected components of a mask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Components {
    /// Label per voxel in memory order: 0 outside, `1..=count` inside.
    pub labels: Vec<u32>,
    /// Voxel count of each component (index `label - 1`).
    pub sizes: Vec<usize>,
}

/// Labels the connected components of `mask`; labels follow the memory order
/// of each component's first voxel.
///
/// ```
/// use dosepaint_biomap::{connected_components, Connectivity};
/// use dosepaint_core::{Grid, Volume};
/// let grid = Grid::new([5, 1, 1], [1.0; 3], [0.0; 3])?;
/// let m = Volume::from_vec(grid, vec![true, true, false, true, false])?;
/// let c = connected_components(&m, Connectivity::Faces);
/// assert_eq!(c.sizes, vec![2, 1]);
/// assert_eq!(c.labels, vec![1, 1, 0, 2, 0]);
/// # Ok::<(), dosepaint_core::Error>(())
/// ```
pub fn connected_components(mask: &Volume<bool>, connectivity: Connectivity) -> Components {
    let grid = mask.grid();
    let runs = runs_of(grid, mask.as_slice(), Window::all(grid));
    let (run_labels, sizes) = label_runs(grid, &runs, connectivity);
    let nx = grid.dims()[0];
    let mut labels = vec![0u32; grid.n_voxels()];
    for (r, l) in runs.runs.iter().zip(run_labels) {
        let start = r.row * nx;
        labels[start + r.i0..start + r.i1].fill(l + 1);
    }
    Components { labels, sizes }
}

/// The structure without its connected components smaller than
/// `min_volume_cm3`, with the numbers of components kept and removed.
///
/// # Errors
/// A negative or non-finite minimum volume.
pub fn remove_small_components(
    structure: &Structure,
    min_volume_cm3: f64,
    connectivity: Connectivity,
) -> Result<(Structure, usize, usize)> {
    non_negative("minimum component volume (cm^3)", min_volume_cm3)?;
    let mut mask = structure.mask().as_slice().to_vec();
    let (kept, removed) = clean(
        structure.grid(),
        &mut mask,
        min_volume_cm3,
        connectivity,
        Window::all(structure.grid()),
    );
    Ok((
        Structure::new(
            structure.name(),
            structure.role(),
            Volume::from_vec(structure.grid().clone(), mask)?,
        )?,
        kept,
        removed,
    ))
}

/// Removes, in place, the components below `min_volume_cm3` from a mask that
/// is false outside `w`; returns the numbers of components kept and removed.
pub(crate) fn clean(
    grid: &Grid,
    mask: &mut [bool],
    min_volume_cm3: f64,
    connectivity: Connectivity,
    w: Window,
) -> (usize, usize) {
    let runs = runs_of(grid, mask, w);
    let (labels, sizes) = label_runs(grid, &runs, connectivity);
    let voxel_cm3 = grid.voxel_volume_cm3();
    // A relative tolerance so that a component of exactly the minimum volume
    // is kept despite rounding in the voxel volume.
    let keep: Vec<bool> = sizes
        .iter()
        .map(|&s| s as f64 * voxel_cm3 >= min_volume_cm3 * (1.0 - 1e-9))
        .collect();
    let kept = keep.iter().filter(|k| **k).count();
    let removed = keep.len() - kept;
    if removed > 0 {
        let nx = grid.dims()[0];
        for (r, l) in runs.runs.iter().zip(labels) {
            if !keep[l as usize] {
                let start = r.row * nx;
                mask[start + r.i0..start + r.i1].fill(false);
            }
        }
    }
    (kept, removed)
}

/// Grows a mask by an ellipsoidal margin of `margin_mm` (x, y, z): a voxel
/// joins when its centre lies within the ellipsoid of those radii around the
/// centre of a voxel inside, the same rule as
/// [`Structure::dilate`](dosepaint_core::Structure::dilate).
///
/// The nearest inside voxel to any outside point is a boundary voxel (one with
/// a 6-neighbour outside: stepping towards the point along any axis where they
/// differ gets strictly closer), so only boundary intervals of the row runs
/// are stamped with the ellipsoid's row spans, in parallel over output slices.
///
/// `mask` must be false outside `w`; only `w` grown by the margin is written.
pub(crate) fn dilate(grid: &Grid, mask: &mut [bool], margin_mm: [f64; 3], w: Window) -> Result<()> {
    if margin_mm.iter().any(|m| !(m.is_finite() && *m >= 0.0)) {
        return Err(Error::invalid(
            "margin",
            format!("{margin_mm:?} mm must be finite and >= 0"),
        ));
    }
    if margin_mm.iter().all(|m| *m == 0.0) {
        return Ok(());
    }
    let [nx, ny, nz] = grid.dims();
    let s = grid.spacing_mm();
    let reach = [0, 1, 2].map(|a| {
        if margin_mm[a] > 0.0 {
            (margin_mm[a] / s[a]).floor() as usize
        } else {
            0
        }
    });
    // Half-width in x of the ellipsoid's row at (dj, dk), if the row is hit.
    let term = |a: usize, d: usize| {
        if d == 0 {
            0.0
        } else if margin_mm[a] > 0.0 {
            (d as f64 * s[a] / margin_mm[a]).powi(2)
        } else {
            f64::INFINITY
        }
    };
    const ROUNDING: f64 = 1e-9;
    let mut spans: Vec<(isize, isize, usize)> = Vec::new();
    for dk in 0..=reach[2] {
        for dj in 0..=reach[1] {
            let t = term(2, dk) + term(1, dj);
            if t > 1.0 + ROUNDING {
                continue;
            }
            let mut w = 0;
            while w < reach[0] && t + term(0, w + 1) <= 1.0 + ROUNDING {
                w += 1;
            }
            for (sk, sj) in [(1isize, 1isize), (1, -1), (-1, 1), (-1, -1)] {
                if (sk < 0 && dk == 0) || (sj < 0 && dj == 0) {
                    continue;
                }
                spans.push((sk * dk as isize, sj * dj as isize, w));
            }
        }
    }
    // Boundary intervals of every row: run voxels with a 6-neighbour outside.
    let runs = runs_of(grid, mask, w);
    let out_window = w.grown(reach, grid);
    let frozen: &[bool] = mask;
    let at = |k: isize, j: isize, i: usize| -> bool {
        // Outside the grid counts as inside: it never adds reach.
        if k < 0 || j < 0 || k >= nz as isize || j >= ny as isize {
            return true;
        }
        frozen[(k as usize * ny + j as usize) * nx + i]
    };
    let boundary: Vec<Vec<(usize, usize)>> = runs
        .runs
        .par_iter()
        .map(|r| {
            let (k, j) = ((r.row / ny) as isize, (r.row % ny) as isize);
            let mut out: Vec<(usize, usize)> = Vec::new();
            let mut open: Option<usize> = None;
            for i in r.i0..r.i1 {
                let edge = (i == r.i0 && i > 0)
                    || (i + 1 == r.i1 && i + 1 < nx)
                    || !at(k, j - 1, i)
                    || !at(k, j + 1, i)
                    || !at(k - 1, j, i)
                    || !at(k + 1, j, i);
                match (edge, open) {
                    (true, None) => open = Some(i),
                    (false, Some(b0)) => {
                        out.push((b0, i));
                        open = None;
                    }
                    _ => {}
                }
            }
            if let Some(b0) = open {
                out.push((b0, r.i1));
            }
            out
        })
        .collect();
    mask.par_chunks_mut(nx * ny)
        .enumerate()
        .skip(out_window.lo[2])
        .take(out_window.hi[2] + 1 - out_window.lo[2])
        .for_each(|(k_out, slice)| {
            for &(dk, dj, half) in &spans {
                let k = k_out as isize - dk;
                if k < 0 || k >= nz as isize {
                    continue;
                }
                let k = k as usize;
                for row in k * ny + w.lo[1]..=k * ny + w.hi[1] {
                    let j_out = (row % ny) as isize + dj;
                    if j_out < 0 || j_out >= ny as isize {
                        continue;
                    }
                    let dst = &mut slice[j_out as usize * nx..(j_out as usize + 1) * nx];
                    for run in runs.row_start[row]..runs.row_start[row + 1] {
                        for &(b0, b1) in &boundary[run] {
                            let lo = b0.saturating_sub(half);
                            let hi = (b1 + half).min(nx);
                            dst[lo..hi].fill(true);
                        }
                    }
                }
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dosepaint_core::StructureRole;

    #[test]
    fn components_26_vs_6() {
        let grid = Grid::new([3, 3, 1], [1.0; 3], [0.0; 3]).unwrap();
        // Diagonal voxels touch only at an edge.
        let m = Volume::from_fn(grid, |[i, j, _]| i == j);
        assert_eq!(
            connected_components(&m, Connectivity::Faces).sizes,
            vec![1, 1, 1]
        );
        assert_eq!(connected_components(&m, Connectivity::Full).sizes, vec![3]);
    }

    /// Brute-force labelling by flood fill for comparison.
    fn flood(mask: &Volume<bool>, full: bool) -> Vec<u32> {
        let g = mask.grid();
        let d = g.dims();
        let m = mask.as_slice();
        let mut labels = vec![0u32; m.len()];
        let mut next = 0;
        for seed in 0..m.len() {
            if !m[seed] || labels[seed] != 0 {
                continue;
            }
            next += 1;
            let mut stack = vec![seed];
            labels[seed] = next;
            while let Some(n) = stack.pop() {
                let c = g.voxel_index(n);
                for dk in -1isize..=1 {
                    for dj in -1isize..=1 {
                        for di in -1isize..=1 {
                            let nz = [di, dj, dk].iter().filter(|x| **x != 0).count();
                            if nz == 0 || (!full && nz > 1) {
                                continue;
                            }
                            let v = [c[0] as isize + di, c[1] as isize + dj, c[2] as isize + dk];
                            if (0..3).any(|a| v[a] < 0 || v[a] >= d[a] as isize) {
                                continue;
                            }
                            let q = g.linear_index(v.map(|x| x as usize));
                            if m[q] && labels[q] == 0 {
                                labels[q] = next;
                                stack.push(q);
                            }
                        }
                    }
                }
            }
        }
        labels
    }

    fn pseudo_random_mask(grid: &Grid, seed: u64, density: f64) -> Volume<bool> {
        let mut s = seed;
        let n = grid.n_voxels();
        let v: Vec<bool> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) < density
            })
            .collect();
        Volume::from_vec(grid.clone(), v).unwrap()
    }

    #[test]
    fn run_labelling_matches_flood_fill() {
        let grid = Grid::new([13, 11, 7], [1.0; 3], [0.0; 3]).unwrap();
        for seed in 1..6 {
            let m = pseudo_random_mask(&grid, seed, 0.3);
            for (conn, full) in [(Connectivity::Faces, false), (Connectivity::Full, true)] {
                assert_eq!(connected_components(&m, conn).labels, flood(&m, full));
            }
        }
    }

    #[test]
    fn stamped_dilation_equals_core_dilation() {
        let grid = Grid::new([23, 19, 11], [1.0, 1.5, 2.5], [3.0, -2.0, 1.0]).unwrap();
        for (seed, margin) in [
            (1, [3.0, 4.0, 5.0]),
            (2, [2.0, 2.0, 2.0]),
            (3, [0.0, 3.0, 2.5]),
            (4, [4.0, 0.0, 0.0]),
            (5, [1.0, 1.5, 2.5]),
            (6, [7.0, 6.0, 9.0]),
        ] {
            let mask = pseudo_random_mask(&grid, seed, 0.02);
            let s = Structure::new("m", StructureRole::Other, mask.clone()).unwrap();
            let core = s.dilate(margin).unwrap();
            let mut ours = mask.as_slice().to_vec();
            dilate(&grid, &mut ours, margin, Window::all(&grid)).unwrap();
            assert_eq!(core.mask().as_slice(), ours.as_slice(), "margin {margin:?}");
        }
        // A solid block (interior voxels are not stamped).
        let block = Volume::from_fn(grid.clone(), |[i, j, k]| {
            (5..15).contains(&i) && (4..12).contains(&j) && (3..8).contains(&k)
        });
        let s = Structure::new("b", StructureRole::Other, block.clone()).unwrap();
        let margin = [3.0, 3.0, 5.0];
        let mut ours = block.as_slice().to_vec();
        let w = Window {
            lo: [5, 4, 3],
            hi: [14, 11, 7],
        };
        dilate(&grid, &mut ours, margin, w).unwrap();
        assert_eq!(s.dilate(margin).unwrap().mask().as_slice(), ours.as_slice());
    }
}
